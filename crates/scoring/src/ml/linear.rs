//! LinearClassifier and LinearRegressor, with every post-transform and onnxruntime's binary rule
//! (one coefficient row and two labels: scores `[1-s, s]`, label by `s > 0`).

use crate::pb::NodeProto;
use tract_data::internal::*;

use super::tree::check_inputs;
use super::{
    Built, Context, Kernel, Labels, NUMERIC, PostTransform, f32_matrix, kernel, rows_and_columns,
};

/// `X·Wᵀ + b` for one row, in `f32`.
fn affine(row: &[f32], weights: &[f32], bias: Option<&[f32]>, out: &mut Vec<f32>) {
    let f = row.len();
    for (k, w) in weights.chunks(f).enumerate() {
        let dot = row.iter().zip(w).fold(0.0f32, |s, (a, b)| s + a * b);
        out.push(dot + bias.map_or(0.0, |b| b[k]));
    }
}

/// Reads `coefficients` as `rows` rows and returns the number of features.
fn features(node: &NodeProto, coefficients: &[f32], rows: usize) -> TractResult<usize> {
    if coefficients.is_empty() || !coefficients.len().is_multiple_of(rows) {
        return node.bail_attr(
            "coefficients",
            &format!(
                "{} values do not split into {rows} rows",
                coefficients.len()
            ),
        );
    }
    Ok(coefficients.len() / rows)
}

/// LinearClassifier.
#[derive(Clone, Debug)]
struct LinearClassifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    features: usize,
    labels: Labels,
    post: PostTransform,
}

pub(crate) fn linear_classifier(_ctx: &Context, node: &NodeProto) -> Built {
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let intercepts: Vec<f32> = node.get_attr_opt_vec("intercepts")?.unwrap_or_default();
    if intercepts.is_empty() {
        return node.bail_attr("intercepts", "missing: one intercept per class is required");
    }
    let classes = intercepts.len();
    let features = features(node, &coefficients, classes)?;
    let labels = Labels::parse(node, "classlabels_ints")?;
    let post = PostTransform::parse(node)?;
    if classes == 1 && labels.len() == 2 && post == PostTransform::Probit {
        return node.bail_attr("post_transform", super::post::BINARY_PROBIT);
    }
    if classes > 1 && labels.len() != classes {
        return node.bail_attr(
            "classlabels_ints",
            &format!("{} labels for {classes} rows of coefficients", labels.len()),
        );
    }
    Ok(kernel(LinearClassifier {
        coefficients,
        intercepts,
        features,
        labels,
        post,
    }))
}

impl LinearClassifier {
    fn score_columns(&self) -> usize {
        if self.intercepts.len() == 1 && self.labels.len() == 2 {
            2
        } else {
            self.intercepts.len()
        }
    }
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
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
        let classes = self.intercepts.len();
        let mut scores = Vec::with_capacity(n * classes);
        for row in x.chunks(c.max(1)).take(n) {
            affine(row, &self.coefficients, Some(&self.intercepts), &mut scores);
        }
        let columns = self.score_columns();
        let mut z = Vec::with_capacity(n * columns);
        let label = if classes == 1 {
            let positive: Vec<bool> = scores.iter().map(|&s| s > 0.0).collect();
            if columns == 2 {
                // onnxruntime: [1-s, s], through the logistic function under LOGISTIC only.
                for &s in &scores {
                    let s = if self.post == PostTransform::Logistic {
                        super::post::logistic(s)
                    } else {
                        s
                    };
                    z.extend([1.0 - s, s]);
                }
                let chosen: Vec<usize> = positive.iter().map(|&p| usize::from(p)).collect();
                self.labels.tensor(&chosen)?
            } else {
                z.extend(scores.iter().map(|&s| self.post.apply_single(s)));
                match self.labels {
                    Labels::Ints(_) => {
                        tensor1(&positive.iter().map(|&p| i64::from(p)).collect::<Vec<_>>())
                    }
                    Labels::Strings(_) => tensor1(
                        &positive
                            .iter()
                            .map(|&p| if p { "1" } else { "0" }.to_owned())
                            .collect::<Vec<_>>(),
                    ),
                }
            }
        } else {
            let mut chosen = Vec::with_capacity(n);
            for row in scores.chunks(classes) {
                chosen.push(argmax(row));
                let mut row = row.to_vec();
                self.post.apply(&mut row);
                z.extend(row);
            }
            self.labels.tensor(&chosen)?
        };
        Ok(tvec!(label, Tensor::from_shape(&[n, columns], &z)?))
    }
}

/// The index of the first maximum.
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// LinearRegressor.
#[derive(Clone, Debug)]
struct LinearRegressor {
    coefficients: Vec<f32>,
    intercepts: Option<Vec<f32>>,
    targets: usize,
    features: usize,
    post: PostTransform,
}

pub(crate) fn linear_regressor(_ctx: &Context, node: &NodeProto) -> Built {
    let targets: i64 = node.get_attr_opt("targets")?.unwrap_or(1);
    let Some(targets) = usize::try_from(targets).ok().filter(|&t| t > 0) else {
        return node.bail_attr("targets", &format!("must be positive, got {targets}"));
    };
    let coefficients: Vec<f32> = node.get_attr_vec("coefficients")?;
    let features = features(node, &coefficients, targets)?;
    // onnxruntime uses the intercepts only when there is one per target.
    let intercepts = node
        .get_attr_opt_vec::<f32>("intercepts")?
        .filter(|v| v.len() == targets);
    Ok(kernel(LinearRegressor {
        coefficients,
        intercepts,
        targets,
        features,
        post: PostTransform::parse(node)?,
    }))
}

impl Kernel for LinearRegressor {
    fn name(&self) -> &'static str {
        "LinearRegressor"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &NUMERIC)?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let (n, _) = rows_and_columns(&inputs[0])?;
        Ok(tvec!(tvec!(n, self.targets.into())))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let (n, c, x) = f32_matrix(inputs[0])?;
        super::check_features(self.features, c)?;
        let mut y = Vec::with_capacity(n * self.targets);
        for row in x.chunks(c.max(1)).take(n) {
            let start = y.len();
            affine(row, &self.coefficients, self.intercepts.as_deref(), &mut y);
            let out = &mut y[start..];
            if self.targets == 1 {
                out[0] = self.post.apply_single(out[0]);
            } else {
                self.post.apply(out);
            }
        }
        Ok(tvec!(Tensor::from_shape(&[n, self.targets], &y)?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_operator;

    #[test]
    fn linear_classifier_matches_onnxruntime() {
        assert!(check_operator("linear_classifier_") >= 14);
    }

    #[test]
    fn linear_regressor_matches_onnxruntime() {
        assert!(check_operator("linear_regressor_") >= 6);
    }
}
