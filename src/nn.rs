//! The model behind `wasi:nn`: the wasi-nn guest's [`Runner`], which hands the checked inputs
//! to the graph the host serves under the model's name and reads the outputs back.

use wafer_protocol::binary;
use wafer_scoring::{DataType, ModelMetadata, Runner, ScoringError, Tensor};

use crate::bindings::wasi::nn::errors::Error as NnError;
use crate::bindings::wasi::nn::graph;
use crate::bindings::wasi::nn::tensor::{Tensor as NnTensor, TensorType};

/// The `wasi:nn` element type of a datatype, if a `wasi:nn` tensor can carry it.
fn tensor_type(datatype: DataType) -> Option<TensorType> {
    Some(match datatype {
        DataType::F16 => TensorType::Fp16,
        DataType::F32 => TensorType::Fp32,
        DataType::F64 => TensorType::Fp64,
        DataType::U8 => TensorType::U8,
        DataType::I32 => TensorType::I32,
        DataType::I64 => TensorType::I64,
        _ => return None,
    })
}

/// Refuses a model with an input or output that `wasi:nn` tensors cannot carry, naming it.
pub(crate) fn check(metadata: &ModelMetadata) -> Result<(), ScoringError> {
    let inputs = metadata.inputs.iter().map(|i| ("input", i));
    let outputs = metadata.outputs.iter().map(|o| ("output", o));
    for (kind, info) in inputs.chain(outputs) {
        if tensor_type(info.datatype).is_none() {
            return Err(ScoringError::Load(format!(
                "{kind} \"{}\" is {}, which wasi:nn tensors cannot carry (FP16, FP32, FP64, \
                 UINT8, INT32 and INT64 only)",
                info.name, info.datatype
            )));
        }
    }
    Ok(())
}

/// The graph the host serves under `name`, with the outputs it must give, in order.
#[derive(Debug)]
pub(crate) struct Graph {
    name: String,
    outputs: Vec<(String, DataType)>,
}

impl Graph {
    /// The graph `name`, whose outputs `metadata` declares.
    pub(crate) fn new(name: String, metadata: &ModelMetadata) -> Graph {
        let outputs = metadata
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.datatype))
            .collect();
        Graph { name, outputs }
    }
}

impl Runner for Graph {
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ScoringError> {
        let failed = |what: &str, e: NnError| {
            ScoringError::Run(format!(
                "wasi:nn {what} of graph \"{}\": {:?}: {}",
                self.name,
                e.code(),
                e.data()
            ))
        };
        let graph = graph::load_by_name(&self.name).map_err(|e| failed("load-by-name", e))?;
        let context = graph
            .init_execution_context()
            .map_err(|e| failed("init-execution-context", e))?;
        let named = inputs
            .into_iter()
            .map(to_nn)
            .collect::<Result<Vec<_>, _>>()?;
        let mut outputs = context.compute(named).map_err(|e| failed("compute", e))?;
        self.outputs
            .iter()
            .map(|(name, datatype)| {
                let ix = outputs.iter().position(|(n, _)| n == name).ok_or_else(|| {
                    ScoringError::Run(format!("wasi:nn gave no output \"{name}\""))
                })?;
                let (name, tensor) = outputs.swap_remove(ix);
                from_nn(name, *datatype, &tensor)
            })
            .collect()
    }
}

/// A checked input as a named `wasi:nn` tensor: its dimensions, and its elements as the
/// little-endian bytes the v2 binary extension also uses.
fn to_nn(tensor: Tensor) -> Result<(String, NnTensor), ScoringError> {
    let ty = tensor_type(tensor.datatype()).ok_or_else(|| {
        ScoringError::Run(format!(
            "input \"{}\": wasi:nn cannot carry {}",
            tensor.name(),
            tensor.datatype()
        ))
    })?;
    let (name, shape, data) = tensor.into_parts();
    let dims = shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| ScoringError::Run(format!("input \"{name}\": a dimension exceeds u32")))?;
    let tensor = NnTensor::new(&dims, ty, &binary::encode(&data));
    Ok((name, tensor))
}

/// A `wasi:nn` output as the declared tensor.
fn from_nn(name: String, datatype: DataType, tensor: &NnTensor) -> Result<Tensor, ScoringError> {
    let ty = tensor.ty();
    if tensor_type(datatype) != Some(ty) {
        return Err(ScoringError::Run(format!(
            "wasi:nn output \"{name}\" is {ty:?}, the model declares {datatype}"
        )));
    }
    let shape: Vec<usize> = tensor
        .dimensions()
        .into_iter()
        .map(|d| d as usize)
        .collect();
    let count = shape.iter().product();
    let data = binary::decode(&name, datatype, &tensor.data(), count)
        .map_err(|e| ScoringError::Run(format!("wasi:nn output: {e}")))?;
    Tensor::new(name, shape, data).map_err(|e| ScoringError::Run(format!("wasi:nn output: {e}")))
}
