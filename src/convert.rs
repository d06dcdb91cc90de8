//! Conversions between the WIT types and `wafer-scoring`'s.

use wafer_scoring as scoring;
use wafer_scoring::{Dim, ScoringError};

use crate::bindings::wafer::inference::types::{
    Datatype, Error, ModelMetadata, Tensor, TensorData, TensorInfo,
};

/// The WIT error for a scoring error.
pub(crate) fn error(e: ScoringError) -> Error {
    match e {
        ScoringError::Load(_) => Error::NotLoaded(e.to_string()),
        ScoringError::Run(_) => Error::Runtime(e.to_string()),
        _ => Error::InvalidInput(e.to_string()),
    }
}

/// A WIT tensor as a checked scoring tensor.
pub(crate) fn tensor_in(t: Tensor) -> Result<scoring::Tensor, ScoringError> {
    let data = match t.data {
        TensorData::Bool(v) => scoring::TensorData::Bool(v),
        TensorData::Uint8(v) => scoring::TensorData::U8(v),
        TensorData::Int32(v) => scoring::TensorData::I32(v),
        TensorData::Int64(v) => scoring::TensorData::I64(v),
        TensorData::Fp32(v) => scoring::TensorData::F32(v),
        TensorData::Fp64(v) => scoring::TensorData::F64(v),
        TensorData::Bytes(v) => scoring::TensorData::String(v),
    };
    let shape = t
        .shape
        .iter()
        .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
        .collect();
    scoring::Tensor::new(t.name, shape, data)
}

/// A scoring tensor as a WIT tensor.
pub(crate) fn tensor_out(t: scoring::Tensor) -> Tensor {
    let (name, shape, data) = t.into_parts();
    let data = match data {
        scoring::TensorData::Bool(v) => TensorData::Bool(v),
        scoring::TensorData::U8(v) => TensorData::Uint8(v),
        scoring::TensorData::I32(v) => TensorData::Int32(v),
        scoring::TensorData::I64(v) => TensorData::Int64(v),
        scoring::TensorData::F32(v) => TensorData::Fp32(v),
        scoring::TensorData::F64(v) => TensorData::Fp64(v),
        scoring::TensorData::String(v) => TensorData::Bytes(v),
    };
    Tensor {
        name,
        shape: shape.into_iter().map(|d| d as u64).collect(),
        data,
    }
}

/// Model metadata as WIT metadata.
pub(crate) fn metadata(m: &scoring::ModelMetadata) -> ModelMetadata {
    let infos = |infos: &[scoring::TensorInfo]| {
        infos
            .iter()
            .map(|i| TensorInfo {
                name: i.name.clone(),
                datatype: datatype(i.datatype),
                shape: i
                    .shape
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => i64::try_from(*n).unwrap_or(-1),
                        Dim::Dynamic(_) => -1,
                    })
                    .collect(),
            })
            .collect()
    };
    ModelMetadata {
        name: m.name.clone(),
        versions: vec!["1".into()],
        platform: m.platform.clone(),
        inputs: infos(&m.inputs),
        outputs: infos(&m.outputs),
    }
}

fn datatype(d: scoring::DataType) -> Datatype {
    match d {
        scoring::DataType::Bool => Datatype::Bool,
        scoring::DataType::U8 => Datatype::Uint8,
        scoring::DataType::I32 => Datatype::Int32,
        scoring::DataType::I64 => Datatype::Int64,
        scoring::DataType::F32 => Datatype::Fp32,
        scoring::DataType::F64 => Datatype::Fp64,
        scoring::DataType::String => Datatype::Bytes,
    }
}
