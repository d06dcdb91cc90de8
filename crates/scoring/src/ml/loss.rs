//! `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`, which tract lacks, computed as
//! onnx's reference does: per element `-x[n, target, d…] · weight[target]`, 0 at `ignore_index`,
//! then `none`, `sum`, or `mean` (divided by the summed weights of the targets taken).

use tract_data::internal::*;

use crate::ml::{Built, Context, Kernel, kernel, tensor_of};
use crate::pb::NodeProto;

/// How the per-element losses are reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    None,
    Sum,
    Mean,
}

/// The attributes both losses share.
#[derive(Clone, Debug)]
struct Loss {
    reduction: Reduction,
    ignore_index: Option<i64>,
    /// A `weight` input (per class) follows the target.
    weighted: bool,
    /// SoftmaxCrossEntropyLoss: take the log-softmax over the classes first, and output it too
    /// when the node names a second output.
    softmax: Option<bool>,
}

fn parse(node: &NodeProto, softmax: Option<bool>) -> TractResult<Loss> {
    let reduction = match node.get_attr_opt::<String>("reduction")?.as_deref() {
        None | Some("mean") => Reduction::Mean,
        Some("sum") => Reduction::Sum,
        Some("none") => Reduction::None,
        Some(other) => {
            return node.bail_attr(
                "reduction",
                &format!("unknown value \"{other}\", expected none, sum or mean"),
            );
        }
    };
    Ok(Loss {
        reduction,
        ignore_index: node.get_attr_opt("ignore_index")?,
        weighted: node.input.len() > 2 && !node.input[2].is_empty(),
        softmax,
    })
}

/// Builds a `NegativeLogLikelihoodLoss` node.
pub(super) fn negative_log_likelihood(_ctx: &Context, node: &NodeProto) -> Built {
    Ok(kernel(parse(node, None)?))
}

/// Builds a `SoftmaxCrossEntropyLoss` node.
pub(super) fn softmax_cross_entropy(_ctx: &Context, node: &NodeProto) -> Built {
    let log_prob = node.output.len() > 1 && !node.output[1].is_empty();
    Ok(kernel(parse(node, Some(log_prob))?))
}

impl Kernel for Loss {
    fn name(&self) -> &'static str {
        match self.softmax {
            None => "NegativeLogLikelihoodLoss",
            Some(_) => "SoftmaxCrossEntropyLoss",
        }
    }

    fn outputs(&self) -> usize {
        1 + usize::from(self.softmax == Some(true))
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        let dt = inputs[0];
        if !matches!(dt, DatumType::F16 | DatumType::F32 | DatumType::F64) {
            bail!("{}: input of {dt:?}, expected a float tensor", self.name());
        }
        if !matches!(inputs[1], DatumType::I32 | DatumType::I64) {
            bail!(
                "{}: target of {:?}, expected INT32 or INT64",
                self.name(),
                inputs[1]
            );
        }
        Ok(tvec![dt; self.outputs()])
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let loss = match self.reduction {
            Reduction::None => inputs[1].clone(),
            Reduction::Sum | Reduction::Mean => tvec![],
        };
        let mut shapes = tvec![loss];
        if self.softmax == Some(true) {
            shapes.push(inputs[0].clone());
        }
        Ok(shapes)
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let dt = inputs[0].datum_type();
        let shape = inputs[0].shape().to_vec();
        let (n, c) = match shape[..] {
            [n, c, ..] => (n, c),
            _ => bail!(
                "{}: input of rank {}, expected at least 2",
                self.name(),
                shape.len()
            ),
        };
        let d: usize = shape[2..].iter().product();
        let mut x: Vec<f64> = inputs[0]
            .cast_to::<f64>()?
            .try_as_plain_ram()?
            .as_slice::<f64>()?
            .to_vec();
        let target: Vec<i64> = inputs[1]
            .cast_to::<i64>()?
            .try_as_plain_ram()?
            .as_slice::<i64>()?
            .to_vec();
        if target.len() != n * d {
            bail!(
                "{}: {} targets for {} positions",
                self.name(),
                target.len(),
                n * d
            );
        }
        let weight: Option<Vec<f64>> = if self.weighted {
            let w = inputs[2].cast_to::<f64>()?;
            Some(w.try_as_plain_ram()?.as_slice::<f64>()?.to_vec())
        } else {
            None
        };
        if self.softmax.is_some() {
            log_softmax(&mut x, n, c, d);
        }
        let mut losses = vec![0.0; n * d];
        let mut weights = vec![1.0; n * d];
        for i in 0..n {
            for j in 0..d {
                let t = target[i * d + j];
                let ignored = self.ignore_index == Some(t);
                // onnx's reference clips the class of a weight lookup, ignored or not.
                let w = weight.as_ref().map_or(1.0, |w| {
                    w[usize::try_from(t.clamp(0, c as i64 - 1)).unwrap_or(0)]
                });
                weights[i * d + j] = if ignored { 0.0 } else { w };
                if ignored {
                    continue;
                }
                let class = usize::try_from(t)
                    .ok()
                    .filter(|&t| t < c)
                    .with_context(|| {
                        format!("{}: target {t} is not a class of {c}", self.name())
                    })?;
                losses[i * d + j] = -x[(i * c + class) * d + j] * weights[i * d + j];
            }
        }
        let weighted = self.weighted || self.ignore_index.is_some();
        let loss = match self.reduction {
            Reduction::None => {
                let target_shape = inputs[1].shape().to_vec();
                tensor_of(&target_shape, losses)?
            }
            Reduction::Sum => tensor0(losses.iter().sum::<f64>()),
            Reduction::Mean if weighted => {
                tensor0(losses.iter().sum::<f64>() / weights.iter().sum::<f64>())
            }
            Reduction::Mean => tensor0(losses.iter().sum::<f64>() / losses.len() as f64),
        };
        let mut outputs = tvec![loss.cast_to_dt(dt)?.into_owned()];
        if self.softmax == Some(true) {
            let log_prob = tensor_of(&shape, x)?;
            outputs.push(log_prob.cast_to_dt(dt)?.into_owned());
        }
        Ok(outputs)
    }
}

/// `x[n, :, d] ← log_softmax(x[n, :, d])` over the classes, in place.
fn log_softmax(x: &mut [f64], n: usize, c: usize, d: usize) {
    for i in 0..n {
        for j in 0..d {
            let at = |k: usize| (i * c + k) * d + j;
            let max = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..c).map(|k| (x[at(k)] - max).exp()).sum();
            let log_sum = sum.ln() + max;
            for k in 0..c {
                x[at(k)] -= log_sum;
            }
        }
    }
}
