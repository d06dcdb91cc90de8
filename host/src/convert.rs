//! Conversions between the WIT types of the component and `wafer-scoring`'s, and the one
//! place where a guest error becomes a protocol error (and so an HTTP status).

use wafer_protocol::ProtocolError;
use wafer_scoring as scoring;

use crate::bindings::wafer::inference::types::{
    Datatype, Error, ModelMetadata, Tensor, TensorData, TensorInfo,
};

/// The protocol error for an error the guest returned.
pub fn guest_error(e: Error) -> ProtocolError {
    match e {
        Error::InvalidInput(m) => ProtocolError::InvalidInput(m),
        Error::NotLoaded(m) | Error::Runtime(m) => ProtocolError::Internal(m),
    }
}

/// A scoring tensor as the component takes it.
pub fn tensor_to_wit(t: scoring::Tensor) -> Tensor {
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

/// A tensor the component returned, checked.
pub fn tensor_from_wit(t: Tensor) -> Result<scoring::Tensor, ProtocolError> {
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
        .map_err(|e| ProtocolError::Internal(format!("the component returned a bad tensor: {e}")))
}

/// The component's metadata as scoring metadata.
pub fn metadata_from_wit(m: ModelMetadata) -> scoring::ModelMetadata {
    let infos = |infos: Vec<TensorInfo>| {
        infos
            .into_iter()
            .map(|i| scoring::TensorInfo {
                name: i.name,
                datatype: datatype(i.datatype),
                shape: i
                    .shape
                    .iter()
                    .enumerate()
                    .map(|(ix, &d)| match usize::try_from(d) {
                        Ok(n) => scoring::Dim::Fixed(n),
                        Err(_) => {
                            scoring::Dim::Dynamic(if ix == 0 { "N".into() } else { "?".into() })
                        }
                    })
                    .collect(),
            })
            .collect()
    };
    scoring::ModelMetadata {
        name: m.name,
        platform: m.platform,
        inputs: infos(m.inputs),
        outputs: infos(m.outputs),
    }
}

fn datatype(d: Datatype) -> scoring::DataType {
    match d {
        Datatype::Bool => scoring::DataType::Bool,
        Datatype::Uint8 => scoring::DataType::U8,
        Datatype::Int32 => scoring::DataType::I32,
        Datatype::Int64 => scoring::DataType::I64,
        Datatype::Fp32 => scoring::DataType::F32,
        Datatype::Fp64 => scoring::DataType::F64,
        Datatype::Bytes => scoring::DataType::String,
    }
}
