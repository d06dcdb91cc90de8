//! The model repository: each subfolder holding a `model.onnx` is a model named after it.
//! [`Loader`] builds and loads a repository's models in parallel, each failing alone.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::runtime::build::Builder;
use crate::runtime::cache::CacheOutcome;
use crate::runtime::{LoadedModel, Runtime};

/// A model found in the repository.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// The folder's name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
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
}

/// Lists the models of `repo`, sorted by name.
pub fn scan(repo: &Path) -> anyhow::Result<Vec<ModelSource>> {
    let entries = std::fs::read_dir(repo)
        .with_context(|| format!("reading the model repository {}", repo.display()))?;
    let mut models = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if !dir.join("model.onnx").is_file() {
            continue;
        }
        // A folder whose name cannot be routed is skipped alone, like any broken model.
        match source(&dir) {
            Ok(model) => models.push(model),
            Err(e) => {
                tracing::error!(folder = %dir.display(), error = %format!("{e:#}"), "skipping model folder")
            }
        }
    }
    if models.is_empty() {
        bail!(
            "no model found in {}: expected subfolders holding model.onnx",
            repo.display()
        );
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}

/// The model a folder holds, named after it.
pub fn source(dir: &Path) -> anyhow::Result<ModelSource> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no model folder {}", dir.display()))?;
    if !dir.join("model.onnx").is_file() {
        bail!("{} holds no model.onnx", dir.display());
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_name(n))
        .with_context(|| format!("{} is not a valid model name", dir.display()))?
        .to_owned();
    Ok(ModelSource { name, dir })
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
    let wasm =
        std::fs::read(path).with_context(|| format!("reading the component {}", path.display()))?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    runtime.load(name, &wasm).await
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
    /// Builds `source`'s component if it is missing or stale, and returns its bytes.
    pub async fn build(&self, source: &ModelSource) -> anyhow::Result<Vec<u8>> {
        let output = self.build_dir.join(format!("{}.wasm", source.name));
        self.builder
            .build_if_stale(&source.name, &source.dir, &output)
            .await?;
        std::fs::read(&output).with_context(|| format!("reading {}", output.display()))
    }

    /// Builds and loads one model.
    pub async fn load(&self, source: &ModelSource) -> anyhow::Result<LoadedModel> {
        let wasm = self.build(source).await?;
        self.runtime.load(&source.name, &wasm).await
    }

    /// Builds and compiles one model into the compiled cache, without loading it.
    pub async fn precompile(&self, source: &ModelSource) -> anyhow::Result<CacheOutcome> {
        let wasm = self.build(source).await?;
        self.runtime.precompile(&wasm)
    }

    /// Loads every model in parallel (as many at once as there are cores), each failing
    /// alone: the results come back in `sources`' order, beside each model's name.
    pub async fn load_all(
        self: &Arc<Self>,
        sources: Vec<ModelSource>,
    ) -> Vec<(String, anyhow::Result<LoadedModel>)> {
        in_parallel(sources, |source| {
            let loader = Arc::clone(self);
            async move {
                let loaded = loader.load(&source).await;
                (source.name, loaded)
            }
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
            async move {
                let outcome = loader.precompile(&source).await;
                (source, outcome)
            }
        })
        .await
    }
}

/// Runs `task` on every item on the async runtime's worker threads, as many at once as there
/// are cores (building and compiling are CPU-bound), and returns the results in order.
async fn in_parallel<I, T, F, Fut>(items: Vec<I>, task: F) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let permits = Arc::new(tokio::sync::Semaphore::new(cores));
    let handles: Vec<_> = items
        .into_iter()
        .map(|item| {
            let work = task(item);
            let permits = Arc::clone(&permits);
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                work.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(result) => results.push(result),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    results
}

/// Model names appear in URLs: letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert!(valid_name("iris"));
        assert!(valid_name("credit-v2.1"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a/b"));
    }
}
