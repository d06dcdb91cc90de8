//! `wafer build`: a self-contained component per model.
//!
//! The generic guest (`wafer_guest.wasm`, built by cargo for `wasm32-wasip2`) is instantiated
//! once, handed the model's ONNX bytes through its `wizer-initialize-model` export, and
//! snapshotted with Wizer. The result carries the model (parsed and optimized, unless
//! `--no-snapshot`) in its memory image and needs no file at run time, so the same `.wasm`
//! runs under `wafer serve`, `wasmtime serve` and Spin.
//!
//! The wasi-nn flavour ([`Backend::WasiNn`]) is built from `wafer_guest_nn.wasm`, which holds
//! no tract: the host parses the model natively, hands the guest its metadata through
//! `wizer-initialize-graph`, and at run time serves the graph behind `wasi:nn`
//! ([`crate::runtime::nn`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use wafer_features::Spec;
use wafer_protocol::ProtocolError;
use wasmtime::component::{Component, Instance, Linker};
use wasmtime::component::{ComponentNamedList, Lift, Lower, WasmList};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::bindings::Scoring;
use crate::bindings::wafer::inference::types::{ModelMetadata, Tensor};
use crate::runtime::cache::{CompiledCache, FunctionCache};
use crate::runtime::digests::{FileDigests, Sha256Digest};
use crate::runtime::{HostState, PoolLimits};

/// The guest's build-time initializer. It stays exported in the snapshot (Wizer 48 would drop
/// the core export that the component still lifts, since both share this name); there it only
/// answers that a model is already loaded.
const INIT_FUNC: &str = "wizer-initialize-model";

/// The wasi-nn guest's build-time initializer, kept the same way.
const INIT_GRAPH_FUNC: &str = "wizer-initialize-graph";

/// The command that builds the generic guest components: `wafer_guest.wasm`, and
/// `wafer_guest_lookup.wasm` for models whose features look fields up in a key-value store.
pub const GUEST_BUILD_COMMAND: &str =
    "cargo build --profile guest --target wasm32-wasip2 -p wafer-guest -p wafer-guest-lookup";

/// The command that builds the wasi-nn flavour's guests; a cargo invocation of their own, so
/// that the tract guests' features do not bring tract into them.
pub const NN_GUEST_BUILD_COMMAND: &str =
    "cargo build --profile guest --target wasm32-wasip2 -p wafer-guest-nn -p wafer-guest-nn-lookup";

/// The file name of the guest that imports `wasi:keyvalue/store`, beside the plain guest.
const LOOKUP_GUEST: &str = "wafer_guest_lookup.wasm";

/// What runs a model's graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// tract inside the component: self-contained, runs under any WASI 0.2 host.
    #[default]
    Guest,
    /// The host's native backend behind `wasi:nn`; the component keeps the feature pipeline
    /// and the v2 codec (under `wafer serve`).
    WasiNn,
}

impl Backend {
    /// Its name in metrics and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Guest => "guest",
            Backend::WasiNn => "wasi-nn",
        }
    }

    /// The file name of its generic guest, beside the plain guest.
    fn guest_file(self, lookups: bool) -> &'static str {
        match (self, lookups) {
            (Backend::Guest, false) => "wafer_guest.wasm",
            (Backend::Guest, true) => LOOKUP_GUEST,
            (Backend::WasiNn, false) => "wafer_guest_nn.wasm",
            (Backend::WasiNn, true) => "wafer_guest_nn_lookup.wasm",
        }
    }
}

/// How to build components.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The generic guest component.
    pub guest: PathBuf,
    /// The guest for models with online lookups [default: `wafer_guest_lookup.wasm` beside
    /// `guest`, or `$WAFER_GUEST_LOOKUP`].
    pub lookup_guest: Option<PathBuf>,
    /// Snapshot the parsed model (true) or only its bytes (false).
    pub snapshot: bool,
    /// What runs the models' graphs.
    pub backend: Backend,
    /// For the wasi-nn backend: serve every model from the one unbuilt guest, which reads its
    /// model's description from its environment, instead of building a component per model.
    pub shared: bool,
    /// Where the guest's compiled functions are kept ([`FunctionCache::with`]).
    pub functions: Arc<FunctionCache>,
    /// Where the instrumented guest, compiled, is kept for the next process that builds;
    /// `None` compiles it in every process.
    pub cache: Option<CompiledCache>,
}

/// Finds the generic guest: `explicit`, else `$WAFER_GUEST`, else the cargo output beside this
/// executable's target directory, else under `./target`.
pub fn find_guest(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit.or_else(|| std::env::var_os("WAFER_GUEST").map(PathBuf::from)) {
        return Ok(path);
    }
    let relative = Path::new("wasm32-wasip2/guest/wafer_guest.wasm");
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/wafer (or target/<profile>/deps/<test>) → target/
        for dir in exe.ancestors().skip(1).take(3) {
            candidates.push(dir.join(relative));
        }
    }
    candidates.push(Path::new("target").join(relative));
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        format!(
            "the guest component wafer_guest.wasm was not found; build it with `{GUEST_BUILD_COMMAND}` \
             or pass --guest PATH"
        )
    })
}

/// One generic guest, hashed once (or its digest recalled), read only when a model is built
/// from it, instrumented and compiled on first use.
struct Guest {
    path: PathBuf,
    /// sha256 of its file, for every model's build key.
    digest: Sha256Digest,
    /// Its bytes, read when first needed: a repository whose components are all up to date
    /// never reads the guest.
    bytes: OnceLock<Vec<u8>>,
    /// The instrumented guest, compiled on first use: a repository whose components are all
    /// up to date compiles nothing.
    compiled: OnceLock<Component>,
}

impl Guest {
    fn open(path: &Path, digests: &FileDigests) -> anyhow::Result<Guest> {
        let digest = digests
            .sha256(path)
            .with_context(|| format!("reading the guest component {}", path.display()))?;
        Ok(Guest {
            path: path.to_owned(),
            digest,
            bytes: OnceLock::new(),
            compiled: OnceLock::new(),
        })
    }

    /// Its bytes, which must still be those its digest was taken of.
    fn bytes(&self) -> anyhow::Result<&[u8]> {
        if let Some(bytes) = self.bytes.get() {
            return Ok(bytes);
        }
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("reading the guest component {}", self.path.display()))?;
        anyhow::ensure!(
            <Sha256Digest>::from(Sha256::digest(&bytes)) == self.digest,
            "the guest component {} changed while wafer was running; restart it",
            self.path.display()
        );
        Ok(self.bytes.get_or_init(|| bytes))
    }

    /// The instrumented guest, compiled on first use from what `instrumented` returns, or
    /// read from `cache`, where an earlier process left it.
    fn compiled(
        &self,
        engine: &Engine,
        cache: Option<&CompiledCache>,
        instrumented: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Component> {
        if let Some(component) = self.compiled.get() {
            return Ok(component.clone());
        }
        let wasm = instrumented()?;
        let component = match cache {
            Some(cache) => cache
                .load_or_compile(engine, &wasm)
                .map(|(component, outcome)| {
                    tracing::debug!(cache = outcome.as_str(), "instrumented guest compiled");
                    component
                }),
            None => Component::new(engine, &wasm).map_err(anyhow::Error::from),
        }
        .context("compiling the guest")?;
        Ok(self.compiled.get_or_init(|| component).clone())
    }
}

/// Builds model components from the generic guests, which it reads, instruments and compiles
/// once however many models it builds.
pub struct Builder {
    plain: Guest,
    lookup_path: PathBuf,
    /// The lookup guest, read when the first model with lookups is built.
    lookup: OnceLock<Guest>,
    /// The wasi-nn guests without and with lookups, read from `guest_dir` when first needed.
    nn: [OnceLock<Guest>; 2],
    /// The plain guest's folder.
    guest_dir: PathBuf,
    snapshot: bool,
    backend: Backend,
    shared: bool,
    cache: Option<CompiledCache>,
    /// Digests of the guests and models, kept beside the compiled cache.
    digests: Arc<FileDigests>,
    wizer: Wizer,
    wizer_nn: Wizer,
    engine: Engine,
    linker: Linker<HostState>,
}

impl Builder {
    /// A builder for the guests and options in `options`.
    pub fn new(options: &BuildOptions) -> anyhow::Result<Builder> {
        anyhow::ensure!(
            !options.shared || options.backend == Backend::WasiNn,
            "--shared-guest serves models through wasi:nn: it needs --backend wasi-nn"
        );
        let lookup_path = options
            .lookup_guest
            .clone()
            .or_else(|| std::env::var_os("WAFER_GUEST_LOOKUP").map(PathBuf::from))
            .unwrap_or_else(|| options.guest.with_file_name(LOOKUP_GUEST));
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_FUNC).keep_init_func(true);
        let mut wizer_nn = Wizer::new();
        wizer_nn.init_func(INIT_GRAPH_FUNC).keep_init_func(true);
        // The serving engine's code generation (epoch checks included), so the functions
        // compiled here are the ones the models' components reuse.
        let engine = Engine::new(&crate::runtime::engine_config(
            &PoolLimits::default(),
            options.functions.clone(),
        )?)?;
        let mut linker = Linker::new(&engine);
        crate::runtime::add_to_linker(&mut linker)?;
        let digests = options
            .cache
            .as_ref()
            .map_or_else(FileDigests::in_memory, CompiledCache::digests);
        Ok(Builder {
            plain: Guest::open(&options.guest, &digests)?,
            lookup_path,
            lookup: OnceLock::new(),
            nn: [OnceLock::new(), OnceLock::new()],
            guest_dir: options
                .guest
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            snapshot: options.snapshot,
            backend: options.backend,
            shared: options.shared,
            cache: options.cache.clone(),
            digests,
            wizer,
            wizer_nn,
            engine,
            linker,
        })
    }

    /// What runs the graphs of the models this builder builds.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether models are served from the one unbuilt wasi-nn guest, not built one by one.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// The file of the unbuilt wasi-nn guest that serves a model whose spec looks fields up
    /// (`lookups`) or not, when models share it.
    pub fn shared_guest(&self, lookups: bool) -> anyhow::Result<&Path> {
        Ok(&self.guest(lookups)?.path)
    }

    /// The feature spec beside the model in `model_dir`, as text and checked; `None` when
    /// there is none.
    pub fn spec(name: &str, model_dir: &Path) -> anyhow::Result<Option<(String, Spec)>> {
        let spec_path = model_dir.join("features.toml");
        if !spec_path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&spec_path)
            .with_context(|| format!("reading {}", spec_path.display()))?;
        let spec = Spec::parse(&text)
            .with_context(|| format!("in {}", spec_path.display()))
            .with_context(|| format!("building model \"{name}\""))?;
        Ok(Some((text, spec)))
    }

    /// The guest for a model: the lookup guest when its spec looks fields up; for the wasi-nn
    /// backend, the wasi-nn guest beside the plain one.
    fn guest(&self, lookups: bool) -> anyhow::Result<&Guest> {
        if self.backend == Backend::WasiNn {
            let slot = &self.nn[usize::from(lookups)];
            if let Some(guest) = slot.get() {
                return Ok(guest);
            }
            let file = self.backend.guest_file(lookups);
            let guest =
                Guest::open(&self.guest_dir.join(file), &self.digests).with_context(|| {
                    format!(
                        "the wasi-nn backend needs the guest {file}; build it with \
                     `{NN_GUEST_BUILD_COMMAND}`"
                    )
                })?;
            return Ok(slot.get_or_init(|| guest));
        }
        if !lookups {
            return Ok(&self.plain);
        }
        if let Some(guest) = self.lookup.get() {
            return Ok(guest);
        }
        let guest = Guest::open(&self.lookup_path, &self.digests).with_context(|| {
            format!(
                "features.toml looks fields up, which needs the guest {LOOKUP_GUEST}; build it \
                 with `{GUEST_BUILD_COMMAND}`"
            )
        })?;
        Ok(self.lookup.get_or_init(|| guest))
    }

    /// Builds the component of the model in `model_dir` (which holds `model.onnx`) into
    /// `output`, unless `output` is already up to date. Returns whether it built.
    pub async fn build_if_stale(
        &self,
        name: &str,
        model_dir: &Path,
        output: &Path,
    ) -> anyhow::Result<bool> {
        // A feature spec beside the model must be valid before anything is built from it; the
        // component carries it.
        let spec = Builder::spec(name, model_dir)?;
        let lookups = spec.as_ref().is_some_and(|(_, spec)| spec.has_lookups());
        let features = spec.map(|(text, _)| text);
        let guest = self.guest(lookups)?;
        let onnx_path = model_dir.join("model.onnx");
        let onnx_digest = self.digests.sha256(&onnx_path)?;
        let key = build_key(
            &guest.digest,
            &onnx_digest,
            features.as_deref(),
            self.snapshot,
        );
        // (The guest's digest tells the flavours apart.)
        let key_path = output.with_extension("wasm.key");
        if output.is_file() && std::fs::read_to_string(&key_path).ok().as_deref() == Some(&key) {
            return Ok(false);
        }
        let onnx = std::fs::read(&onnx_path)
            .with_context(|| format!("reading {}", onnx_path.display()))?;
        let wasm = self
            .build_from(guest, name, &onnx, &onnx_digest, features.as_deref())
            .await
            .with_context(|| format!("building model \"{name}\" from {}", onnx_path.display()))?;
        if let Some(dir) = output.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // Write to a temporary file and rename, so a reader never sees half a component.
        let tmp = output.with_extension(format!("wasm.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &wasm).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
        std::fs::write(&key_path, key)
            .with_context(|| format!("writing {}", key_path.display()))?;
        tracing::info!(model = name, bytes = wasm.len(), output = %output.display(), "component built");
        Ok(true)
    }

    /// Instantiates the guest, loads the model (and its feature spec, `features.toml` text)
    /// into it, and snapshots the instance.
    pub async fn build(
        &self,
        name: &str,
        onnx: &[u8],
        features: Option<&str>,
    ) -> anyhow::Result<Vec<u8>> {
        let lookups = match features {
            Some(text) => wafer_features::Spec::parse(text)?.has_lookups(),
            None => false,
        };
        let onnx_digest = Sha256::digest(onnx).into();
        self.build_from(self.guest(lookups)?, name, onnx, &onnx_digest, features)
            .await
    }

    async fn build_from(
        &self,
        guest: &Guest,
        name: &str,
        onnx: &[u8],
        onnx_digest: &Sha256Digest,
        features: Option<&str>,
    ) -> anyhow::Result<Vec<u8>> {
        let wizer = match self.backend {
            Backend::Guest => &self.wizer,
            Backend::WasiNn => &self.wizer_nn,
        };
        let (cx, instrumented) = wizer.instrument_component(guest.bytes()?)?;
        let component = guest.compiled(&self.engine, self.cache.as_ref(), || Ok(instrumented))?;
        // Whatever randomness the initializer draws (a hash map's keys) is frozen into the
        // snapshot; drawing it from the build's inputs makes the same inputs give the same
        // bytes, so a rebuild hits the compiled cache and a build can be reproduced.
        let seed = Sha256::digest(build_key(
            &guest.digest,
            onnx_digest,
            features,
            self.snapshot,
        ));
        let state = HostState::deterministic(seed.into());
        let (mut store, instance) = match self.backend {
            Backend::Guest => {
                self.initialized(state, &component, name, onnx, features, self.snapshot)
                    .await?
            }
            Backend::WasiNn => {
                // The model is parsed natively, for the metadata the guest is initialized
                // with; the graph itself stays in the host.
                let model = wafer_scoring::Model::load(name, onnx)?;
                let metadata = ModelMetadata::from(model.metadata());
                let params = (name, metadata, features);
                self.initialized_by(state, &component, INIT_GRAPH_FUNC, params)
                    .await?
            }
        };
        let mut state = Initialized::new(&mut store, instance);
        let snapshot = wizer.snapshot_component(&cx, &mut state).await?;
        state.finish(snapshot)
    }

    /// A fresh instance of `component` (the generic guest) holding the model `onnx`.
    async fn initialized(
        &self,
        state: HostState,
        component: &Component,
        name: &str,
        onnx: &[u8],
        features: Option<&str>,
        parse: bool,
    ) -> anyhow::Result<(Store<HostState>, Instance)> {
        self.initialized_by(state, component, INIT_FUNC, (name, onnx, features, parse))
            .await
    }

    /// A fresh instance of `component` whose build-time initializer `init` answered `params`
    /// with success.
    async fn initialized_by<P>(
        &self,
        state: HostState,
        component: &Component,
        init: &str,
        params: P,
    ) -> anyhow::Result<(Store<HostState>, Instance)>
    where
        P: ComponentNamedList + Lower + Send + Sync,
    {
        let mut store = Store::new(&self.engine, state);
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.linker.instantiate_async(&mut store, component).await?;
        let func = instance
            .get_typed_func::<P, (Result<(), String>,)>(&mut store, init)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "the guest component has no `{init}` export; is it the generic guest of \
                     this backend?"
                )
            })?;
        let (loaded,) = func.call_async(&mut store, params).await?;
        if let Err(e) = loaded {
            bail!("{e}");
        }
        Ok((store, instance))
    }

    /// Runs `onnx` on `inputs` in a fresh instance of the plain guest that loads the model at
    /// run time, with no component built: for trying many models in wasm at once (the ONNX node
    /// tests), where a snapshot per model would cost more than it tells. The outer error is a
    /// model that does not load; the inner one what `predict` answered.
    pub async fn predict_unbuilt(
        &self,
        name: &str,
        onnx: &[u8],
        inputs: Vec<wafer_scoring::Tensor>,
    ) -> anyhow::Result<Result<Vec<wafer_scoring::Tensor>, ProtocolError>> {
        let component = self.plain.compiled(&self.engine, self.cache.as_ref(), || {
            Ok(self.wizer.instrument_component(self.plain.bytes()?)?.1)
        })?;
        let (mut store, instance) = self
            .initialized(HostState::new(), &component, name, onnx, None, true)
            .await?;
        let scoring = Scoring::new(&mut store, &instance)?;
        let inputs: Vec<Tensor> = inputs.into_iter().map(Tensor::from).collect();
        let outputs = scoring
            .wafer_inference_scorer()
            .call_predict(&mut store, &inputs, &[])
            .await?;
        Ok(outputs
            .map_err(crate::runtime::convert::guest_error)
            .and_then(|outputs| {
                outputs
                    .into_iter()
                    .map(|t| {
                        wafer_scoring::Tensor::try_from(t).map_err(|e| {
                            ProtocolError::Internal(format!("the guest returned a bad tensor: {e}"))
                        })
                    })
                    .collect()
            }))
    }
}

/// What a built component depends on: the guest, the model, the options and this version.
/// (Each by its sha256, the features' text excepted.)
fn build_key(
    guest: &Sha256Digest,
    onnx: &Sha256Digest,
    features: Option<&str>,
    snapshot: bool,
) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(guest);
    h.update(onnx);
    h.update(Sha256::digest(features.unwrap_or_default()));
    h.update([u8::from(features.is_some()), u8::from(snapshot)]);
    format!("{:x}\n", h.finalize())
}

/// An initialized guest as Wizer reads it: through the accessor functions its instrumentation
/// exported. wasmtime-wizer's own `WasmtimeWizerComponent` does the same, but its `wasmtime`
/// feature turns on wasmtime features the host does not use (GC, threads, the cache).
struct Initialized<'a> {
    store: &'a mut Store<HostState>,
    instance: Instance,
    /// The first accessor call that failed. Wizer's callbacks cannot fail, so they answer a
    /// default value and the build fails after the snapshot, with this reason, instead of
    /// panicking (which would take a server down with one model).
    failure: Option<String>,
}

impl<'a> Initialized<'a> {
    fn new(store: &'a mut Store<HostState>, instance: Instance) -> Initialized<'a> {
        // The accessors hand whole memories to the host, past the 128 MiB a guest may send
        // in one call by default; this store runs only the build's own initializer.
        store.set_hostcall_fuel(usize::MAX);
        Initialized {
            store,
            instance,
            failure: None,
        }
    }

    /// Fails the build if an accessor failed while Wizer read the instance.
    fn finish(self, snapshot: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        match self.failure {
            Some(why) => bail!("reading the initialized guest for its snapshot: {why}"),
            None => Ok(snapshot),
        }
    }

    /// Calls `instance#func`, an accessor Wizer's instrumentation added; a failure is kept in
    /// `failure`, and `T`'s default answered.
    async fn call<R: Lift + Send + Sync + 'static, T: Default>(
        &mut self,
        instance: &str,
        func: &str,
        then: impl FnOnce(&mut Store<HostState>, R) -> T,
    ) -> T {
        if self.failure.is_some() {
            return T::default();
        }
        match self.try_call(instance, func).await {
            Ok(value) => then(&mut *self.store, value),
            Err(why) => {
                self.failure = Some(format!("{instance}#{func}: {why}"));
                T::default()
            }
        }
    }

    async fn try_call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> Result<R, String> {
        let (_, exported) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .ok_or("the instrumentation exports no such instance")?;
        let (_, index) = self
            .instance
            .get_export(&mut *self.store, Some(&exported), func)
            .ok_or("the instrumentation exports no such function")?;
        let typed = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)
            .map_err(|e| e.to_string())?;
        let (value,) = typed
            .call_async(&mut *self.store, ())
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(value)
    }
}

impl ComponentInstanceState for Initialized<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        self.call(instance, func, |store, list: WasmList<u8>| {
            contents(list.as_le_slice(&store));
        })
        .await;
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, |_, value| value).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, |_, value| value).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, |_, value: f32| value.to_bits())
            .await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, |_, value: f64| value.to_bits())
            .await
    }
}
