//! The embedded feature store: SQLite (bundled, no server) behind `wasi:keyvalue` for the models
//! whose `features.toml` looks fields up.
//!
//! One database holds any number of named stores. A value is a JSON object of field to value,
//! under an entity key. `wafer features load` replaces a whole store in one transaction, and
//! every invocation reads through one read transaction (WAL snapshot isolation): a request sees
//! the store entirely before a load or entirely after it, never half of one, even when the load
//! runs in another process.

pub mod offline;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

/// Where `wafer serve`, `wafer predict` and `wafer features load` keep the store unless told.
pub const DEFAULT_DB: &str = ".wafer/features.db";

/// The key-value table is Spin's own (`spin_key_value`, as its built-in SQLite key-value store
/// creates it), so a Spin runtime config pointing a store at this file serves the same rows.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
);
CREATE TABLE IF NOT EXISTS wafer_stores (
    name      TEXT PRIMARY KEY,
    rows      INTEGER NOT NULL,
    source    TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
";

/// How long a request's read waits for another process's lock (only WAL recovery takes one).
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a load waits for another writer.
const LOAD_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A feature database, shared by every invocation; it keeps idle connections for reuse.
pub struct FeatureStore {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// One named store in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// Its name, as `lookup = { store = ... }` gives it.
    pub name: String,
    /// Entities it holds.
    pub rows: u64,
    /// The file it was loaded from.
    pub source: String,
    /// When, as SQLite's UTC `datetime('now')`.
    pub loaded_at: String,
}

impl FeatureStore {
    /// Opens the database at `path`, which must exist: a mistyped path must not read as an
    /// empty store.
    pub fn open_existing(path: &Path) -> anyhow::Result<Arc<FeatureStore>> {
        if !path.is_file() {
            bail!(
                "no feature database at {}; fill one with `wafer features load`",
                path.display()
            );
        }
        FeatureStore::open(path)
    }

    /// Opens the database at `path`, creating it (and its folder) when missing.
    pub fn open(path: &Path) -> anyhow::Result<Arc<FeatureStore>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = connect(path)
            .and_then(|c| c.execute_batch(SCHEMA).map(|()| c))
            .with_context(|| format!("opening the feature store {}", path.display()))?;
        Ok(Arc::new(FeatureStore {
            path: path.to_owned(),
            idle: Mutex::new(vec![conn]),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader for one invocation. Its first read pins the database as it is then; later
    /// reads see that same state until the reader is dropped.
    pub fn snapshot(self: &Arc<Self>) -> Snapshot {
        Snapshot {
            db: Arc::clone(self),
            conn: None,
            reads: 0,
            hits: 0,
        }
    }

    /// The stores the database holds.
    pub fn stores(&self) -> anyhow::Result<Vec<StoreInfo>> {
        let conn = self.take()?;
        let stores = conn
            .prepare("SELECT name, rows, source, loaded_at FROM wafer_stores ORDER BY name")?
            .query_map([], |r| {
                Ok(StoreInfo {
                    name: r.get(0)?,
                    rows: r.get(1)?,
                    source: r.get(2)?,
                    loaded_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        self.give_back(conn);
        Ok(stores)
    }

    /// Logs the stores the database holds, and warns about each store in `wanted` (a store
    /// and a model that reads it) that was never loaded, so its lookups take the defaults.
    pub fn report(&self, wanted: &[(String, String)]) -> anyhow::Result<()> {
        let loaded = self.stores()?;
        for s in &loaded {
            tracing::info!(
                store = s.name,
                rows = s.rows,
                loaded_at = s.loaded_at,
                source = s.source,
                "feature store"
            );
        }
        let never_loaded =
            |(store, _): &&(String, String)| !loaded.iter().any(|s| &s.name == store);
        for (store, model) in wanted.iter().filter(never_loaded) {
            tracing::warn!(
                store = store.as_str(),
                model = model.as_str(),
                db = %self.path().display(),
                "the store is empty, so every lookup takes its field's default; fill it \
                 with `wafer features load --store {store} DATA.csv --key COLUMN`"
            );
        }
        Ok(())
    }

    /// Replaces the store `name` with `entities` (key, JSON object) in one transaction.
    pub fn replace(
        &self,
        name: &str,
        source: &str,
        entities: &[(String, Vec<u8>)],
    ) -> anyhow::Result<()> {
        let mut conn = self.take()?;
        conn.busy_timeout(LOAD_BUSY_TIMEOUT)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM spin_key_value WHERE store = ?1", [name])?;
        {
            let mut insert =
                tx.prepare("INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)")?;
            for (key, value) in entities {
                insert.execute(params![name, key, value])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO wafer_stores (name, rows, source, loaded_at) \
             VALUES (?1, ?2, ?3, datetime('now'))",
            params![name, entities.len() as i64, source],
        )?;
        tx.commit()?;
        conn.busy_timeout(READ_BUSY_TIMEOUT)?;
        self.give_back(conn);
        Ok(())
    }

    fn take(&self) -> anyhow::Result<Connection> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => connect(&self.path)
                .with_context(|| format!("opening the feature store {}", self.path.display())),
        }
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(READ_BUSY_TIMEOUT)?;
    // Readers never wait for a load, and a load never waits for readers.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    Ok(conn)
}

/// One invocation's consistent view of the feature database.
pub struct Snapshot {
    db: Arc<FeatureStore>,
    /// A connection inside a read transaction, from the first read on.
    conn: Option<Connection>,
    /// Reads so far, and how many found their key.
    reads: u64,
    hits: u64,
}

impl Snapshot {
    /// The value stored under `key` in store `store`, if any.
    pub fn get(&mut self, store: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.db.take()?;
                conn.execute_batch("BEGIN")?;
                self.conn.insert(conn)
            }
        };
        let value: Option<Vec<u8>> = conn
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
            .query_row(params![store, key], |r| r.get(0))
            .optional()?;
        self.reads += 1;
        self.hits += u64::from(value.is_some());
        Ok(value)
    }

    /// Keys read so far, and how many of them the store held.
    pub fn counts(&self) -> (u64, u64) {
        (self.reads, self.hits)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.execute_batch("COMMIT").is_ok()
        {
            self.db.give_back(conn);
        }
    }
}

/// A data file that cannot be loaded; the message names the file and row.
#[derive(Debug)]
pub struct BadData(String);

impl std::fmt::Display for BadData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadData {}

/// `wafer features load`: replaces store `name` with the rows of a CSV file, keyed by its
/// column `key`; every other column becomes a field of the stored JSON object (numbers and
/// booleans typed as a CSV cell reads, empty cells null). Returns the number of entities.
pub fn load_csv(db: &FeatureStore, name: &str, data: &Path, key: &str) -> anyhow::Result<usize> {
    if name.is_empty() {
        bail!("the store name is empty");
    }
    let entities = read_entities(data, key)?;
    db.replace(name, &data.display().to_string(), &entities)
        .with_context(|| format!("loading store \"{name}\" into {}", db.path().display()))?;
    Ok(entities.len())
}

/// The (key, JSON object) pairs of a CSV file; a missing key column, an empty key or a key
/// given twice is an error naming the row.
fn read_entities(data: &Path, key: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let bad = |why: String| anyhow::Error::new(BadData(format!("{}: {why}", data.display())));
    let (mut reader, headers, bar) = crate::store::offline::open_csv(data, "loading")?;
    if let Some((i, h)) = headers
        .iter()
        .enumerate()
        .find(|(i, h)| headers[..*i].contains(h))
    {
        return Err(bad(format!("column {i}: \"{h}\" is given twice")));
    }
    let Some(key_at) = headers.iter().position(|h| h == key) else {
        return Err(bad(format!(
            "no column \"{key}\"; the columns are {}",
            headers.join(", ")
        )));
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut entities = Vec::new();
    for (row, result) in reader.records().enumerate() {
        let cells = result.map_err(|e| bad(format!("row {row}: {e}")))?;
        let id = cells.get(key_at).unwrap_or_default().trim().to_owned();
        if id.is_empty() {
            return Err(bad(format!("row {row}: the key \"{key}\" is empty")));
        }
        if let Some(first) = seen.insert(id.clone(), row) {
            return Err(bad(format!(
                "row {row}: key \"{id}\" was already given on row {first}"
            )));
        }
        let object: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(cells.iter())
            .enumerate()
            .filter(|(i, _)| *i != key_at)
            .map(|(_, (h, c))| (h.clone(), json(&wafer_features::Value::from_csv(c))))
            .collect();
        entities.push((id, serde_json::to_vec(&object)?));
    }
    bar.finish_and_clear();
    Ok(entities)
}

fn json(v: &wafer_features::Value) -> serde_json::Value {
    use wafer_features::Value;
    match v {
        Value::Missing => serde_json::Value::Null,
        Value::Number(n) => {
            serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Bool(b) => (*b).into(),
        Value::Text(s) => s.clone().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wafer-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_load_replaces_the_store_and_a_snapshot_keeps_its_view() {
        let dir = temp("snapshot");
        let db = FeatureStore::open(&dir.join("f.db")).expect("open");
        let csv = dir.join("users.csv");
        std::fs::write(&csv, "user_id,avg,orders\nu1,1.5,3\nu2,,7\n").expect("csv");
        assert_eq!(load_csv(&db, "users", &csv, "user_id").expect("load"), 2);
        let mut before = db.snapshot();
        assert_eq!(
            before.get("users", "u2").expect("get").as_deref(),
            Some(br#"{"avg":null,"orders":7.0}"#.as_slice())
        );
        // A second process's reload: the open snapshot still sees the first load.
        let other = FeatureStore::open(&dir.join("f.db")).expect("open again");
        std::fs::write(&csv, "user_id,avg,orders\nu3,2,1\n").expect("csv");
        load_csv(&other, "users", &csv, "user_id").expect("reload");
        assert!(before.get("users", "u1").expect("get").is_some());
        assert!(before.get("users", "u3").expect("get").is_none());
        drop(before);
        let mut after = db.snapshot();
        assert!(after.get("users", "u1").expect("get").is_none());
        assert!(after.get("users", "u3").expect("get").is_some());
        assert!(after.get("other", "u3").expect("get").is_none());
        let stores = db.stores().expect("stores");
        assert_eq!(stores.len(), 1);
        assert_eq!((stores[0].name.as_str(), stores[0].rows), ("users", 1));
        // Spin's built-in key-value store reads the same rows with its own query.
        let spin = Connection::open(dir.join("f.db")).expect("open as Spin does");
        let value: Vec<u8> = spin
            .query_row(
                "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2",
                ["users", "u3"],
                |r| r.get(0),
            )
            .expect("Spin's query");
        assert_eq!(value, br#"{"avg":2.0,"orders":1.0}"#);
    }

    #[test]
    fn bad_files_name_row_and_key_and_leave_the_store_alone() {
        let dir = temp("bad");
        let db = FeatureStore::open(&dir.join("f.db")).expect("open");
        let csv = dir.join("users.csv");
        std::fs::write(&csv, "user_id,avg\nu1,1\n").expect("csv");
        load_csv(&db, "users", &csv, "user_id").expect("load");
        for (text, why) in [
            (
                "id,avg\nu1,1\n",
                "no column \"user_id\"; the columns are id, avg",
            ),
            (
                "user_id,avg\nu1,1\n,2\n",
                "row 1: the key \"user_id\" is empty",
            ),
            (
                "user_id,avg\nu1,1\nu2,2\nu1,3\n",
                "row 2: key \"u1\" was already given on row 0",
            ),
            (
                "user_id,avg,avg\nu1,1,2\n",
                "column 2: \"avg\" is given twice",
            ),
            ("user_id,avg\nu1,1,2\n", "row 0: "),
        ] {
            std::fs::write(&csv, text).expect("csv");
            let err = load_csv(&db, "users", &csv, "user_id").expect_err(text);
            assert!(format!("{err:#}").contains(why), "{err:#} lacks {why}");
        }
        assert!(
            db.snapshot().get("users", "u1").expect("get").is_some(),
            "kept"
        );
    }
}
