//! Post-transforms of classifier and regressor scores, in `f32` as onnxruntime computes them.

use crate::pb::NodeProto;
use tract_data::internal::*;

use super::one_of;

/// Why a classifier with one binary score refuses PROBIT.
pub(crate) const BINARY_PROBIT: &str = "PROBIT on a binary classifier's single score is undefined \
     (onnxruntime leaves the second column unwritten); export with another post_transform";

/// The `post_transform` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PostTransform {
    /// Scores as they are.
    None,
    /// Softmax over a row.
    Softmax,
    /// The logistic function of each score.
    Logistic,
    /// Softmax over the non-zero scores of a row; zeros stay zero.
    SoftmaxZero,
    /// The probit (inverse normal CDF) of each score.
    Probit,
}

impl PostTransform {
    /// Reads `post_transform` (default `NONE`); an unknown value names the node and attribute.
    pub(crate) fn parse(node: &NodeProto) -> TractResult<PostTransform> {
        one_of(
            node,
            "post_transform",
            Some("NONE"),
            &[
                ("NONE", PostTransform::None),
                ("SOFTMAX", PostTransform::Softmax),
                ("LOGISTIC", PostTransform::Logistic),
                ("SOFTMAX_ZERO", PostTransform::SoftmaxZero),
                ("PROBIT", PostTransform::Probit),
            ],
        )
    }

    /// Transforms a row of two or more scores in place.
    pub(crate) fn apply(self, row: &mut [f32]) {
        match self {
            PostTransform::None => {}
            PostTransform::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
            PostTransform::Softmax => softmax(row),
            PostTransform::SoftmaxZero => softmax_zero(row),
        }
    }

    /// Transforms a single score (one target, or one column): only PROBIT changes it, as in
    /// onnxruntime, which ignores the other transforms on a lone score.
    pub(crate) fn apply_single(self, v: f32) -> f32 {
        match self {
            PostTransform::Probit => probit(v),
            _ => v,
        }
    }
}

/// The logistic function as onnxruntime computes it (through `|x|`, so very negative inputs
/// round to exactly 0).
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// The inverse error function, by Winitzki's approximation (a = 0.147), in `f32`.
fn erf_inv(x: f32) -> f32 {
    let sgn = if x < 0.0 { -1.0f32 } else { 1.0 };
    let t = (1.0 - x) * (1.0 + x);
    let l = t.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * l;
    let v2 = (1.0 / 0.147) * l;
    sgn * (-v + (v * v - v2).sqrt()).sqrt()
}

/// The probit of a probability.
pub(crate) fn probit(p: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * p - 1.0)
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(-f32::MAX, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

fn softmax_zero(row: &mut [f32]) {
    let max = row.iter().fold(-f32::MAX, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        if v.abs() > 1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= (-max).exp();
        }
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_cdf_approximately() {
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.959_964).abs() < 2e-3);
        assert!((probit(0.025) + 1.959_964).abs() < 2e-3);
    }

    #[test]
    fn softmax_zero_leaves_zeros() {
        let mut row = [0.0, 1.0, 2.0];
        softmax_zero(&mut row);
        assert_eq!(row[0], 0.0);
        assert!((row[1] + row[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn logistic_matches_the_formula() {
        for x in [-3.0f32, -0.5, 0.0, 0.5, 3.0] {
            assert!((logistic(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6);
        }
    }
}
