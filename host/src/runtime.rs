//! The wasmtime side: one engine, one `InstancePre` per model, a fresh `Store` and instance
//! per invocation.

use std::time::Instant;

use anyhow::Context as _;
use wafer_protocol::ProtocolError;
use wafer_scoring as scoring;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::wafer::inference::types::Tensor;
use crate::bindings::{Scoring, ScoringPre};
use crate::convert;

/// Per-store state: the WASI context the guest's standard library needs, and the `wasi:http`
/// types its HTTP export refers to. The guest gets no files, no environment, no stdin and no
/// outbound network.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutboundHttp,
    table: ResourceTable,
}

impl HostState {
    /// A state for one invocation.
    pub fn new() -> HostState {
        HostState {
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutboundHttp,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Model components make no outbound requests: every attempt is denied.
struct NoOutboundHttp;

impl WasiHttpHooks for NoOutboundHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Adds WASI and the `wasi:http` types to a linker.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
        .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker))
        .map_err(anyhow::Error::from)
        .context("adding WASI to the linker")
}

/// Limits of the instance pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Instances alive at once, across all models. Requests beyond it wait for a slot.
    pub max_instances: u32,
    /// Largest linear memory of one instance, in bytes.
    pub max_memory_bytes: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_instances: 64,
            max_memory_bytes: 1 << 30,
        }
    }
}

/// The engine and the WASI linker shared by every model.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
}

impl Runtime {
    /// An engine with the pooling allocator sized from `limits`, and copy-on-write memory
    /// images so that a fresh instance maps its snapshot instead of copying it.
    pub fn new(limits: PoolLimits) -> anyhow::Result<Runtime> {
        let n = limits.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            // A guest component holds its main module plus a few adapter shims.
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(limits.max_memory_bytes);
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config.memory_init_cow(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker)?;
        Ok(Runtime { engine, linker })
    }

    /// Compiles a model component and prepares its instantiation once.
    pub async fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<LoadedModel> {
        let started = Instant::now();
        let component = Component::new(&self.engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling the component of model \"{name}\""))?;
        let compiled = started.elapsed();
        let pre = ScoringPre::new(self.linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("model \"{name}\" does not export wafer:inference/scorer"))?;
        let (mut store, instance) = instantiate(&self.engine, &pre).await?;
        let metadata = instance
            .wafer_inference_scorer()
            .call_metadata(&mut store)
            .await?
            .map_err(convert::guest_error)
            .with_context(|| format!("reading the metadata of model \"{name}\""))?;
        let mut metadata = scoring::ModelMetadata::from(metadata);
        metadata.name = name.to_owned();
        tracing::info!(
            model = name,
            compile_ms = compiled.as_millis() as u64,
            "model loaded"
        );
        Ok(LoadedModel {
            name: name.to_owned(),
            engine: self.engine.clone(),
            pre,
            metadata,
        })
    }
}

/// A compiled model, ready to instantiate.
pub struct LoadedModel {
    name: String,
    engine: Engine,
    pre: ScoringPre<HostState>,
    metadata: scoring::ModelMetadata,
}

/// The answer of one invocation.
#[derive(Debug)]
pub struct Prediction {
    /// The output tensors.
    pub outputs: Vec<scoring::Tensor>,
    /// Predictions the answering instance has run; 1 for a fresh instance.
    pub instance_predictions: u64,
}

impl LoadedModel {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's inputs and outputs, as its component reports them.
    pub fn metadata(&self) -> &scoring::ModelMetadata {
        &self.metadata
    }

    /// Runs one prediction in a fresh instance, dropped afterwards.
    pub async fn predict(
        &self,
        inputs: Vec<scoring::Tensor>,
        outputs: &[String],
    ) -> Result<Prediction, ProtocolError> {
        let trap = |e: wasmtime::Error| {
            ProtocolError::Internal(format!("model \"{}\" trapped: {e:#}", self.name))
        };
        let (mut store, instance) = instantiate(&self.engine, &self.pre).await.map_err(|e| {
            ProtocolError::Internal(format!("instantiating \"{}\": {e:#}", self.name))
        })?;
        let scorer = instance.wafer_inference_scorer();
        let inputs: Vec<Tensor> = inputs.into_iter().map(Tensor::from).collect();
        let result = scorer
            .call_predict(&mut store, &inputs, outputs)
            .await
            .map_err(trap)?;
        let stats = scorer.call_stats(&mut store).await.map_err(trap)?;
        let outputs = result
            .map_err(convert::guest_error)?
            .into_iter()
            .map(|t| {
                scoring::Tensor::try_from(t).map_err(|e| {
                    ProtocolError::Internal(format!("the component returned a bad tensor: {e}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Prediction {
            outputs,
            instance_predictions: stats.predictions,
        })
    }
}

/// A fresh store and instance.
async fn instantiate(
    engine: &Engine,
    pre: &ScoringPre<HostState>,
) -> anyhow::Result<(Store<HostState>, Scoring)> {
    let mut store = Store::new(engine, HostState::new());
    let instance = pre.instantiate_async(&mut store).await?;
    Ok((store, instance))
}
