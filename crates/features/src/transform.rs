//! Applying a fitted spec to records: the one implementation used offline, in the server and in
//! the browser.

use std::borrow::Cow;

use wafer_scoring::{DataType, Tensor, TensorData};

use crate::FeatureError;
use crate::hash::hashed_column;
use crate::record::{Record, Typed, Value};
use crate::spec::{Encode, Feature, Spec, Transform, Unknown};
use crate::table::Table;
use crate::time::parts;

/// A field's value in one record: coerced, with defaults applied, and whether it was missing.
struct Resolved<'a> {
    value: Typed<'a>,
    was_missing: bool,
}

impl Spec {
    /// Resolves every field of row `row`, in `[[field]]` order, into `out`: required fields
    /// present, types right, defaults in. `columns` and `defaults` are the fields' columns of
    /// the table and their default values.
    fn resolve<'a>(
        &self,
        row: usize,
        columns: &[Option<&'a [Value]>],
        defaults: &'a [Option<Value>],
        out: &mut Vec<Resolved<'a>>,
    ) -> Result<(), FeatureError> {
        out.clear();
        for ((field, column), default) in self.fields.iter().zip(columns).zip(defaults) {
            let raw = column.map_or(&Value::Missing, |c| &c[row]);
            let was_missing = *raw == Value::Missing;
            if was_missing && field.required {
                return Err(FeatureError::MissingField {
                    row,
                    field: field.name.clone(),
                });
            }
            let value = match (was_missing, default) {
                (true, Some(d)) => d,
                _ => raw,
            };
            let value = value
                .coerce(field.kind)
                .map_err(|why| FeatureError::WrongType {
                    row,
                    field: field.name.clone(),
                    why,
                })?;
            out.push(Resolved { value, was_missing });
        }
        Ok(())
    }

    /// What a record must carry for the spec: its fields, then its lookups' keys that are not
    /// fields, each once.
    pub fn raw_fields(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
        for key in self.fields.iter().filter_map(|f| f.lookup.as_ref()) {
            if !names.contains(&key.key.as_str()) {
                names.push(&key.key);
            }
        }
        names
    }

    /// The columns of `records` that the spec reads ([`Spec::raw_fields`]).
    pub fn table(&self, records: &[Record]) -> Table {
        Table::of_records(records, self.raw_fields())
    }

    /// Transforms records into the model's input tensors, `[N, columns]` each, in `[[output]]`
    /// order. Errors name the row and field.
    pub fn transform(&self, records: &[Record]) -> Result<Vec<Tensor>, FeatureError> {
        self.transform_table(&self.table(records))?.into_tensors()
    }

    /// Transforms the records it can and sets the others aside, as [`Spec::transform_table`].
    pub fn transform_each(&self, records: &[Record]) -> Result<Rows, FeatureError> {
        self.transform_table(&self.table(records))
    }

    /// Transforms the rows of a table it can and sets the others aside: a row that is missing
    /// a required field, has a value of the wrong type, an unknown category or a fraction in an
    /// integer output is rejected with its reason, and the tensors hold the rest, in order.
    /// Only a spec that cannot transform anything (not fitted, no rows) fails as a whole.
    pub fn transform_table(&self, table: &Table) -> Result<Rows, FeatureError> {
        if table.rows() == 0 {
            return Err(FeatureError::NoRows);
        }
        for f in &self.features {
            f.transform.validate_fitted().map_err(|why| {
                FeatureError::Spec(format!(
                    "feature \"{}\" ({}): {why}",
                    f.name,
                    f.transform.name()
                ))
            })?;
        }
        let columns: Vec<Option<&[Value]>> =
            self.fields.iter().map(|f| table.column(&f.name)).collect();
        let defaults: Vec<Option<Value>> = self
            .fields
            .iter()
            .map(|f| f.default.as_ref().map(Value::from_toml))
            .collect();
        let targets: Vec<usize> = self
            .features
            .iter()
            .map(|feature| {
                self.outputs
                    .iter()
                    .position(|o| o.name == feature.output_name(self))
                    .unwrap_or(0)
            })
            .collect();
        // Each feature's inputs, as places in `[[field]]` order.
        let inputs: Vec<Vec<usize>> = self
            .features
            .iter()
            .map(|f| {
                f.inputs()
                    .iter()
                    .map(|name| {
                        self.fields
                            .iter()
                            .position(|d| &d.name == name)
                            .ok_or_else(|| {
                                FeatureError::Spec(format!(
                                    "feature \"{}\": field \"{name}\" is not declared",
                                    f.name
                                ))
                            })
                    })
                    .collect()
            })
            .collect::<Result<_, _>>()?;
        let whole: Vec<bool> = self
            .outputs
            .iter()
            .map(|o| DataType::from_v2_name(&o.datatype) == Some(DataType::I64))
            .collect();
        let mut out: Vec<Vec<f64>> = vec![Vec::new(); self.outputs.len()];
        let mut kept = Vec::with_capacity(table.rows());
        let mut rejected = Vec::new();
        let mut fields = Vec::with_capacity(self.fields.len());
        let mut lengths = vec![0; out.len()];
        for row in 0..table.rows() {
            for (len, column) in lengths.iter_mut().zip(&out) {
                *len = column.len();
            }
            let applied = self
                .resolve(row, &columns, &defaults, &mut fields)
                .and_then(|()| {
                    for ((feature, &target), inputs) in
                        self.features.iter().zip(&targets).zip(&inputs)
                    {
                        feature.apply(row, &fields, inputs, &mut out[target])?;
                    }
                    whole_row(&self.outputs, &whole, &out, &lengths, row)
                });
            match applied {
                Ok(()) => kept.push(row),
                Err(e) => {
                    for (column, &len) in out.iter_mut().zip(&lengths) {
                        column.truncate(len);
                    }
                    rejected.push(e);
                }
            }
        }
        let n = kept.len();
        let tensors = self
            .outputs
            .iter()
            .zip(out)
            .map(|(o, values)| {
                let width = values.len().checked_div(n).unwrap_or(0);
                let data = match DataType::from_v2_name(&o.datatype) {
                    Some(DataType::F64) => TensorData::F64(values),
                    #[expect(clippy::cast_possible_truncation, reason = "checked whole")]
                    Some(DataType::I64) => {
                        TensorData::I64(values.iter().map(|&v| v as i64).collect())
                    }
                    #[expect(clippy::cast_possible_truncation, reason = "FP32 outputs")]
                    _ => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
                };
                Tensor::new(o.name.clone(), vec![n, width], data)
                    .map_err(|e| FeatureError::Spec(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rows {
            tensors,
            kept,
            rejected,
        })
    }
}

/// What [`Spec::transform_each`] made of a batch of records.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The model's input tensors, `[kept, columns]` each, in `[[output]]` order.
    pub tensors: Vec<Tensor>,
    /// The indices of the records the tensors hold, ascending.
    pub kept: Vec<usize>,
    /// Why each other record was rejected; every error names its row.
    pub rejected: Vec<FeatureError>,
}

impl Rows {
    /// The tensors, or the first row's error if any row was rejected.
    pub fn into_tensors(self) -> Result<Vec<Tensor>, FeatureError> {
        match self.rejected.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(self.tensors),
        }
    }
}

/// Checks that the values one row added to the integer outputs are whole.
fn whole_row(
    outputs: &[crate::spec::Output],
    whole: &[bool],
    columns: &[Vec<f64>],
    lengths: &[usize],
    row: usize,
) -> Result<(), FeatureError> {
    for (((o, &whole), values), &from) in outputs.iter().zip(whole).zip(columns).zip(lengths) {
        if let Some(&value) = values[from..].iter().find(|v| whole && v.fract() != 0.0) {
            return Err(FeatureError::NotWhole {
                output: o.name.clone(),
                row,
                value,
            });
        }
    }
    Ok(())
}

impl Feature {
    /// Appends this feature's columns for one record.
    fn apply(
        &self,
        row: usize,
        fields: &[Resolved],
        inputs: &[usize],
        out: &mut Vec<f64>,
    ) -> Result<(), FeatureError> {
        let get = |i: usize| &fields[inputs[i]];
        let x = get(0).value.number();
        match &self.transform {
            Transform::Identity => out.push(x),
            Transform::Standardize { mean, std } => {
                let (mean, std) = (mean.unwrap_or(0.0), std.unwrap_or(1.0));
                out.push((x - mean) / if std == 0.0 { 1.0 } else { std });
            }
            Transform::MinMax { min, max } => {
                let (min, max) = (min.unwrap_or(0.0), max.unwrap_or(1.0));
                let range = if max - min == 0.0 { 1.0 } else { max - min };
                out.push((x - min) / range);
            }
            Transform::Clip { min, max } => {
                let lo = min.unwrap_or(f64::NEG_INFINITY);
                let hi = max.unwrap_or(f64::INFINITY);
                out.push(if x.is_nan() { x } else { x.clamp(lo, hi) });
            }
            Transform::Log1p => out.push(x.ln_1p()),
            Transform::Bucketize {
                boundaries, encode, ..
            } => {
                let edges = boundaries.as_deref().unwrap_or_default();
                let bucket = edges.iter().filter(|&&e| e <= x).count();
                match encode {
                    Encode::Ordinal => out.push(if x.is_nan() { x } else { bucket as f64 }),
                    Encode::OneHot => {
                        let start = out.len();
                        out.extend(std::iter::repeat_n(0.0, edges.len() + 1));
                        if !x.is_nan() {
                            out[start + bucket] = 1.0;
                        }
                    }
                }
            }
            Transform::MissingIndicator => out.push(f64::from(u8::from(get(0).was_missing))),
            Transform::Ratio => out.push(x / get(1).value.number()),
            Transform::Difference => out.push(x - get(1).value.number()),
            Transform::Product => out.push(x * get(1).value.number()),
            Transform::OneHot {
                vocabulary,
                unknown,
                ..
            } => {
                let vocabulary = vocabulary.as_deref().unwrap_or_default();
                let start = out.len();
                out.extend(std::iter::repeat_n(0.0, self.transform.width()));
                match self.category(row, &get(0).value, vocabulary, *unknown)? {
                    Some(i) => out[start + i] = 1.0,
                    None if *unknown == Unknown::Bucket => out[start + vocabulary.len()] = 1.0,
                    None => {}
                }
            }
            Transform::Ordinal {
                vocabulary,
                unknown,
                ..
            } => {
                let vocabulary = vocabulary.as_deref().unwrap_or_default();
                out.push(
                    match self.category(row, &get(0).value, vocabulary, *unknown)? {
                        Some(i) => i as f64,
                        None if *unknown == Unknown::Bucket => vocabulary.len() as f64,
                        None => -1.0,
                    },
                );
            }
            Transform::Hash {
                n_features,
                alternate_sign,
            } => {
                let start = out.len();
                out.extend(std::iter::repeat_n(0.0, *n_features));
                if let Some(token) = get(0).value.category() {
                    let (column, sign) = hashed_column(&token, *n_features, *alternate_sign);
                    out[start + column] += sign;
                }
            }
            Transform::Timestamp { part, cyclic } => {
                let value = if x.is_nan() {
                    f64::NAN
                } else {
                    let p = parts(x);
                    f64::from(match part {
                        crate::spec::Part::Hour => p.hour,
                        crate::spec::Part::Weekday => p.weekday,
                        crate::spec::Part::Month => p.month,
                        crate::spec::Part::DayOfYear => p.day_of_year,
                    })
                };
                if *cyclic {
                    let angle = std::f64::consts::TAU * value / part.period();
                    out.extend([angle.sin(), angle.cos()]);
                } else {
                    out.push(value);
                }
            }
        }
        Ok(())
    }

    /// The vocabulary index of a category, `None` for an unknown one the policy lets through.
    fn category(
        &self,
        row: usize,
        value: &Typed,
        vocabulary: &[String],
        unknown: Unknown,
    ) -> Result<Option<usize>, FeatureError> {
        let category = value.category();
        let found = category
            .as_deref()
            .and_then(|c| vocabulary.iter().position(|v| v == c));
        if found.is_none() && unknown == Unknown::Error {
            return Err(FeatureError::UnknownCategory {
                row,
                field: self.inputs()[0].clone(),
                feature: self.name.clone(),
                value: category.map_or_else(|| "(missing)".into(), Cow::into_owned),
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &[(&str, Value)]) -> Record {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn bad_records_are_set_aside_and_the_rest_transformed_in_order() {
        let spec = Spec::parse(
            r#"
[[field]]
name = "age"
type = "float"
required = true

[[field]]
name = "city"
type = "string"

[[feature]]
name = "age"
field = "age"
transform = "identity"

[[feature]]
name = "city"
field = "city"
transform = "one_hot"
vocabulary = ["oslo", "rome"]
unknown = "error"

[[output]]
name = "X"
datatype = "FP32"
"#,
        )
        .expect("spec parses");
        let text = |s: &str| Value::Text(s.into());
        let records = [
            record(&[("age", Value::Number(30.0)), ("city", text("rome"))]),
            record(&[("city", text("oslo"))]),
            record(&[("age", text("old")), ("city", text("oslo"))]),
            record(&[("age", Value::Number(41.0)), ("city", text("paris"))]),
            record(&[("age", Value::Number(52.0)), ("city", text("oslo"))]),
        ];
        let rows = spec.transform_each(&records).expect("transforms");
        assert_eq!(rows.kept, [0, 4]);
        let reasons: Vec<String> = rows.rejected.iter().map(ToString::to_string).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert_eq!(reasons[0], "row 1: field \"age\" is required");
        assert!(
            reasons[1].starts_with("row 2: field \"age\""),
            "{reasons:?}"
        );
        assert!(
            reasons[2].contains("unknown category \"paris\""),
            "{reasons:?}"
        );
        assert_eq!(rows.tensors[0].shape(), &[2, 3]);
        assert_eq!(
            rows.tensors[0].data(),
            &TensorData::F32(vec![30.0, 0.0, 1.0, 52.0, 1.0, 0.0])
        );
        // The strict transform stops at the first of them.
        assert_eq!(
            spec.transform(&records)
                .expect_err("row 1 is bad")
                .to_string(),
            reasons[0]
        );
    }
}
