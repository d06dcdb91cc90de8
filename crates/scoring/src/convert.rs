//! Tensors between wafer's own [`Tensor`] and tract-data's, which both engines compute on.

use tract_data::internal::{self as tract, DatumType};

use crate::ScoringError;
use crate::tensor::{DataType, Tensor, TensorData};

/// The wafer element type of a tract one, if wafer has it.
pub(crate) fn datatype_of(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::U8,
        DatumType::U16 => DataType::U16,
        DatumType::U32 => DataType::U32,
        DatumType::U64 => DataType::U64,
        DatumType::I8 => DataType::I8,
        DatumType::I16 => DataType::I16,
        DatumType::I32 => DataType::I32,
        // tract may compute integer outputs as symbolic dimensions (`TDim`) after optimizing.
        DatumType::I64 | DatumType::TDim => DataType::I64,
        DatumType::F16 => DataType::F16,
        DatumType::F32 => DataType::F32,
        DatumType::F64 => DataType::F64,
        DatumType::String => DataType::String,
        _ => return None,
    })
}

/// A tensor as tract's. Its shape was checked against its data when it was built, so this
/// fails only if that check is ever lost.
pub(crate) fn to_tract(tensor: Tensor) -> tract::TractResult<tract::Tensor> {
    fn array<T: tract::Datum>(shape: &[usize], v: Vec<T>) -> tract::TractResult<tract::Tensor> {
        crate::ml::tensor_of(shape, v)
    }
    let (_, shape, data) = tensor.into_parts();
    match data {
        TensorData::Bool(v) => array(&shape, v),
        TensorData::U8(v) => array(&shape, v),
        TensorData::U16(v) => array(&shape, v),
        TensorData::U32(v) => array(&shape, v),
        TensorData::U64(v) => array(&shape, v),
        TensorData::I8(v) => array(&shape, v),
        TensorData::I16(v) => array(&shape, v),
        TensorData::I32(v) => array(&shape, v),
        TensorData::I64(v) => array(&shape, v),
        TensorData::F16(v) => array(&shape, v),
        TensorData::F32(v) => array(&shape, v),
        TensorData::F64(v) => array(&shape, v),
        TensorData::String(v) => array(&shape, v),
    }
}

pub(crate) fn from_tract(name: &str, tensor: &tract::Tensor) -> Result<Tensor, ScoringError> {
    let shape = tensor.shape().to_vec();
    let run = |e: tract::TractError| ScoringError::Run(format!("output \"{name}\": {e:#}"));
    fn elements<T: tract::Datum>(t: &tract::Tensor) -> tract::TractResult<Vec<T>> {
        Ok(t.to_plain_array_view::<T>()?.iter().cloned().collect())
    }
    fn cast<T: tract::Datum>(t: &tract::Tensor) -> tract::TractResult<Vec<T>> {
        elements::<T>(t.cast_to::<T>()?.as_ref())
    }
    let data = match datatype_of(tensor.datum_type()) {
        Some(DataType::Bool) => TensorData::Bool(elements(tensor).map_err(run)?),
        Some(DataType::U8) => TensorData::U8(elements(tensor).map_err(run)?),
        Some(DataType::U16) => TensorData::U16(elements(tensor).map_err(run)?),
        Some(DataType::U32) => TensorData::U32(elements(tensor).map_err(run)?),
        Some(DataType::U64) => TensorData::U64(elements(tensor).map_err(run)?),
        Some(DataType::I8) => TensorData::I8(elements(tensor).map_err(run)?),
        Some(DataType::I16) => TensorData::I16(elements(tensor).map_err(run)?),
        Some(DataType::I32) => TensorData::I32(elements(tensor).map_err(run)?),
        Some(DataType::I64) => TensorData::I64(cast(tensor).map_err(run)?),
        Some(DataType::F16) => TensorData::F16(elements(tensor).map_err(run)?),
        Some(DataType::F32) => TensorData::F32(elements(tensor).map_err(run)?),
        Some(DataType::F64) => TensorData::F64(elements(tensor).map_err(run)?),
        Some(DataType::String) => TensorData::String(elements(tensor).map_err(run)?),
        None => {
            return Err(ScoringError::Run(format!(
                "output \"{name}\": element type {:?} is not supported",
                tensor.datum_type()
            )));
        }
    };
    Tensor::new(name, shape, data)
}
