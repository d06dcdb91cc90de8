//! The ONNX-ML (`ai.onnx.ml`) operators that scikit-learn exports, in plain Rust.
//!
//! tract lacks most of them and gets some wrong (binary tree ensembles, string labels, PROBIT and
//! SOFTMAX_ZERO). Each operator here parses its node's attributes once, at load time, into a
//! [`Kernel`], and onnxruntime's CPU kernels are the reference for every number it computes.
//! [`register`] puts them into tract's ONNX loader, over tract's own where both exist.

mod encode;
mod linear;
mod post;
mod svm;
mod tree;
pub(crate) mod zipmap;

#[cfg(test)]
mod testing;

use std::fmt;
use std::sync::Arc;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

pub(crate) use post::PostTransform;

/// What tract's ONNX loader calls to turn a node into an operator.
type Builder = fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// Every operator this module implements, as (ONNX op type, builder).
const OPERATORS: &[(&str, Builder)] = &[
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

/// Registers every operator of this module into tract's ONNX op register.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    for &(name, builder) in OPERATORS {
        reg.insert(name, builder);
    }
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
    /// Computes the outputs.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// A [`Kernel`] as a node of tract's inference and typed models.
#[derive(Clone, Debug)]
pub(crate) struct MlOp(Arc<dyn Kernel>);

impl MlOp {
    /// Wraps a kernel for tract's ONNX loader.
    pub(crate) fn boxed(kernel: impl Kernel) -> (Box<dyn InferenceOp>, Vec<String>) {
        (expand(MlOp(Arc::new(kernel))), vec![])
    }
}

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
            .collect::<TractResult<_>>()?;
        self.0.eval(inputs)
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
    use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};
    Ok(ArrayD::from_shape_vec(IxDyn(shape), data)?.into())
}

/// A tensor-valued attribute, if present.
pub(crate) fn tensor_attr(
    ctx: &ParsingContext,
    node: &NodeProto,
    name: &str,
) -> TractResult<Option<Tensor>> {
    let Some(t) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(name)? else {
        return Ok(None);
    };
    tract_onnx::tensor::load_tensor(&*ctx.framework.provider, t, ctx.model_dir)
        .map(Some)
        .or_else(|e| node.bail_attr(name, &format!("{e:#}")))
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
