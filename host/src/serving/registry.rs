//! The models being served, by name and version, and how they change while serving.
//!
//! Each model is an immutable [`Model`] behind an `Arc`: a request takes the `Arc` of the
//! version it asked for and keeps it until it has answered, so a swap never changes a request
//! in flight. An update builds, compiles and instantiates every new version first, then swaps
//! the whole model in one step; a version that fails to build or load is refused, with its
//! reason kept for the index and the log, and the version it would have replaced keeps serving.
//! Updates come from the repository API (`load`, `unload`) and from `--watch`, one at a time.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use wafer_protocol::ProtocolError;

use crate::monitoring::Metrics;
use crate::runtime::LoadedModel;
use crate::serving::repo::{self, Loader};

/// One version of a model: loaded, or why it could not be.
#[derive(Clone)]
pub enum Version {
    /// Compiled and ready to instantiate.
    Ready(Arc<LoadedModel>),
    /// Could not be built or loaded, and no earlier load of it serves.
    Unavailable(String),
}

/// A model and the versions its policy serves.
#[derive(Clone, Default)]
pub struct Model {
    /// The served versions, by number.
    pub versions: BTreeMap<u64, Version>,
    /// Why the last update of this model was refused (all or in part), if it was. The
    /// versions above still serve.
    pub refused: Option<String>,
    /// Unloaded through the repository API: nothing serves until it is loaded again.
    pub unloaded: bool,
    /// Where it sends traffic besides itself: shadow and canary.
    pub routing: repo::Routing,
}

impl Model {
    /// The newest ready version.
    fn newest(&self) -> Option<&Arc<LoadedModel>> {
        self.versions.values().rev().find_map(|v| match v {
            Version::Ready(m) => Some(m),
            Version::Unavailable(_) => None,
        })
    }

    /// Why nothing serves, when nothing does.
    fn unavailable(&self) -> Option<String> {
        if self.unloaded {
            return Some("unloaded".to_owned());
        }
        if self.newest().is_some() {
            return None;
        }
        let reason = self.versions.values().rev().find_map(|v| match v {
            Version::Unavailable(reason) => Some(reason.clone()),
            Version::Ready(_) => None,
        });
        Some(
            reason
                .or_else(|| self.refused.clone())
                .unwrap_or_else(|| "no version to serve".to_owned()),
        )
    }

    /// The numbers of the ready versions, ascending.
    pub fn ready_versions(&self) -> Vec<u64> {
        self.versions
            .iter()
            .filter(|(_, v)| matches!(v, Version::Ready(_)))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// Every model of the repository, and what updates them.
pub struct Registry {
    repo: PathBuf,
    loader: Arc<Loader>,
    metrics: Arc<Metrics>,
    models: RwLock<BTreeMap<String, Arc<Model>>>,
    /// One update at a time: two loads of one model would build into the same file.
    updates: tokio::sync::Mutex<()>,
}

impl Registry {
    /// The runtime the models run in.
    pub fn runtime(&self) -> &crate::runtime::Runtime {
        &self.loader.runtime
    }

    /// A registry of `repo`'s models, every one loaded (in parallel, each failing alone).
    pub async fn open(repo: PathBuf, loader: Arc<Loader>, metrics: Arc<Metrics>) -> Registry {
        let registry = Registry {
            repo,
            loader,
            metrics,
            models: RwLock::new(BTreeMap::new()),
            updates: tokio::sync::Mutex::new(()),
        };
        let folders = repo::model_folders(&registry.repo).unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot read the model repository");
            Vec::new()
        });
        let mut sources = Vec::new();
        let mut models = BTreeMap::new();
        for (name, dir) in folders {
            match repo::versions(&dir).and_then(|v| Ok((v, repo::Routing::of(&dir)?))) {
                Ok((versions, routing)) => {
                    sources.extend(versions);
                    models.insert(
                        name,
                        Model {
                            routing,
                            ..Model::default()
                        },
                    );
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(model = name, reason, "model unavailable");
                    models.insert(
                        name,
                        Model {
                            refused: Some(reason),
                            ..Model::default()
                        },
                    );
                }
            }
        }
        for (source, loaded) in registry.loader.load_all(sources).await {
            let version = match loaded {
                Ok(model) => Version::Ready(Arc::new(model)),
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::error!(
                        model = source.name,
                        version = source.version,
                        reason,
                        "model unavailable; serving the others"
                    );
                    Version::Unavailable(reason)
                }
            };
            registry.record_load(&source.name, source.version, &version);
            let model: &mut Model = models.entry(source.name).or_default();
            model.versions.insert(source.version, version);
        }
        let models = models.into_iter().map(|(n, m)| (n, Arc::new(m))).collect();
        *registry.models.write().unwrap_or_else(|e| e.into_inner()) = models;
        registry
    }

    /// The model folder of the repository named `name`.
    fn folder(&self, name: &str) -> PathBuf {
        self.repo.join(name)
    }

    /// The repository's folder.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// Every model, by name.
    pub fn models(&self) -> BTreeMap<String, Arc<Model>> {
        self.models
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where `name` sends traffic besides itself.
    pub fn routing(&self, name: &str) -> repo::Routing {
        self.get(name)
            .map(|m| m.routing.clone())
            .unwrap_or_default()
    }

    /// One model.
    fn get(&self, name: &str) -> Option<Arc<Model>> {
        let models = self.models.read().unwrap_or_else(|e| e.into_inner());
        models.get(name).cloned()
    }

    /// The version of `name` a request asks for: the one its path names, or the newest ready
    /// one. 404 when there is no such model or version, 503 with the reason when it cannot
    /// serve.
    pub fn resolve(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, ProtocolError> {
        let model = self
            .get(name)
            .ok_or_else(|| ProtocolError::ModelNotFound(name.to_owned()))?;
        let unavailable = |reason: String| ProtocolError::ModelUnavailable {
            model: name.to_owned(),
            reason,
        };
        if let Some(reason) = model.unloaded.then(|| "unloaded".to_owned()) {
            return Err(unavailable(reason));
        }
        let Some(version) = version else {
            return match model.newest() {
                Some(m) => Ok(Arc::clone(m)),
                None => Err(unavailable(model.unavailable().unwrap_or_default())),
            };
        };
        let not_found = || ProtocolError::ModelNotFound(format!("{name}\" version \"{version}"));
        let number: u64 = version.parse().map_err(|_| not_found())?;
        match model.versions.get(&number) {
            Some(Version::Ready(m)) => Ok(Arc::clone(m)),
            Some(Version::Unavailable(reason)) => Err(unavailable(reason.clone())),
            None => Err(not_found()),
        }
    }

    /// Whether every model serves every version its policy names (unloaded models aside).
    pub fn all_ready(&self) -> bool {
        self.models().values().all(|m| {
            m.unloaded
                || (m.unavailable().is_none()
                    && m.versions.values().all(|v| matches!(v, Version::Ready(_))))
        })
    }

    /// `/v2/models`: each model with its ready versions, or why it cannot serve.
    pub fn list(&self) -> serde_json::Value {
        let models = self.models();
        let entries: Vec<(String, Vec<String>, Option<String>)> = models
            .iter()
            .map(|(name, m)| {
                let versions = m.ready_versions().iter().map(u64::to_string).collect();
                (name.clone(), versions, m.unavailable())
            })
            .collect();
        wafer_protocol::model_list(
            entries
                .iter()
                .map(|(n, v, r)| (n.as_str(), v.clone(), r.as_deref())),
        )
    }

    /// Triton's repository index: one entry per model version (`name`, `version`, `state`
    /// `READY` or `UNAVAILABLE`, and `reason`), and a model that has none, or was unloaded,
    /// as one entry without a version. A refused update shows as the reason beside the
    /// versions that still serve.
    pub fn index(&self) -> serde_json::Value {
        let mut entries = Vec::new();
        for (name, model) in self.models() {
            let reason = model.refused.as_deref();
            if model.unloaded || model.versions.is_empty() {
                let reason = if model.unloaded {
                    "unloaded"
                } else {
                    reason.unwrap_or("no version to serve")
                };
                entries.push(serde_json::json!({
                    "name": name, "state": "UNAVAILABLE", "reason": reason
                }));
                continue;
            }
            for (number, version) in &model.versions {
                entries.push(match version {
                    Version::Ready(_) => serde_json::json!({
                        "name": name, "version": number.to_string(), "state": "READY",
                        "reason": reason.unwrap_or(""),
                    }),
                    Version::Unavailable(why) => serde_json::json!({
                        "name": name, "version": number.to_string(), "state": "UNAVAILABLE",
                        "reason": why,
                    }),
                });
            }
        }
        serde_json::Value::Array(entries)
    }

    /// Loads `name` from its folder again (or for the first time): builds, compiles and
    /// instantiates every version its policy serves, then swaps the model in. A version that
    /// fails keeps its previous load serving, if it had one; the error names every failure.
    pub async fn load(&self, name: &str) -> Result<(), String> {
        let _update = self.updates.lock().await;
        let old = self.get(name).filter(|m| !m.unloaded);
        let dir = self.folder(name);
        let found = repo::versions(&dir).and_then(|v| Ok((v, repo::Routing::of(&dir)?)));
        let (sources, routing) = match found {
            Ok(found) => found,
            Err(e) => {
                let reason = format!("{e:#}");
                self.refuse(name, old, &reason);
                return Err(reason);
            }
        };
        let mut model = Model {
            routing,
            ..Model::default()
        };
        let mut failures = Vec::new();
        for (source, loaded) in self.loader.load_all(sources).await {
            let previous = old.as_ref().and_then(|m| m.versions.get(&source.version));
            let version = match (loaded, previous) {
                (Ok(loaded), _) => Version::Ready(Arc::new(loaded)),
                (Err(e), previous) => {
                    let reason = format!("version {}: {e:#}", source.version);
                    failures.push(reason.clone());
                    match previous {
                        Some(ready @ Version::Ready(_)) => ready.clone(),
                        _ => Version::Unavailable(reason),
                    }
                }
            };
            self.record_load(name, source.version, &version);
            model.versions.insert(source.version, version);
        }
        let refused = (!failures.is_empty()).then(|| failures.join("; "));
        if let Some(reason) = &refused {
            tracing::error!(model = name, reason, "model update refused");
            model.refused = Some(format!("update refused: {reason}"));
        } else {
            tracing::info!(model = name, versions = ?model.versions.keys().collect::<Vec<_>>(), "model loaded");
        }
        self.forget_dropped(name, old.as_deref(), &model);
        self.swap(name, model);
        refused.map_or(Ok(()), Err)
    }

    /// Stops serving `name`: new requests answer 503 "unloaded", requests in flight finish.
    pub async fn unload(&self, name: &str) -> Result<(), ProtocolError> {
        let _update = self.updates.lock().await;
        let old = self
            .get(name)
            .ok_or_else(|| ProtocolError::ModelNotFound(name.to_owned()))?;
        let model = Model {
            unloaded: true,
            ..Model::default()
        };
        self.forget_dropped(name, Some(&old), &model);
        self.swap(name, model);
        tracing::info!(model = name, "model unloaded");
        Ok(())
    }

    /// Keeps `old` serving after a refused update, with the reason.
    fn refuse(&self, name: &str, old: Option<Arc<Model>>, reason: &str) {
        tracing::error!(model = name, reason, "model update refused");
        let mut model = old.map(|m| (*m).clone()).unwrap_or_default();
        model.refused = Some(format!("update refused: {reason}"));
        self.swap(name, model);
    }

    fn swap(&self, name: &str, model: Model) {
        let mut models = self.models.write().unwrap_or_else(|e| e.into_inner());
        models.insert(name.to_owned(), Arc::new(model));
    }

    fn record_load(&self, name: &str, version: u64, loaded: &Version) {
        let cache = match loaded {
            Version::Ready(m) => Some(m.cache()),
            Version::Unavailable(_) => None,
        };
        self.metrics.record_load(name, &version.to_string(), cache);
    }

    /// Marks the versions `old` served and `new` does not as no longer ready.
    fn forget_dropped(&self, name: &str, old: Option<&Model>, new: &Model) {
        for number in old.iter().flat_map(|m| m.versions.keys()) {
            if !new.versions.contains_key(number) {
                self.metrics.record_load(name, &number.to_string(), None);
            }
        }
    }

    /// `--watch`: polls the repository every `interval` and reloads a model whose folder
    /// changed, once it has stopped changing for one interval (so a file still being copied
    /// is not loaded half-written); loads new model folders and unloads removed ones.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut seen: HashMap<String, Fingerprint> = self
            .models()
            .keys()
            .map(|name| (name.clone(), fingerprint(&self.folder(name))))
            .collect();
        let mut pending: HashMap<String, Fingerprint> = HashMap::new();
        loop {
            tokio::time::sleep(interval).await;
            let mut now: HashMap<String, Fingerprint> = match repo::model_folders(&self.repo) {
                Ok(folders) => folders
                    .into_iter()
                    .map(|(name, dir)| (name, fingerprint(&dir)))
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot read the model repository");
                    continue;
                }
            };
            // Removed folders: unload once, then forget.
            let removed: Vec<String> = seen
                .keys()
                .filter(|n| !now.contains_key(*n))
                .cloned()
                .collect();
            for name in removed {
                seen.remove(&name);
                if self.get(&name).is_some_and(|m| !m.unloaded) {
                    tracing::info!(model = name, "model folder removed");
                    let _ = self.unload(&name).await;
                }
            }
            for (name, print) in now.drain() {
                if seen.get(&name) == Some(&print) {
                    pending.remove(&name);
                    continue;
                }
                if pending.get(&name) != Some(&print) {
                    pending.insert(name, print);
                    continue;
                }
                pending.remove(&name);
                seen.insert(name.clone(), print);
                tracing::info!(model = name, "model folder changed; reloading");
                // The reason is in the log and the index.
                let _ = self.load(&name).await;
            }
        }
    }
}

/// What a model folder holds, as far as a change goes: each file's path, length and mtime.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The fingerprint of a model folder and its version folders.
fn fingerprint(dir: &Path) -> Fingerprint {
    let mut files = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() && depth == 0 {
                stack.push((path, depth + 1));
            } else if meta.is_file() {
                files.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_see_every_file_change() {
        let dir = std::env::temp_dir().join(format!("wafer-fp-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("2")).unwrap();
        std::fs::write(dir.join("2/model.onnx"), b"one").unwrap();
        let before = fingerprint(&dir);
        assert_eq!(before, fingerprint(&dir));
        std::fs::write(dir.join("2/model.onnx"), b"four").unwrap();
        let grown = fingerprint(&dir);
        assert_ne!(before, grown);
        std::fs::write(dir.join("wafer.toml"), b"").unwrap();
        assert_ne!(grown, fingerprint(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
