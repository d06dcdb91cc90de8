//! The lite graph: a model run without tract, node by node, when every node is an operator it
//! knows. Those are the kernels of [`crate::ml`] (the ai.onnx.ml operators, and the two
//! losses tract lacks) and the standard operators that
//! scikit-learn's and small PyTorch exports put around them: arithmetic, Pow, comparisons,
//! Max/Min/Sum, MatMul and Gemm, activations, Softmax, ArgMax, Gather, reductions, Cast and
//! reshaping.
//!
//! It exists for size: the browser build that carries it and no tract is a tenth of the full
//! one. It does no shape analysis of its own; a model's metadata comes from tract, where the
//! model is built (`wafer build --web`), and [`Graph::load`] refuses any node it does not know,
//! naming it, so a model runs here whole or not at all.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tract_data::internal::*;

use crate::ScoringError;
use crate::convert::{from_tract, to_tract};
use crate::ml::{self, Kernel, Plain};
use crate::model::{ModelMetadata, Runner};
use crate::pb::{self, NodeProto};

/// A model's nodes in order, over numbered value slots.
pub(crate) struct Graph {
    /// Slots holding initializers and constants, and their values.
    constants: Vec<(usize, Arc<Tensor>)>,
    /// The slot of each model input, in metadata order.
    inputs: Vec<usize>,
    /// The slot and name of each model output, in metadata order, with its declared type.
    outputs: Vec<(usize, String, crate::DataType)>,
    steps: Vec<Step>,
    slots: usize,
}

/// One node: its operator, the slots it reads (`None` for an omitted optional input) and the
/// slots it writes.
struct Step {
    name: String,
    op: Op,
    inputs: Vec<Option<usize>>,
    outputs: Vec<usize>,
}

/// The operators the lite graph runs.
enum Op {
    /// An ai.onnx.ml (or wafer) kernel.
    Kernel(Arc<dyn Kernel>),
    /// Identity, and a ZipMap at a model output (which serves its probabilities tensor).
    Identity,
    Cast(DatumType),
    Reshape {
        allow_zero: bool,
    },
    Flatten(i64),
    Concat(i64),
    Binary(Binary),
    Unary(Unary),
    Softmax {
        axis: i64,
        coerce_2d: bool,
    },
    ArgMax {
        axis: i64,
        keep_dims: bool,
        last: bool,
    },
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// `base ^ exponent`, the exponent of any numeric type.
    Pow,
    Compare(Compare),
    /// Max, Min or Sum of any number of inputs, broadcast.
    Variadic(Variadic),
    Gather(i64),
    Reduce {
        reducer: Reducer,
        /// The axes as an attribute (`None`: all), or from the second input.
        axes: Axes,
        keep_dims: bool,
    },
}

#[derive(Clone, Copy, Debug)]
enum Compare {
    Equal,
    Greater,
    Less,
}

#[derive(Clone, Copy, Debug)]
enum Variadic {
    Max,
    Min,
    Sum,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Reducer {
    Sum,
    Mean,
    Max,
    Min,
    LogSumExp,
}

/// Where a reduction's axes come from: an attribute (before opset 18, 13 for ReduceSum), or
/// the optional second input, all axes when it is absent unless `noop_when_empty`.
enum Axes {
    Attribute(Option<Vec<i64>>),
    Input { noop_when_empty: bool },
}

#[derive(Clone, Copy, Debug)]
enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    /// Of two inputs of a Max or Min; NaN wins, as in numpy.
    Max,
    Min,
}

#[derive(Clone, Copy, Debug)]
enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Neg,
    Abs,
    Sqrt,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("lite::Graph")
            .field("nodes", &self.steps.len())
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// Reads `onnx` into steps over the inputs and outputs `metadata` names, refusing any node
    /// whose operator (or attribute) the lite graph does not know.
    pub(crate) fn load(metadata: &ModelMetadata, onnx: &[u8]) -> Result<Graph, ScoringError> {
        let load = |e: TractError| ScoringError::Load(format!("{e:#}"));
        let model: pb::ModelProto = pb::decode("model", onnx).map_err(load)?;
        let graph = model
            .graph
            .ok_or_else(|| ScoringError::Load("the model has no graph".into()))?;
        let opset = |domain: &str| {
            model
                .opset_import
                .iter()
                .find(|o| o.domain == domain || (domain.is_empty() && o.domain == "ai.onnx"))
                .map(|o| o.version)
        };
        let context = ml::Context {
            ml_opset: opset("ai.onnx.ml").unwrap_or(1),
        };
        let onnx_opset = opset("").unwrap_or(1);

        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot = |name: &str| {
            let next = slots.len();
            *slots.entry(name.to_owned()).or_insert(next)
        };
        let inputs: Vec<usize> = metadata.inputs.iter().map(|i| slot(&i.name)).collect();
        let mut constants = Vec::new();
        for init in &graph.initializer {
            if metadata.inputs.iter().any(|i| i.name == init.name) {
                continue;
            }
            let tensor = init.to_tensor().map_err(load)?;
            constants.push((slot(&init.name), Arc::new(tensor)));
        }
        let graph_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let mut steps = Vec::with_capacity(graph.node.len());
        for node in &graph.node {
            let op = match op(&context, onnx_opset, node, &graph_outputs).map_err(load)? {
                Built::Op(op) => op,
                Built::Constant(tensor) => {
                    let [output] = node.output.as_slice() else {
                        return Err(ScoringError::Load(format!(
                            "Node {} (Constant): expected one output",
                            node.name
                        )));
                    };
                    constants.push((slot(output), Arc::new(tensor)));
                    continue;
                }
            };
            steps.push(Step {
                name: node.name.clone(),
                op,
                inputs: node
                    .input
                    .iter()
                    .map(|i| (!i.is_empty()).then(|| slot(i)))
                    .collect(),
                outputs: node.output.iter().map(|o| slot(o)).collect(),
            });
        }
        let outputs = metadata
            .outputs
            .iter()
            .map(|o| (slot(&o.name), o.name.clone(), o.datatype))
            .collect();
        Ok(Graph {
            constants,
            inputs,
            outputs,
            steps,
            slots: slots.len(),
        })
    }

    fn eval(&self, inputs: Vec<crate::Tensor>) -> TractResult<Vec<Option<Arc<Tensor>>>> {
        let mut values: Vec<Option<Arc<Tensor>>> = vec![None; self.slots];
        for (slot, tensor) in &self.constants {
            values[*slot] = Some(tensor.clone());
        }
        for (&slot, tensor) in self.inputs.iter().zip(inputs) {
            values[slot] = Some(Arc::new(to_tract(tensor)?));
        }
        for step in &self.steps {
            let args: Vec<Option<&Tensor>> =
                step.inputs
                    .iter()
                    .map(|i| match i {
                        None => Ok(None),
                        Some(slot) => values[*slot].as_deref().map(Some).ok_or_else(|| {
                            format_err!("Node {}: an input has no value", step.name)
                        }),
                    })
                    .collect::<TractResult<_>>()?;
            let results =
                run(&step.op, &args).map_err(|e| e.context(format!("Node {}", step.name)))?;
            if results.len() < step.outputs.len() {
                bail!(
                    "Node {}: {} outputs computed, {} declared",
                    step.name,
                    results.len(),
                    step.outputs.len()
                );
            }
            for (&slot, tensor) in step.outputs.iter().zip(results) {
                values[slot] = Some(Arc::new(tensor));
            }
        }
        Ok(values)
    }
}

impl Runner for Graph {
    fn run(&self, inputs: Vec<crate::Tensor>) -> Result<Vec<crate::Tensor>, ScoringError> {
        let values = self
            .eval(inputs)
            .map_err(|e| ScoringError::Run(format!("{e:#}")))?;
        self.outputs
            .iter()
            .map(|(slot, name, datatype)| {
                let tensor = values[*slot].as_deref().ok_or_else(|| {
                    ScoringError::Run(format!("output \"{name}\": no node computes it"))
                })?;
                let out = from_tract(name, tensor)?;
                if out.datatype() != *datatype {
                    return Err(ScoringError::Run(format!(
                        "output \"{name}\": computed as {}, the model declares {datatype}",
                        out.datatype()
                    )));
                }
                Ok(out)
            })
            .collect()
    }
}

/// What a node becomes.
enum Built {
    Op(Op),
    /// A `Constant` node's value.
    Constant(Tensor),
}

fn op(context: &ml::Context, opset: i64, node: &NodeProto, outputs: &[&str]) -> TractResult<Built> {
    let int = |name: &str, default: i64| -> TractResult<i64> {
        Ok(node.get_attr_opt::<i64>(name)?.unwrap_or(default))
    };
    let float = |name: &str, default: f32| -> TractResult<f32> {
        Ok(node.get_attr_opt::<f32>(name)?.unwrap_or(default))
    };
    if node.domain == "ai.onnx.ml" || ml::builder(&node.op_type).is_some() {
        let Some(builder) = ml::builder(&node.op_type) else {
            if node.op_type == "ZipMap" {
                return zip_map(node, outputs);
            }
            return node.bail("not an operator the lite build knows");
        };
        return Ok(Built::Op(Op::Kernel(builder(context, node)?)));
    }
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        return node.bail(&format!(
            "domain {} is not one the lite build knows",
            node.domain
        ));
    }
    let op = match node.op_type.as_str() {
        "Identity" => Op::Identity,
        "Constant" => return constant(node).map(Built::Constant),
        "Cast" => Op::Cast(datum_type(node, int("to", 0)?)?),
        "Reshape" => Op::Reshape {
            allow_zero: int("allowzero", 0)? != 0,
        },
        "Flatten" => Op::Flatten(int("axis", 1)?),
        "Concat" => Op::Concat(
            node.get_attr_opt::<i64>("axis")?
                .map_or_else(|| node.bail_attr("axis", "missing"), Ok)?,
        ),
        "Add" => Op::Binary(Binary::Add),
        "Sub" => Op::Binary(Binary::Sub),
        "Mul" => Op::Binary(Binary::Mul),
        "Div" => Op::Binary(Binary::Div),
        "Relu" => Op::Unary(Unary::Relu),
        "Sigmoid" => Op::Unary(Unary::Sigmoid),
        "Tanh" => Op::Unary(Unary::Tanh),
        "Exp" => Op::Unary(Unary::Exp),
        "Log" => Op::Unary(Unary::Log),
        "Neg" => Op::Unary(Unary::Neg),
        "Abs" => Op::Unary(Unary::Abs),
        "Sqrt" => Op::Unary(Unary::Sqrt),
        "Softmax" => Op::Softmax {
            axis: int("axis", if opset < 13 { 1 } else { -1 })?,
            coerce_2d: opset < 13,
        },
        "ArgMax" => Op::ArgMax {
            axis: int("axis", 0)?,
            keep_dims: int("keepdims", 1)? != 0,
            last: int("select_last_index", 0)? != 0,
        },
        "MatMul" => Op::MatMul,
        "Gemm" => Op::Gemm {
            alpha: float("alpha", 1.0)?,
            beta: float("beta", 1.0)?,
            trans_a: int("transA", 0)? != 0,
            trans_b: int("transB", 0)? != 0,
        },
        "Pow" => Op::Pow,
        "Equal" => Op::Compare(Compare::Equal),
        "Greater" => Op::Compare(Compare::Greater),
        "Less" => Op::Compare(Compare::Less),
        "Max" => Op::Variadic(Variadic::Max),
        "Min" => Op::Variadic(Variadic::Min),
        "Sum" => Op::Variadic(Variadic::Sum),
        "Gather" => Op::Gather(int("axis", 0)?),
        reduce @ ("ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceLogSumExp") => {
            let (reducer, axes_input_from) = match reduce {
                "ReduceSum" => (Reducer::Sum, 13),
                "ReduceMean" => (Reducer::Mean, 18),
                "ReduceMax" => (Reducer::Max, 18),
                "ReduceMin" => (Reducer::Min, 18),
                _ => (Reducer::LogSumExp, 18),
            };
            Op::Reduce {
                reducer,
                axes: if opset >= axes_input_from {
                    Axes::Input {
                        noop_when_empty: int("noop_with_empty_axes", 0)? != 0,
                    }
                } else {
                    Axes::Attribute(node.get_attr_opt_vec::<i64>("axes")?)
                },
                keep_dims: int("keepdims", 1)? != 0,
            }
        }
        _ => return node.bail("not an operator the lite build knows"),
    };
    Ok(Built::Op(op))
}

/// A ZipMap is taken only at a model output, where it serves the probabilities tensor it wraps
/// (its class labels are in the metadata), as the tract engine does.
fn zip_map(node: &NodeProto, outputs: &[&str]) -> TractResult<Built> {
    match node.output.as_slice() {
        [output] if outputs.contains(&output.as_str()) => Ok(Built::Op(Op::Identity)),
        _ => node.bail(
            "ZipMap is supported only at a model output (its probabilities are served as a \
             tensor); export with zipmap=False",
        ),
    }
}

fn constant(node: &NodeProto) -> TractResult<Tensor> {
    if let Some(t) = node.get_attr_tensor("value")? {
        return Ok(t);
    }
    if let Some(v) = node.get_attr_opt::<f32>("value_float")? {
        return Ok(tensor0(v));
    }
    if let Some(v) = node.get_attr_opt::<i64>("value_int")? {
        return Ok(tensor0(v));
    }
    if let Some(v) = node.get_attr_opt_vec::<f32>("value_floats")? {
        return Ok(tensor1(&v));
    }
    if let Some(v) = node.get_attr_opt_vec::<i64>("value_ints")? {
        return Ok(tensor1(&v));
    }
    node.bail("a Constant the lite build reads has value, value_float(s) or value_int(s)")
}

/// ONNX's element type code as tract's.
fn datum_type(node: &NodeProto, code: i64) -> TractResult<DatumType> {
    Ok(match code {
        1 => DatumType::F32,
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        6 => DatumType::I32,
        7 => DatumType::I64,
        8 => DatumType::String,
        9 => DatumType::Bool,
        11 => DatumType::F64,
        12 => DatumType::U32,
        13 => DatumType::U64,
        _ => return node.bail_attr("to", &format!("element type {code} is not supported")),
    })
}

/// The input at `ix`, which must be given.
fn arg<'a>(args: &[Option<&'a Tensor>], ix: usize) -> TractResult<&'a Tensor> {
    args.get(ix)
        .copied()
        .flatten()
        .ok_or_else(|| format_err!("input {ix} is missing"))
}

/// An axis, negative from the end, within `rank`.
fn axis(axis: i64, rank: usize) -> TractResult<usize> {
    let r = i64::try_from(rank)?;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&a) {
        bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(usize::try_from(a)?)
}

fn run(op: &Op, args: &[Option<&Tensor>]) -> TractResult<TVec<Tensor>> {
    let one = |t: Tensor| Ok(tvec![t]);
    match op {
        Op::Kernel(kernel) => run_kernel(kernel.as_ref(), args),
        Op::Identity => one(arg(args, 0)?.clone()),
        Op::Cast(dt) => one(arg(args, 0)?.cast_to_dt(*dt)?.into_owned()),
        Op::Reshape { allow_zero } => one(reshape(arg(args, 0)?, arg(args, 1)?, *allow_zero)?),
        Op::Flatten(a) => {
            let x = arg(args, 0)?;
            let rank = x.rank();
            let a = if *a == i64::try_from(rank)? {
                rank
            } else {
                axis(*a, rank)?
            };
            let rows: usize = x.shape()[..a].iter().product();
            let columns: usize = x.shape()[a..].iter().product();
            one(x.clone().into_shape(&[rows, columns])?)
        }
        Op::Concat(a) => {
            let inputs: Vec<&Tensor> = args.iter().flatten().copied().collect();
            let first = inputs.first().ok_or_else(|| format_err!("no inputs"))?;
            let a = axis(*a, first.rank())?;
            if inputs.iter().any(|t| t.datum_type() != first.datum_type()) {
                bail!("inputs of different element types");
            }
            one(Tensor::stack_tensors(a, &inputs)?)
        }
        Op::Binary(b) => one(binary(*b, arg(args, 0)?, arg(args, 1)?)?),
        Op::Unary(u) => one(unary(*u, arg(args, 0)?)?),
        Op::Softmax { axis: a, coerce_2d } => one(softmax(arg(args, 0)?, *a, *coerce_2d)?),
        Op::ArgMax {
            axis: a,
            keep_dims,
            last,
        } => one(argmax(arg(args, 0)?, *a, *keep_dims, *last)?),
        Op::MatMul => one(matmul(arg(args, 0)?, arg(args, 1)?)?),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => one(gemm(
            arg(args, 0)?,
            arg(args, 1)?,
            args.get(2).copied().flatten(),
            *alpha,
            *beta,
            *trans_a,
            *trans_b,
        )?),
        Op::Pow => one(pow(arg(args, 0)?, arg(args, 1)?)?),
        Op::Compare(c) => one(compare(*c, arg(args, 0)?, arg(args, 1)?)?),
        Op::Variadic(v) => {
            let mut inputs = args.iter().flatten().copied();
            let first = inputs.next().ok_or_else(|| format_err!("no inputs"))?;
            let mut acc = first.clone();
            let op = match v {
                Variadic::Max => Binary::Max,
                Variadic::Min => Binary::Min,
                Variadic::Sum => Binary::Add,
            };
            for x in inputs {
                acc = binary(op, &acc, x)?;
            }
            one(acc)
        }
        Op::Gather(a) => one(gather(arg(args, 0)?, arg(args, 1)?, *a)?),
        Op::Reduce {
            reducer,
            axes,
            keep_dims,
        } => {
            let x = arg(args, 0)?;
            let axes: Option<Vec<i64>> = match axes {
                Axes::Attribute(axes) => axes.clone(),
                Axes::Input { noop_when_empty } => match args.get(1).copied().flatten() {
                    Some(t) if t.len() > 0 => Some(t.cast_to::<i64>()?.plain::<i64>()?.to_vec()),
                    _ if *noop_when_empty => return one(x.clone()),
                    _ => None,
                },
            };
            one(reduce(*reducer, x, axes.as_deref(), *keep_dims)?)
        }
    }
}

/// Runs a kernel with the checks tract's analysis makes at load: its input types, and the
/// output types and shapes it announces for them, which its outputs must have.
fn run_kernel(kernel: &dyn Kernel, args: &[Option<&Tensor>]) -> TractResult<TVec<Tensor>> {
    let inputs: TVec<&Tensor> = args.iter().flatten().copied().collect();
    let types: TVec<DatumType> = inputs.iter().map(|t| t.datum_type()).collect();
    let shapes: TVec<TVec<TDim>> = inputs
        .iter()
        .map(|t| t.shape().iter().map(|&d| d.to_dim()).collect())
        .collect();
    let announced = kernel
        .output_types(&types)?
        .into_iter()
        .zip(kernel.output_shapes(&shapes)?);
    let outputs = kernel.eval(&inputs)?;
    if outputs.len() != kernel.outputs() {
        bail!(
            "{}: {} outputs, {} announced",
            kernel.name(),
            outputs.len(),
            kernel.outputs()
        );
    }
    for (output, (dt, shape)) in outputs.iter().zip(announced) {
        let same_shape = output.rank() == shape.len()
            && output
                .shape()
                .iter()
                .zip(&shape)
                .all(|(&d, s)| s.to_usize().is_ok_and(|s| s == d));
        if output.datum_type() != dt || !same_shape {
            bail!(
                "{}: an output of {:?} {:?}, announced {dt:?} {shape:?}",
                kernel.name(),
                output.datum_type(),
                output.shape()
            );
        }
    }
    Ok(outputs)
}

/// `base ^ exponent`, in the base's type (the exponent may be of any numeric type).
fn pow(base: &Tensor, exponent: &Tensor) -> TractResult<Tensor> {
    let exponent = exponent.cast_to_dt(base.datum_type())?;
    let shape = broadcast(base.shape(), exponent.shape())?;
    let (b, e) = (at_shape(base, &shape)?, at_shape(&exponent, &shape)?);
    macro_rules! go {
        ($t:ty) => {{
            let out: Vec<$t> = b
                .plain::<$t>()?
                .iter()
                .zip(e.plain::<$t>()?)
                .map(|(&b, &e)| b.powf(e))
                .collect();
            Tensor::from_shape(&shape, &out)
        }};
    }
    match base.datum_type() {
        DatumType::F32 => go!(f32),
        DatumType::F64 => go!(f64),
        dt => bail!("Pow of {dt:?}"),
    }
}

fn compare(op: Compare, a: &Tensor, b: &Tensor) -> TractResult<Tensor> {
    if a.datum_type() != b.datum_type() {
        bail!("{op:?} of {:?} and {:?}", a.datum_type(), b.datum_type());
    }
    let shape = broadcast(a.shape(), b.shape())?;
    let (a, b) = (at_shape(a, &shape)?, at_shape(b, &shape)?);
    fn go<T: Datum + PartialOrd>(
        op: Compare,
        shape: &[usize],
        a: &Tensor,
        b: &Tensor,
    ) -> TractResult<Tensor> {
        let out: Vec<bool> = a
            .plain::<T>()?
            .iter()
            .zip(b.plain::<T>()?)
            .map(|(x, y)| match op {
                Compare::Equal => x == y,
                Compare::Greater => x > y,
                Compare::Less => x < y,
            })
            .collect();
        Tensor::from_shape(shape, &out)
    }
    match (a.datum_type(), op) {
        (DatumType::F32, _) => go::<f32>(op, &shape, &a, &b),
        (DatumType::F64, _) => go::<f64>(op, &shape, &a, &b),
        (DatumType::I64, _) => go::<i64>(op, &shape, &a, &b),
        (DatumType::I32, _) => go::<i32>(op, &shape, &a, &b),
        (DatumType::Bool, Compare::Equal) => go::<bool>(op, &shape, &a, &b),
        (DatumType::String, Compare::Equal) => go::<String>(op, &shape, &a, &b),
        (dt, op) => bail!("{op:?} of {dt:?}"),
    }
}

/// Gather: the slices of `data` along `axis` at `indices` (negative from the end).
fn gather(data: &Tensor, indices: &Tensor, a: i64) -> TractResult<Tensor> {
    let a = axis(a, data.rank())?;
    let (outer, len, inner) = lanes(data.shape(), a);
    let indices_i64 = indices.cast_to::<i64>()?;
    let picks = indices_i64
        .plain::<i64>()?
        .iter()
        .map(|&i| {
            let at = if i < 0 { i + i64::try_from(len)? } else { i };
            usize::try_from(at)
                .ok()
                .filter(|&at| at < len)
                .ok_or_else(|| format_err!("index {i} is out of range for an axis of {len}"))
        })
        .collect::<TractResult<Vec<usize>>>()?;
    let mut shape = data.shape()[..a].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&data.shape()[a + 1..]);
    fn go<T: Datum + Clone>(
        data: &Tensor,
        picks: &[usize],
        (outer, len, inner): (usize, usize, usize),
        shape: &[usize],
    ) -> TractResult<Tensor> {
        let v = data.plain::<T>()?;
        let mut out = Vec::with_capacity(outer * picks.len() * inner);
        for o in 0..outer {
            for &p in picks {
                let start = (o * len + p) * inner;
                out.extend_from_slice(&v[start..start + inner]);
            }
        }
        crate::ml::tensor_of(shape, out)
    }
    let dims = (outer, len, inner);
    match data.datum_type() {
        DatumType::F32 => go::<f32>(data, &picks, dims, &shape),
        DatumType::F64 => go::<f64>(data, &picks, dims, &shape),
        DatumType::I64 => go::<i64>(data, &picks, dims, &shape),
        DatumType::I32 => go::<i32>(data, &picks, dims, &shape),
        DatumType::Bool => go::<bool>(data, &picks, dims, &shape),
        DatumType::String => go::<String>(data, &picks, dims, &shape),
        dt => bail!("Gather of {dt:?}"),
    }
}

/// A reduction over `axes` (all when `None`), each output folded over its inputs in order;
/// LogSumExp the stable way onnxruntime computes it, `log(Σ exp(x - m)) + m`.
fn reduce(
    reducer: Reducer,
    x: &Tensor,
    axes: Option<&[i64]>,
    keep_dims: bool,
) -> TractResult<Tensor> {
    let rank = x.rank();
    let reduced: Vec<bool> = match axes {
        None => vec![true; rank],
        Some(axes) => {
            let mut r = vec![false; rank];
            for &a in axes {
                r[axis(a, rank)?] = true;
            }
            r
        }
    };
    let out_full: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect();
    let count: usize = x
        .shape()
        .iter()
        .zip(&reduced)
        .filter(|(_, r)| **r)
        .map(|(d, _)| d)
        .product();
    if count == 0
        && matches!(
            reducer,
            Reducer::Max | Reducer::Min | Reducer::LogSumExp | Reducer::Mean
        )
    {
        bail!("{reducer:?} over an empty axis");
    }
    // Each input element's output position, in row-major order.
    let size: usize = out_full.iter().product();
    let mut target = Vec::with_capacity(x.len());
    let mut index = vec![0usize; rank];
    for _ in 0..x.len() {
        let mut at = 0;
        for d in 0..rank {
            at = at * out_full[d] + if reduced[d] { 0 } else { index[d] };
        }
        target.push(at);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < x.shape()[d] {
                break;
            }
            index[d] = 0;
        }
    }
    macro_rules! float {
        ($t:ty) => {{
            let v = x.plain::<$t>()?;
            let fold = |init: $t, f: &dyn Fn($t, $t) -> $t| {
                let mut acc = vec![init; size];
                for (&x, &t) in v.iter().zip(&target) {
                    acc[t] = f(acc[t], x);
                }
                acc
            };
            let out: Vec<$t> = match reducer {
                Reducer::Sum => fold(0.0, &|a, x| a + x),
                Reducer::Mean => {
                    let n = count as $t;
                    fold(0.0, &|a, x| a + x)
                        .into_iter()
                        .map(|s| s / n)
                        .collect()
                }
                Reducer::Max => fold(<$t>::NEG_INFINITY, &|a, x| {
                    if x > a || x.is_nan() { x } else { a }
                }),
                Reducer::Min => fold(<$t>::INFINITY, &|a, x| {
                    if x < a || x.is_nan() { x } else { a }
                }),
                Reducer::LogSumExp => {
                    // The maximum clamped to the finite range, as the tract engine's: an
                    // all -inf (or +inf) slice gives -inf (+inf), not inf - inf.
                    let max: Vec<$t> = fold(<$t>::NEG_INFINITY, &|a, x| if x > a { x } else { a })
                        .into_iter()
                        .map(|m| m.clamp(<$t>::MIN, <$t>::MAX))
                        .collect();
                    let mut sum = vec![0.0 as $t; size];
                    for (&x, &t) in v.iter().zip(&target) {
                        sum[t] += (x - max[t]).exp();
                    }
                    sum.iter().zip(&max).map(|(s, m)| s.ln() + m).collect()
                }
            };
            out
        }};
    }
    let mut shape = out_full.clone();
    if !keep_dims {
        shape = x
            .shape()
            .iter()
            .zip(&reduced)
            .filter(|(_, r)| !**r)
            .map(|(&d, _)| d)
            .collect();
    }
    match x.datum_type() {
        DatumType::F32 => Tensor::from_shape(&shape, &float!(f32)),
        DatumType::F64 => Tensor::from_shape(&shape, &float!(f64)),
        dt => bail!("{reducer:?} of {dt:?}"),
    }
}

fn reshape(x: &Tensor, shape: &Tensor, allow_zero: bool) -> TractResult<Tensor> {
    let wanted = shape.cast_to::<i64>()?;
    let wanted = wanted.plain::<i64>()?;
    let mut dims = Vec::with_capacity(wanted.len());
    let mut infer = None;
    for (i, &d) in wanted.iter().enumerate() {
        dims.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *x
                .shape()
                .get(i)
                .ok_or_else(|| format_err!("shape {wanted:?}: no dimension {i} to copy"))?,
            d => usize::try_from(d).map_err(|_| format_err!("shape {wanted:?}: dimension {d}"))?,
        });
    }
    if let Some(i) = infer {
        let known: usize = dims.iter().product();
        if known == 0 || !x.len().is_multiple_of(known) {
            bail!("cannot reshape {:?} to {wanted:?}", x.shape());
        }
        dims[i] = x.len() / known;
    }
    if dims.iter().product::<usize>() != x.len() {
        bail!("cannot reshape {:?} to {wanted:?}", x.shape());
    }
    x.clone().into_shape(&dims)
}

/// The shape two shapes broadcast to, numpy's way.
fn broadcast(a: &[usize], b: &[usize]) -> TractResult<Vec<usize>> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = if i + a.len() >= rank {
                a[i + a.len() - rank]
            } else {
                1
            };
            let db = if i + b.len() >= rank {
                b[i + b.len() - rank]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Ok(x),
                (1, y) => Ok(y),
                (x, 1) => Ok(x),
                _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
            }
        })
        .collect()
}

/// `t` at `shape` (which it broadcasts to), borrowed when it already has it.
fn at_shape<'a>(t: &'a Tensor, shape: &[usize]) -> TractResult<std::borrow::Cow<'a, Tensor>> {
    if t.shape() == shape {
        Ok(std::borrow::Cow::Borrowed(t))
    } else {
        let mut t = t.clone();
        t.broadcast_to_rank(shape.len())?;
        Ok(std::borrow::Cow::Owned(t.broadcast_to_shape(shape)?))
    }
}

/// The element types arithmetic runs on.
trait Number: Datum + Copy {
    fn binary(op: Binary, a: Self, b: Self) -> TractResult<Self>;
}

macro_rules! float_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn binary(op: Binary, a: $t, b: $t) -> TractResult<$t> {
                Ok(match op {
                    Binary::Add => a + b,
                    Binary::Sub => a - b,
                    Binary::Mul => a * b,
                    Binary::Div => a / b,
                    Binary::Max | Binary::Min if a.is_nan() => a,
                    Binary::Max | Binary::Min if b.is_nan() => b,
                    Binary::Max => a.max(b),
                    Binary::Min => a.min(b),
                })
            }
        }
    )*};
}

macro_rules! int_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn binary(op: Binary, a: $t, b: $t) -> TractResult<$t> {
                Ok(match op {
                    Binary::Add => a.wrapping_add(b),
                    Binary::Sub => a.wrapping_sub(b),
                    Binary::Mul => a.wrapping_mul(b),
                    Binary::Div => a.checked_div(b).ok_or_else(|| format_err!("integer division by zero"))?,
                    Binary::Max => a.max(b),
                    Binary::Min => a.min(b),
                })
            }
        }
    )*};
}

float_number!(f32, f64);
int_number!(i32, i64);

fn binary(op: Binary, a: &Tensor, b: &Tensor) -> TractResult<Tensor> {
    if a.datum_type() != b.datum_type() {
        bail!("{op:?} of {:?} and {:?}", a.datum_type(), b.datum_type());
    }
    let shape = broadcast(a.shape(), b.shape())?;
    let (a, b) = (at_shape(a, &shape)?, at_shape(b, &shape)?);
    fn zip<T: Number>(op: Binary, shape: &[usize], a: &Tensor, b: &Tensor) -> TractResult<Tensor> {
        let out = a
            .plain::<T>()?
            .iter()
            .zip(b.plain::<T>()?)
            .map(|(&x, &y)| T::binary(op, x, y))
            .collect::<TractResult<Vec<T>>>()?;
        Tensor::from_shape(shape, &out)
    }
    match a.datum_type() {
        DatumType::F32 => zip::<f32>(op, &shape, &a, &b),
        DatumType::F64 => zip::<f64>(op, &shape, &a, &b),
        DatumType::I64 => zip::<i64>(op, &shape, &a, &b),
        DatumType::I32 => zip::<i32>(op, &shape, &a, &b),
        dt => bail!("{op:?} of {dt:?}"),
    }
}

fn unary(op: Unary, x: &Tensor) -> TractResult<Tensor> {
    macro_rules! map {
        ($t:ty, $f:expr) => {{
            let f: fn($t) -> $t = $f;
            let out: Vec<$t> = x.plain::<$t>()?.iter().map(|&v| f(v)).collect();
            Tensor::from_shape(x.shape(), &out)
        }};
    }
    macro_rules! float {
        ($t:ty) => {
            match op {
                Unary::Relu => map!($t, |v| if v < 0.0 { 0.0 } else { v }),
                Unary::Sigmoid => map!($t, |v| 1.0 / (1.0 + (-v).exp())),
                Unary::Tanh => map!($t, <$t>::tanh),
                Unary::Exp => map!($t, <$t>::exp),
                Unary::Log => map!($t, <$t>::ln),
                Unary::Neg => map!($t, |v| -v),
                Unary::Abs => map!($t, <$t>::abs),
                Unary::Sqrt => map!($t, <$t>::sqrt),
            }
        };
    }
    match (x.datum_type(), op) {
        (DatumType::F32, _) => float!(f32),
        (DatumType::F64, _) => float!(f64),
        (DatumType::I64, Unary::Relu) => map!(i64, |v| v.max(0)),
        (DatumType::I64, Unary::Neg) => map!(i64, i64::wrapping_neg),
        (DatumType::I64, Unary::Abs) => map!(i64, i64::wrapping_abs),
        (dt, op) => bail!("{op:?} of {dt:?}"),
    }
}

/// Rows of `len` elements, `stride` apart, `count` of them per outer block: the lanes along one
/// axis of a row-major shape, as (outer, axis length, inner).
fn lanes(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

fn softmax(x: &Tensor, a: i64, coerce_2d: bool) -> TractResult<Tensor> {
    let a = axis(a, x.rank())?;
    // Before opset 13, the input is seen as 2-D [outer, rest] at `axis`.
    let (outer, len, inner) = if coerce_2d {
        (
            x.shape()[..a].iter().product(),
            x.shape()[a..].iter().product(),
            1,
        )
    } else {
        lanes(x.shape(), a)
    };
    macro_rules! soft {
        ($t:ty) => {{
            let mut y: Vec<$t> = x.plain::<$t>()?.to_vec();
            for o in 0..outer {
                for i in 0..inner {
                    let at = |k: usize| o * len * inner + k * inner + i;
                    let max = (0..len)
                        .map(|k| y[at(k)])
                        .fold(<$t>::NEG_INFINITY, <$t>::max);
                    let mut sum = 0.0;
                    for k in 0..len {
                        let e = (y[at(k)] - max).exp();
                        y[at(k)] = e;
                        sum += e;
                    }
                    for k in 0..len {
                        y[at(k)] /= sum;
                    }
                }
            }
            Tensor::from_shape(x.shape(), &y)
        }};
    }
    match x.datum_type() {
        DatumType::F32 => soft!(f32),
        DatumType::F64 => soft!(f64),
        dt => bail!("Softmax of {dt:?}"),
    }
}

fn argmax(x: &Tensor, a: i64, keep_dims: bool, last: bool) -> TractResult<Tensor> {
    let a = axis(a, x.rank())?;
    let (outer, len, inner) = lanes(x.shape(), a);
    if len == 0 {
        bail!("ArgMax over an empty axis");
    }
    fn pick<T: Datum + Copy + PartialOrd>(
        v: &[T],
        (outer, len, inner): (usize, usize, usize),
        last: bool,
    ) -> Vec<i64> {
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| v[o * len * inner + k * inner + i];
                let mut best = 0;
                for k in 1..len {
                    let better = if last {
                        at(k) >= at(best)
                    } else {
                        at(k) > at(best)
                    };
                    if better {
                        best = k;
                    }
                }
                out.push(i64::try_from(best).unwrap_or(i64::MAX));
            }
        }
        out
    }
    let dims = (outer, len, inner);
    let out = match x.datum_type() {
        DatumType::F32 => pick(x.plain::<f32>()?, dims, last),
        DatumType::F64 => pick(x.plain::<f64>()?, dims, last),
        DatumType::I64 => pick(x.plain::<i64>()?, dims, last),
        DatumType::I32 => pick(x.plain::<i32>()?, dims, last),
        dt => bail!("ArgMax of {dt:?}"),
    };
    let mut shape = x.shape().to_vec();
    if keep_dims {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    Tensor::from_shape(&shape, &out)
}

/// Floats that MatMul and Gemm multiply.
trait Float:
    Datum + Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    fn from_f32(v: f32) -> Self;
}

impl Float for f32 {
    fn from_f32(v: f32) -> f32 {
        v
    }
}

impl Float for f64 {
    fn from_f32(v: f32) -> f64 {
        f64::from(v)
    }
}

/// `out[m×n] = a[m×k] · b[k×n]`, with `a` and `b` read through their strides (so transposes
/// cost nothing).
fn multiply<T: Float>(
    a: &[T],
    (a_row, a_col): (usize, usize),
    b: &[T],
    (b_row, b_col): (usize, usize),
    (m, k, n): (usize, usize, usize),
    out: &mut [T],
) {
    if b_col == 1 {
        // `b` row-major: a row of `out` gathers rows of `b`, each element still summed over
        // `p` in order, with the inner loop contiguous (and vectorized).
        for i in 0..m {
            let row = &mut out[i * n..(i + 1) * n];
            row.fill(T::default());
            for p in 0..k {
                let x = a[i * a_row + p * a_col];
                let b_row = &b[p * b_row..p * b_row + n];
                for (o, &y) in row.iter_mut().zip(b_row) {
                    *o = *o + x * y;
                }
            }
        }
        return;
    }
    for i in 0..m {
        for j in 0..n {
            let mut sum = T::default();
            for p in 0..k {
                sum = sum + a[i * a_row + p * a_col] * b[p * b_row + j * b_col];
            }
            out[i * n + j] = sum;
        }
    }
}

/// numpy's `matmul`: the last two axes multiply, the others broadcast; a vector is a matrix
/// of one row (on the left) or one column (on the right).
fn matmul(a: &Tensor, b: &Tensor) -> TractResult<Tensor> {
    if a.datum_type() != b.datum_type() || a.rank() == 0 || b.rank() == 0 {
        bail!(
            "MatMul of {:?} {:?} and {:?} {:?}",
            a.datum_type(),
            a.shape(),
            b.datum_type(),
            b.shape()
        );
    }
    let mut a_shape = a.shape().to_vec();
    let mut b_shape = b.shape().to_vec();
    let a_vector = a_shape.len() == 1;
    let b_vector = b_shape.len() == 1;
    if a_vector {
        a_shape.insert(0, 1);
    }
    if b_vector {
        b_shape.push(1);
    }
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (k2, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != k2 {
        bail!("MatMul of {:?} and {:?}", a.shape(), b.shape());
    }
    let batch = broadcast(&a_shape[..a_shape.len() - 2], &b_shape[..b_shape.len() - 2])?;
    let with = |mut s: Vec<usize>, last: [usize; 2]| {
        s.extend(last);
        s
    };
    let a = at_shape(
        &a.clone().into_shape(&a_shape)?,
        &with(batch.clone(), [m, k]),
    )?
    .into_owned();
    let b = at_shape(
        &b.clone().into_shape(&b_shape)?,
        &with(batch.clone(), [k, n]),
    )?
    .into_owned();
    let count: usize = batch.iter().product();
    fn go<T: Float>(
        a: &Tensor,
        b: &Tensor,
        count: usize,
        (m, k, n): (usize, usize, usize),
    ) -> TractResult<Vec<T>> {
        let (a, b) = (a.plain::<T>()?, b.plain::<T>()?);
        let mut out = vec![T::default(); count * m * n];
        for c in 0..count {
            multiply(
                &a[c * m * k..],
                (k, 1),
                &b[c * k * n..],
                (n, 1),
                (m, k, n),
                &mut out[c * m * n..(c + 1) * m * n],
            );
        }
        Ok(out)
    }
    let mut shape = batch;
    if !a_vector {
        shape.push(m);
    }
    if !b_vector {
        shape.push(n);
    }
    match a.datum_type() {
        DatumType::F32 => Tensor::from_shape(&shape, &go::<f32>(&a, &b, count, (m, k, n))?),
        DatumType::F64 => Tensor::from_shape(&shape, &go::<f64>(&a, &b, count, (m, k, n))?),
        dt => bail!("MatMul of {dt:?}"),
    }
}

/// `alpha · A' · B' + beta · C`, with `C` broadcast to `[M, N]`.
fn gemm(
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
) -> TractResult<Tensor> {
    let ([ar, ac], [br, bc]) = (two_d(a)?, two_d(b)?);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != k2 || a.datum_type() != b.datum_type() {
        bail!("Gemm of {:?} and {:?}", a.shape(), b.shape());
    }
    fn go<T: Float>(
        a: &Tensor,
        b: &Tensor,
        c: Option<&Tensor>,
        (alpha, beta): (f32, f32),
        (trans_a, trans_b): (bool, bool),
        (m, k, n): (usize, usize, usize),
    ) -> TractResult<Tensor> {
        let mut out = vec![T::default(); m * n];
        let a_strides = if trans_a { (1, m) } else { (k, 1) };
        let b_strides = if trans_b { (1, k) } else { (n, 1) };
        multiply(
            a.plain::<T>()?,
            a_strides,
            b.plain::<T>()?,
            b_strides,
            (m, k, n),
            &mut out,
        );
        let alpha = T::from_f32(alpha);
        for v in &mut out {
            *v = alpha * *v;
        }
        if let Some(c) = c {
            let c = at_shape(c, &[m, n])?;
            let beta = T::from_f32(beta);
            for (v, &c) in out.iter_mut().zip(c.plain::<T>()?) {
                *v = *v + beta * c;
            }
        }
        Tensor::from_shape(&[m, n], &out)
    }
    let args = ((alpha, beta), (trans_a, trans_b), (m, k, n));
    match a.datum_type() {
        DatumType::F32 => go::<f32>(a, b, c, args.0, args.1, args.2),
        DatumType::F64 => go::<f64>(a, b, c, args.0, args.1, args.2),
        dt => bail!("Gemm of {dt:?}"),
    }
}

fn two_d(t: &Tensor) -> TractResult<[usize; 2]> {
    match *t.shape() {
        [r, c] => Ok([r, c]),
        ref s => bail!("Gemm takes matrices, got shape {s:?}"),
    }
}

/// How far the lite graph's floats may be from tract's on the probe (summation orders differ;
/// a wrong operator is far further off).
#[cfg(feature = "tract")]
const PROBE_TOLERANCE: f64 = 1e-4;

#[cfg(feature = "tract")]
impl crate::Model {
    /// The lite graph of this tract-loaded model, checked: it must read every node, and give
    /// tract's outputs on a probe input (two rows of varied numbers, where the batch is free),
    /// so that a model whose element types or attributes it handles differently runs on tract.
    pub fn to_lite(&self, onnx: &[u8]) -> Result<crate::Model, ScoringError> {
        let lite = crate::Model::lite(self.metadata().clone(), onnx)?;
        let probe = self
            .metadata()
            .inputs
            .iter()
            .map(probe)
            .collect::<Result<Vec<_>, _>>()?;
        let refused = |why: String| ScoringError::Load(format!("the lite graph's probe: {why}"));
        let want = self
            .predict(probe.clone(), &[])
            .map_err(|e| refused(format!("tract: {e}")))?;
        let got = lite
            .predict(probe, &[])
            .map_err(|e| refused(e.to_string()))?;
        for (g, w) in got.iter().zip(&want) {
            if g.datatype() != w.datatype() || g.shape() != w.shape() {
                return Err(refused(format!(
                    "output \"{}\" is {} {:?}, tract's {} {:?}",
                    g.name(),
                    g.datatype(),
                    g.shape(),
                    w.datatype(),
                    w.shape()
                )));
            }
            if !same_values(g.data(), w.data()) {
                return Err(refused(format!(
                    "output \"{}\" differs from tract's",
                    g.name()
                )));
            }
        }
        Ok(lite)
    }
}

/// A probe tensor for an input: two rows where the batch is free, varied values of its type.
#[cfg(feature = "tract")]
fn probe(info: &crate::TensorInfo) -> Result<crate::Tensor, ScoringError> {
    use crate::TensorData as D;
    use crate::model::Dim;
    let shape: Vec<usize> = info
        .shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => *n,
            Dim::Dynamic(_) => 2,
        })
        .collect();
    let len: usize = shape.iter().product();
    // Mixed signs and magnitudes, the same every time.
    let float =
        |i: usize| f64::from(u32::try_from((i * 7919 + 13) % 1000).unwrap_or(0)) / 97.0 - 4.0;
    let int = |i: usize| i64::try_from(i % 3).unwrap_or(0);
    #[expect(clippy::cast_possible_truncation, reason = "probe values are small")]
    let data = match info.datatype {
        crate::DataType::F32 => D::F32((0..len).map(|i| float(i) as f32).collect()),
        crate::DataType::F64 => D::F64((0..len).map(float).collect()),
        crate::DataType::I64 => D::I64((0..len).map(int).collect()),
        crate::DataType::I32 => D::I32((0..len).map(|i| int(i) as i32).collect()),
        crate::DataType::Bool => D::Bool((0..len).map(|i| i % 2 == 0).collect()),
        crate::DataType::String => D::String((0..len).map(|i| format!("{}", i % 3)).collect()),
        other => {
            return Err(ScoringError::Load(format!(
                "the lite graph's probe: no probe for input \"{}\" of {other}",
                info.name
            )));
        }
    };
    crate::Tensor::new(&info.name, shape, data)
}

/// Whether two outputs hold the same values: equal, or floats within [`PROBE_TOLERANCE`].
#[cfg(feature = "tract")]
fn same_values(a: &crate::TensorData, b: &crate::TensorData) -> bool {
    use crate::TensorData as D;
    let close = |x: f64, y: f64| {
        (x.is_nan() && y.is_nan())
            || x == y
            || (x - y).abs() <= PROBE_TOLERANCE
            || (x - y).abs() <= PROBE_TOLERANCE * y.abs()
    };
    match (a, b) {
        (D::F32(x), D::F32(y)) => x
            .iter()
            .zip(y)
            .all(|(&x, &y)| close(f64::from(x), f64::from(y))),
        (D::F64(x), D::F64(y)) => x.iter().zip(y).all(|(&x, &y)| close(x, y)),
        _ => a == b,
    }
}

#[cfg(all(test, feature = "tract"))]
mod tests {
    use serde_json::Value;

    use crate::{Model, Tensor, TensorData};

    /// The zoo's models that the lite graph must take (the others it refuses, naming a node).
    const LITE: &[&str] = &[
        "binarizer_logreg",
        "column_transformer_rf",
        "decision_tree_classifier",
        "decision_tree_regressor",
        "decision_tree_string_labels",
        "default_export_gradient_boosting",
        "default_export_random_forest",
        "extra_trees_classifier",
        "extra_trees_regressor",
        "feature_vectorizer_logreg",
        "gaussian_nb_zipmap",
        "gradient_boosting_classifier",
        "gradient_boosting_multiclass",
        "gradient_boosting_regressor",
        "hist_gradient_boosting_classifier",
        "hist_gradient_boosting_regressor",
        "imputer_minmax_ridge",
        "isolation_forest",
        "linear_regression",
        "linear_svc",
        "logreg_binary",
        "logreg_multiclass",
        "mlp_regressor",
        "onehot_int64_logreg",
        "ordinal_encoder_gbr",
        "pca_logreg",
        "random_forest_classifier",
        "random_forest_regressor",
        "ridge",
        "scaler_logreg",
        "sgd_classifier",
        "svc_binary_poly",
        "svc_rbf",
        "svr",
        "torch_embedding_bag",
        "torch_mlp",
        "zipmap_logreg",
    ];

    fn float(v: &Value) -> f64 {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(f64::NAN)
    }

    /// A tensor's elements as JSON-comparable floats or values.
    fn elements(t: &Tensor) -> Vec<Value> {
        match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| Value::from(f64::from(x))).collect(),
            TensorData::F64(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::I64(v) => v.iter().map(|&x| Value::from(x)).collect(),
            TensorData::String(v) => v.iter().map(|x| Value::from(x.as_str())).collect(),
            other => panic!("output {other:?}"),
        }
    }

    /// Every zoo model the lite graph takes gives onnxruntime's outputs (labels equal, floats
    /// within the case's tolerance), and the ones it refuses name the node.
    #[test]
    fn the_lite_graph_gives_onnxruntimes_outputs_for_the_zoo() {
        let zoo = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/zoo");
        let mut dirs: Vec<_> = std::fs::read_dir(zoo)
            .expect("models/zoo")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.join("case.json").is_file())
            .collect();
        dirs.sort();
        let mut taken = Vec::new();
        for dir in dirs {
            let name = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let case: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join("case.json")).expect("case.json"),
            )
            .expect("json");
            let onnx = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
            let full = Model::load(&name, &onnx).expect("tract loads it");
            let lite = match full.to_lite(&onnx) {
                Ok(lite) => lite,
                Err(e) => {
                    assert!(!LITE.contains(&name.as_str()), "{name}: {e}");
                    assert!(e.to_string().contains("Node "), "{name}: {e}");
                    continue;
                }
            };
            taken.push(name.clone());
            let inputs = case["inputs"]
                .as_array()
                .expect("inputs")
                .iter()
                .map(crate::ml::testing::tensor)
                .collect();
            let outputs = lite
                .predict(inputs, &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let tol = case["tolerance"]["value"].as_f64().unwrap_or(1e-5);
            let expected = case["onnxruntime"].as_array().expect("expected");
            assert_eq!(outputs.len(), expected.len(), "{name}");
            for (got, want) in outputs.iter().zip(expected) {
                let what = format!("{name}: {}", got.name());
                assert_eq!(got.name(), want["name"], "{what}");
                assert_eq!(got.datatype().v2_name(), want["datatype"], "{what}");
                assert_eq!(
                    serde_json::to_value(got.shape()).expect("shape"),
                    want["shape"],
                    "{what}"
                );
                let (g, w) = (elements(got), want["data"].as_array().expect("data"));
                assert_eq!(g.len(), w.len(), "{what}");
                if matches!(got.datatype(), crate::DataType::F32 | crate::DataType::F64) {
                    for (i, (a, b)) in g.iter().zip(w).enumerate() {
                        let (a, b) = (float(a), float(b));
                        let close = (a.is_nan() && b.is_nan())
                            || (a - b).abs() <= tol
                            || (a - b).abs() <= tol * b.abs();
                        assert!(close, "{what}[{i}] = {a}, onnxruntime {b}");
                    }
                } else {
                    assert_eq!(&g, w, "{what}");
                }
            }
        }
        assert_eq!(taken, LITE, "the zoo models the lite graph takes");
    }
}
