//! Learning a spec's statistics from training records, as scikit-learn's estimators do.

use std::collections::BTreeMap;

use crate::FeatureError;
use crate::record::{Record, Typed, Value};
use crate::spec::{Impute, Spec, Transform};

/// The mean of the values.
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The population standard deviation (numpy's default, scikit-learn's StandardScaler).
fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The `q` quantile by linear interpolation (numpy's default); `sorted` is increasing.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0 <= pos < len"
    )]
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The most frequent value; the smallest among ties, as scikit-learn's SimpleImputer.
fn most_frequent<T: Ord + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    let best = counts.values().copied().max()?;
    counts.into_iter().find(|(_, c)| *c == best).map(|(v, _)| v)
}

impl Spec {
    /// Learns every statistic the spec leaves open (imputation values, means and deviations,
    /// ranges, quantile boundaries, vocabularies) from training records. Statistics already in
    /// the spec are kept.
    pub fn fit(&mut self, records: &[Record]) -> Result<(), FeatureError> {
        if records.is_empty() {
            return Err(FeatureError::NoRows);
        }
        // The training values of each field, typed, before imputation.
        let column = |spec: &Spec, name: &str| -> Result<Vec<Typed>, FeatureError> {
            let field = spec
                .field(name)
                .ok_or_else(|| FeatureError::Spec(format!("field \"{name}\" is not declared")))?;
            records
                .iter()
                .enumerate()
                .map(|(row, r)| {
                    r.get(name)
                        .unwrap_or(&Value::Missing)
                        .coerce(field.kind)
                        .map_err(|why| FeatureError::WrongType {
                            row,
                            field: name.to_owned(),
                            why,
                        })
                })
                .collect()
        };
        for i in 0..self.fields.len() {
            let (Some(how), None) = (self.fields[i].impute, &self.fields[i].default) else {
                continue;
            };
            let name = self.fields[i].name.clone();
            let values = column(self, &name)?;
            let numbers: Vec<f64> = values
                .iter()
                .map(Typed::number)
                .filter(|v| !v.is_nan())
                .collect();
            let learned = match how {
                Impute::Mean if !numbers.is_empty() => Some(toml::Value::Float(mean(&numbers))),
                Impute::Median if !numbers.is_empty() => {
                    let mut s = numbers.clone();
                    s.sort_by(f64::total_cmp);
                    Some(toml::Value::Float(quantile(&s, 0.5)))
                }
                Impute::MostFrequent => match values.iter().find(|v| **v != Typed::Missing) {
                    Some(Typed::Category(_)) => {
                        most_frequent(values.iter().filter_map(|v| match v {
                            Typed::Category(c) => Some(c.clone().into_owned()),
                            _ => None,
                        }))
                        .map(toml::Value::String)
                    }
                    _ => most_frequent(numbers.iter().map(|v| ordered(*v)))
                        .map(|v| toml::Value::Float(v.0)),
                },
                _ => None,
            };
            let learned = learned.ok_or_else(|| {
                FeatureError::Spec(format!(
                    "field \"{name}\": no training values to impute from"
                ))
            })?;
            self.fields[i].default = Some(learned);
        }
        for i in 0..self.features.len() {
            let name = self.features[i]
                .inputs()
                .first()
                .cloned()
                .unwrap_or_default();
            let feature_name = self.features[i].name.clone();
            // Statistics are learned on the values the transform will see: defaults applied.
            let default = self.field(&name).and_then(|f| f.default.clone());
            let kind = self.field(&name).map(|f| f.kind);
            let mut values = column(self, &name)?;
            let default = default.map(|d| Value::from_toml(&d));
            if let (Some(d), Some(kind)) = (&default, kind) {
                let d = d.coerce(kind).map_err(FeatureError::Spec)?;
                values
                    .iter_mut()
                    .filter(|v| **v == Typed::Missing)
                    .for_each(|v| *v = d.clone());
            }
            let numbers: Vec<f64> = values
                .iter()
                .map(Typed::number)
                .filter(|v| !v.is_nan())
                .collect();
            let empty = || {
                FeatureError::Spec(format!(
                    "feature \"{feature_name}\": no training values in field \"{name}\""
                ))
            };
            match &mut self.features[i].transform {
                Transform::Standardize { mean: m, std: s } if m.is_none() || s.is_none() => {
                    if numbers.is_empty() {
                        return Err(empty());
                    }
                    m.get_or_insert(mean(&numbers));
                    s.get_or_insert(std(&numbers));
                }
                Transform::MinMax { min, max } if min.is_none() || max.is_none() => {
                    if numbers.is_empty() {
                        return Err(empty());
                    }
                    min.get_or_insert(numbers.iter().copied().fold(f64::INFINITY, f64::min));
                    max.get_or_insert(numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                }
                Transform::Bucketize {
                    boundaries: b @ None,
                    bins: Some(bins),
                    ..
                } => {
                    if numbers.is_empty() {
                        return Err(empty());
                    }
                    let mut sorted = numbers.clone();
                    sorted.sort_by(f64::total_cmp);
                    let mut inner: Vec<f64> = (1..*bins)
                        .map(|k| quantile(&sorted, k as f64 / *bins as f64))
                        .collect();
                    // Like KBinsDiscretizer, drop buckets that quantiles make empty.
                    inner.dedup_by(|a, b| (*a - *b).abs() < 1e-8);
                    *b = Some(inner);
                }
                Transform::OneHot {
                    vocabulary: v @ None,
                    min_frequency,
                    ..
                }
                | Transform::Ordinal {
                    vocabulary: v @ None,
                    min_frequency,
                    ..
                } => {
                    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                    for c in values.iter().filter_map(Typed::category) {
                        *counts.entry(c.into_owned()).or_insert(0) += 1;
                    }
                    let min = min_frequency.unwrap_or(1);
                    *v = Some(
                        counts
                            .into_iter()
                            .filter(|(_, n)| *n >= min)
                            .map(|(c, _)| c)
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        self.validate()
    }
}

/// An `f64` ordered for counting (NaN never reaches here).
#[derive(Clone, Copy)]
struct Ordered(f64);

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Eq for Ordered {}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn ordered(v: f64) -> Ordered {
    Ordered(v)
}
