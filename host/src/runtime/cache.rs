//! The compiled-component cache: `Component::serialize` output on disk, so that a restart
//! deserializes instead of compiling.
//!
//! An entry is named by the sha256 of the component and the engine's compatibility hash
//! (wasmtime version and every setting that changes compiled code). Beside each `.cwasm` a
//! `.sha256` file holds its checksum; an entry whose checksum, header or settings do not match
//! is logged, recompiled and replaced, never trusted. A valid entry is mapped into memory, not
//! read, and its checksum is remembered with the file's metadata ([`FileDigests`]), so a warm
//! start reads neither the component nor its compiled code.
//!
//! Below it, [`FunctionCache`] keeps Cranelift's per-function results in the user's cache
//! folder: every model's component holds the same guest code under different data, so only the
//! first compile of a guest pays for its code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::runtime::digests::{FileDigests, Sha256Digest, hex};
use crate::runtime::split;

/// Whether a load found its compiled code in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Deserialized from the cache.
    Hit,
    /// Compiled and written to the cache (there was no entry).
    Miss,
    /// An entry existed but failed its checks; compiled and replaced.
    Replaced,
}

impl CacheOutcome {
    /// `hit`, `miss` or `replaced`, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Replaced => "replaced",
        }
    }
}

/// Cranelift's incremental cache: compiled functions by the hash of their IR (which names the
/// Cranelift version, the target and every setting). It holds the guests' code only (model data
/// never reaches a function), so every model's component after the first compiles almost
/// nothing.
///
/// Kept in memory for the life of the process, or in a SQLite database (`functions.db` in the
/// default cache folder, whichever folder holds the compiled components) that every process
/// shares: then a process compiling its first model, `wafer build` included, finds the guest's
/// functions already compiled. Each value is stored with its sha256 and a value that fails it
/// is ignored, so a damaged entry costs a recompile, never wrong code.
#[derive(Debug)]
pub struct FunctionCache {
    store: Mutex<Store>,
}

#[derive(Debug)]
enum Store {
    Memory(HashMap<Vec<u8>, Vec<u8>>),
    Disk(rusqlite::Connection),
}

/// The functions database, in the user's cache folder.
const FUNCTIONS_DB: &str = "functions.db";

/// Past this size the functions database is emptied when opened: entries of guests and
/// Cranelift versions no longer used would otherwise accumulate.
const FUNCTIONS_DB_LIMIT: u64 = 2 << 30;

impl FunctionCache {
    /// The process's in-memory cache, shared by every engine that generates the same code (the
    /// build engine and the serving engine both interrupt on epochs).
    pub fn shared() -> Arc<FunctionCache> {
        static SHARED: LazyLock<Arc<FunctionCache>> = LazyLock::new(|| {
            Arc::new(FunctionCache {
                store: Mutex::new(Store::Memory(HashMap::new())),
            })
        });
        SHARED.clone()
    }

    /// The user's cache, kept in [`CompiledCache::default_dir`].
    pub fn user() -> Arc<FunctionCache> {
        Self::in_dir(&CompiledCache::default_dir())
    }

    /// The functions a process with compiled cache `cache` keeps: the user's cache, or with
    /// none (`--no-cache`) this process's memory.
    pub fn with(cache: Option<&CompiledCache>) -> Arc<FunctionCache> {
        match cache {
            Some(_) => Self::user(),
            None => Self::shared(),
        }
    }

    /// The cache kept in `dir` (one per folder and process), or the in-memory one when the
    /// database there cannot be opened.
    pub fn in_dir(dir: &Path) -> Arc<FunctionCache> {
        static OPEN: LazyLock<Mutex<HashMap<PathBuf, Arc<FunctionCache>>>> =
            LazyLock::new(Mutex::default);
        once_per_dir(&OPEN, dir, || match Self::open(&dir.join(FUNCTIONS_DB)) {
            Ok(conn) => Arc::new(FunctionCache {
                store: Mutex::new(Store::Disk(conn)),
            }),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "compiled functions are kept in memory only");
                Self::shared()
            }
        })
    }

    fn open(path: &Path) -> anyhow::Result<rusqlite::Connection> {
        let conn = open_db(
            path,
            "CREATE TABLE IF NOT EXISTS functions (
                 key BLOB PRIMARY KEY,
                 value BLOB NOT NULL,
                 sha256 BLOB NOT NULL
             ) WITHOUT ROWID;",
        )?;
        if std::fs::metadata(path).map_or(0, |m| m.len()) > FUNCTIONS_DB_LIMIT {
            conn.execute_batch("DELETE FROM functions; VACUUM;")
                .with_context(|| format!("emptying {}", path.display()))?;
        }
        Ok(conn)
    }
}

/// The value `open` makes for `dir`, made once per folder and process and kept in `opened`.
pub(super) fn once_per_dir<T>(
    opened: &Mutex<HashMap<PathBuf, Arc<T>>>,
    dir: &Path,
    open: impl FnOnce() -> Arc<T>,
) -> Arc<T> {
    let mut opened = opened.lock().unwrap_or_else(|e| e.into_inner());
    opened.entry(dir.to_owned()).or_insert_with(open).clone()
}

/// A SQLite database of the cache folder, created with `schema` if new: write-ahead logged, and
/// waiting for other processes' writes rather than failing.
pub(super) fn open_db(path: &Path, schema: &str) -> anyhow::Result<rusqlite::Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    rusqlite::Connection::open(path)
        .and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
            c.execute_batch(schema)?;
            Ok(c)
        })
        .with_context(|| format!("opening {}", path.display()))
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match &*store {
            Store::Memory(entries) => entries.get(key).map(|value| Cow::Owned(value.clone())),
            Store::Disk(conn) => {
                let (value, sha256): (Vec<u8>, Vec<u8>) = conn
                    .query_row(
                        "SELECT value, sha256 FROM functions WHERE key = ?1",
                        [key],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .ok()?;
                (Sha256::digest(&value).as_slice() == sha256).then_some(Cow::Owned(value))
            }
        }
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *store {
            Store::Memory(entries) => {
                entries.insert(key.to_vec(), value);
                true
            }
            Store::Disk(conn) => conn
                .execute(
                    "INSERT OR REPLACE INTO functions (key, value, sha256) VALUES (?1, ?2, ?3)",
                    rusqlite::params![key, value, Sha256::digest(&value).as_slice()],
                )
                .is_ok(),
        }
    }
}

/// Where an entry's sha256 is kept: beside it, so that the entry itself is exactly what
/// wasmtime maps.
fn checksum_path(entry: &Path) -> PathBuf {
    entry.with_extension("sha256")
}

/// What reads the component in the file at `path`, for a compile that needs its bytes.
fn reader(path: &Path) -> impl FnOnce() -> anyhow::Result<Cow<'static, [u8]>> + '_ {
    move || {
        std::fs::read(path)
            .map(Cow::Owned)
            .with_context(|| format!("reading the component {}", path.display()))
    }
}

/// A folder of compiled components.
#[derive(Clone, Debug)]
pub struct CompiledCache {
    dir: PathBuf,
    /// The guest code modules loaded so far, by entry: one per guest, shared by its models.
    codes: Arc<Mutex<HashMap<PathBuf, Module>>>,
}

/// A model's compiled component and, when it was split ([`split`]), the guest code it imports
/// as [`split::CODE_IMPORT`].
#[derive(Clone)]
pub struct CompiledModel {
    /// The component.
    pub component: Component,
    /// The guest's code, compiled once for every model built from the guest.
    pub code: Option<Module>,
}

impl From<Component> for CompiledModel {
    fn from(component: Component) -> CompiledModel {
        CompiledModel {
            component,
            code: None,
        }
    }
}

impl CompiledCache {
    /// The cache in `dir`, created on first write.
    pub fn new(dir: PathBuf) -> CompiledCache {
        CompiledCache {
            dir,
            codes: Arc::default(),
        }
    }

    /// The default folder: `$XDG_CACHE_HOME/wafer`, else `~/.cache/wafer`, else `target/wafer-cache`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map_or_else(|| PathBuf::from("target/wafer-cache"), |d| d.join("wafer"))
    }

    /// The entry for the component whose sha256 is `digest` under `engine`'s settings.
    pub fn entry(&self, engine: &Engine, digest: &[u8]) -> PathBuf {
        self.entry_named(engine, "", digest, "cwasm")
    }

    /// An entry's path: `{prefix}{digest}-{settings}.{extension}`.
    fn entry_named(
        &self,
        engine: &Engine,
        prefix: &str,
        digest: &[u8],
        extension: &str,
    ) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir.join(format!(
            "{prefix}{}-{:016x}.{extension}",
            hex(digest),
            hasher.finish()
        ))
    }

    /// A model's component whose sha256 is `digest`, read by `wasm` only when it must be
    /// compiled. With `split` (`--guest-code`), split into the guest's code and the rest
    /// ([`split`]) when it can be, so that the guest's code is compiled, stored and mapped once
    /// for all the models built from it; else compiled whole, as
    /// [`CompiledCache::load_or_compile_with`] does.
    pub fn load_or_compile_model<'a>(
        &self,
        engine: &Engine,
        digest: &[u8],
        split: bool,
        wasm: impl FnOnce() -> anyhow::Result<Cow<'a, [u8]>>,
    ) -> anyhow::Result<(CompiledModel, CacheOutcome)> {
        if !split {
            let (component, outcome) = self.load_or_compile_with(engine, digest, wasm)?;
            return Ok((component.into(), outcome));
        }
        let rest = self.entry_named(engine, "", digest, "rest.cwasm");
        // Beside the rest, the sha256 of the code it imports.
        let code_of = rest.with_extension("code");
        let existed = rest.exists();
        if existed {
            match self.load_split(engine, &rest, &code_of) {
                Ok(model) => return Ok((model, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    entry = %rest.display(), error = %format!("{e:#}"),
                    "compiled cache entry rejected; recompiling"
                ),
            }
        }
        let whole = self.entry(engine, digest);
        if whole.exists()
            && let Ok(component) = self.load(engine, &whole)
        {
            return Ok((component.into(), CacheOutcome::Hit));
        }
        let wasm = wasm()?;
        let split = split::split(&wasm)
            .map_err(anyhow::Error::from)
            .and_then(|parts| {
                let code_digest = Sha256::digest(&parts.code);
                let code = self.code(engine, &code_digest, || Ok(Cow::Borrowed(&parts.code)))?;
                let rest = Component::new(engine, &parts.rest).map_err(anyhow::Error::from)?;
                Ok((code_digest, code, rest))
            });
        let (code_digest, code, mut component) = match split {
            Ok(split) => split,
            // A component of another shape, or a split that does not compile (this module's
            // mistake, not the model's): compiled whole.
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "compiling the component whole");
                let (component, outcome) =
                    self.load_or_compile_with(engine, digest, || Ok(wasm))?;
                return Ok((component.into(), outcome));
            }
        };
        let stored = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                self.write(&code_of, &code_digest)?;
                self.store(&rest, &bytes)
            });
        match stored.and_then(|()| Self::map(engine, &rest)) {
            Ok(mapped) => component = mapped,
            Err(e) => {
                tracing::warn!(entry = %rest.display(), error = %format!("{e:#}"), "cannot write the compiled cache")
            }
        }
        let outcome = match existed {
            true => CacheOutcome::Replaced,
            false => CacheOutcome::Miss,
        };
        let code = Some(code);
        Ok((CompiledModel { component, code }, outcome))
    }

    /// [`CompiledCache::load_or_compile_model`] for the component in the file at `path`, read
    /// only when it must be compiled and hashed only when its digest is not remembered.
    pub fn load_or_compile_model_file(
        &self,
        engine: &Engine,
        path: &Path,
        split: bool,
    ) -> anyhow::Result<(CompiledModel, CacheOutcome, Sha256Digest)> {
        let digest = self.digests().sha256(path)?;
        let (model, outcome) = self.load_or_compile_model(engine, &digest, split, reader(path))?;
        Ok((model, outcome, digest))
    }

    /// A split model from its entries: the rest, and the code named beside it.
    fn load_split(
        &self,
        engine: &Engine,
        rest: &Path,
        code_of: &Path,
    ) -> anyhow::Result<CompiledModel> {
        let code_digest =
            std::fs::read(code_of).with_context(|| format!("reading {}", code_of.display()))?;
        let component = self.load(engine, rest)?;
        let code = self.code(engine, &code_digest, || {
            anyhow::bail!("the guest code it imports is not in the cache")
        })?;
        Ok(CompiledModel {
            component,
            code: Some(code),
        })
    }

    /// The guest code module whose sha256 is `digest`: loaded once per process, from its entry
    /// when valid, else compiled from `wasm` and stored.
    fn code<'a>(
        &self,
        engine: &Engine,
        digest: &[u8],
        wasm: impl FnOnce() -> anyhow::Result<Cow<'a, [u8]>>,
    ) -> anyhow::Result<Module> {
        let path = self.entry_named(engine, "code-", digest, "cwasm");
        // Held while compiling: models loading in parallel wait for the one compilation.
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(code) = codes.get(&path)
            && Engine::same(code.engine(), engine)
        {
            return Ok(code.clone());
        }
        let loaded = self
            .check(&path)
            .and_then(|()| Self::map_module(engine, &path));
        let code = match loaded {
            Ok(code) => code,
            Err(_) => {
                let code = Module::new(engine, &*wasm()?).map_err(anyhow::Error::from)?;
                let bytes = code.serialize().map_err(anyhow::Error::from)?;
                match self
                    .store(&path, &bytes)
                    .and_then(|()| Self::map_module(engine, &path))
                {
                    Ok(mapped) => mapped,
                    Err(e) => {
                        tracing::warn!(entry = %path.display(), error = %format!("{e:#}"), "cannot write the compiled cache");
                        code
                    }
                }
            }
        };
        codes.insert(path, code.clone());
        Ok(code)
    }

    /// The compiled `wasm`, from the cache when a valid entry exists, else compiled and stored.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        self.load_or_compile_with(engine, &Sha256::digest(wasm), || Ok(Cow::Borrowed(wasm)))
    }

    /// [`CompiledCache::load_or_compile`] for the component in the file at `path`, which is
    /// read only when it must be compiled, and hashed only when its digest is not remembered
    /// ([`FileDigests`]). Returns its digest too.
    pub fn load_or_compile_file(
        &self,
        engine: &Engine,
        path: &Path,
    ) -> anyhow::Result<(Component, CacheOutcome, Sha256Digest)> {
        let digest = self.digests().sha256(path)?;
        let (component, outcome) = self.load_or_compile_with(engine, &digest, reader(path))?;
        Ok((component, outcome, digest))
    }

    /// [`CompiledCache::load_or_compile`] for the component whose sha256 is `digest`, read by
    /// `wasm` only when it must be compiled.
    pub fn load_or_compile_with<'a>(
        &self,
        engine: &Engine,
        digest: &[u8],
        wasm: impl FnOnce() -> anyhow::Result<Cow<'a, [u8]>>,
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self.entry(engine, digest);
        let existed = path.exists();
        if existed {
            match self.load(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                Err(e) => tracing::warn!(
                    entry = %path.display(), error = %format!("{e:#}"),
                    "compiled cache entry rejected; recompiling"
                ),
            }
        }
        let mut component = Component::new(engine, wasm()?).map_err(anyhow::Error::from)?;
        let serialized = component.serialize().map_err(anyhow::Error::from);
        match serialized.and_then(|bytes| self.store(&path, &bytes)) {
            // Served from the entry just written, mapped like a warm start's: the compiled
            // code is then file-backed pages the kernel can share and evict, not tens of MB
            // of this process's heap per model.
            Ok(()) => match Self::map(engine, &path) {
                Ok(mapped) => component = mapped,
                Err(e) => {
                    tracing::warn!(entry = %path.display(), error = %format!("{e:#}"), "cannot map the entry just written")
                }
            },
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %format!("{e:#}"), "cannot write the compiled cache");
            }
        }
        let outcome = if existed {
            CacheOutcome::Replaced
        } else {
            CacheOutcome::Miss
        };
        Ok((component, outcome))
    }

    /// Digests of the files this cache's users read, kept beside the entries.
    pub fn digests(&self) -> Arc<FileDigests> {
        FileDigests::in_dir(&self.dir)
    }

    /// An entry, mapped from its file (not copied) once its checksum holds.
    fn load(&self, engine: &Engine, path: &Path) -> anyhow::Result<Component> {
        self.check(path)?;
        Self::map(engine, path)
    }

    /// Whether the entry at `path` has the checksum written beside it.
    fn check(&self, path: &Path) -> anyhow::Result<()> {
        let sidecar = checksum_path(path);
        let expected = std::fs::read(&sidecar)
            .with_context(|| format!("reading the checksum {}", sidecar.display()))?;
        let actual = self.digests().sha256(path)?;
        anyhow::ensure!(
            expected == actual,
            "checksum mismatch: the entry is corrupt"
        );
        Ok(())
    }

    /// The entry at `path`, mapped. Callers have checked its checksum, or have just written it.
    fn map(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
        // SAFETY: the file was written by `Component::serialize` of a wasmtime engine with the
        // same compatibility hash (its name says so), and its sha256 (recomputed, or remembered
        // for exactly this file with this size and these modification and status-change times)
        // is what was written beside it, or this process has just written it; wasmtime checks
        // its version and settings again. Entries are replaced by renaming, never rewritten in
        // place, so the mapped file does not change under the component.
        #[expect(unsafe_code, reason = "mapping our own checksummed compiled artifact")]
        let component = unsafe { Component::deserialize_file(engine, path) };
        component.map_err(anyhow::Error::from)
    }

    /// The guest code entry at `path`, mapped, as [`CompiledCache::map`] maps components.
    fn map_module(engine: &Engine, path: &Path) -> anyhow::Result<Module> {
        // SAFETY: as in `map`: our own checksummed `Module::serialize` output, for an engine
        // with these settings, replaced by renaming and never rewritten in place.
        #[expect(unsafe_code, reason = "mapping our own checksummed compiled artifact")]
        let module = unsafe { Module::deserialize_file(engine, path) };
        module.map_err(anyhow::Error::from)
    }

    /// Writes the compiled `serialized` at `path`, its checksum first: a reader meeting a new
    /// checksum beside an old entry (or the reverse) rejects it, never trusts it.
    fn store(&self, path: &Path, serialized: &[u8]) -> anyhow::Result<()> {
        self.write(&checksum_path(path), &Sha256::digest(serialized))?;
        self.write(path, serialized)
    }

    /// Writes a file of the cache aside and renames it into place.
    fn write(&self, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        // Named by process and write: two threads may store the same entry at once.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let write = WRITES.fetch_add(1, Ordering::Relaxed);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}-{write}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }
}
