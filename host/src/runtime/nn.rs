//! The host side of the wasi-nn flavour: a `wasmtime-wasi-nn` backend of our own, over
//! wafer-scoring compiled natively (tract, with wafer's ai.onnx.ml operators). Each model's
//! graph is parsed and optimized once, when the model is loaded, and every instance of that
//! model finds it by the model's name through `load-by-name`: one copy in the host, not one
//! per instance.
//!
//! The guest checks every input against the model's metadata before it calls `compute`, so
//! what fails here is the backend's fault: the guest sees `runtime-error`, and the request
//! answers 500 (the full reason is in the host's log).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use wafer_scoring::{DataType, Model, Tensor};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendGraph, Id, NamedTensor,
};
use wasmtime_wasi_nn::wit::{TensorType, WasiNnCtx};
use wasmtime_wasi_nn::{ExecutionContext, Graph, GraphRegistry, Registry};

/// The component imports of the wasi-nn flavour: a component that imports this needs a graph.
pub const GRAPH_IMPORT: &str = "wasi:nn/graph@0.2.0-rc-2024-10-28";

/// A model's graph, served behind `wasi:nn` under the model's name.
#[derive(Clone)]
pub struct NativeGraph {
    name: String,
    model: Arc<Model>,
    graph: Graph,
}

impl NativeGraph {
    /// Parses and optimizes `onnx` natively, to serve under `name`.
    pub fn load(name: &str, onnx: &[u8]) -> Result<NativeGraph, wafer_scoring::ScoringError> {
        let model = Arc::new(Model::load(name, onnx)?);
        let graph: Box<dyn BackendGraph> = Box::new(Native(Arc::clone(&model)));
        Ok(NativeGraph {
            name: name.to_owned(),
            model,
            graph: graph.into(),
        })
    }

    /// The model as the host parsed it: what the wasi-nn guest is built with.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// A `wasi:nn` context for one instance: this graph, and no backend to load others with.
    pub fn context(&self) -> WasiNnCtx {
        WasiNnCtx::new([], Registry::from(OneGraph(Some(self.clone()))))
    }
}

/// A `wasi:nn` context with no graph, for instances of components that need none.
pub fn no_graph() -> WasiNnCtx {
    WasiNnCtx::new([], Registry::from(OneGraph(None)))
}

/// The registry of one instance: its model's graph.
struct OneGraph(Option<NativeGraph>);

impl GraphRegistry for OneGraph {
    fn get(&self, name: &str) -> Option<&Graph> {
        self.0.as_ref().filter(|g| g.name == name).map(|g| &g.graph)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.0
            .as_mut()
            .filter(|g| g.name == name)
            .map(|g| &mut g.graph)
    }
}

/// The backend graph: a model wafer-scoring runs natively.
struct Native(Arc<Model>);

impl BackendGraph for Native {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let context: Box<dyn BackendExecutionContext> = Box::new(Native(Arc::clone(&self.0)));
        Ok(context.into())
    }
}

impl BackendExecutionContext for Native {
    fn set_input(&mut self, _: Id, _: &wasmtime_wasi_nn::Tensor) -> Result<(), BackendError> {
        Err(only_compute())
    }

    fn get_output(&mut self, _: Id) -> Result<wasmtime_wasi_nn::Tensor, BackendError> {
        Err(only_compute())
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        let model = &self.0;
        // `wasi:nn` hands the guest only an error code, so the reason is logged here.
        let failed = |e: String| {
            tracing::warn!(model = %model.metadata().name, error = %e, "wasi-nn backend failed");
            BackendError::BackendAccess(wasmtime::format_err!("{e}"))
        };
        let inputs = inputs
            .unwrap_or_default()
            .into_iter()
            .map(|named| from_nn(named.name, named.tensor))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        // A panic in the native graph must not unwind into wasmtime and the server: it fails
        // this call, as a trap fails the self-contained guest's.
        let outputs = std::panic::catch_unwind(AssertUnwindSafe(|| model.predict(inputs, &[])))
            .map_err(|panic| {
                failed(format!(
                    "the native backend panicked: {}",
                    panic_message(&*panic)
                ))
            })?
            .map_err(|e| failed(e.to_string()))?;
        let outputs = outputs
            .into_iter()
            .map(to_nn)
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        Ok(Some(outputs))
    }
}

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn only_compute() -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!(
        "wafer's backend serves the WIT interface's compute only"
    ))
}

/// The datatype of a `wasi:nn` element type.
fn datatype(ty: TensorType) -> Option<DataType> {
    Some(match ty {
        TensorType::Fp16 => DataType::F16,
        TensorType::Fp32 => DataType::F32,
        TensorType::Fp64 => DataType::F64,
        TensorType::U8 => DataType::U8,
        TensorType::I32 => DataType::I32,
        TensorType::I64 => DataType::I64,
        TensorType::Bf16 => return None,
    })
}

/// A guest's tensor: little-endian elements, as the v2 binary extension lays them out.
fn from_nn(name: String, tensor: wasmtime_wasi_nn::Tensor) -> Result<Tensor, String> {
    let datatype = datatype(tensor.ty)
        .ok_or_else(|| format!("input \"{name}\": {:?} is not supported", tensor.ty))?;
    let shape: Vec<usize> = tensor.dimensions.iter().map(|&d| d as usize).collect();
    let count = shape.iter().product();
    let data = wafer_protocol::binary::decode(&name, datatype, &tensor.data, count)
        .map_err(|e| e.to_string())?;
    Tensor::new(name, shape, data).map_err(|e| e.to_string())
}

/// An output as a `wasi:nn` tensor.
fn to_nn(tensor: Tensor) -> Result<NamedTensor, String> {
    let ty = match tensor.datatype() {
        DataType::F16 => TensorType::Fp16,
        DataType::F32 => TensorType::Fp32,
        DataType::F64 => TensorType::Fp64,
        DataType::U8 => TensorType::U8,
        DataType::I32 => TensorType::I32,
        DataType::I64 => TensorType::I64,
        other => {
            return Err(format!(
                "output \"{}\": wasi:nn cannot carry {other}",
                tensor.name()
            ));
        }
    };
    let (name, shape, data) = tensor.into_parts();
    let dimensions = shape
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| format!("output \"{name}\": a dimension exceeds u32"))?;
    let tensor =
        wasmtime_wasi_nn::Tensor::new(dimensions, ty, wafer_protocol::binary::encode(&data));
    Ok(NamedTensor { name, tensor })
}
