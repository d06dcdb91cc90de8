//! wafer-features: turning raw records into a model's input tensors.
//!
//! The same code turns records into features offline (batch files), in the server and in the
//! browser, so serving never drifts from training. A [`Spec`] (`features.toml`) declares the raw
//! fields, the transforms with their statistics (learned by [`Spec::fit`]), and how the features
//! fill the model's inputs ([`Spec::transform`]). [`assemble_rows`] fills a model input from rows
//! of numbers directly. [`Spec::fill_lookups`] fills fields from a key-value store the caller
//! reads. A batch goes through as a [`Table`], one column per field.
//!
//! It is pure Rust and does no I/O; it is not a file reader, a store or a protocol codec.

mod fit;
#[cfg(test)]
mod fuzz;
pub mod hash;
mod lookup;
mod record;
mod spec;
mod table;
pub mod time;
mod transform;

#[cfg(test)]
mod sklearn_tests;

pub use lookup::LookupGroup;
pub use record::{Record, Typed, Value};
pub use spec::{
    Encode, Feature, Field, FieldType, Impute, Lookup, Output, Part, Spec, Transform, Unknown,
};
pub use table::{Kind, Packed, Table};
pub use transform::Rows;

use thiserror::Error;
use wafer_scoring::{DataType, Dim, Tensor, TensorData, TensorInfo, f16};

/// Why rows could not be assembled into a tensor.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FeatureError {
    /// There are no rows.
    #[error("no rows to score")]
    NoRows,
    /// `features.toml` is malformed; the message names the field and transform.
    #[error("features.toml: {0}")]
    Spec(String),
    /// A required field is absent or null.
    #[error("row {row}: field \"{field}\" is required")]
    MissingField {
        /// Zero-based row index.
        row: usize,
        /// The field.
        field: String,
    },
    /// A field's value has the wrong type.
    #[error("row {row}: field \"{field}\": {why}")]
    WrongType {
        /// Zero-based row index.
        row: usize,
        /// The field.
        field: String,
        /// What was expected and found.
        why: String,
    },
    /// A category outside the vocabulary, under the `error` policy.
    #[error("row {row}: field \"{field}\": unknown category \"{value}\" for feature \"{feature}\"")]
    UnknownCategory {
        /// Zero-based row index.
        row: usize,
        /// The field.
        field: String,
        /// The feature whose vocabulary lacks it.
        feature: String,
        /// The category.
        value: String,
    },
    /// A key-value store lookup failed, or the stored value is not a JSON object.
    #[error("lookup in store \"{store}\", key \"{key}\": {why}")]
    Lookup {
        /// The store.
        store: String,
        /// The entity key.
        key: String,
        /// What went wrong.
        why: String,
    },
    /// An INT64 output got a fractional value.
    #[error("row {row}: output \"{output}\" is INT64, but a feature gave {value}")]
    NotWhole {
        /// The output.
        output: String,
        /// Zero-based row index.
        row: usize,
        /// The value.
        value: f64,
    },
    /// A row has the wrong number of values.
    #[error("row {row}: expected {expected} values for input \"{input}\", got {got}")]
    RowWidth {
        /// The model input.
        input: String,
        /// Zero-based row index.
        row: usize,
        /// The model's feature count.
        expected: usize,
        /// The row's length.
        got: usize,
    },
    /// A value cannot be represented in the input's datatype.
    #[error("row {row}, column {column}: {value} is not a valid {datatype} for input \"{input}\"")]
    Value {
        /// The model input.
        input: String,
        /// Zero-based row index.
        row: usize,
        /// Zero-based column index.
        column: usize,
        /// The offending value.
        value: f64,
        /// The input's datatype.
        datatype: DataType,
    },
    /// The input is not a numeric matrix, so rows cannot fill it.
    #[error(
        "input \"{input}\" with shape {shape} and datatype {datatype} cannot be filled from rows of numbers"
    )]
    NotAMatrix {
        /// The model input.
        input: String,
        /// Its declared shape.
        shape: String,
        /// Its datatype.
        datatype: DataType,
    },
}

impl FeatureError {
    /// The row the error is about, when it is about one row rather than the whole batch.
    pub fn row(&self) -> Option<usize> {
        match self {
            FeatureError::MissingField { row, .. }
            | FeatureError::WrongType { row, .. }
            | FeatureError::UnknownCategory { row, .. }
            | FeatureError::NotWhole { row, .. }
            | FeatureError::RowWidth { row, .. }
            | FeatureError::Value { row, .. } => Some(*row),
            FeatureError::NoRows
            | FeatureError::Spec(_)
            | FeatureError::Lookup { .. }
            | FeatureError::NotAMatrix { .. } => None,
        }
    }
}

/// Assembles rows of numbers into the `[N, F]` tensor that `input` declares, converting every
/// value to the input's datatype. Missing values are `NaN` and stay `NaN` for float inputs.
pub fn assemble_rows(input: &TensorInfo, rows: &[Vec<f64>]) -> Result<Tensor, FeatureError> {
    let not_a_matrix = || FeatureError::NotAMatrix {
        input: input.name.clone(),
        shape: input.shape_string(),
        datatype: input.datatype,
    };
    let width = match input.shape.as_slice() {
        [_, Dim::Fixed(width)] => *width,
        _ => return Err(not_a_matrix()),
    };
    if rows.is_empty() {
        return Err(FeatureError::NoRows);
    }
    let mut values = Vec::with_capacity(rows.len() * width);
    for (row, r) in rows.iter().enumerate() {
        if r.len() != width {
            return Err(FeatureError::RowWidth {
                input: input.name.clone(),
                row,
                expected: width,
                got: r.len(),
            });
        }
        values.extend_from_slice(r);
    }
    let bad = |ix: usize| FeatureError::Value {
        input: input.name.clone(),
        row: ix / width,
        column: ix % width,
        value: values[ix],
        datatype: input.datatype,
    };
    // Whole numbers within the datatype's range, as i64 (u64 beyond i64 saturates at its max).
    let ints = |min: f64, max: f64| integers(&values, min, max, bad);
    let data = match input.datatype {
        DataType::F16 => TensorData::F16(values.iter().map(|&v| f16::from_f64(v)).collect()),
        DataType::F32 => TensorData::F32(values.iter().map(|&v| v as f32).collect()),
        DataType::F64 => TensorData::F64(values.clone()),
        DataType::I64 => TensorData::I64(ints(i64::MIN as f64, i64::MAX as f64)?),
        DataType::I32 => TensorData::I32(cast(ints(i32::MIN.into(), i32::MAX.into())?)),
        DataType::I16 => TensorData::I16(cast(ints(i16::MIN.into(), i16::MAX.into())?)),
        DataType::I8 => TensorData::I8(cast(ints(i8::MIN.into(), i8::MAX.into())?)),
        DataType::U64 => TensorData::U64(cast(ints(0.0, u64::MAX as f64)?)),
        DataType::U32 => TensorData::U32(cast(ints(0.0, u32::MAX.into())?)),
        DataType::U16 => TensorData::U16(cast(ints(0.0, u16::MAX.into())?)),
        DataType::U8 => TensorData::U8(cast(ints(0.0, u8::MAX.into())?)),
        DataType::Bool | DataType::String => return Err(not_a_matrix()),
    };
    Tensor::new(input.name.clone(), vec![rows.len(), width], data).map_err(|_| not_a_matrix())
}

/// Whole numbers already checked to lie in `T`'s range, as `T`.
fn cast<T: TryFrom<i64> + Default>(values: Vec<i64>) -> Vec<T> {
    values
        .into_iter()
        .map(|v| T::try_from(v).unwrap_or_default())
        .collect()
}

/// Checks that every value is a whole number within `[min, max]`.
fn integers(
    values: &[f64],
    min: f64,
    max: f64,
    bad: impl Fn(usize) -> FeatureError,
) -> Result<Vec<i64>, FeatureError> {
    values
        .iter()
        .enumerate()
        .map(|(ix, &v)| {
            if v.fract() == 0.0 && v >= min && v <= max {
                Ok(v as i64)
            } else {
                Err(bad(ix))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(datatype: DataType, width: usize) -> TensorInfo {
        TensorInfo {
            name: "X".into(),
            datatype,
            shape: vec![Dim::Dynamic("N".into()), Dim::Fixed(width)],
            class_labels: vec![],
        }
    }

    #[test]
    fn rows_become_a_matrix_of_the_input_datatype() {
        let rows = vec![vec![1.0, 2.5], vec![f64::NAN, -1.0]];
        let t = assemble_rows(&info(DataType::F32, 2), &rows).expect("assembles");
        assert_eq!(t.shape(), &[2, 2]);
        let TensorData::F32(v) = t.data() else {
            panic!("expected FP32, got {:?}", t.data())
        };
        assert_eq!(v[0], 1.0);
        assert!(v[2].is_nan(), "missing values stay NaN");
    }

    #[test]
    fn width_and_integrality_are_checked() {
        let err = assemble_rows(&info(DataType::F32, 3), &[vec![1.0, 2.0]]).expect_err("width");
        assert_eq!(
            err.to_string(),
            "row 0: expected 3 values for input \"X\", got 2"
        );
        let err = assemble_rows(&info(DataType::I64, 1), &[vec![1.0], vec![1.5]]).expect_err("int");
        assert_eq!(
            err.to_string(),
            "row 1, column 0: 1.5 is not a valid INT64 for input \"X\""
        );
        assert_eq!(
            assemble_rows(&info(DataType::F32, 1), &[]),
            Err(FeatureError::NoRows)
        );
    }
}
