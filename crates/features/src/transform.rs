//! Applying a fitted spec to records: the one implementation used offline, in the server and in
//! the browser.

use std::collections::HashMap;

use wafer_scoring::{DataType, Tensor, TensorData};

use crate::FeatureError;
use crate::hash::hashed_column;
use crate::record::{Record, Typed, Value};
use crate::spec::{Encode, Feature, Spec, Transform, Unknown};
use crate::time::parts;

/// A field's value in one record: coerced, with defaults applied, and whether it was missing.
struct Resolved {
    value: Typed,
    was_missing: bool,
}

impl Spec {
    /// Resolves every field of one record: required fields present, types right, defaults in.
    fn resolve(
        &self,
        row: usize,
        record: &Record,
    ) -> Result<HashMap<&str, Resolved>, FeatureError> {
        let mut out = HashMap::with_capacity(self.fields.len());
        for field in &self.fields {
            let raw = record.get(&field.name).unwrap_or(&Value::Missing);
            let was_missing = *raw == Value::Missing;
            if was_missing && field.required {
                return Err(FeatureError::MissingField {
                    row,
                    field: field.name.clone(),
                });
            }
            let value = match (was_missing, &field.default) {
                (true, Some(d)) => Value::from_toml(d),
                _ => raw.clone(),
            };
            let value = value
                .coerce(field.kind)
                .map_err(|why| FeatureError::WrongType {
                    row,
                    field: field.name.clone(),
                    why,
                })?;
            out.insert(field.name.as_str(), Resolved { value, was_missing });
        }
        Ok(out)
    }

    /// Transforms records into the model's input tensors, `[N, columns]` each, in `[[output]]`
    /// order. Errors name the row and field.
    pub fn transform(&self, records: &[Record]) -> Result<Vec<Tensor>, FeatureError> {
        if records.is_empty() {
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
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); self.outputs.len()];
        for (row, record) in records.iter().enumerate() {
            let fields = self.resolve(row, record)?;
            for feature in &self.features {
                let out = self
                    .outputs
                    .iter()
                    .position(|o| o.name == feature.output_name(self))
                    .unwrap_or(0);
                feature.apply(row, &fields, &mut columns[out])?;
            }
        }
        self.outputs
            .iter()
            .zip(columns)
            .map(|(o, values)| {
                let width = values.len() / records.len();
                let data = match DataType::from_v2_name(&o.datatype) {
                    Some(DataType::F64) => TensorData::F64(values),
                    Some(DataType::I64) => TensorData::I64(
                        values
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                if v.fract() == 0.0 {
                                    #[expect(
                                        clippy::cast_possible_truncation,
                                        reason = "checked whole"
                                    )]
                                    Ok(v as i64)
                                } else {
                                    Err(FeatureError::NotWhole {
                                        output: o.name.clone(),
                                        row: i / width.max(1),
                                        value: v,
                                    })
                                }
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    #[expect(clippy::cast_possible_truncation, reason = "FP32 outputs")]
                    _ => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
                };
                Tensor::new(o.name.clone(), vec![records.len(), width], data)
                    .map_err(|e| FeatureError::Spec(e.to_string()))
            })
            .collect()
    }
}

impl Feature {
    /// Appends this feature's columns for one record.
    fn apply(
        &self,
        row: usize,
        fields: &HashMap<&str, Resolved>,
        out: &mut Vec<f64>,
    ) -> Result<(), FeatureError> {
        let inputs = self.inputs();
        let get = |i: usize| &fields[inputs[i].as_str()];
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
            .as_ref()
            .and_then(|c| vocabulary.iter().position(|v| v == c));
        if found.is_none() && unknown == Unknown::Error {
            return Err(FeatureError::UnknownCategory {
                row,
                field: self.inputs()[0].clone(),
                feature: self.name.clone(),
                value: category.unwrap_or_else(|| "(missing)".into()),
            });
        }
        Ok(found)
    }
}
