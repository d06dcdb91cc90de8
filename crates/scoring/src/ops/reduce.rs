//! `ReduceLogSumExp`, computed the stable way onnxruntime does: `log(Σ exp(x - m)) + m` with
//! `m` the reduced maximum, so large inputs give their finite answer instead of `inf` or `NaN`
//! (tract computes `log(Σ exp(x))`, which overflows past `x ≈ 88` in `f32`).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::nn::{Reduce, Reducer};

/// Builds a `ReduceLogSumExp` node, with `axes` as an attribute (opset < 18) or as its second
/// input (opset 18 on).
pub(super) fn log_sum_exp(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let keep_dims = node.get_attr_opt("keepdims")?.unwrap_or(1i64) == 1;
    let op = if ctx.onnx_operator_set_version >= 18 {
        LogSumExp {
            axes: Axes::Input {
                given: node.input.len() == 2 && !node.input[1].is_empty(),
                noop_when_empty: node.get_attr_opt("noop_with_empty_axes")?.unwrap_or(0i64) == 1,
            },
            keep_dims,
        }
    } else {
        LogSumExp {
            axes: Axes::Attribute(node.get_attr_opt_vec("axes")?),
            keep_dims,
        }
    };
    Ok((expand(op), vec![]))
}

/// Where the reduced axes come from.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Axes {
    /// The `axes` attribute; all axes when absent.
    Attribute(Option<Vec<i64>>),
    /// The second input, a constant; absent or empty means all axes, or none with
    /// `noop_with_empty_axes`.
    Input { given: bool, noop_when_empty: bool },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LogSumExp {
    axes: Axes,
    keep_dims: bool,
}

impl LogSumExp {
    /// The reduced axes, given the input's rank and, for [`Axes::Input`], the axes tensor.
    fn resolve(&self, rank: usize, input: Option<&Tensor>) -> TractResult<Option<Vec<i64>>> {
        let all = || Some((0..rank as i64).collect());
        Ok(match &self.axes {
            Axes::Attribute(axes) => axes.clone().or_else(all),
            Axes::Input {
                noop_when_empty, ..
            } => {
                let axes = match input {
                    Some(t) => t
                        .cast_to::<i64>()?
                        .try_as_plain_ram()?
                        .as_slice::<i64>()?
                        .to_vec(),
                    None => vec![],
                };
                match (axes.is_empty(), noop_when_empty) {
                    (false, _) => Some(axes),
                    (true, false) => all(),
                    (true, true) => Some(vec![]),
                }
            }
        })
    }

    fn reduce(&self, axes: Option<Vec<i64>>, reducer: Reducer) -> Reduce {
        Reduce::new(axes, true, reducer)
    }
}

impl Expansion for LogSumExp {
    fn name(&self) -> StaticName {
        "StableReduceLogSumExp".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let axes_input = matches!(self.axes, Axes::Input { given: true, .. });
        check_input_arity(inputs, 1 + usize::from(axes_input))?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        let shape_rule = move |s: &mut Solver<'r>, axes: Option<Vec<i64>>| {
            let op = Reduce::new(axes, self.keep_dims, Reducer::LogSumExp);
            s.given(&inputs[0].shape, move |s, shape| {
                s.equals(&outputs[0].shape, op.output_shape(&shape))
            })
        };
        if axes_input {
            s.given_2(&inputs[0].rank, &inputs[1].value, move |s, rank, axes| {
                shape_rule(s, self.resolve(rank as usize, Some(&axes))?)
            })
        } else {
            s.given(&inputs[0].rank, move |s, rank| {
                shape_rule(s, self.resolve(rank as usize, None)?)
            })
        }
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        let rank = fact.rank();
        let axes_tensor = match inputs.get(1) {
            Some(&axes) => Some(
                model
                    .outlet_fact(axes)?
                    .konst
                    .clone()
                    .context("ReduceLogSumExp: expected the axes input to be a constant")?,
            ),
            None => None,
        };
        let axes = self.resolve(rank, axes_tensor.as_deref())?;
        // m = max(x), clamped to the finite range: an all-(-inf) or +inf slice then still gives
        // onnxruntime's -inf or +inf rather than inf - inf.
        let (hi, lo) = match fact.datum_type {
            DatumType::F16 => (tensor0(f16::MAX), tensor0(f16::MIN)),
            DatumType::F32 => (tensor0(f32::MAX), tensor0(f32::MIN)),
            DatumType::F64 => (tensor0(f64::MAX), tensor0(f64::MIN)),
            other => bail!("ReduceLogSumExp of {other:?} is not supported"),
        };
        let hi = model.add_const(format!("{prefix}.hi"), hi.broadcast_into_rank(rank)?)?;
        let lo = model.add_const(format!("{prefix}.lo"), lo.broadcast_into_rank(rank)?)?;
        let max =
            self.reduce(axes.clone(), Reducer::Max)
                .wire(&format!("{prefix}.max"), model, &[x])?[0];
        let max = model.wire_node(format!("{prefix}.clamp_hi"), math::min(), &[max, hi])?[0];
        let max = model.wire_node(format!("{prefix}.clamp_lo"), math::max(), &[max, lo])?[0];
        let shifted = model.wire_node(format!("{prefix}.shift"), math::sub(), &[x, max])?[0];
        let exp = model.wire_node(format!("{prefix}.exp"), math::exp(), &[shifted])?[0];
        let sum = self.reduce(axes.clone(), Reducer::Sum).wire(
            &format!("{prefix}.sum"),
            model,
            &[exp],
        )?[0];
        let ln = model.wire_node(format!("{prefix}.ln"), math::ln(), &[sum])?[0];
        let mut wire = model.wire_node(format!("{prefix}.unshift"), math::add(), &[ln, max])?[0];
        if !self.keep_dims {
            let mut reduced: Vec<usize> = match axes {
                Some(axes) => axes
                    .iter()
                    .map(|&a| {
                        if a < 0 {
                            (a + rank as i64) as usize
                        } else {
                            a as usize
                        }
                    })
                    .collect(),
                None => (0..rank).collect(),
            };
            reduced.sort_unstable();
            reduced.dedup();
            for axis in reduced.into_iter().rev() {
                wire = model.wire_node(format!("{prefix}.rm{axis}"), AxisOp::Rm(axis), &[wire])?[0];
            }
        }
        Ok(tvec!(wire))
    }
}
