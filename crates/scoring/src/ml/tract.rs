//! wafer's kernels as operators of tract's ONNX loader: [`register`] puts every one of them
//! there, over tract's own where both exist.

use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Builder, Context, Kernel};

/// Registers every kernel of [`super::OPERATORS`] and [`super::STANDARD`] into tract's ONNX op
/// register.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    for (name, _) in super::OPERATORS.iter().chain(super::STANDARD) {
        reg.insert(name, build);
    }
}

/// Builds any of wafer's kernels for tract's loader: reads the node again as [`crate::pb`]'s
/// (the kernels parse their attributes from it) and wraps the kernel as an operator.
fn build(
    ctx: &ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let builder: Builder = super::builder(&node.op_type)
        .ok_or_else(|| format_err!("no wafer kernel for {}", node.op_type))?;
    let ours: crate::pb::NodeProto =
        crate::pb::decode(&node.name, &prost::Message::encode_to_vec(node))?;
    let context = Context {
        ml_opset: ctx
            .model
            .opset_import
            .iter()
            .find(|o| o.domain == "ai.onnx.ml")
            .map_or(1, |o| o.version),
    };
    Ok((expand(MlOp(builder(&context, &ours)?)), vec![]))
}

/// A [`Kernel`] as a node of tract's inference and typed models.
#[derive(Clone, Debug)]
pub(crate) struct MlOp(Arc<dyn Kernel>);

impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let inputs = inputs
            .into_iter()
            .map(|t| {
                Ok(if t.datum_type() == DatumType::TDim {
                    t.cast_to::<i64>()?.into_owned().into_tvalue()
                } else {
                    t
                })
            })
            .collect::<TractResult<TVec<TValue>>>()?;
        let inputs: TVec<&Tensor> = inputs.iter().map(|t| &**t).collect();
        Ok(self
            .0
            .eval(&inputs)?
            .into_iter()
            .map(IntoTValue::into_tvalue)
            .collect())
    }
}

impl TypedOp for MlOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let types: TVec<DatumType> = inputs.iter().map(|f| as_int64(f.datum_type)).collect();
        let shapes: TVec<TVec<TDim>> = inputs.iter().map(|f| f.shape.to_tvec()).collect();
        let types = self.0.output_types(&types)?;
        let shapes = self.0.output_shapes(&shapes)?;
        Ok(types
            .into_iter()
            .zip(shapes)
            .map(|(dt, shape)| TypedFact::dt_shape(dt, shape))
            .collect())
    }

    as_op!();
}

impl Expansion for MlOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, self.0.outputs())?;
        let kernel = self.0.clone();
        s.given_all(inputs.iter().map(|i| &i.datum_type), move |s, types| {
            let types: Vec<DatumType> = types.into_iter().map(as_int64).collect();
            for (o, dt) in outputs.iter().zip(kernel.output_types(&types)?) {
                s.equals(&o.datum_type, dt)?;
            }
            Ok(())
        })?;
        let kernel = self.0.clone();
        s.given_all(inputs.iter().map(|i| &i.shape), move |s, shapes| {
            for (o, shape) in outputs.iter().zip(kernel.output_shapes(&shapes)?) {
                s.equals(&o.shape, shape.into_iter().collect::<ShapeFactoid>())?;
            }
            Ok(())
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

/// An input's element type as the kernels see it: tract's analysis types an ONNX `INT64`
/// tensor as `TDim` (a symbolic integer) after shape arithmetic such as `Gather` or `Reshape`;
/// that is `INT64` to every kernel, which [`MlOp`] hands the values as `i64`.
fn as_int64(dt: DatumType) -> DatumType {
    if dt == DatumType::TDim {
        DatumType::I64
    } else {
        dt
    }
}
