//! `features.toml`: raw fields, the transforms that turn them into model features, and how the
//! features are assembled into the model's input tensors.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use wafer_scoring::DataType;

use crate::FeatureError;

/// A whole feature pipeline: what a record holds, what the model takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The raw fields of a record.
    #[serde(rename = "field", default)]
    pub fields: Vec<Field>,
    /// The features, in the order they fill the outputs.
    #[serde(rename = "feature", default)]
    pub features: Vec<Feature>,
    /// The model inputs the features fill; the first one when a feature names none.
    #[serde(rename = "output", default)]
    pub outputs: Vec<Output>,
}

/// The type of a raw field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A number.
    Float,
    /// A whole number.
    Int,
    /// `true` or `false`.
    Bool,
    /// Text: a category.
    String,
    /// RFC 3339 text or epoch seconds.
    Timestamp,
}

/// How a missing value is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    /// The mean of the training values (numbers).
    Mean,
    /// Their median (numbers).
    Median,
    /// The most frequent training value (the smallest among ties, as scikit-learn).
    MostFrequent,
}

/// A raw field of the incoming records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field's name in a record.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether a record must carry it (no default or imputation then applies).
    #[serde(default)]
    pub required: bool,
    /// The value used when the field is absent or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<toml::Value>,
    /// Imputation learned by `fit`; its value lands in `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impute: Option<Impute>,
    /// Look the value up in a key-value store by another field's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Lookup>,
}

/// An online lookup: the field's value is read from a store by an entity key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// The store's name.
    pub store: String,
    /// The field holding the entity key.
    pub key: String,
}

/// What to do with a category outside the vocabulary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// Refuse the record (400 naming field and row).
    #[default]
    Error,
    /// All zeros (one-hot) or -1 (ordinal), as scikit-learn's `handle_unknown`.
    Ignore,
    /// One extra column (one-hot) or code (ordinal) for every unknown category.
    Bucket,
}

/// How bucketized values are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encode {
    /// The bucket's index.
    #[default]
    Ordinal,
    /// One column per bucket.
    OneHot,
}

/// A timestamp part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// 0–23.
    Hour,
    /// Monday 0 … Sunday 6.
    Weekday,
    /// 1–12.
    Month,
    /// 1–366.
    DayOfYear,
}

impl Part {
    /// The period of the cyclic encoding.
    pub fn period(self) -> f64 {
        match self {
            Part::Hour => 24.0,
            Part::Weekday => 7.0,
            Part::Month => 12.0,
            Part::DayOfYear => 366.0,
        }
    }
}

/// A transform and the statistics it needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transform", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// The number as it is.
    Identity,
    /// `(x - mean) / std` (a zero std counts as 1, as scikit-learn's StandardScaler).
    Standardize {
        /// Learned by `fit`.
        #[serde(default)]
        mean: Option<f64>,
        /// Learned by `fit` (population standard deviation).
        #[serde(default)]
        std: Option<f64>,
    },
    /// `(x - min) / (max - min)` (a zero range counts as 1, as scikit-learn's MinMaxScaler).
    MinMax {
        /// Learned by `fit`.
        #[serde(default)]
        min: Option<f64>,
        /// Learned by `fit`.
        #[serde(default)]
        max: Option<f64>,
    },
    /// The number clipped to `[min, max]`.
    Clip {
        /// Lower bound.
        #[serde(default)]
        min: Option<f64>,
        /// Upper bound.
        #[serde(default)]
        max: Option<f64>,
    },
    /// `ln(1 + x)`.
    Log1p,
    /// The bucket of `x` among `boundaries` (scikit-learn's KBinsDiscretizer with those inner
    /// edges); `fit` learns quantile boundaries when `bins` is given instead.
    Bucketize {
        /// Inner edges, increasing.
        #[serde(default)]
        boundaries: Option<Vec<f64>>,
        /// How many quantile buckets `fit` learns.
        #[serde(default)]
        bins: Option<usize>,
        /// Ordinal index or one-hot columns.
        #[serde(default)]
        encode: Encode,
    },
    /// 1 when the field is missing, else 0.
    MissingIndicator,
    /// `a / b` of two fields.
    Ratio,
    /// `a - b` of two fields.
    Difference,
    /// `a * b` of two fields.
    Product,
    /// One column per category.
    OneHot {
        /// The categories, learned by `fit` (sorted, those seen at least `min_frequency` times).
        #[serde(default)]
        vocabulary: Option<Vec<String>>,
        /// What an unknown category gives.
        #[serde(default)]
        unknown: Unknown,
        /// `fit` keeps categories seen at least this often.
        #[serde(default)]
        min_frequency: Option<usize>,
    },
    /// The category's index in the vocabulary.
    Ordinal {
        /// The categories, learned by `fit`.
        #[serde(default)]
        vocabulary: Option<Vec<String>>,
        /// What an unknown category gives.
        #[serde(default)]
        unknown: Unknown,
        /// `fit` keeps categories seen at least this often.
        #[serde(default)]
        min_frequency: Option<usize>,
    },
    /// scikit-learn's `FeatureHasher(input_type="string")` of the category.
    Hash {
        /// The number of columns.
        n_features: usize,
        /// Whether a negative hash gives -1 (scikit-learn's default).
        #[serde(default = "yes")]
        alternate_sign: bool,
    },
    /// A part of a timestamp, as a number or as its sine and cosine.
    Timestamp {
        /// Which part.
        part: Part,
        /// Two columns, `sin(2πp/period)` and `cos(2πp/period)`.
        #[serde(default)]
        cyclic: bool,
    },
}

fn yes() -> bool {
    true
}

/// One feature: a transform of one or two fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFeature")]
pub struct Feature {
    /// The feature's name (its columns are `name`, or `name[i]`).
    pub name: String,
    /// The field it reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The two fields it reads (ratio, difference, product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The transform.
    #[serde(flatten)]
    pub transform: Transform,
    /// The output it fills; the first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A feature as written: its own keys, and the transform's (checked strictly against the
/// transform, which serde's `flatten` cannot do).
#[derive(Deserialize)]
struct RawFeature {
    name: String,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    output: Option<String>,
    #[serde(flatten)]
    transform: toml::Table,
}

impl TryFrom<RawFeature> for Feature {
    type Error = String;

    fn try_from(raw: RawFeature) -> Result<Feature, String> {
        let transform = Transform::deserialize(toml::Value::Table(raw.transform))
            .map_err(|e| format!("feature \"{}\": {}", raw.name, e.message()))?;
        Ok(Feature {
            name: raw.name,
            field: raw.field,
            fields: raw.fields,
            transform,
            output: raw.output,
        })
    }
}

/// A model input the features fill, `[N, columns]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The model input's name.
    pub name: String,
    /// Its v2 datatype: FP32, FP64 or INT64.
    pub datatype: String,
}

impl Spec {
    /// Parses and validates `features.toml` text.
    pub fn parse(text: &str) -> Result<Spec, FeatureError> {
        let spec: Spec = toml::from_str(text).map_err(|e| FeatureError::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as `features.toml` text.
    pub fn to_toml(&self) -> Result<String, FeatureError> {
        toml::to_string(self).map_err(|e| FeatureError::Spec(e.to_string()))
    }

    /// Reads a spec from JSON, the form [`Spec::to_json`] writes, and checks it as
    /// [`Spec::parse`] does. It parses several times faster than TOML text.
    pub fn from_json(text: &str) -> Result<Spec, FeatureError> {
        let spec: Spec =
            serde_json::from_str(text).map_err(|e| FeatureError::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The spec as JSON, if JSON carries it whole: not when a value is one JSON has no number
    /// for (a `NaN` default), which only TOML text carries.
    pub fn to_json(&self) -> Option<String> {
        let json = serde_json::to_string(self).ok()?;
        let back: Spec = serde_json::from_str(&json).ok()?;
        (back == *self).then_some(json)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks names, types and statistics, naming the field and transform at fault.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |what: String| Err(FeatureError::Spec(what));
        let mut names = HashSet::new();
        for f in &self.fields {
            if !names.insert(f.name.as_str()) {
                return bad(format!("field \"{}\" is declared twice", f.name));
            }
            if let Some(d) = &f.default
                && crate::record::Value::from_toml(d).coerce(f.kind).is_err()
            {
                return bad(format!(
                    "field \"{}\": default {d} is not a {:?}",
                    f.name, f.kind
                ));
            }
            if f.impute.is_some()
                && f.default.is_none()
                && !matches!(
                    f.kind,
                    FieldType::Float | FieldType::Int | FieldType::String
                )
            {
                return bad(format!(
                    "field \"{}\": imputation needs a number or string field",
                    f.name
                ));
            }
            if let Some(l) = &f.lookup {
                match self.field(&l.key) {
                    None => {
                        return bad(format!(
                            "field \"{}\": lookup key \"{}\" is not a field",
                            f.name, l.key
                        ));
                    }
                    Some(k) if k.lookup.is_some() => {
                        return bad(format!(
                            "field \"{}\": lookup key \"{}\" is itself looked up",
                            f.name, l.key
                        ));
                    }
                    Some(_) if l.store.is_empty() => {
                        return bad(format!("field \"{}\": lookup store is empty", f.name));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.outputs.is_empty() {
            return bad("no [[output]]: name the model input the features fill".into());
        }
        for o in &self.outputs {
            if !matches!(
                DataType::from_v2_name(&o.datatype),
                Some(DataType::F32 | DataType::F64 | DataType::I64)
            ) {
                return bad(format!(
                    "output \"{}\": datatype {} is not FP32, FP64 or INT64",
                    o.name, o.datatype
                ));
            }
        }
        for feat in &self.features {
            let at = |why: &str| {
                FeatureError::Spec(format!(
                    "feature \"{}\" ({}): {why}",
                    feat.name,
                    feat.transform.name()
                ))
            };
            if let Some(out) = &feat.output
                && !self.outputs.iter().any(|o| &o.name == out)
            {
                return Err(at(&format!("output \"{out}\" is not an [[output]]")));
            }
            let inputs = feat.inputs();
            let wanted = if feat.transform.is_binary() { 2 } else { 1 };
            if inputs.len() != wanted {
                return Err(at(&format!(
                    "reads {wanted} field(s), got {}",
                    inputs.len()
                )));
            }
            for name in &inputs {
                let Some(field) = self.field(name) else {
                    return Err(at(&format!("field \"{name}\" is not declared")));
                };
                let ok = match &feat.transform {
                    Transform::OneHot { .. }
                    | Transform::Ordinal { .. }
                    | Transform::Hash { .. } => {
                        matches!(
                            field.kind,
                            FieldType::String | FieldType::Int | FieldType::Bool
                        )
                    }
                    Transform::Timestamp { .. } => field.kind == FieldType::Timestamp,
                    Transform::MissingIndicator => true,
                    _ => matches!(
                        field.kind,
                        FieldType::Float | FieldType::Int | FieldType::Bool
                    ),
                };
                if !ok {
                    return Err(at(&format!("field \"{name}\" is a {:?}", field.kind)));
                }
            }
            feat.transform.validate().map_err(|why| at(&why))?;
        }
        Ok(())
    }

    /// Whether `fit` has learned every statistic the transforms need.
    pub fn is_fitted(&self) -> bool {
        self.features
            .iter()
            .all(|f| f.transform.validate_fitted().is_ok())
            && self
                .fields
                .iter()
                .all(|f| f.impute.is_none() || f.default.is_some())
    }

    /// The column names of each output, in order.
    pub fn columns(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = self
            .outputs
            .iter()
            .map(|o| (o.name.clone(), vec![]))
            .collect();
        for f in &self.features {
            let width = f.transform.width();
            let names = out.entry(f.output_name(self).to_owned()).or_default();
            if width == 1 {
                names.push(f.name.clone());
            } else {
                names.extend((0..width).map(|i| format!("{}[{i}]", f.name)));
            }
        }
        out
    }
}

impl Feature {
    /// The fields the feature reads.
    pub fn inputs(&self) -> Vec<String> {
        match (&self.field, &self.fields) {
            (Some(f), None) => vec![f.clone()],
            (None, Some(fs)) => fs.clone(),
            (Some(f), Some(fs)) => std::iter::once(f.clone())
                .chain(fs.iter().cloned())
                .collect(),
            (None, None) => vec![],
        }
    }

    /// The output this feature fills.
    pub fn output_name<'a>(&'a self, spec: &'a Spec) -> &'a str {
        self.output
            .as_deref()
            .unwrap_or_else(|| spec.outputs.first().map_or("", |o| o.name.as_str()))
    }
}

impl Transform {
    /// The transform's name in `features.toml`.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::Identity => "identity",
            Transform::Standardize { .. } => "standardize",
            Transform::MinMax { .. } => "min_max",
            Transform::Clip { .. } => "clip",
            Transform::Log1p => "log1p",
            Transform::Bucketize { .. } => "bucketize",
            Transform::MissingIndicator => "missing_indicator",
            Transform::Ratio => "ratio",
            Transform::Difference => "difference",
            Transform::Product => "product",
            Transform::OneHot { .. } => "one_hot",
            Transform::Ordinal { .. } => "ordinal",
            Transform::Hash { .. } => "hash",
            Transform::Timestamp { .. } => "timestamp",
        }
    }

    fn is_binary(&self) -> bool {
        matches!(
            self,
            Transform::Ratio | Transform::Difference | Transform::Product
        )
    }

    /// How many columns the feature fills (once fitted).
    pub fn width(&self) -> usize {
        match self {
            Transform::Bucketize {
                boundaries,
                bins,
                encode: Encode::OneHot,
            } => boundaries
                .as_ref()
                .map_or_else(|| bins.unwrap_or(1), |b| b.len() + 1),
            Transform::OneHot {
                vocabulary,
                unknown,
                ..
            } => vocabulary.as_ref().map_or(0, Vec::len) + usize::from(*unknown == Unknown::Bucket),
            Transform::Hash { n_features, .. } => *n_features,
            Transform::Timestamp { cyclic: true, .. } => 2,
            _ => 1,
        }
    }

    /// Checks the transform's own parameters (statistics may still be unfitted).
    fn validate(&self) -> Result<(), String> {
        match self {
            Transform::Clip {
                min: Some(lo),
                max: Some(hi),
            } if lo > hi => Err(format!("min {lo} > max {hi}")),
            Transform::Bucketize {
                boundaries: Some(b),
                ..
            } if b
                .windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) =>
            {
                Err(format!("boundaries {b:?} are not increasing"))
            }
            Transform::Bucketize {
                boundaries: None,
                bins: None,
                ..
            } => Err("needs boundaries or bins".into()),
            Transform::Bucketize { bins: Some(0), .. } => Err("bins must be positive".into()),
            Transform::Hash { n_features: 0, .. } => Err("n_features must be positive".into()),
            Transform::OneHot {
                vocabulary: Some(v),
                ..
            }
            | Transform::Ordinal {
                vocabulary: Some(v),
                ..
            } => {
                let mut seen = HashSet::new();
                match v.iter().find(|c| !seen.insert(c.as_str())) {
                    Some(c) => Err(format!("category \"{c}\" is listed twice")),
                    None => Ok(()),
                }
            }
            Transform::Standardize { std: Some(s), .. } if *s < 0.0 => {
                Err(format!("std {s} is negative"))
            }
            _ => Ok(()),
        }
    }

    /// Checks that every statistic is present.
    pub(crate) fn validate_fitted(&self) -> Result<(), String> {
        let missing = |what: &str| Err(format!("{what} is not fitted: run `wafer features fit`"));
        match self {
            Transform::Standardize { mean: None, .. } => missing("mean"),
            Transform::Standardize { std: None, .. } => missing("std"),
            Transform::MinMax { min: None, .. } => missing("min"),
            Transform::MinMax { max: None, .. } => missing("max"),
            Transform::Bucketize {
                boundaries: None, ..
            } => missing("boundaries"),
            Transform::OneHot {
                vocabulary: None, ..
            }
            | Transform::Ordinal {
                vocabulary: None, ..
            } => missing("vocabulary"),
            _ => Ok(()),
        }
    }
}
