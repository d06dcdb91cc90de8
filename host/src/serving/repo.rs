//! The model repository: each subfolder holding a model is a model named after it, served as
//! version 1; a subfolder whose numbered folders hold a model each is a model with versions
//! (`models/<name>/<version>/model.onnx`, as Triton lays them out), served by its version
//! policy. A model is a `model.onnx` (with its `features.toml`, if any), built into a
//! component, or a `model.wasm`: a component already built (by `wafer build`, or any component
//! exporting `wafer:inference/scorer`), served as it is. [`Loader`] builds and loads models in
//! parallel, each failing alone.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use wafer_features::Spec;
use wafer_protocol::shared_guest;

use crate::runtime::batching::BatchConfig;
use crate::runtime::build::{Backend, Builder};
use crate::runtime::cache::CacheOutcome;
use crate::runtime::nn::NativeGraph;
use crate::runtime::{LoadedModel, Runtime};

/// The optional file in a model folder that holds its version policy.
pub const POLICY_FILE: &str = "wafer.toml";

/// The ONNX model a folder holds, built into a component.
const ONNX_FILE: &str = "model.onnx";

/// The component a folder holds instead, served as it is.
const COMPONENT_FILE: &str = "model.wasm";

/// Whether `dir` holds a model itself (not in version folders).
fn holds_model(dir: &Path) -> bool {
    dir.join(ONNX_FILE).is_file() || dir.join(COMPONENT_FILE).is_file()
}

/// One version of a model found in the repository.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// The model folder's name.
    pub name: String,
    /// The version: its folder's number, or 1 for a model without version folders.
    pub version: u64,
    /// The folder holding `model.onnx` (and `features.toml`, if any).
    pub dir: PathBuf,
    /// Whether the version has its own folder.
    pub versioned: bool,
}

impl ModelSource {
    /// The key-value stores the model's `features.toml` looks fields up in, sorted.
    pub fn lookup_stores(&self) -> anyhow::Result<Vec<String>> {
        let spec = self.dir.join("features.toml");
        if !spec.is_file() {
            return Ok(vec![]);
        }
        let mut stores: Vec<String> = crate::store::offline::read_spec(&spec)?
            .lookups()
            .into_iter()
            .map(|g| g.store)
            .collect();
        stores.sort();
        stores.dedup();
        Ok(stores)
    }

    /// The model's folder: where its `wafer.toml` is, above its version folders.
    pub fn folder(&self) -> &Path {
        match self.versioned {
            true => self.dir.parent().unwrap_or(&self.dir),
            false => &self.dir,
        }
    }

    /// Where its component is built: `<name>.wasm`, or `<name>.v<version>.wasm`.
    pub fn component_path(&self, build_dir: &Path) -> PathBuf {
        match self.versioned {
            false => build_dir.join(format!("{}.wasm", self.name)),
            true => build_dir.join(format!("{}.v{}.wasm", self.name, self.version)),
        }
    }
}

/// Which versions of a model are served (Triton's `version_policy`), from `wafer.toml`:
/// `version_policy = { latest = 2 }`, `"all"` or `{ specific = [1, 3] }`. The default is the
/// newest version only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The `n` highest-numbered versions.
    Latest(usize),
    /// Every version.
    All,
    /// These versions; each must exist.
    Specific(Vec<u64>),
}

impl VersionPolicy {
    /// The policy a model folder's `wafer.toml` sets, or the default.
    pub fn of(model_dir: &Path) -> anyhow::Result<VersionPolicy> {
        let path = model_dir.join(POLICY_FILE);
        if !path.is_file() {
            return Ok(VersionPolicy::Latest(1));
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        VersionPolicy::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<VersionPolicy> {
        let table: toml::Table = text.parse()?;
        if let Some(key) = table.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
            bail!(
                "unknown key \"{key}\" (expected {})",
                CONFIG_KEYS.join(", ")
            );
        }
        let expected = "expected version_policy = \"all\", { latest = N } or { specific = [..] }";
        let Some(policy) = table.get("version_policy") else {
            return Ok(VersionPolicy::Latest(1));
        };
        if policy.as_str() == Some("all") {
            return Ok(VersionPolicy::All);
        }
        let Some(policy) = policy.as_table().filter(|t| t.len() == 1) else {
            bail!("{expected}");
        };
        if let Some(n) = policy.get("latest") {
            return match n.as_integer() {
                Some(n) if n >= 1 => Ok(VersionPolicy::Latest(n as usize)),
                _ => bail!("latest must be a positive integer"),
            };
        }
        if let Some(list) = policy.get("specific").and_then(|l| l.as_array()) {
            let versions: Option<Vec<u64>> = list
                .iter()
                .map(|v| v.as_integer().and_then(|v| u64::try_from(v).ok()))
                .collect();
            return match versions {
                Some(v) if !v.is_empty() => Ok(VersionPolicy::Specific(v)),
                _ => bail!("specific must list version numbers"),
            };
        }
        bail!("{expected}")
    }

    /// The versions to serve of those on disk (sorted ascending).
    fn select(&self, on_disk: &[u64]) -> anyhow::Result<Vec<u64>> {
        Ok(match self {
            VersionPolicy::Latest(n) => on_disk[on_disk.len().saturating_sub(*n)..].to_vec(),
            VersionPolicy::All => on_disk.to_vec(),
            VersionPolicy::Specific(wanted) => {
                if let Some(v) = wanted.iter().find(|v| !on_disk.contains(v)) {
                    bail!("the version policy names version {v}, which has no folder");
                }
                let mut wanted = wanted.clone();
                wanted.sort_unstable();
                wanted.dedup();
                wanted
            }
        })
    }
}

/// The keys a model folder's `wafer.toml` may hold.
const CONFIG_KEYS: [&str; 4] = ["version_policy", "shadow", "canary", "dynamic_batching"];

/// Where a model sends traffic besides itself, from its `wafer.toml`:
/// `shadow = "m"` mirrors every request to model `m` off the request path (the client's answer
/// stays this model's); `canary = { model = "m", percent = 10, sticky = "user_id" }` answers that
/// share of requests with model `m`, chosen by a hash of the sticky field when the request has
/// it (one key, one model), else by an even count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    /// The model every request is mirrored to.
    pub shadow: Option<String>,
    /// The model a share of requests goes to.
    pub canary: Option<Canary>,
}

/// A canary: a model answering a share of another's requests.
#[derive(Clone, Debug, PartialEq)]
pub struct Canary {
    /// The canary model.
    pub model: String,
    /// The share of requests, in percent.
    pub percent: f64,
    /// The record field (or input tensor) whose value picks the model.
    pub sticky: Option<String>,
}

impl Routing {
    /// The routing a model folder's `wafer.toml` sets (none without one).
    pub fn of(model_dir: &Path) -> anyhow::Result<Routing> {
        let path = model_dir.join(POLICY_FILE);
        if !path.is_file() {
            return Ok(Routing::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Routing::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Routing> {
        let table: toml::Table = text.parse()?;
        let shadow = match table.get("shadow") {
            None => None,
            Some(toml::Value::String(m)) if valid_name(m) => Some(m.clone()),
            Some(_) => bail!("shadow must name a model"),
        };
        let canary = match table.get("canary") {
            None => None,
            Some(toml::Value::Table(t)) => {
                if let Some(key) = t
                    .keys()
                    .find(|k| !["model", "percent", "sticky"].contains(&k.as_str()))
                {
                    bail!("canary: unknown key \"{key}\" (expected model, percent, sticky)");
                }
                let model = t
                    .get("model")
                    .and_then(|m| m.as_str())
                    .filter(|m| valid_name(m))
                    .context("canary.model must name a model")?
                    .to_owned();
                let percent = t
                    .get("percent")
                    .and_then(|p| p.as_float().or_else(|| p.as_integer().map(|i| i as f64)))
                    .filter(|p| (0.0..=100.0).contains(p))
                    .context("canary.percent must be a number from 0 to 100")?;
                let sticky = match t.get("sticky") {
                    None => None,
                    Some(toml::Value::String(f)) => Some(f.clone()),
                    Some(_) => bail!("canary.sticky must name a field"),
                };
                Some(Canary {
                    model,
                    percent,
                    sticky,
                })
            }
            Some(_) => {
                bail!("expected canary = {{ model = \"m\", percent = 10, sticky = \"field\" }}")
            }
        };
        Ok(Routing { shadow, canary })
    }
}

/// The dynamic batching a model folder's `wafer.toml` turns on with its `[dynamic_batching]`
/// table (none without one).
pub fn batching(model_dir: &Path) -> anyhow::Result<Option<BatchConfig>> {
    let path = model_dir.join(POLICY_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("in {}", path.display()))?;
    match table.get("dynamic_batching") {
        None => Ok(None),
        Some(toml::Value::Table(t)) => BatchConfig::parse(t)
            .map(Some)
            .with_context(|| format!("in {}", path.display())),
        Some(_) => bail!(
            "in {}: dynamic_batching must be a table ([dynamic_batching])",
            path.display()
        ),
    }
}

/// Whether `dir` looks like a model folder: a model, or numbered folders holding one.
pub fn is_model_folder(dir: &Path) -> bool {
    holds_model(dir) || !version_folders(dir).is_empty()
}

/// The numbered subfolders of `dir` holding a model, ascending.
fn version_folders(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut versions: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter(|e| holds_model(&e.path()))
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .collect();
    versions.sort_unstable();
    versions
}

/// The model folders of `repo`, by name, sorted. A folder whose name cannot be routed is
/// skipped, with an error in the log.
pub fn model_folders(repo: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let entries = std::fs::read_dir(repo)
        .with_context(|| format!("reading the model repository {}", repo.display()))?;
    let mut folders = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if !is_model_folder(&dir) {
            continue;
        }
        match folder_name(&dir) {
            Ok(name) => folders.push((name, dir)),
            Err(e) => {
                tracing::error!(folder = %dir.display(), error = %format!("{e:#}"), "skipping model folder")
            }
        }
    }
    folders.sort();
    Ok(folders)
}

/// Lists the model versions of `repo` to serve, sorted by name and version. A model whose
/// folder cannot be read (a bad version policy) is skipped with an error in the log; its
/// load reports the reason.
pub fn scan(repo: &Path) -> anyhow::Result<Vec<ModelSource>> {
    let folders = model_folders(repo)?;
    if folders.is_empty() {
        bail!(
            "no model found in {}: expected subfolders holding model.onnx (or model.wasm), \
             or numbered version folders holding one",
            repo.display()
        );
    }
    let mut models = Vec::new();
    for (_, dir) in folders {
        match versions(&dir) {
            Ok(versions) => models.extend(versions),
            Err(e) => {
                tracing::error!(folder = %dir.display(), error = %format!("{e:#}"), "skipping model folder")
            }
        }
    }
    Ok(models)
}

/// The versions of the model in `dir` that its policy serves, ascending.
pub fn versions(dir: &Path) -> anyhow::Result<Vec<ModelSource>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no model folder {}", dir.display()))?;
    let name = folder_name(&dir)?;
    let on_disk = version_folders(&dir);
    if holds_model(&dir) {
        if !on_disk.is_empty() {
            bail!(
                "{} holds both a model and version folders: keep one layout",
                dir.display()
            );
        }
        return Ok(vec![ModelSource {
            name,
            version: 1,
            dir,
            versioned: false,
        }]);
    }
    if on_disk.is_empty() {
        bail!(
            "{} holds no model.onnx or model.wasm, and no numbered version folder holding one",
            dir.display()
        );
    }
    let policy = VersionPolicy::of(&dir)?;
    Ok(policy
        .select(&on_disk)?
        .into_iter()
        .map(|version| ModelSource {
            name: name.clone(),
            version,
            dir: dir.join(version.to_string()),
            versioned: true,
        })
        .collect())
}

/// The model a folder holds, named after it: its newest version served.
pub fn source(dir: &Path) -> anyhow::Result<ModelSource> {
    versions(dir)?
        .pop()
        .with_context(|| format!("{}: the version policy serves no version", dir.display()))
}

/// A model folder's name, if it can be routed.
fn folder_name(dir: &Path) -> anyhow::Result<String> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_name(n))
        .map(str::to_owned)
        .with_context(|| format!("{} is not a valid model name", dir.display()))
}

/// Opens one model, as `wafer predict` and `wafer batch` take it: a model folder (built when
/// stale, by `builder`, into `build_dir`) or a component `wafer build` wrote. The feature
/// database is `db` when named; otherwise the default one, opened when the folder's model
/// looks fields up, or, for a component, when it exists.
pub async fn open(
    path: &Path,
    mut runtime: Runtime,
    builder: impl FnOnce() -> anyhow::Result<Builder>,
    build_dir: PathBuf,
    db: Option<&Path>,
) -> anyhow::Result<LoadedModel> {
    let default_db = Path::new(crate::store::DEFAULT_DB);
    if path.is_dir() {
        let source = source(path)?;
        let looks_up = !source.lookup_stores()?.is_empty();
        if let Some(db) = db.or(looks_up.then_some(default_db)) {
            runtime = runtime.with_features(crate::store::FeatureStore::open(db)?);
        }
        let loader = Loader {
            builder: builder()?,
            runtime,
            build_dir,
        };
        return loader.load(&source).await;
    }
    // A built component may look fields up: read the default database if it exists.
    if let Some(db) = db.or(default_db.is_file().then_some(default_db)) {
        runtime = runtime.with_features(crate::store::FeatureStore::open(db)?);
    }
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    runtime.load_file_with_graph(name, path, None).await
}

/// Builds components (when stale) and loads them, for a whole repository at once.
pub struct Loader {
    /// Builds the components.
    pub builder: Builder,
    /// Compiles and loads them.
    pub runtime: Runtime,
    /// Where built components go: `<build_dir>/<name>.wasm`.
    pub build_dir: PathBuf,
}

impl Loader {
    /// Builds `source`'s component if it is missing or stale, and returns its file and whether
    /// it was built; a `model.wasm` is taken as it is.
    pub async fn build(&self, source: &ModelSource) -> anyhow::Result<(PathBuf, bool)> {
        if !source.dir.join(ONNX_FILE).is_file() {
            return Ok((source.dir.join(COMPONENT_FILE), false));
        }
        let output = source.component_path(&self.build_dir);
        let built = self
            .builder
            .build_if_stale(&source.name, &source.dir, &output)
            .await?;
        Ok((output, built))
    }

    /// Builds and loads one model version; for the wasi-nn backend, with its graph parsed
    /// natively from the folder's `model.onnx`.
    pub async fn load(&self, source: &ModelSource) -> anyhow::Result<LoadedModel> {
        let batching = batching(source.folder())?;
        if self.shares_guest(source) {
            let spec = Builder::spec(&source.name, &source.dir)?.map(|(_, spec)| spec);
            let guest = self
                .builder
                .shared_guest(spec.as_ref().is_some_and(Spec::has_lookups))?;
            let graph = self.graph(source)?;
            let mut metadata = graph.model().metadata().clone();
            metadata.name.clone_from(&source.name);
            let environment = shared_guest::environment(&metadata, spec.as_ref());
            let model = self
                .runtime
                .load_shared(&source.name, guest, graph, environment)
                .await?;
            return Ok(model.with_version(source.version).with_batching(batching));
        }
        let (component, built) = self.build(source).await?;
        let graph = match self.builder.backend() {
            Backend::WasiNn if source.dir.join(ONNX_FILE).is_file() => Some(self.graph(source)?),
            _ => None,
        };
        let model = self
            .runtime
            .load_file_with_graph(&source.name, &component, graph)
            .await?;
        if built || model.cache() != CacheOutcome::Hit {
            crate::runtime::release_free_memory();
        }
        Ok(model.with_version(source.version).with_batching(batching))
    }

    /// Whether the unbuilt wasi-nn guest serves `source`: models share it
    /// ([`Builder::shared`]), and `source` has a `model.onnx` to run behind `wasi:nn`.
    fn shares_guest(&self, source: &ModelSource) -> bool {
        self.builder.shared() && source.dir.join(ONNX_FILE).is_file()
    }

    /// The graph of `source`'s `model.onnx`, parsed natively, for the wasi-nn backend.
    fn graph(&self, source: &ModelSource) -> anyhow::Result<NativeGraph> {
        let onnx = source.dir.join(ONNX_FILE);
        let bytes = std::fs::read(&onnx).with_context(|| format!("reading {}", onnx.display()))?;
        NativeGraph::load(&source.name, &bytes)
            .with_context(|| format!("loading the graph of model \"{}\"", source.name))
    }

    /// Builds and compiles one model into the compiled cache, without loading it; when models
    /// share the wasi-nn guest, compiles that.
    pub async fn precompile(&self, source: &ModelSource) -> anyhow::Result<CacheOutcome> {
        if self.shares_guest(source) {
            let spec = Builder::spec(&source.name, &source.dir)?;
            let lookups = spec.is_some_and(|(_, spec)| spec.has_lookups());
            return self
                .runtime
                .precompile_file(self.builder.shared_guest(lookups)?);
        }
        let (path, _) = self.build(source).await?;
        self.runtime.precompile_file(&path)
    }

    /// Loads every model in parallel (as many at once as there are cores), each failing
    /// alone: the results come back in `sources`' order, beside each source.
    pub async fn load_all(
        self: &Arc<Self>,
        sources: Vec<ModelSource>,
    ) -> Vec<(ModelSource, anyhow::Result<LoadedModel>)> {
        in_parallel(sources, |source| {
            let loader = Arc::clone(self);
            async move { loader.load(&source).await }
        })
        .await
    }

    /// Fills the compiled cache for every model in parallel, like [`Loader::load_all`].
    pub async fn precompile_all(
        self: &Arc<Self>,
        sources: Vec<ModelSource>,
    ) -> Vec<(ModelSource, anyhow::Result<CacheOutcome>)> {
        in_parallel(sources, |source| {
            let loader = Arc::clone(self);
            async move { loader.precompile(&source).await }
        })
        .await
    }
}

/// Runs `task` on every item on the async runtime's worker threads, as many at once as there
/// are cores (building and compiling are CPU-bound), and returns each item with its result, in order.
async fn in_parallel<I, T, F, Fut>(items: Vec<I>, task: F) -> Vec<(I, anyhow::Result<T>)>
where
    I: Clone,
    F: Fn(I) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let cores = crate::cores();
    let permits = Arc::new(tokio::sync::Semaphore::new(cores));
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| {
            let work = task(item.clone());
            let permits = Arc::clone(&permits);
            let handle = tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                work.await
            });
            (item, handle)
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for (item, handle) in handles {
        // A task that panics fails its own item, never the others or the process.
        let result = handle.await.unwrap_or_else(|e| {
            let why = match e.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_owned()),
                Err(e) => e.to_string(),
            };
            Err(anyhow::anyhow!("panicked: {why}"))
        });
        results.push((item, result));
    }
    results
}

/// Model names appear in URLs and name folders: letters, digits, `-`, `_` and `.`, not
/// starting with `.` (so never `..`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_fails_its_own_item_only() {
        let results = in_parallel(vec![1, 2, 3], |i| async move {
            assert_ne!(i, 2, "two is refused");
            Ok(i * 10)
        })
        .await;
        let items: Vec<i32> = results.iter().map(|(i, _)| *i).collect();
        assert_eq!(items, [1, 2, 3]);
        assert_eq!(results[0].1.as_ref().ok(), Some(&10));
        let failed = results[1].1.as_ref().expect_err("panicked").to_string();
        assert!(
            failed.contains("panicked: ") && failed.contains("two is refused"),
            "{failed}"
        );
        assert_eq!(results[2].1.as_ref().ok(), Some(&30));
    }

    #[test]
    fn names_are_url_safe() {
        assert!(valid_name("iris"));
        assert!(valid_name("credit-v2.1"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn version_policies() {
        let parse = VersionPolicy::parse;
        assert_eq!(parse("").unwrap(), VersionPolicy::Latest(1));
        assert_eq!(
            parse("version_policy = \"all\"").unwrap(),
            VersionPolicy::All
        );
        assert_eq!(
            parse("version_policy = { latest = 2 }").unwrap(),
            VersionPolicy::Latest(2)
        );
        assert_eq!(
            parse("version_policy = { specific = [3, 1] }").unwrap(),
            VersionPolicy::Specific(vec![3, 1])
        );
        for bad in [
            "version_policy = { latest = 0 }",
            "version_policy = \"newest\"",
            "version_policy = { specific = [] }",
            "version_policy = { latest = 1, all = true }",
            "versions = 2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Routing::parse(
                "shadow = \"b\"\ncanary = { model = \"c\", percent = 10, sticky = \"user_id\" }"
            )
            .unwrap(),
            Routing {
                shadow: Some("b".into()),
                canary: Some(Canary {
                    model: "c".into(),
                    percent: 10.0,
                    sticky: Some("user_id".into())
                })
            }
        );
        for bad in [
            "shadow = 3",
            "shadow = \"../x\"",
            "canary = { model = \"c\", percent = 140 }",
            "canary = { model = \"c\" }",
            "canary = { model = \"c\", percent = 5, weight = 1 }",
        ] {
            assert!(Routing::parse(bad).is_err(), "{bad}");
        }
        let on_disk = [1, 2, 5];
        assert_eq!(VersionPolicy::Latest(2).select(&on_disk).unwrap(), [2, 5]);
        assert_eq!(
            VersionPolicy::Latest(9).select(&on_disk).unwrap(),
            [1, 2, 5]
        );
        assert_eq!(VersionPolicy::All.select(&on_disk).unwrap(), [1, 2, 5]);
        assert_eq!(
            VersionPolicy::Specific(vec![5, 1])
                .select(&on_disk)
                .unwrap(),
            [1, 5]
        );
        assert!(VersionPolicy::Specific(vec![3]).select(&on_disk).is_err());
    }
}
