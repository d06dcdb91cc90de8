//! ONNX on tract: parsing a model, typing and optimizing it once, and running its plan.

use std::sync::Arc;

use tract_onnx::prelude::{
    self as tract, DatumType, Framework, InferenceModelExt, IntoRunnable, TValue, TVec, ToDim,
    TypedSimplePlan,
};
use tract_onnx::tract_hir::infer::{DimFact, Factoid, ShapeFactoid};
use tract_onnx::tract_hir::internal::DimLike;

use crate::ScoringError;
use crate::model::{Dim, ModelMetadata, TensorInfo};
use crate::tensor::{DataType, Tensor, TensorData};

/// A model's optimized, runnable tract plan.
pub(crate) type Plan = Arc<TypedSimplePlan>;

/// Parses ONNX bytes, fixes dynamic dimensions to symbols, and optimizes the graph once.
/// See [`crate::Model::load`].
pub(crate) fn load(name: &str, onnx: &[u8]) -> Result<(ModelMetadata, Plan), ScoringError> {
    let load = |e: tract::TractError| ScoringError::Load(format!("{e:#}"));
    let framework = crate::ops::onnx();
    let mut proto = framework
        .proto_model_for_read(&mut &onnx[..])
        .map_err(load)?;
    let class_labels = crate::ml::zipmap::strip(&mut proto).map_err(load)?;
    let mut model = framework.model_for_proto_model(&proto).map_err(load)?;

    // ONNX exports often leave the batch dimension unnamed; give every unknown dimension a
    // symbol so that the optimized plan accepts any batch size.
    let input_count = model.input_outlets().map_err(load)?.len();
    for ix in 0..input_count {
        let fact = model.input_fact(ix).map_err(load)?.clone();
        if fact.shape.is_open() {
            let name = &model
                .node(model.input_outlets().map_err(load)?[ix].node)
                .name;
            return Err(ScoringError::Load(format!(
                "input \"{name}\" has no declared rank"
            )));
        }
        let dims: TVec<DimFact> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(j, d)| {
                let dim = d.concretize().unwrap_or_else(|| {
                    let sym = if j == 0 {
                        "N".to_owned()
                    } else {
                        format!("d{ix}_{j}")
                    };
                    model.symbols.sym(&sym).to_dim()
                });
                DimFact::from(dim)
            })
            .collect();
        let fact = fact.with_shape(ShapeFactoid::closed(dims));
        model.set_input_fact(ix, fact).map_err(load)?;
    }

    let input_names = names_of(&model, model.input_outlets().map_err(load)?);
    let output_names = names_of(&model, model.output_outlets().map_err(load)?);
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(load)?;
    let typed = plan.model();
    let inputs = describe(input_names, typed.input_outlets().map_err(load)?, typed)?;
    let mut outputs = describe(output_names, typed.output_outlets().map_err(load)?, typed)?;
    for output in &mut outputs {
        if let Some(labels) = class_labels.get(&output.name) {
            output.class_labels.clone_from(labels);
        }
    }
    let metadata = ModelMetadata {
        name: name.to_owned(),
        platform: "onnx".to_owned(),
        inputs,
        outputs,
    };
    Ok((metadata, plan))
}

/// Runs `plan` on its inputs (checked, in declared order) and converts the outputs at
/// `selected` (indices into `outputs`).
pub(crate) fn run(
    plan: &Plan,
    inputs: Vec<Tensor>,
    outputs: &[TensorInfo],
    selected: &[usize],
) -> Result<Vec<Tensor>, ScoringError> {
    let values: TVec<TValue> = inputs.into_iter().map(to_tract).collect();
    let results = plan
        .run(values)
        .map_err(|e| ScoringError::Run(format!("{e:#}")))?;
    selected
        .iter()
        .map(|&ix| from_tract(&outputs[ix].name, &results[ix]))
        .collect()
}

/// The ONNX names of the values at `outlets`.
fn names_of(model: &tract::InferenceModel, outlets: &[tract::OutletId]) -> Vec<String> {
    outlets
        .iter()
        .map(|&o| {
            model
                .outlet_label(o)
                .unwrap_or(&model.node(o.node).name)
                .to_owned()
        })
        .collect()
}

/// Describes the values at `outlets` of the optimized model, which knows every type.
fn describe(
    names: Vec<String>,
    outlets: &[tract::OutletId],
    model: &tract::TypedModel,
) -> Result<Vec<TensorInfo>, ScoringError> {
    names
        .into_iter()
        .zip(outlets)
        .map(|(name, &outlet)| {
            let fact = model
                .outlet_fact(outlet)
                .map_err(|e| ScoringError::Load(format!("\"{name}\": {e:#}")))?;
            let datatype = datatype_of(fact.datum_type).ok_or_else(|| {
                ScoringError::Load(format!(
                    "\"{name}\": element type {:?} is not supported",
                    fact.datum_type
                ))
            })?;
            let shape = fact
                .shape
                .iter()
                .map(|d| match d.to_usize() {
                    Ok(n) => Dim::Fixed(n),
                    Err(_) => Dim::Dynamic(d.to_string()),
                })
                .collect();
            Ok(TensorInfo {
                name,
                datatype,
                shape,
                class_labels: vec![],
            })
        })
        .collect()
}

fn datatype_of(dt: DatumType) -> Option<DataType> {
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

fn to_tract(tensor: Tensor) -> TValue {
    use tract::tract_ndarray::{ArrayD, IxDyn};
    fn array<T: tract::Datum>(shape: &[usize], v: Vec<T>) -> TValue {
        // The shape was checked against the data length when the tensor was built.
        ArrayD::from_shape_vec(IxDyn(shape), v)
            .map_or_else(|_| tract::Tensor::default(), tract::Tensor::from)
            .into()
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

fn from_tract(name: &str, tensor: &tract::Tensor) -> Result<Tensor, ScoringError> {
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
