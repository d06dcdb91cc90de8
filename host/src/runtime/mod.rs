//! The wasmtime side: one engine, one `InstancePre` per model, a fresh `Store` and instance
//! per invocation ([`LoadedModel`], made ahead of the request and dropped after it when the
//! server has cores to spare: [`instances`]) or one kept for many calls ([`Session`]); and what feeds it:
//! building components ([`build`]), the compiled cache ([`cache`]) and the file digests that
//! make a warm start read nothing twice ([`digests`]), WIT conversions ([`convert`]),
//! and the native backend behind `wasi:nn` for the wasi-nn flavour ([`nn`]); dynamic batching of
//! concurrent requests into one fresh instance ([`batching`]).

pub mod batching;
pub mod build;
pub mod cache;
pub mod convert;
pub mod digests;
pub mod instances;
pub mod nn;
pub mod split;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::Digest as _;
use wafer_protocol::ProtocolError;
use wafer_scoring as scoring;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::ScoringPre;
use crate::bindings::exports::wafer::inference::scorer::{
    Call as WitCall, CallInput, Guest as Scorer,
};
use crate::bindings::lookup::wasi::keyvalue::store as kv;
use crate::bindings::wafer::inference::types::{Error as GuestError, Tensor};
use crate::runtime::cache::{CacheOutcome, CompiledCache, CompiledModel, FunctionCache};
use crate::runtime::digests::Sha256Digest;
use crate::runtime::instances::{Fresh, Instances, Recipe, Slots};
use crate::store::{FeatureStore, Snapshot};

/// Per-store state: the WASI context the guest's standard library needs, the `wasi:http`
/// types its HTTP export refers to, a read snapshot of the feature store for models that
/// look fields up, and the model's graph for the wasi-nn flavour. The guest gets no files, no
/// environment, no stdin and no outbound network.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutboundHttp,
    table: ResourceTable,
    memory: MemoryWatch,
    features: Option<Snapshot>,
    nn: wasmtime_wasi_nn::wit::WasiNnCtx,
}

/// An open `wasi:keyvalue` bucket: one named store of the feature database.
pub struct Bucket {
    name: String,
}

/// Tracks the largest linear memory an instance asks for, and refuses growth past the cap
/// (`--max-memory`), remembering that it did: the guest then fails (its allocator aborts) and
/// the failure is reported as the memory limit, not as a plain trap.
struct MemoryWatch {
    high_water: usize,
    cap: usize,
    refused: bool,
}

impl Default for MemoryWatch {
    fn default() -> Self {
        MemoryWatch {
            high_water: 0,
            cap: usize::MAX,
            refused: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = true;
            return Ok(false);
        }
        self.high_water = self.high_water.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl HostState {
    /// A state for one invocation, without a feature store.
    pub fn new() -> HostState {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr();
        HostState::with(wasi.build(), nn::no_graph())
    }

    /// A state with `wasi` and `nn`, and nothing else yet.
    fn with(wasi: WasiCtx, nn: wasmtime_wasi_nn::wit::WasiNnCtx) -> HostState {
        HostState {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: NoOutboundHttp,
            table: ResourceTable::new(),
            memory: MemoryWatch::default(),
            features: None,
            nn,
        }
    }

    /// A state whose WASI randomness is the cycle of `seed`, for a build's initializer: a
    /// snapshot then depends on its inputs only.
    pub fn deterministic(seed: [u8; 32]) -> HostState {
        let (low, _) = seed.split_first_chunk::<16>().expect("32 bytes");
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr()
            .secure_random(wasmtime_wasi::Deterministic::new(seed.to_vec()))
            .insecure_random(wasmtime_wasi::Deterministic::new(seed.to_vec()))
            .insecure_random_seed(u128::from_le_bytes(*low));
        HostState::with(wasi.build(), nn::no_graph())
    }

    /// A state for one invocation that reads `features` through one snapshot and serves
    /// `graph` behind `wasi:nn`, with `environment` as its environment variables, its linear
    /// memory capped at `max_memory` bytes.
    fn for_instance(
        features: Option<&Arc<FeatureStore>>,
        graph: Option<&nn::NativeGraph>,
        environment: &[(String, String)],
        max_memory: usize,
    ) -> HostState {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stderr().envs(environment);
        let nn = graph.map_or_else(nn::no_graph, nn::NativeGraph::context);
        HostState {
            features: features.map(FeatureStore::snapshot),
            memory: MemoryWatch {
                cap: max_memory,
                ..MemoryWatch::default()
            },
            ..HostState::with(wasi.build(), nn)
        }
    }
}

impl Default for HostState {
    fn default() -> Self {
        HostState::new()
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

/// `wasi:keyvalue/store` over the feature database: every store name opens (a store never
/// loaded, or any store without a database, is empty, so its lookups take their defaults);
/// writes are refused, since stores are filled by `wafer features load`.
impl kv::Host for HostState {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, kv::Error> {
        self.table
            .push(Bucket { name: identifier })
            .map_err(|e| kv::Error::Other(e.to_string()))
    }
}

impl kv::HostBucket for HostState {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, kv::Error> {
        let name = &self
            .table
            .get(&bucket)
            .map_err(|e| kv::Error::Other(e.to_string()))?
            .name;
        let Some(snapshot) = self.features.as_mut() else {
            return Ok(None);
        };
        snapshot.get(name, &key).map_err(|e| {
            tracing::warn!(store = name.as_str(), error = %e, "feature store read failed");
            kv::Error::Other(format!("{e:#}"))
        })
    }

    fn set(&mut self, _: Resource<Bucket>, _: String, _: Vec<u8>) -> Result<(), kv::Error> {
        Err(kv::Error::AccessDenied)
    }

    fn delete(&mut self, _: Resource<Bucket>, _: String) -> Result<(), kv::Error> {
        Err(kv::Error::AccessDenied)
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, kv::Error> {
        self.get(bucket, key).map(|v| v.is_some())
    }

    fn list_keys(
        &mut self,
        _: Resource<Bucket>,
        _: Option<String>,
    ) -> Result<kv::KeyResponse, kv::Error> {
        Err(kv::Error::AccessDenied)
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
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

/// Adds WASI, the `wasi:http` types, `wasi:keyvalue/store` and `wasi:nn` to a linker.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
        .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker))
        .and_then(|()| kv::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s))
        .and_then(|()| {
            wasmtime_wasi_nn::wit::add_to_linker(linker, |s: &mut HostState| {
                wasmtime_wasi_nn::wit::WasiNnView::new(&mut s.table, &mut s.nn)
            })
        })
        .map_err(anyhow::Error::from)
        .context("adding WASI to the linker")
}

/// Limits of the instance pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Instances alive at once, across all models. Requests beyond it wait for a slot.
    pub max_instances: u32,
    /// Largest linear memory of one instance, in bytes: growing past it fails the call.
    pub max_memory_bytes: usize,
    /// Longest a guest call may run before it is interrupted.
    pub timeout: Duration,
    /// Make a model's next instance ahead of its next call, and drop the used one after its
    /// answer, while the server has cores to spare ([`instances`]).
    pub make_ahead: bool,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_instances: 64,
            max_memory_bytes: 1 << 30,
            timeout: Duration::from_secs(30),
            make_ahead: true,
        }
    }
}

/// Bytes of each pooled memory, table and stack reset in place between instances; the rest
/// go back to the kernel and fault in again. 64 KiB measured best for iris under wrk, with and
/// without [`pagemap_scan`] (BENCHMARKS.md): without the scan, the first 64 KiB are reset
/// with `memset` whether touched or not (at 1 MiB that took 22% of the server's CPU); with it,
/// the first 64 KiB of pages the instance wrote.
const KEEP_RESIDENT: usize = 64 << 10;

/// Whether a freed slot's written pages are found with Linux's `PAGEMAP_SCAN` (kernel 6.7 and
/// later), so that those are what is reset in place. Measured under wrk on iris: ~1.5x the
/// requests per second at 32 connections (BENCHMARKS.md).
///
/// Not with swap: wasmtime 48's scan looks for written pages that are present, so a written
/// page that had been swapped out would be neither reset nor decommitted, and the next
/// instance in the slot would see it (wasmtime PR #14357).
fn pagemap_scan() -> wasmtime::Enabled {
    // Unreadable (not Linux, or no /proc): assume swap; the scan is Linux's anyway.
    let swap = std::fs::read_to_string("/proc/swaps").map_or(true, |table| has_swap(&table));
    if swap {
        wasmtime::Enabled::No
    } else {
        wasmtime::Enabled::Auto
    }
}

/// Whether `/proc/swaps` (`table`) lists a swap area: a line below its header.
fn has_swap(table: &str) -> bool {
    table.lines().skip(1).any(|line| !line.trim().is_empty())
}

/// How often the engine's epoch advances; guest deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine and the WASI linker shared by every model.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompiledCache>,
    deadline_ticks: u64,
    max_memory: usize,
    features: Option<Arc<FeatureStore>>,
    /// The bounds every model's instances share.
    slots: Arc<Slots>,
    /// Guests compiled once for every model that runs them ([`Runtime::load_shared`]), by
    /// file: the component, what the compiled cache held, and the file's digest.
    shared: Mutex<HashMap<PathBuf, (Component, CacheOutcome, Sha256Digest)>>,
    /// Whether models' components are split so that their guest's code is compiled once
    /// ([`split`]); else each is compiled whole.
    share_code: bool,
}

/// How a model's component is compiled: `--guest-code`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GuestCode {
    /// `shared` from [`GuestCode::SHARED_FROM`] models on, else `per-model`.
    #[default]
    Auto,
    /// Split each component ([`split`]): a guest's code is compiled, cached and mapped once
    /// for all the models built from it, and a model costs its data. Each call pays a few µs
    /// more (one more core instance, and the memory one load further away).
    Shared,
    /// Each model's component compiled whole, guest code included.
    PerModel,
}

impl GuestCode {
    /// The count of models from which `auto` shares the guest's code: below it, compiling each
    /// model whole costs a few seconds and tens of MB per model, and saves each call a few µs.
    pub const SHARED_FROM: usize = 8;

    /// Whether a process serving `models` models shares guest code.
    pub fn shared(self, models: usize) -> bool {
        match self {
            GuestCode::Auto => models >= Self::SHARED_FROM,
            GuestCode::Shared => true,
            GuestCode::PerModel => false,
        }
    }
}

/// The engine configuration that serving uses: the pooling allocator sized from `limits`,
/// copy-on-write memory images, epoch interruption, and Cranelift's incremental cache in
/// `functions`. The build engine takes it too, so the functions it compiles are the ones
/// models reuse.
pub fn engine_config(limits: &PoolLimits, functions: Arc<FunctionCache>) -> anyhow::Result<Config> {
    // Calls' instances, and those made ahead of calls (`instances`).
    let n =
        u32::try_from(Slots::pool_size(limits.max_instances as usize)).context("max_instances")?;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        // A guest component holds its main module plus a few adapter shims.
        .total_core_instances(n * 8)
        .total_memories(n * 2)
        .total_tables(n * 4)
        .total_stacks(n)
        .max_memory_size(limits.max_memory_bytes)
        // Reset a freed slot's first written pages in place instead of returning them to the
        // kernel: the next instance then takes no page faults there.
        .pagemap_scan(pagemap_scan())
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        // Return the rest to the kernel at once. Batched (16 regions), a freed slot waited in
        // a queue per thread until that thread had freed enough: an instance retired on
        // another thread (`instances`) could leave tens of MB resident for a while
        // (BENCHMARKS.md, "Instances made ahead"); unbatched measured as fast under load.
        .decommit_batch_size(1);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config.memory_init_cow(true);
    config.epoch_interruption(true);
    config.enable_incremental_compilation(functions)?;
    // `WAFER_PERFMAP=1` names guest functions for `perf` (in /tmp/perf-<pid>.map).
    if std::env::var_os("WAFER_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Ok(config)
}

impl Runtime {
    /// An engine with the pooling allocator sized from `limits`, copy-on-write memory images
    /// (a fresh instance maps its snapshot instead of copying it), and epoch interruption for
    /// the guest timeout. With a `cache`, compiled components are kept on disk, and compiled
    /// functions in [`FunctionCache::user`].
    pub fn new(limits: PoolLimits, cache: Option<CompiledCache>) -> anyhow::Result<Runtime> {
        let config = engine_config(&limits, FunctionCache::with(cache.as_ref()))?;
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wafer-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch thread")?;
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker)?;
        let deadline_ticks = (limits.timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        Ok(Runtime {
            engine,
            linker,
            cache,
            deadline_ticks,
            max_memory: limits.max_memory_bytes,
            features: None,
            slots: Slots::new(
                limits.max_instances as usize,
                match limits.make_ahead {
                    true => Slots::ahead(limits.max_instances as usize),
                    false => 0,
                },
            ),
            shared: Mutex::default(),
            share_code: false,
        })
    }

    /// Splits the models loaded from now on, so that each guest's code is compiled once
    /// ([`GuestCode::Shared`]), when `share` is true; compiles each whole when false (the
    /// default).
    pub fn sharing_guest_code(mut self, share: bool) -> Runtime {
        self.share_code = share;
        self
    }

    /// The bounds every model's instances share, and the count of client connections that
    /// tells them whether the server is busy.
    pub fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    /// Serves `wasi:keyvalue` lookups of the models loaded from now on from `features`.
    pub fn with_features(mut self, features: Arc<FeatureStore>) -> Runtime {
        self.features = Some(features);
        self
    }

    /// Compiles a model component (or takes it from the cache) and prepares its instantiation.
    pub async fn load(&self, name: &str, wasm: &[u8]) -> anyhow::Result<LoadedModel> {
        self.load_with_graph(name, wasm, None).await
    }

    /// [`Runtime::load`] for a component of either flavour: one of the wasi-nn flavour gets
    /// `graph`, which it must have, behind `wasi:nn`.
    pub async fn load_with_graph(
        &self,
        name: &str,
        wasm: &[u8],
        graph: Option<nn::NativeGraph>,
    ) -> anyhow::Result<LoadedModel> {
        let started = Instant::now();
        let digest: Sha256Digest = sha2::Sha256::digest(wasm).into();
        let compiled = match &self.cache {
            Some(cache) => {
                let wasm = || Ok(Cow::Borrowed(wasm));
                cache.load_or_compile_model(&self.engine, &digest, self.share_code, wasm)
            }
            None => Component::new(&self.engine, wasm)
                .map(|c| (c.into(), CacheOutcome::Miss))
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("compiling the component of model \"{name}\""))?;
        self.prepare(name, &digest, compiled, graph, Vec::new(), started)
            .await
    }

    /// [`Runtime::load_with_graph`] for the component in the file at `path`. With a compiled
    /// cache, a warm start neither reads nor hashes it: its digest is remembered with its
    /// metadata ([`digests::FileDigests`]), and its compiled code is mapped from the cache.
    pub async fn load_file_with_graph(
        &self,
        name: &str,
        path: &Path,
        graph: Option<nn::NativeGraph>,
    ) -> anyhow::Result<LoadedModel> {
        let started = Instant::now();
        let Some(cache) = &self.cache else {
            let wasm = std::fs::read(path)
                .with_context(|| format!("reading the component {}", path.display()))?;
            return self.load_with_graph(name, &wasm, graph).await;
        };
        let (compiled, outcome, digest) = cache
            .load_or_compile_model_file(&self.engine, path, self.share_code)
            .with_context(|| format!("compiling the component of model \"{name}\""))?;
        self.prepare(
            name,
            &digest,
            (compiled, outcome),
            graph,
            Vec::new(),
            started,
        )
        .await
    }

    /// A model of the wasi-nn flavour served by the unbuilt wasi-nn guest in the file at
    /// `guest`, which this runtime compiles (or maps from the cache) once for every model that
    /// runs it: each instance reads its model's description from `environment`
    /// ([`wafer_protocol::shared_guest`]), and a model costs its graph and no component.
    pub async fn load_shared(
        &self,
        name: &str,
        guest: &Path,
        graph: nn::NativeGraph,
        environment: Vec<(String, String)>,
    ) -> anyhow::Result<LoadedModel> {
        let started = Instant::now();
        let (component, outcome, guest_digest) = self.shared_guest(guest)?;
        // The model is the guest and its description.
        let mut digest = sha2::Sha256::new();
        digest.update(guest_digest);
        for (key, value) in &environment {
            digest.update(sha2::Sha256::digest(key));
            digest.update(sha2::Sha256::digest(value));
        }
        let digest = digest.finalize().into();
        let compiled = (component.into(), outcome);
        self.prepare(name, &digest, compiled, Some(graph), environment, started)
            .await
    }

    /// The guest in the file at `guest`, compiled by the first model that runs it; later
    /// models find it here, which counts as a cache hit.
    fn shared_guest(
        &self,
        guest: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome, Sha256Digest)> {
        // Held while compiling: models loading in parallel wait for the one compilation.
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((component, _, digest)) = shared.get(guest) {
            return Ok((component.clone(), CacheOutcome::Hit, *digest));
        }
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile_file(&self.engine, guest),
            None => std::fs::read(guest)
                .map_err(anyhow::Error::from)
                .and_then(|wasm| {
                    let digest = sha2::Sha256::digest(&wasm).into();
                    let component = Component::new(&self.engine, &wasm)?;
                    Ok((component, CacheOutcome::Miss, digest))
                }),
        }
        .with_context(|| format!("compiling the guest {}", guest.display()))?;
        shared.insert(guest.to_owned(), compiled.clone());
        Ok(compiled)
    }

    /// A model from its compiled component: checks its imports and exports, and reads its
    /// metadata and feature spec from a first instance.
    async fn prepare(
        &self,
        name: &str,
        digest: &Sha256Digest,
        (compiled, cache): (CompiledModel, CacheOutcome),
        graph: Option<nn::NativeGraph>,
        environment: Vec<(String, String)>,
        started: Instant,
    ) -> anyhow::Result<LoadedModel> {
        let CompiledModel { component, code } = compiled;
        let compiled = started.elapsed();
        let wants_graph = component
            .component_type()
            .imports(&self.engine)
            .any(|(import, _)| import == nn::GRAPH_IMPORT);
        let graph = match (wants_graph, graph) {
            (true, None) => anyhow::bail!(
                "model \"{name}\" is of the wasi-nn flavour, and no graph was loaded for it \
                 (serve it from its folder, beside its model.onnx)"
            ),
            (true, graph) => graph,
            (false, _) => None,
        };
        // A split model's component imports its guest's code.
        let linker = match &code {
            Some(code) => {
                let mut linker = self.linker.clone();
                linker.root().module(split::CODE_IMPORT, code)?;
                Cow::Owned(linker)
            }
            None => Cow::Borrowed(&self.linker),
        };
        let pre = ScoringPre::new(linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("model \"{name}\" does not export wafer:inference/scorer"))?;
        let recipe = Recipe {
            engine: self.engine.clone(),
            pre,
            features: self.features.clone(),
            graph,
            environment,
            max_memory: self.max_memory,
        };
        let mut model = LoadedModel {
            batching: None,
            name: name.to_owned(),
            version: 1,
            instances: Arc::new(Instances::new(recipe, Arc::clone(&self.slots))),
            metadata: scoring::ModelMetadata::default(),
            cache,
            cold: AtomicBool::new(true),
            deadline_ticks: self.deadline_ticks,
            max_memory: self.max_memory,
            digest: digests::hex(digest),
            spec: None,
        };
        let Fresh {
            mut store,
            instance,
            ..
        } = model.instances.instantiate().await?;
        let metadata = instance
            .wafer_inference_scorer()
            .call_metadata(&mut store)
            .await?
            .map_err(convert::guest_error)
            .with_context(|| format!("reading the metadata of model \"{name}\""))?;
        model.spec = instance
            .wafer_inference_scorer()
            .call_features(&mut store)
            .await?
            .map_err(convert::guest_error)
            .with_context(|| format!("reading the features.toml of model \"{name}\""))?;
        model.metadata = scoring::ModelMetadata::from(metadata);
        model.metadata.name = name.to_owned();
        tracing::info!(
            model = name,
            compile_ms = compiled.as_millis() as u64,
            compiled_cache = cache.as_str(),
            "model loaded"
        );
        Ok(model)
    }

    /// Compiles the component in the file at `path` into the cache without loading it;
    /// returns what the cache held.
    pub fn precompile_file(&self, path: &Path) -> anyhow::Result<CacheOutcome> {
        let cache = self
            .cache
            .as_ref()
            .context("no compiled cache configured")?;
        let compiled = cache.load_or_compile_model_file(&self.engine, path, self.share_code)?;
        Ok(compiled.1)
    }
}

/// Returns the heap's free memory to the kernel. Building and compiling a model leaves tens of
/// MB per model freed but resident in the allocator's arenas (Wizer's snapshot, the component's
/// bytes, Cranelift's work); without this, a server that compiled a hundred models at start
/// would keep gigabytes it no longer uses. A no-op but on glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[expect(
            unsafe_code,
            reason = "declaring glibc's malloc_trim, which is safe to call"
        )]
        unsafe extern "C" {
            safe fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        malloc_trim(0);
    }
}

/// A compiled model, ready to instantiate.
pub struct LoadedModel {
    /// Its dynamic batching, when its folder turns it on.
    batching: Option<Arc<batching::Batcher>>,
    name: String,
    version: u64,
    /// Where its fresh instances come from: its component, its graph behind `wasi:nn` (for
    /// the wasi-nn flavour), its instances' environment (empty, but for the shared wasi-nn
    /// guest, which reads its model's description there: [`Runtime::load_shared`]).
    instances: Arc<Instances>,
    metadata: scoring::ModelMetadata,
    cache: CacheOutcome,
    /// No request has instantiated this model yet.
    cold: AtomicBool,
    deadline_ticks: u64,
    max_memory: usize,
    digest: String,
    /// The fitted `features.toml` the component holds, if any.
    spec: Option<String>,
}

/// What one invocation measured, whatever its result.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Getting the call's fresh instance: creating its store and instance, or next to
    /// nothing when one was made ahead ([`instances`]).
    pub instantiate: Duration,
    /// Its instance was made ahead of it, off the request's path.
    pub made_ahead: bool,
    /// Inside the guest's `predict`.
    pub guest: Duration,
    /// The instance's largest linear memory, bytes.
    pub memory_bytes: u64,
    /// The first instance since the model was loaded.
    pub cold: bool,
    /// Predictions the answering instance has run; 1 for a fresh instance.
    pub instance_predictions: u64,
    /// Times the answering instance parsed its model; 0 with a snapshot.
    pub model_parses: u64,
    /// Why the guest failed, when it trapped or ran past its deadline.
    pub failure: Option<GuestFailure>,
    /// Requests the model call answered: 1 alone, more in a dynamic batch.
    pub batch_size: u64,
    /// The first request of its model call: the one that counts the call once.
    pub batch_first: bool,
    /// Keys the guest looked up in the feature store.
    pub lookups: u64,
    /// Of those, the keys the store did not hold.
    pub lookup_misses: u64,
}

/// How a guest call failed, beyond returning an error: the label metrics count it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestFailure {
    /// It ran past the request's deadline and was interrupted.
    Timeout,
    /// It asked for more linear memory than the cap and failed.
    MemoryLimit,
    /// It overflowed its stack.
    StackOverflow,
    /// Any other trap (`unreachable`, a panic, an out-of-bounds access).
    Trap,
    /// It returned outputs that are not valid tensors.
    BadOutput,
}

impl GuestFailure {
    /// `timeout`, `memory_limit`, `stack_overflow`, `trap` or `bad_output`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestFailure::Timeout => "timeout",
            GuestFailure::MemoryLimit => "memory_limit",
            GuestFailure::StackOverflow => "stack_overflow",
            GuestFailure::Trap => "trap",
            GuestFailure::BadOutput => "bad_output",
        }
    }
}

impl LoadedModel {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version it is served as.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The same model, served as `version`.
    pub fn with_version(mut self, version: u64) -> LoadedModel {
        self.version = version;
        self
    }

    /// The same model, batching requests under `config`. Joining rows needs every input and
    /// output to hold its rows along the first dimension: without, the model is served
    /// unbatched, with a warning.
    pub fn with_batching(mut self, config: Option<batching::BatchConfig>) -> LoadedModel {
        self.batching = config.and_then(|config| {
            if config.join == batching::Join::Rows
                && let Err(reason) = batching::row_wise(&self.metadata)
            {
                tracing::warn!(model = self.name, reason, "dynamic batching is off");
                return None;
            }
            Some(Arc::new(batching::Batcher::new(config)))
        });
        self
    }

    /// The model's inputs and outputs, as its component reports them.
    pub fn metadata(&self) -> &scoring::ModelMetadata {
        &self.metadata
    }

    /// What runs the model: `guest` (tract inside the component) or `wasi-nn` (the host's
    /// native backend, behind `wasi:nn`).
    pub fn backend(&self) -> &'static str {
        if self.instances.graph().is_some() {
            "wasi-nn"
        } else {
            "guest"
        }
    }

    /// The SHA-256 of the component, in hex: what identifies the model a job ran.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The fitted `features.toml` that raw records go through, if the model has one.
    pub fn features_toml(&self) -> Option<&str> {
        self.spec.as_deref()
    }

    /// One instance for many calls, replaced only when it traps: what `wafer batch`'s
    /// workers score their chunks in.
    pub fn session(self: &Arc<Self>) -> Session {
        Session {
            model: Arc::clone(self),
            live: None,
        }
    }

    /// Whether the compiled code came from the cache.
    pub fn cache(&self) -> CacheOutcome {
        self.cache
    }

    /// Runs one prediction in a fresh instance, dropped afterwards; with dynamic batching,
    /// in one fresh instance with the requests it was batched with.
    pub async fn predict(
        self: &Arc<Self>,
        inputs: Vec<scoring::Tensor>,
        outputs: &[String],
    ) -> (Result<Vec<scoring::Tensor>, ProtocolError>, Measured) {
        self.batched(Call::Tensors(inputs), outputs).await
    }

    /// Runs the model on raw records (a JSON array of objects, through its feature spec, or of
    /// rows of numbers) in a fresh instance.
    pub async fn predict_records(
        self: &Arc<Self>,
        records: String,
        outputs: &[String],
    ) -> (Result<Vec<scoring::Tensor>, ProtocolError>, Measured) {
        self.batched(Call::Records(records), outputs).await
    }

    /// Runs `call` in a batch when the model batches and the call can join one, else alone.
    async fn batched(
        self: &Arc<Self>,
        call: Call,
        outputs: &[String],
    ) -> (Result<Vec<scoring::Tensor>, ProtocolError>, Measured) {
        if let Some(batcher) = &self.batching
            && let Some((signature, rows)) = batcher.signature(self, &call, outputs)
        {
            return batcher.submit(self, signature, rows, call, outputs).await;
        }
        self.call(call, outputs).await
    }

    /// Runs `call` alone in a fresh instance.
    async fn call(
        &self,
        call: Call,
        outputs: &[String],
    ) -> (Result<Vec<scoring::Tensor>, ProtocolError>, Measured) {
        let mut measured = self.first_measure();
        let result = self.run(call, outputs, &mut measured).await;
        (result, measured)
    }

    /// What a model call measures before it runs: whether it is the model's first, and (until
    /// batching says otherwise) that it answers one request.
    fn first_measure(&self) -> Measured {
        Measured {
            cold: self.cold.swap(false, Ordering::Relaxed),
            batch_size: 1,
            batch_first: true,
            ..Measured::default()
        }
    }

    async fn run(
        &self,
        call: Call,
        outputs: &[String],
        measured: &mut Measured,
    ) -> Result<Vec<scoring::Tensor>, ProtocolError> {
        let result = self
            .invoke(measured, async |scorer, store| match call {
                Call::Tensors(inputs) => {
                    let inputs: Vec<Tensor> = inputs.into_iter().map(Tensor::from).collect();
                    scorer.call_predict(store, &inputs, outputs).await
                }
                Call::Records(records) => {
                    scorer.call_predict_records(store, &records, outputs).await
                }
            })
            .await?;
        guest_outputs(result, measured)
    }

    /// Runs `calls` one after the other in one fresh instance (the guest's `predict-many`),
    /// each with its own result; `Err` when the instance itself failed (a trap, the
    /// deadline), which fails them all.
    async fn call_many(&self, calls: &[(Call, Vec<String>)]) -> (ManyResult, Measured) {
        let mut measured = self.first_measure();
        let calls: Vec<WitCall> = calls
            .iter()
            .map(|(call, outputs)| WitCall {
                input: match call {
                    Call::Tensors(inputs) => {
                        CallInput::Tensors(inputs.iter().cloned().map(Tensor::from).collect())
                    }
                    Call::Records(records) => CallInput::Records(records.clone()),
                },
                outputs: outputs.clone(),
            })
            .collect();
        let results = self
            .invoke(&mut measured, async |scorer, store| {
                scorer.call_predict_many(store, &calls).await
            })
            .await;
        let results = results.map(|results| {
            results
                .into_iter()
                .map(|result| guest_outputs(result, &mut measured))
                .collect()
        });
        (results, measured)
    }

    /// Calls `f` on the scorer of a fresh instance under the model's deadline, measuring it,
    /// and reads the instance's counters after.
    async fn invoke<T>(
        &self,
        measured: &mut Measured,
        f: impl AsyncFnOnce(&Scorer, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, ProtocolError> {
        let started = Instant::now();
        let (mut fresh, made_ahead) = self.instances.take().await.map_err(|e| {
            ProtocolError::Internal(format!("instantiating \"{}\": {e:#}", self.name))
        })?;
        measured.instantiate = started.elapsed();
        measured.made_ahead = made_ahead;
        let result = self.invoke_in(&mut fresh, measured, f).await;
        self.instances.retire(fresh);
        result
    }

    /// [`LoadedModel::invoke`] in `fresh`.
    async fn invoke_in<T>(
        &self,
        Fresh {
            store, instance, ..
        }: &mut Fresh,
        measured: &mut Measured,
        f: impl AsyncFnOnce(&Scorer, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, ProtocolError> {
        let scorer = instance.wafer_inference_scorer();
        let started = Instant::now();
        store.set_epoch_deadline(self.deadline_ticks);
        let result = f(scorer, store).await;
        store.set_epoch_deadline(u64::MAX / 2);
        measured.guest = started.elapsed();
        measured.memory_bytes = store.data().memory.high_water as u64;
        let memory_refused = store.data().memory.refused;
        if let Some(snapshot) = &store.data().features {
            let (reads, hits) = snapshot.counts();
            measured.lookups = reads;
            measured.lookup_misses = reads.saturating_sub(hits);
        }
        let result = result.map_err(|e| self.trapped(&e, memory_refused, measured))?;
        let stats = scorer
            .call_stats(&mut *store)
            .await
            .map_err(|e| self.trapped(&e, memory_refused, measured))?;
        measured.instance_predictions = stats.predictions;
        measured.model_parses = stats.model_parses;
        Ok(result)
    }
}

/// What [`LoadedModel::call_many`] answers: one result per call, or the instance's failure.
type ManyResult = Result<Vec<Result<Vec<scoring::Tensor>, ProtocolError>>, ProtocolError>;

/// A guest's answer as the host's tensors, or its error.
fn guest_outputs(
    result: Result<Vec<Tensor>, GuestError>,
    measured: &mut Measured,
) -> Result<Vec<scoring::Tensor>, ProtocolError> {
    result
        .map_err(convert::guest_error)?
        .into_iter()
        .map(host_tensor)
        .collect::<Result<_, _>>()
        .inspect_err(|_| measured.failure = Some(GuestFailure::BadOutput))
}

impl LoadedModel {
    /// The error of a call that trapped, and why: the deadline, the memory cap (the guest
    /// trapped after a growth was refused), its stack, or any other trap.
    fn trapped(
        &self,
        e: &wasmtime::Error,
        memory_refused: bool,
        measured: &mut Measured,
    ) -> ProtocolError {
        let trap = e.downcast_ref::<wasmtime::Trap>();
        let failure = match trap {
            Some(wasmtime::Trap::Interrupt) => GuestFailure::Timeout,
            Some(wasmtime::Trap::StackOverflow) => GuestFailure::StackOverflow,
            _ if memory_refused => GuestFailure::MemoryLimit,
            _ => GuestFailure::Trap,
        };
        measured.failure = Some(failure);
        let name = &self.name;
        match failure {
            GuestFailure::Timeout => {
                ProtocolError::Timeout(format!("model \"{name}\" ran past its deadline"))
            }
            GuestFailure::MemoryLimit => ProtocolError::Internal(format!(
                "model \"{name}\" needed more than its memory limit of {} bytes",
                self.max_memory
            )),
            GuestFailure::StackOverflow => {
                ProtocolError::Internal(format!("model \"{name}\" overflowed its stack"))
            }
            _ => ProtocolError::Internal(format!("model \"{name}\" trapped: {e:#}")),
        }
    }
}

/// One instance of a model kept for many calls ([`LoadedModel::session`]). The guest keeps no
/// state between calls but its counters, so a chunk scored here gets what a fresh instance
/// would give; an instance that traps is dropped and the next call gets a fresh one.
pub struct Session {
    model: Arc<LoadedModel>,
    live: Option<Fresh>,
}

impl Session {
    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Runs the model on tensors, as [`LoadedModel::predict`] does.
    pub async fn predict(
        &mut self,
        inputs: Vec<scoring::Tensor>,
        outputs: &[String],
    ) -> Result<Vec<scoring::Tensor>, ProtocolError> {
        let inputs: Vec<Tensor> = inputs.into_iter().map(Tensor::from).collect();
        let result = self
            .call(async |scorer, store| scorer.call_predict(store, &inputs, outputs).await)
            .await?;
        guest_outputs(result, &mut Measured::default())
    }

    /// Runs the guest's `predict-batch` on raw records, `rows` of them in packed columns: the
    /// rows the spec refuses come back set aside instead of failing the call.
    pub async fn predict_batch(
        &mut self,
        rows: usize,
        columns: &[(String, wafer_features::Packed)],
        outputs: &[String],
    ) -> Result<wafer_protocol::Batch, ProtocolError> {
        let table = convert::table(rows, columns);
        let batch = self
            .call(async |scorer, store| scorer.call_predict_batch(store, &table, outputs).await)
            .await?
            .map_err(convert::guest_error)?;
        let index = |i: u32| i as usize;
        Ok(wafer_protocol::Batch {
            outputs: batch
                .outputs
                .into_iter()
                .map(host_tensor)
                .collect::<Result<_, _>>()?,
            kept: batch.kept.into_iter().map(index).collect(),
            rejected: batch
                .rejected
                .into_iter()
                .map(|r| (index(r.row), r.reason))
                .collect(),
        })
    }

    /// Calls into the live instance (made on first use) under the model's deadline; a trap
    /// drops it.
    async fn call<T>(
        &mut self,
        f: impl AsyncFnOnce(&Scorer, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, ProtocolError> {
        let model = Arc::clone(&self.model);
        if self.live.is_none() {
            let live = model.instances.instantiate().await.map_err(|e| {
                ProtocolError::Internal(format!("instantiating \"{}\": {e:#}", model.name))
            })?;
            self.live = Some(live);
        }
        let Some(Fresh {
            store, instance, ..
        }) = self.live.as_mut()
        else {
            unreachable!("made above");
        };
        store.set_epoch_deadline(model.deadline_ticks);
        let result = f(instance.wafer_inference_scorer(), store).await;
        store.set_epoch_deadline(u64::MAX / 2);
        let memory_refused = store.data().memory.refused;
        result.map_err(|e| {
            self.live = None;
            model.trapped(&e, memory_refused, &mut Measured::default())
        })
    }
}

/// A tensor the component returned, as the host's type.
fn host_tensor(t: Tensor) -> Result<scoring::Tensor, ProtocolError> {
    scoring::Tensor::try_from(t)
        .map_err(|e| ProtocolError::Internal(format!("the component returned a bad tensor: {e}")))
}

/// What one invocation hands the guest.
#[derive(Clone)]
enum Call {
    /// Model-ready tensors, or one tensor per raw field.
    Tensors(Vec<scoring::Tensor>),
    /// A JSON array of records or rows.
    Records(String),
}

#[cfg(test)]
mod tests {
    use super::{GuestCode, has_swap};

    #[test]
    fn guest_code_is_shared_from_eight_models_unless_told() {
        assert!(!GuestCode::Auto.shared(GuestCode::SHARED_FROM - 1));
        assert!(GuestCode::Auto.shared(GuestCode::SHARED_FROM));
        assert!(GuestCode::Shared.shared(1));
        assert!(!GuestCode::PerModel.shared(100));
    }

    #[test]
    fn swap_is_seen_in_proc_swaps() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(!has_swap(header));
        assert!(!has_swap(""));
        assert!(has_swap(&format!(
            "{header}/dev/zram0                              partition\t4194300\t\t0\t\t100\n"
        )));
        assert!(has_swap(&format!(
            "{header}/swapfile                               file\t\t2097148\t\t0\t\t-2\n"
        )));
    }
}
