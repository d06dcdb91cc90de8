//! The ONNX-ML (`ai.onnx.ml`) operators that scikit-learn exports, in plain Rust.
//!
//! tract lacks most of them and gets some wrong (binary tree ensembles, string labels, PROBIT and
//! SOFTMAX_ZERO). Each operator here parses its node's attributes once, at load time, into a
//! [`Kernel`], and onnxruntime's CPU kernels are the reference for every number it computes.
//! They read the attributes of [`crate::pb`]'s nodes and compute on tract-data's tensors, so both
//! engines run them: tract (through [`tract::register`], over tract's own operators where both
//! exist) and the lite graph.

mod encode;
mod linear;
mod loss;
mod post;
mod svm;
#[cfg(feature = "tract")]
pub(crate) mod tract;
mod tree;
#[cfg(feature = "tract")]
pub(crate) mod zipmap;

#[cfg(all(test, feature = "tract"))]
pub(crate) mod testing;

use std::fmt;
use std::sync::Arc;

use tract_data::internal::*;

use crate::pb::NodeProto;

pub(crate) use post::PostTransform;

/// What a kernel's builder knows of the model beyond its node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context {
    /// The model's `ai.onnx.ml` opset (1 when it imports none).
    pub(crate) ml_opset: i64,
}

/// A built kernel, or why its node's attributes are refused.
pub(crate) type Built = TractResult<Arc<dyn Kernel>>;

/// Parses a node's attributes into its kernel.
pub(crate) type Builder = fn(&Context, &NodeProto) -> Built;

/// Every operator this module implements, as (ONNX op type, builder).
pub(crate) const OPERATORS: &[(&str, Builder)] = &[
    ("ArrayFeatureExtractor", encode::array_feature_extractor),
    ("Binarizer", encode::binarizer),
    ("FeatureVectorizer", encode::feature_vectorizer),
    ("Imputer", encode::imputer),
    ("LabelEncoder", encode::label_encoder),
    ("LinearClassifier", linear::linear_classifier),
    ("LinearRegressor", linear::linear_regressor),
    ("Normalizer", encode::normalizer),
    ("OneHotEncoder", encode::one_hot_encoder),
    ("Scaler", encode::scaler),
    ("SVMClassifier", svm::svm_classifier),
    ("SVMRegressor", svm::svm_regressor),
    ("TreeEnsembleClassifier", tree::tree_ensemble_classifier),
    ("TreeEnsembleRegressor", tree::tree_ensemble_regressor),
];

/// The ONNX op types implemented here (ZipMap is handled when the model is read).
pub fn operators() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|(name, _)| *name)
}

/// Standard (`ai.onnx`) operators written as wafer kernels: tract lacks them, and the lite
/// graph runs them the same way.
pub(crate) const STANDARD: &[(&str, Builder)] = &[
    ("NegativeLogLikelihoodLoss", loss::negative_log_likelihood),
    ("SoftmaxCrossEntropyLoss", loss::softmax_cross_entropy),
];

/// The builder of op type `name`, if wafer has a kernel for it: the one lookup of both
/// tract's loader and the lite graph.
pub(crate) fn builder(name: &str) -> Option<Builder> {
    OPERATORS
        .iter()
        .chain(STANDARD)
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

/// One operator, its attributes parsed: the output types and shapes it gives for its inputs', and
/// how it computes them.
pub(crate) trait Kernel: fmt::Debug + Send + Sync + 'static {
    /// The ONNX op type.
    fn name(&self) -> &'static str;
    /// How many outputs the node has.
    fn outputs(&self) -> usize {
        1
    }
    /// The output element types, given the inputs'.
    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>>;
    /// The output shapes, given the inputs'.
    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>>;
    /// Computes the outputs. An `INT64` input is `i64`, never tract's symbolic `TDim`.
    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>>;
}

/// A kernel, shared.
pub(crate) fn kernel(kernel: impl Kernel) -> Arc<dyn Kernel> {
    Arc::new(kernel)
}

/// The numeric input types most operators take, converting them to `f32`.
pub(crate) const NUMERIC: [DatumType; 4] = [
    DatumType::F32,
    DatumType::F64,
    DatumType::I64,
    DatumType::I32,
];

/// Checks that an input row has the model's number of features.
pub(crate) fn check_features(expected: usize, columns: usize) -> TractResult<()> {
    if columns != expected {
        bail!("the model has {expected} features, the input {columns} columns");
    }
    Ok(())
}

/// The rows of a model input: `[N, C]` as it is, a single feature vector `[C]` as one row.
pub(crate) fn rows_and_columns(shape: &[TDim]) -> TractResult<(TDim, TDim)> {
    match shape {
        [c] => Ok((1.into(), c.clone())),
        [n, c] => Ok((n.clone(), c.clone())),
        _ => bail!("expected an input of rank 1 or 2, got shape {shape:?}"),
    }
}

/// An input as a row-major `[N, C]` matrix of `f32`, whatever its numeric type.
pub(crate) fn f32_matrix(input: &Tensor) -> TractResult<(usize, usize, Vec<f32>)> {
    let (n, c) = concrete_rows(input)?;
    let values = input.cast_to::<f32>()?;
    Ok((n, c, values.plain::<f32>()?.to_vec()))
}

fn concrete_rows(input: &Tensor) -> TractResult<(usize, usize)> {
    match *input.shape() {
        [c] => Ok((1, c)),
        [n, c] => Ok((n, c)),
        ref shape => bail!("expected an input of rank 1 or 2, got shape {shape:?}"),
    }
}

/// Plain access to a tensor's elements.
pub(crate) trait Plain {
    /// The elements, row-major.
    fn plain<T: Datum>(&self) -> TractResult<&[T]>;
}

impl Plain for Tensor {
    fn plain<T: Datum>(&self) -> TractResult<&[T]> {
        self.try_as_plain_ram()?.as_slice::<T>()
    }
}

/// A tensor of any element type, strings included, from its shape and row-major elements.
pub(crate) fn tensor_of<T: Datum>(shape: &[usize], data: Vec<T>) -> TractResult<Tensor> {
    use tract_data::internal::tract_ndarray::{ArrayD, IxDyn};
    Ok(ArrayD::from_shape_vec(IxDyn(shape), data)?.into())
}

/// Class labels of a classifier: integers or strings, from `<prefix>_int64s`/`<prefix>_ints` or
/// `<prefix>_strings`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Labels {
    /// `classlabels_int64s` (or `classlabels_ints`).
    Ints(Vec<i64>),
    /// `classlabels_strings`.
    Strings(Vec<String>),
}

impl Labels {
    /// Reads the labels; exactly one of the two attributes must be present and non-empty.
    pub(crate) fn parse(node: &NodeProto, ints_attr: &str) -> TractResult<Labels> {
        let ints: Option<Vec<i64>> = node.get_attr_opt_vec(ints_attr)?;
        let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
        match (
            ints.filter(|v| !v.is_empty()),
            strings.filter(|v| !v.is_empty()),
        ) {
            (Some(ints), None) => Ok(Labels::Ints(ints)),
            (None, Some(strings)) => Ok(Labels::Strings(strings)),
            (Some(_), Some(_)) => node.bail_attr(
                ints_attr,
                "both integer and string class labels are given; expected one of them",
            ),
            (None, None) => node.bail_attr(ints_attr, "no class labels (nor classlabels_strings)"),
        }
    }

    /// How many classes there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    /// The element type of the label output.
    pub(crate) fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => i64::datum_type(),
            Labels::Strings(_) => String::datum_type(),
        }
    }

    /// The label output `[N]` for the chosen class index of each row.
    pub(crate) fn tensor(&self, chosen: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Labels::Ints(v) => tensor1(&chosen.iter().map(|&i| v[i]).collect::<Vec<_>>()),
            Labels::Strings(v) => {
                tensor1(&chosen.iter().map(|&i| v[i].clone()).collect::<Vec<_>>())
            }
        })
    }
}

/// Reads a required attribute that must be one of `allowed`, naming node and attribute if not.
pub(crate) fn one_of<T: Copy>(
    node: &NodeProto,
    attr: &str,
    default: Option<&str>,
    allowed: &[(&str, T)],
) -> TractResult<T> {
    let value: Option<String> = node.get_attr_opt(attr)?;
    let Some(value) = value.or(default.map(str::to_owned)) else {
        return node.bail_attr(attr, "missing");
    };
    match allowed.iter().find(|(name, _)| *name == value) {
        Some((_, v)) => Ok(*v),
        None => {
            let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
            node.bail_attr(
                attr,
                &format!("unknown value \"{value}\", expected one of {names:?}"),
            )
        }
    }
}
