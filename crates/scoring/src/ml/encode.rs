//! The preprocessing operators: Scaler, OneHotEncoder, Imputer, Binarizer, LabelEncoder,
//! FeatureVectorizer and ArrayFeatureExtractor.

use std::collections::HashMap;

use crate::pb::NodeProto;
use tract_data::internal::*;

use super::tree::check_inputs;
use super::{Built, Context, Kernel, Plain, kernel};

/// The length of a feature row: the last dimension of a rank 1 input, else the second.
fn stride(shape: &[usize]) -> TractResult<usize> {
    match shape {
        [] => bail!("the input is a scalar; expected rank 1 or more"),
        [c] => Ok(*c),
        [_, c, ..] => Ok(*c),
    }
}

/// A per-feature parameter: one value per column, or one for all.
fn per_feature<T: Copy>(values: &[T], stride: usize, i: usize) -> T {
    if values.len() == stride {
        values[i % stride]
    } else {
        values[0]
    }
}

/// Scaler: `(x - offset) * scale`, per feature or broadcast.
#[derive(Clone, Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub(crate) fn scaler(_ctx: &Context, node: &NodeProto) -> Built {
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_default();
    let offset: Vec<f32> = node.get_attr_opt_vec("offset")?.unwrap_or_default();
    if scale.is_empty() {
        return node.bail_attr("scale", "empty");
    }
    if offset.len() != scale.len() {
        return node.bail_attr(
            "offset",
            &format!("{} values for {} in scale", offset.len(), scale.len()),
        );
    }
    Ok(kernel(Scaler { offset, scale }))
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &super::NUMERIC)?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        Ok(tvec!(inputs[0].clone()))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let stride = stride(x.shape())?;
        if self.scale.len() != 1 && self.scale.len() != stride {
            bail!(
                "scale and offset have {} values; expected 1 or one per feature ({stride})",
                self.scale.len()
            );
        }
        let y: Vec<f32> = if x.datum_type() == DatumType::F64 {
            x.plain::<f64>()?
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let o = f64::from(per_feature(&self.offset, stride, i));
                    let s = f64::from(per_feature(&self.scale, stride, i));
                    #[expect(clippy::cast_possible_truncation, reason = "the output is f32")]
                    let y = ((v - o) * s) as f32;
                    y
                })
                .collect()
        } else {
            let x = x.cast_to::<f32>()?;
            x.plain::<f32>()?
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    (v - per_feature(&self.offset, stride, i)) * per_feature(&self.scale, stride, i)
                })
                .collect()
        };
        Ok(tvec!(Tensor::from_shape(x.shape(), &y)?))
    }
}

/// OneHotEncoder over integer or string categories.
#[derive(Clone, Debug)]
struct OneHotEncoder {
    ints: HashMap<i64, usize>,
    strings: HashMap<String, usize>,
    categories: usize,
    zeros: bool,
}

pub(crate) fn one_hot_encoder(_ctx: &Context, node: &NodeProto) -> Built {
    let ints: Vec<i64> = node.get_attr_opt_vec("cats_int64s")?.unwrap_or_default();
    let strings: Vec<String> = node.get_attr_opt_vec("cats_strings")?.unwrap_or_default();
    let categories = match (ints.len(), strings.len()) {
        (0, 0) => return node.bail_attr("cats_int64s", "no categories (nor cats_strings)"),
        (n, 0) | (0, n) => n,
        _ => {
            return node.bail_attr(
                "cats_strings",
                "both cats_int64s and cats_strings are given",
            );
        }
    };
    // A repeated category keeps its last position, as in onnxruntime.
    Ok(kernel(OneHotEncoder {
        ints: ints.into_iter().enumerate().map(|(i, c)| (c, i)).collect(),
        strings: strings
            .into_iter()
            .enumerate()
            .map(|(i, c)| (c, i))
            .collect(),
        categories,
        zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0,
    }))
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(
            inputs,
            &[
                DatumType::I64,
                DatumType::I32,
                DatumType::F32,
                DatumType::F64,
                DatumType::String,
            ],
        )?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let mut shape = inputs[0].clone();
        shape.push(self.categories.into());
        Ok(tvec!(shape))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let positions: Vec<Option<usize>> = if x.datum_type() == DatumType::String {
            x.plain::<String>()?
                .iter()
                .map(|s| self.strings.get(s).copied())
                .collect()
        } else {
            // Numbers are truncated to integers, as in onnxruntime.
            let x = x.cast_to::<f64>()?;
            #[expect(
                clippy::cast_possible_truncation,
                reason = "C-style truncation is the spec"
            )]
            let keys = x
                .plain::<f64>()?
                .iter()
                .map(|&v| self.ints.get(&(v as i64)).copied());
            keys.collect()
        };
        let mut y = vec![0.0f32; positions.len() * self.categories];
        for (i, p) in positions.into_iter().enumerate() {
            match p {
                Some(p) => y[i * self.categories + p] = 1.0,
                None if !self.zeros => bail!("unknown category at element {i}, and zeros = 0"),
                None => {}
            }
        }
        let mut shape = x.shape().to_vec();
        shape.push(self.categories);
        Ok(tvec!(Tensor::from_shape(&shape, &y)?))
    }
}

/// Imputer: replaces a missing-value marker (NaN, or a given value) with a per-feature value.
#[derive(Clone, Debug)]
struct Imputer {
    floats: Vec<f32>,
    ints: Vec<i64>,
    replaced_float: f32,
    replaced_int: i64,
}

pub(crate) fn imputer(_ctx: &Context, node: &NodeProto) -> Built {
    let floats: Vec<f32> = node
        .get_attr_opt_vec("imputed_value_floats")?
        .unwrap_or_default();
    let ints: Vec<i64> = node
        .get_attr_opt_vec("imputed_value_int64s")?
        .unwrap_or_default();
    if floats.is_empty() == ints.is_empty() {
        return node.bail_attr(
            "imputed_value_floats",
            "exactly one of imputed_value_floats and imputed_value_int64s must be given",
        );
    }
    Ok(kernel(Imputer {
        floats,
        ints,
        replaced_float: node.get_attr_opt("replaced_value_float")?.unwrap_or(0.0),
        replaced_int: node.get_attr_opt("replaced_value_int64")?.unwrap_or(0),
    }))
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &[DatumType::F32, DatumType::I64])?;
        Ok(tvec!(inputs[0]))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        Ok(tvec!(inputs[0].clone()))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let stride = stride(x.shape())?;
        let y = if x.datum_type() == DatumType::F32 {
            if self.floats.is_empty() {
                bail!("the input is FP32 but the imputed values are integers");
            }
            let y: Vec<f32> = x
                .plain::<f32>()?
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let missing =
                        (v.is_nan() && self.replaced_float.is_nan()) || v == self.replaced_float;
                    if missing {
                        per_feature(&self.floats, stride, i)
                    } else {
                        v
                    }
                })
                .collect();
            Tensor::from_shape(x.shape(), &y)?
        } else {
            if self.ints.is_empty() {
                bail!("the input is INT64 but the imputed values are floats");
            }
            let y: Vec<i64> = x
                .plain::<i64>()?
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v == self.replaced_int {
                        per_feature(&self.ints, stride, i)
                    } else {
                        v
                    }
                })
                .collect();
            Tensor::from_shape(x.shape(), &y)?
        };
        Ok(tvec!(y))
    }
}

/// Binarizer: 1 above the threshold, else 0.
#[derive(Clone, Debug)]
struct Binarizer {
    threshold: f32,
}

pub(crate) fn binarizer(_ctx: &Context, node: &NodeProto) -> Built {
    Ok(kernel(Binarizer {
        threshold: node.get_attr_opt("threshold")?.unwrap_or(0.0),
    }))
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &[DatumType::F32])?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        Ok(tvec!(inputs[0].clone()))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let values = x.plain::<f32>()?;
        if let Some(i) = values.iter().position(|v| v.is_nan()) {
            bail!("element {i} is NaN, which a Binarizer cannot compare");
        }
        let y: Vec<f32> = values
            .iter()
            .map(|&v| if v > self.threshold { 1.0 } else { 0.0 })
            .collect();
        Ok(tvec!(Tensor::from_shape(x.shape(), &y)?))
    }
}

/// The keys or values of a LabelEncoder.
#[derive(Clone, Debug)]
enum Column {
    Strings(Vec<String>),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Strings(v) => v.len(),
            Column::Ints(v) => v.len(),
            Column::Floats(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Column::Strings(_) => DatumType::String,
            Column::Ints(_) => DatumType::I64,
            Column::Floats(_) => DatumType::F32,
        }
    }

    /// Reads `<prefix>_strings`, `<prefix>_int64s`, `<prefix>_floats` or `<prefix>_tensor`,
    /// with the element type it declares (a tensor's own: `INT16` values give `INT16` outputs).
    fn parse(node: &NodeProto, prefix: &str) -> TractResult<(Column, DatumType)> {
        let strings: Option<Vec<String>> = node.get_attr_opt_vec(&format!("{prefix}_strings"))?;
        let ints: Option<Vec<i64>> = node.get_attr_opt_vec(&format!("{prefix}_int64s"))?;
        let floats: Option<Vec<f32>> = node.get_attr_opt_vec(&format!("{prefix}_floats"))?;
        let tensor_attr = format!("{prefix}_tensor");
        let tensor = node.get_attr_tensor(&tensor_attr)?;
        let given = [
            strings.is_some(),
            ints.is_some(),
            floats.is_some(),
            tensor.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            return node.bail_attr(
                &format!("{prefix}_strings"),
                &format!("expected exactly one of {prefix}_strings, {prefix}_int64s, {prefix}_floats, {prefix}_tensor"),
            );
        }
        if let Some(v) = strings {
            return Ok((Column::Strings(v), DatumType::String));
        }
        if let Some(v) = ints {
            return Ok((Column::Ints(v), DatumType::I64));
        }
        if let Some(v) = floats {
            return Ok((Column::Floats(v), DatumType::F32));
        }
        let t = tensor.ok_or_else(|| format_err!("unreachable: one attribute is given"))?;
        let column = match t.datum_type() {
            DatumType::String => Column::Strings(t.plain::<String>()?.to_vec()),
            DatumType::I64 | DatumType::I32 | DatumType::I16 => {
                Column::Ints(t.cast_to::<i64>()?.plain::<i64>()?.to_vec())
            }
            DatumType::F32 | DatumType::F64 => {
                Column::Floats(t.cast_to::<f32>()?.plain::<f32>()?.to_vec())
            }
            other => return node.bail_attr(&tensor_attr, &format!("unsupported type {other:?}")),
        };
        Ok((column, t.datum_type()))
    }
}

/// A float key: NaN matches NaN only from ai.onnx.ml opset 4, and -0.0 matches 0.0.
fn float_key(v: f32, nan_matches: bool) -> Option<u32> {
    if v.is_nan() {
        nan_matches.then_some(f32::NAN.to_bits())
    } else if v == 0.0 {
        Some(0)
    } else {
        Some(v.to_bits())
    }
}

/// LabelEncoder: maps keys to values, with a default for unknown keys.
#[derive(Clone, Debug)]
struct LabelEncoder {
    keys: Column,
    values: Column,
    /// The position of each key's value (the first occurrence of a repeated key wins).
    strings: HashMap<String, usize>,
    ints: HashMap<i64, usize>,
    floats: HashMap<u32, usize>,
    nan_matches: bool,
    default: Column,
    /// The element types of the keys (the input) and of the values (the output).
    key_type: DatumType,
    value_type: DatumType,
}

pub(crate) fn label_encoder(ctx: &Context, node: &NodeProto) -> Built {
    let ml_opset = ctx.ml_opset;
    let ((keys, key_type), (values, value_type)) = if node
        .get_attr_opt_vec::<String>("classes_strings")?
        .is_some()
    {
        // ai.onnx.ml 1: strings to their index, or back.
        let classes: Vec<String> = node.get_attr_vec("classes_strings")?;
        let index: Vec<i64> = (0..classes.len() as i64).collect();
        let input_is_string = node.get_attr_opt::<i64>("default_int64")?.is_some()
            || node.get_attr_opt::<String>("default_string")?.is_none();
        let strings = (Column::Strings(classes), DatumType::String);
        let ints = (Column::Ints(index), DatumType::I64);
        if input_is_string {
            (strings, ints)
        } else {
            (ints, strings)
        }
    } else {
        (Column::parse(node, "keys")?, Column::parse(node, "values")?)
    };
    if keys.len() != values.len() {
        return node.bail_attr(
            "values_strings",
            &format!("{} values for {} keys", values.len(), keys.len()),
        );
    }
    let default = match values {
        Column::Strings(_) => Column::Strings(vec![
            node.get_attr_opt("default_string")?
                .unwrap_or_else(|| "_Unused".to_owned()),
        ]),
        Column::Ints(_) => Column::Ints(vec![node.get_attr_opt("default_int64")?.unwrap_or(-1)]),
        Column::Floats(_) => {
            Column::Floats(vec![node.get_attr_opt("default_float")?.unwrap_or(-0.0)])
        }
    };
    let default = match node.get_attr_tensor("default_tensor")? {
        Some(t) => match values {
            Column::Strings(_) => {
                Column::Strings(t.cast_to::<String>()?.plain::<String>()?.to_vec())
            }
            Column::Ints(_) => Column::Ints(t.cast_to::<i64>()?.plain::<i64>()?.to_vec()),
            Column::Floats(_) => Column::Floats(t.cast_to::<f32>()?.plain::<f32>()?.to_vec()),
        },
        None => default,
    };
    if default.len() == 0 {
        return node.bail_attr("default_tensor", "empty");
    }
    let nan_matches = ml_opset >= 4;
    let mut strings = HashMap::new();
    let mut ints = HashMap::new();
    let mut floats = HashMap::new();
    match &keys {
        Column::Strings(k) => k.iter().enumerate().for_each(|(i, k)| {
            strings.entry(k.clone()).or_insert(i);
        }),
        Column::Ints(k) => k.iter().enumerate().for_each(|(i, k)| {
            ints.entry(*k).or_insert(i);
        }),
        Column::Floats(k) => k.iter().enumerate().for_each(|(i, &k)| {
            if let Some(bits) = float_key(k, nan_matches) {
                floats.entry(bits).or_insert(i);
            }
        }),
    }
    Ok(kernel(LabelEncoder {
        keys,
        values,
        strings,
        ints,
        floats,
        nan_matches,
        default,
        key_type,
        value_type,
    }))
}

impl LabelEncoder {
    fn gather<T: Clone>(&self, values: &[T], default: &T, found: &[Option<usize>]) -> Vec<T> {
        found
            .iter()
            .map(|f| f.map_or_else(|| default.clone(), |i| values[i].clone()))
            .collect()
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        let mut accepted = match self.keys.datum_type() {
            DatumType::F32 => vec![DatumType::F32, DatumType::F64],
            DatumType::I64 => vec![DatumType::I64, DatumType::I32],
            _ => vec![DatumType::String],
        };
        if !accepted.contains(&self.key_type) {
            accepted.push(self.key_type);
        }
        check_inputs(inputs, &accepted)?;
        Ok(tvec!(self.value_type))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        Ok(tvec!(inputs[0].clone()))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let found: Vec<Option<usize>> = match &self.keys {
            Column::Strings(_) => x
                .plain::<String>()?
                .iter()
                .map(|s| self.strings.get(s).copied())
                .collect(),
            Column::Ints(_) => {
                let x = x.cast_to::<i64>()?;
                x.plain::<i64>()?
                    .iter()
                    .map(|k| self.ints.get(k).copied())
                    .collect()
            }
            Column::Floats(_) => {
                let x = x.cast_to::<f32>()?;
                x.plain::<f32>()?
                    .iter()
                    .map(|&k| {
                        float_key(k, self.nan_matches).and_then(|b| self.floats.get(&b).copied())
                    })
                    .collect()
            }
        };
        let y = match (&self.values, &self.default) {
            (Column::Strings(v), Column::Strings(d)) => {
                super::tensor_of(x.shape(), self.gather(v, &d[0], &found))?
            }
            (Column::Ints(v), Column::Ints(d)) => {
                super::tensor_of(x.shape(), self.gather(v, &d[0], &found))?
            }
            (Column::Floats(v), Column::Floats(d)) => {
                super::tensor_of(x.shape(), self.gather(v, &d[0], &found))?
            }
            _ => bail!("the default value's type differs from the values'"),
        };
        if y.datum_type() == self.value_type {
            Ok(tvec!(y))
        } else {
            Ok(tvec!(y.cast_to_dt(self.value_type)?.into_owned()))
        }
    }
}

/// FeatureVectorizer: concatenates inputs into `[N, Σ inputdimensions]`, padding or truncating.
#[derive(Clone, Debug)]
struct FeatureVectorizer {
    dimensions: Vec<usize>,
}

pub(crate) fn feature_vectorizer(_ctx: &Context, node: &NodeProto) -> Built {
    let dims: Vec<i64> = node
        .get_attr_opt_vec("inputdimensions")?
        .unwrap_or_default();
    if dims.is_empty() {
        return node.bail_attr("inputdimensions", "missing or empty");
    }
    if dims.len() != node.input.len() {
        return node.bail_attr(
            "inputdimensions",
            &format!("{} dimensions for {} inputs", dims.len(), node.input.len()),
        );
    }
    let dimensions = dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .or_else(|_| node.bail_attr("inputdimensions", &format!("negative {d}")))
        })
        .collect::<TractResult<_>>()?;
    Ok(kernel(FeatureVectorizer { dimensions }))
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        for dt in inputs {
            check_inputs(&[*dt], &super::NUMERIC)?;
        }
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let n = if inputs[0].len() == 1 {
            1.into()
        } else {
            inputs[0][0].clone()
        };
        Ok(tvec!(tvec!(
            n,
            self.dimensions.iter().sum::<usize>().into()
        )))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let rows = |x: &Tensor| if x.rank() == 1 { 1 } else { x.shape()[0] };
        let n = rows(inputs[0]);
        let width: usize = self.dimensions.iter().sum();
        let mut y = vec![0.0f32; n * width];
        let mut offset = 0;
        for (x, &d) in inputs.iter().zip(&self.dimensions) {
            if rows(x) != n {
                bail!("inputs have {} and {n} rows", rows(x));
            }
            let size = if x.rank() == 1 {
                x.len()
            } else {
                x.shape()[1..].iter().product()
            };
            let x = x.cast_to::<f32>()?;
            let x = x.plain::<f32>()?;
            let take = size.min(d);
            for r in 0..n {
                y[r * width + offset..r * width + offset + take]
                    .copy_from_slice(&x[r * size..r * size + take]);
            }
            offset += d;
        }
        Ok(tvec!(Tensor::from_shape(&[n, width], &y)?))
    }
}

/// The norm a Normalizer divides each row by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Norm {
    Max,
    L1,
    L2,
}

/// Normalizer: each row divided by its max, L1 or L2 norm (tract's own gets MAX wrong).
#[derive(Clone, Debug)]
struct Normalizer {
    norm: Norm,
}

pub(crate) fn normalizer(_ctx: &Context, node: &NodeProto) -> Built {
    let norm = super::one_of(
        node,
        "norm",
        Some("MAX"),
        &[("MAX", Norm::Max), ("L1", Norm::L1), ("L2", Norm::L2)],
    )?;
    Ok(kernel(Normalizer { norm }))
}

impl Normalizer {
    /// One row, as onnxruntime computes it: the norm in `f32`, squares in the input's type.
    fn row(&self, x: &[f64], out: &mut Vec<f32>) {
        #[expect(clippy::cast_possible_truncation, reason = "the output is f32")]
        let f = |v: f64| v as f32;
        match self.norm {
            Norm::Max => {
                let m = x
                    .iter()
                    .fold(f32::MIN, |m, &v| if m < f(v) { f(v) } else { m });
                out.extend(x.iter().map(|&v| if m == 0.0 { f(v) } else { f(v) / m }));
            }
            Norm::L1 => {
                let s = x.iter().fold(0.0f32, |s, &v| s + f(v.abs()));
                out.extend(x.iter().map(|&v| if s == 0.0 { f(v) } else { f(v) / s }));
            }
            Norm::L2 => {
                let s = x.iter().fold(0.0f32, |s, &v| s + f(v * v));
                out.extend(x.iter().map(|&v| {
                    if s == 0.0 {
                        f(v)
                    } else {
                        let y = (f(v * v) / s).sqrt();
                        if v < 0.0 { -y } else { y }
                    }
                }));
            }
        }
    }
}

impl Kernel for Normalizer {
    fn name(&self) -> &'static str {
        "Normalizer"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        check_inputs(inputs, &super::NUMERIC)?;
        Ok(tvec!(f32::datum_type()))
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        super::rows_and_columns(&inputs[0])?;
        Ok(tvec!(inputs[0].clone()))
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let c = super::tree::columns(x);
        // The square of an f32 is exact in f64, so rounding it to f32 is the f32 product.
        let values: Vec<f64> = if x.datum_type() == DatumType::F64 {
            x.plain::<f64>()?.to_vec()
        } else {
            let x = x.cast_to::<f32>()?;
            x.plain::<f32>()?.iter().map(|&v| f64::from(v)).collect()
        };
        let mut y = Vec::with_capacity(values.len());
        for row in values.chunks(c.max(1)) {
            self.row(row, &mut y);
        }
        Ok(tvec!(Tensor::from_shape(x.shape(), &y)?))
    }
}

/// ArrayFeatureExtractor: picks columns of the last axis; a rank 1 input gives `[1, k]`.
#[derive(Clone, Debug)]
struct ArrayFeatureExtractor;

pub(crate) fn array_feature_extractor(_ctx: &Context, _node: &NodeProto) -> Built {
    Ok(kernel(ArrayFeatureExtractor))
}

impl Kernel for ArrayFeatureExtractor {
    fn name(&self) -> &'static str {
        "ArrayFeatureExtractor"
    }

    fn output_types(&self, inputs: &[DatumType]) -> TractResult<TVec<DatumType>> {
        match inputs {
            [x, DatumType::I64] => Ok(tvec!(*x)),
            _ => bail!("expected an input and INT64 indices, got {inputs:?}"),
        }
    }

    fn output_shapes(&self, inputs: &[TVec<TDim>]) -> TractResult<TVec<TVec<TDim>>> {
        let k: TDim = inputs[1].iter().product();
        let mut shape = inputs[0].clone();
        match shape.len() {
            0 => bail!("the input is a scalar"),
            1 => Ok(tvec!(tvec!(1.into(), k))),
            r => {
                shape[r - 1] = k;
                Ok(tvec!(shape))
            }
        }
    }

    fn eval(&self, inputs: &[&Tensor]) -> TractResult<TVec<Tensor>> {
        let (x, idx) = (&inputs[0], &inputs[1]);
        let last = *x
            .shape()
            .last()
            .ok_or_else(|| format_err!("the input is a scalar"))?;
        let indices: Vec<usize> = idx
            .cast_to::<i64>()?
            .plain::<i64>()?
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < last)
                    .ok_or_else(|| format_err!("index {i} is out of range [0, {last})"))
            })
            .collect::<TractResult<_>>()?;
        if indices.is_empty() {
            bail!("no indices");
        }
        let mut shape = if x.rank() == 1 {
            vec![1, last]
        } else {
            x.shape().to_vec()
        };
        let r = shape.len();
        shape[r - 1] = indices.len();
        let x2 = Tensor::clone(x).into_shape(&[x.len() / last, last])?;
        let picked = x2.gather_columns(&indices)?;
        Ok(tvec!(picked.into_shape(&shape)?))
    }
}

/// Column gathering for any element type.
trait GatherColumns {
    fn gather_columns(&self, indices: &[usize]) -> TractResult<Tensor>;
}

impl GatherColumns for Tensor {
    fn gather_columns(&self, indices: &[usize]) -> TractResult<Tensor> {
        fn gather<T: Datum>(t: &Tensor, indices: &[usize]) -> TractResult<Tensor> {
            let [rows, cols] = *t.shape() else {
                bail!("expected a matrix")
            };
            let v = t.plain::<T>()?;
            let out: Vec<T> = (0..rows)
                .flat_map(|r| indices.iter().map(move |&c| v[r * cols + c].clone()))
                .collect();
            super::tensor_of(&[rows, indices.len()], out)
        }
        dispatch_datum!(gather(self.datum_type())(self, indices))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::check_operator;

    #[test]
    fn scaler_matches_onnxruntime() {
        assert!(check_operator("scaler_") >= 6);
    }

    #[test]
    fn one_hot_encoder_matches_onnxruntime() {
        assert!(check_operator("one_hot_encoder_") >= 6);
    }

    #[test]
    fn imputer_matches_onnxruntime() {
        assert!(check_operator("imputer_") >= 5);
    }

    #[test]
    fn binarizer_matches_onnxruntime() {
        assert!(check_operator("binarizer_") >= 2);
    }

    #[test]
    fn label_encoder_matches_onnxruntime() {
        assert!(check_operator("label_encoder_") >= 8);
    }

    #[test]
    fn feature_vectorizer_matches_onnxruntime() {
        assert!(check_operator("feature_vectorizer_") >= 4);
    }

    #[test]
    fn array_feature_extractor_matches_onnxruntime() {
        assert!(check_operator("array_feature_extractor_") >= 5);
    }

    #[test]
    fn tracts_normalizer_matches_onnxruntime() {
        assert!(check_operator("normalizer_") >= 3);
    }
}
