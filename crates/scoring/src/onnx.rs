//! ONNX on tract: parsing a model, typing and optimizing it once, and running its plan.

use std::sync::Arc;

use tract_onnx::prelude::{
    self as tract, Framework, InferenceModelExt, IntoRunnable, TValue, TVec, ToDim, TypedSimplePlan,
};
use tract_onnx::tract_hir::infer::{DimFact, Factoid, ShapeFactoid};
use tract_onnx::tract_hir::internal::DimLike;

use crate::ScoringError;
use crate::convert::{datatype_of, from_tract, to_tract};
use crate::model::{Dim, ModelMetadata, TensorInfo};
use crate::tensor::Tensor;

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
    let failed = |e: tract::TractError| ScoringError::Run(format!("{e:#}"));
    let values = inputs
        .into_iter()
        .map(|t| to_tract(t).map(TValue::from))
        .collect::<tract_data::TractResult<TVec<TValue>>>()
        .map_err(failed)?;
    let results = plan.run(values).map_err(failed)?;
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
