//! SVMClassifier and SVMRegressor: libsvm's kernels, one-vs-one voting, and Platt probabilities
//! coupled pairwise (`prob_a`, `prob_b`), in `f32` as onnxruntime computes them.

use crate::pb::NodeProto;
use tract_data::internal::*;

use super::linear::argmax;
use super::post::logistic;
use super::tree::check_inputs;
use super::{
    Built, Context, Kernel, Labels, NUMERIC, PostTransform, f32_matrix, one_of, rows_and_columns,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum KernelType {
    Linear,
    Poly,
    Rbf,
    Sigmoid,
}

/// A kernel function with its parameters.
#[derive(Clone, Copy, Debug)]
struct SvmKernel {
    kind: KernelType,
    gamma: f32,
    coef0: f32,
    degree: f32,
}

impl SvmKernel {
    fn parse(node: &NodeProto) -> TractResult<SvmKernel> {
        let kind = one_of(
            node,
            "kernel_type",
            Some("LINEAR"),
            &[
                ("LINEAR", KernelType::Linear),
                ("POLY", KernelType::Poly),
                ("RBF", KernelType::Rbf),
                ("SIGMOID", KernelType::Sigmoid),
            ],
        )?;
        let params: Vec<f32> = node.get_attr_opt_vec("kernel_params")?.unwrap_or_default();
        let [gamma, coef0, degree] = match params[..] {
            [] => [0.0; 3],
            [g, c, d] => [g, c, d],
            _ => {
                return node.bail_attr(
                    "kernel_params",
                    &format!(
                        "expected [gamma, coef0, degree], got {} values",
                        params.len()
                    ),
                );
            }
        };
        Ok(SvmKernel {
            kind,
            gamma,
            coef0,
            degree,
        })
    }

    fn eval(&self, x: &[f32], sv: &[f32]) -> f32 {
        let dot = || x.iter().zip(sv).fold(0.0f32, |s, (a, b)| s + a * b);
        match self.kind {
            KernelType::Linear => dot(),
            KernelType::Poly => {
                let g = self.gamma * dot() + self.coef0;
                match self.degree {
                    2.0 => g * g,
                    3.0 => g * g * g,
                    d => g.powf(d),
                }
            }
            KernelType::Sigmoid => (self.gamma * dot() + self.coef0).tanh(),
            KernelType::Rbf => {
                let sum = x
                    .iter()
                    .zip(sv)
                    .fold(0.0f32, |s, (a, b)| s + (a - b) * (a - b));
                (-self.gamma * sum).exp()
            }
        }
    }
}

/// SVMClassifier.
#[derive(Clone, Debug)]
struct SvmClassifier {
    kernel: SvmKernel,
    /// Support vectors, `[V, F]`; empty in linear mode.
    support: Vec<f32>,
    /// The first support vector of each class, and one past the last.
    starts: Vec<usize>,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    labels: Labels,
    features: usize,
    post: PostTransform,
    all_positive: bool,
}

pub(crate) fn svm_classifier(_ctx: &Context, node: &NodeProto) -> Built {
    let mut kernel = SvmKernel::parse(node)?;
    let labels = Labels::parse(node, "classlabels_ints")?;
    let classes = labels.len();
    let pairs = classes * (classes - 1) / 2;
    let per_class: Vec<i64> = node
        .get_attr_opt_vec("vectors_per_class")?
        .unwrap_or_default();
    let support: Vec<f32> = node
        .get_attr_opt_vec("support_vectors")?
        .unwrap_or_default();
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let prob_a: Vec<f32> = node.get_attr_opt_vec("prob_a")?.unwrap_or_default();
    let prob_b: Vec<f32> = node.get_attr_opt_vec("prob_b")?.unwrap_or_default();
    let post = PostTransform::parse(node)?;
    if classes < 2 {
        return node.bail_attr(
            "classlabels_ints",
            "a classifier needs at least two classes",
        );
    }
    if coefficients.is_empty() {
        return node.bail_attr("coefficients", "empty");
    }
    if prob_a.len() != prob_b.len() {
        return node.bail_attr(
            "prob_b",
            &format!("{} values for {} in prob_a", prob_b.len(), prob_a.len()),
        );
    }
    let mut starts = vec![0];
    for &v in &per_class {
        let Ok(v) = usize::try_from(v) else {
            return node.bail_attr("vectors_per_class", &format!("negative count {v}"));
        };
        starts.push(starts[starts.len() - 1] + v);
    }
    let vectors = starts[starts.len() - 1];
    let features = if vectors > 0 {
        if per_class.len() != classes {
            return node.bail_attr(
                "vectors_per_class",
                &format!("{} counts for {classes} classes", per_class.len()),
            );
        }
        if support.is_empty() || !support.len().is_multiple_of(vectors) {
            return node.bail_attr(
                "support_vectors",
                &format!(
                    "{} values do not split into {vectors} vectors",
                    support.len()
                ),
            );
        }
        if coefficients.len() != (classes - 1) * vectors {
            return node.bail_attr(
                "coefficients",
                &format!(
                    "expected {} values ((classes - 1) x support vectors), got {}",
                    (classes - 1) * vectors,
                    coefficients.len()
                ),
            );
        }
        if rho.len() < pairs {
            return node.bail_attr(
                "rho",
                &format!("expected {pairs} values, got {}", rho.len()),
            );
        }
        if !prob_a.is_empty() && prob_a.len() < pairs {
            return node.bail_attr(
                "prob_a",
                &format!("expected {pairs} values, got {}", prob_a.len()),
            );
        }
        if classes == 2 && prob_a.is_empty() && post == PostTransform::Probit {
            return node.bail_attr("post_transform", super::post::BINARY_PROBIT);
        }
        support.len() / vectors
    } else {
        // Linear mode: one row of coefficients per class.
        kernel.kind = KernelType::Linear;
        if !coefficients.len().is_multiple_of(classes) {
            return node.bail_attr(
                "coefficients",
                &format!(
                    "{} values do not split into {classes} classes",
                    coefficients.len()
                ),
            );
        }
        if rho.is_empty() {
            return node.bail_attr("rho", "empty");
        }
        coefficients.len() / classes
    };
    let all_positive = coefficients.iter().all(|&c| c >= 0.0);
    Ok(super::kernel(SvmClassifier {
        kernel,
        support,
        starts,
        coefficients,
        rho,
        prob_a,
        prob_b,
        labels,
        features,
        post,
        all_positive,
    }))
}

impl SvmClassifier {
    fn linear_mode(&self) -> bool {
        self.support.is_empty()
    }

    fn score_columns(&self) -> usize {
        let classes = self.labels.len();
        if self.linear_mode() || !self.prob_a.is_empty() || classes == 2 {
            classes
        } else {
            classes * (classes - 1) / 2
        }
    }

    /// The label index and score columns of one row.
    fn row(&self, x: &[f32], z: &mut Vec<f32>) -> usize {
        let classes = self.labels.len();
        if self.linear_mode() {
            let mut scores: Vec<f32> = self
                .coefficients
                .chunks(self.features)
                .map(|w| x.iter().zip(w).fold(0.0f32, |s, (a, b)| s + a * b) + self.rho[0])
                .collect();
            let best = argmax(&scores);
            let max_weight = scores[best];
            let chosen = if classes == 2 && self.prob_a.is_empty() {
                self.choose_binary(best, max_weight)
            } else {
                best
            };
            self.post.apply(&mut scores);
            z.extend(scores);
            return chosen;
        }
        let kernels: Vec<f32> = self
            .support
            .chunks(self.features)
            .map(|sv| self.kernel.eval(x, sv))
            .collect();
        let vectors = kernels.len();
        let mut votes = vec![0usize; classes];
        let mut pair_scores = Vec::with_capacity(classes * (classes - 1) / 2);
        for i in 0..classes {
            for j in i + 1..classes {
                let k = pair_scores.len();
                // Each product in f32, summed in f64, as onnxruntime does.
                let mut sum = 0.0f64;
                let mut add = |row: usize, class: usize| {
                    let (from, to) = (self.starts[class], self.starts[class + 1]);
                    let coefficients = &self.coefficients[row * vectors + from..row * vectors + to];
                    for (c, k) in coefficients.iter().zip(&kernels[from..to]) {
                        sum += f64::from(c * k);
                    }
                };
                add(j - 1, i);
                add(i, j);
                sum += f64::from(self.rho[k]);
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "scores are f32, as in onnxruntime"
                )]
                pair_scores.push(sum as f32);
                votes[if sum > 0.0 { i } else { j }] += 1;
            }
        }
        let mut best = 0;
        for (c, &v) in votes.iter().enumerate() {
            if v > votes[best] {
                best = c;
            }
        }
        if !self.prob_a.is_empty() {
            let mut r = vec![0.0f32; classes * classes];
            let mut k = 0;
            for i in 0..classes {
                for j in i + 1..classes {
                    let p = 1.0 - logistic(pair_scores[k] * self.prob_a[k] + self.prob_b[k]);
                    let p = p.clamp(1e-7, 1.0 - 1e-7);
                    r[i * classes + j] = p;
                    r[j * classes + i] = 1.0 - p;
                    k += 1;
                }
            }
            let mut probs = multiclass_probability(classes, &r);
            self.post.apply(&mut probs);
            z.extend(probs);
            return best;
        }
        if classes == 2 {
            let s = pair_scores[0];
            z.extend(match self.post {
                PostTransform::None => [-s, s],
                PostTransform::Logistic => [logistic(-s), logistic(s)],
                _ => [1.0 - s, s],
            });
            return self.choose_binary(best, 0.0);
        }
        self.post.apply(&mut pair_scores);
        z.extend(pair_scores);
        best
    }

    /// onnxruntime's choice between two labels without probabilities.
    fn choose_binary(&self, best: usize, max_weight: f32) -> usize {
        if (self.all_positive && max_weight >= 0.5) || (max_weight > 0.0 && !self.all_positive) {
            1
        } else {
            best
        }
    }
}

/// libsvm's pairwise coupling of `r[i][j]` (the probability of i against j) into class
/// probabilities, in `f32`.
fn multiclass_probability(k: usize, r: &[f32]) -> Vec<f32> {
    let kf = k as f32;
    let mut p = vec![1.0 / kf; k];
    let mut q = vec![0.0f32; k * k];
    for i in 0..k {
        for j in 0..i {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = q[j * k + i];
        }
        for j in i + 1..k {
            q[i * k + i] += r[j * k + i] * r[j * k + i];
            q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    let eps = 0.005 / kf;
    let mut qp = vec![0.0f32; k];
    for _ in 0..100 {
        let mut pqp = 0.0f32;
        for i in 0..k {
            qp[i] = (0..k).fold(0.0f32, |s, j| s + q[i * k + j] * p[j]);
            pqp += p[i] * qp[i];
        }
        if qp.iter().all(|&v| (v - pqp).abs() < eps) {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

impl Kernel for SvmClassifier {
    fn name(&self) -> &'static str {
        "SVMClassifier"
    }

    fn outputs(&self) -> usize {
        2
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &NUMERIC)?;
        Ok(tvec!(self.labels.datum_type(), f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let (n, _) = rows_and_columns(&inputs[0])?;
        Ok(tvec!(
            tvec!(n.clone()),
            tvec!(n, self.score_columns().into())
        ))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let (n, c, x) = f32_matrix(inputs[0])?;
        super::check_features(self.features, c)?;
        let mut z = Vec::with_capacity(n * self.score_columns());
        let chosen: Vec<usize> = x
            .chunks(c.max(1))
            .take(n)
            .map(|row| self.row(row, &mut z))
            .collect();
        Ok(tvec!(
            self.labels.tensor(&chosen)?,
            Tensor::from_shape(&[n, self.score_columns()], &z)?
        ))
    }
}

/// SVMRegressor.
#[derive(Clone, Debug)]
struct SvmRegressor {
    kernel: SvmKernel,
    support: Vec<f32>,
    coefficients: Vec<f32>,
    rho: f32,
    features: usize,
    one_class: bool,
}

pub(crate) fn svm_regressor(_ctx: &Context, node: &NodeProto) -> Built {
    let kernel = SvmKernel::parse(node)?;
    let supports: i64 = node.get_attr_opt("n_supports")?.unwrap_or(0);
    let Ok(supports) = usize::try_from(supports) else {
        return node.bail_attr("n_supports", &format!("negative count {supports}"));
    };
    let support: Vec<f32> = node
        .get_attr_opt_vec("support_vectors")?
        .unwrap_or_default();
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let rho: Vec<f32> = node.get_attr_vec("rho")?;
    let one_class = node.get_attr_opt::<i64>("one_class")?.unwrap_or(0) != 0;
    // Parsed to refuse unknown values; onnxruntime never applies it to the regressor's output.
    PostTransform::parse(node)?;
    let Some(&rho) = rho.first() else {
        return node.bail_attr("rho", "empty");
    };
    if coefficients.is_empty() {
        return node.bail_attr("coefficients", "empty");
    }
    let features = if supports > 0 {
        if support.is_empty() || !support.len().is_multiple_of(supports) {
            return node.bail_attr(
                "support_vectors",
                &format!(
                    "{} values do not split into {supports} vectors",
                    support.len()
                ),
            );
        }
        if coefficients.len() != supports {
            return node.bail_attr(
                "coefficients",
                &format!(
                    "{} values for {supports} support vectors",
                    coefficients.len()
                ),
            );
        }
        support.len() / supports
    } else {
        coefficients.len()
    };
    Ok(super::kernel(SvmRegressor {
        kernel,
        support: if supports > 0 { support } else { vec![] },
        coefficients,
        rho,
        features,
        one_class,
    }))
}

impl Kernel for SvmRegressor {
    fn name(&self) -> &'static str {
        "SVMRegressor"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &NUMERIC)?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let (n, _) = rows_and_columns(&inputs[0])?;
        Ok(tvec!(tvec!(n, 1.into())))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let (n, c, x) = f32_matrix(inputs[0])?;
        super::check_features(self.features, c)?;
        let y: Vec<f32> = x
            .chunks(c.max(1))
            .take(n)
            .map(|row| {
                let y = if self.support.is_empty() {
                    row.iter()
                        .zip(&self.coefficients)
                        .fold(0.0f32, |s, (a, b)| s + a * b)
                } else {
                    self.support
                        .chunks(self.features)
                        .zip(&self.coefficients)
                        .fold(0.0f32, |s, (sv, w)| s + w * self.kernel.eval(row, sv))
                } + self.rho;
                if !self.one_class {
                    y
                } else if y > 0.0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect();
        Ok(tvec!(Tensor::from_shape(&[n, 1], &y)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_operator;

    #[test]
    fn svm_classifier_matches_onnxruntime() {
        assert!(check_operator("svm_classifier_") >= 20);
    }

    #[test]
    fn svm_regressor_matches_onnxruntime() {
        assert!(check_operator("svm_regressor_") >= 8);
    }
}
