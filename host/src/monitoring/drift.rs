//! Online drift: off the request path, every interval, each served model's newest logged
//! requests and answers are tested against its reference profile (`wafer profile`), as
//! `wafer drift MODEL --current log:N` tests them. The results go to the `wafer_*drift*`
//! gauges and to a board `GET /v2/models/{m}/drift` answers from.
//!
//! Only the newest ready version of each model is watched: the one that takes its traffic.
//! A model without a reference is not watched, and says why.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use serde::Serialize;

use super::Metrics;
use crate::evaluation::drift::{self, Report};
use crate::evaluation::profile::Reference;
use crate::serving::registry::Registry;

/// How online drift runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The prediction log it reads.
    pub log: PathBuf,
    /// How often every model is tested.
    pub interval: Duration,
    /// The newest logged rows tested, per model.
    pub window: usize,
    /// Fewer logged rows than this are not tested: the model waits.
    pub min_rows: usize,
}

/// Where a model's drift stands.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Fewer logged rows than the minimum so far.
    Waiting,
    /// Tested: the report holds the result.
    Tested,
    /// The model has no reference profile, or its log could not be read.
    Unavailable,
}

/// The latest result for one model.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The model.
    pub model: String,
    /// The version watched: the newest ready one.
    pub version: String,
    /// Where it stands.
    pub state: State,
    /// When it was last checked, ms since the epoch.
    pub checked_ms: u64,
    /// The logged rows read (at most the window).
    pub rows: usize,
    /// The rows a test needs.
    pub min_rows: usize,
    /// Why it is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The test's result, once tested.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// The latest status of every watched model.
#[derive(Default)]
pub struct Board {
    statuses: RwLock<BTreeMap<String, Status>>,
}

impl Board {
    /// The latest status of `model`, if it was checked.
    pub fn get(&self, model: &str) -> Option<Status> {
        let statuses = self.statuses.read().unwrap_or_else(|e| e.into_inner());
        statuses.get(model).cloned()
    }

    fn set(&self, statuses: BTreeMap<String, Status>) {
        *self.statuses.write().unwrap_or_else(|e| e.into_inner()) = statuses;
    }
}

/// Starts the thread that tests every model each interval; returns the board it writes.
pub fn spawn(
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    options: Options,
) -> anyhow::Result<Arc<Board>> {
    let board = Arc::new(Board::default());
    let mut watcher = Watcher {
        registry,
        metrics,
        board: Arc::clone(&board),
        options,
        references: HashMap::new(),
        log: None,
    };
    std::thread::Builder::new()
        .name("wafer-drift".into())
        .spawn(move || {
            loop {
                watcher.tick();
                std::thread::sleep(watcher.options.interval);
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the drift thread: {e}"))?;
    Ok(board)
}

/// A reference profile, read once per change of its file.
struct Cached {
    modified: Option<SystemTime>,
    reference: Result<Arc<Reference>, String>,
}

struct Watcher {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    options: Options,
    references: HashMap<PathBuf, Cached>,
    log: Option<Connection>,
}

impl Watcher {
    /// Tests every model once.
    fn tick(&mut self) {
        let mut statuses = BTreeMap::new();
        for (name, model) in self.registry.models() {
            if model.unloaded {
                continue;
            }
            let Some(version) = model.ready_versions().last().copied() else {
                continue;
            };
            let status = self.check(&name, version);
            let drifted = status.report.as_ref().is_some_and(|r| r.drifted);
            let before = self.board.get(&name);
            if drifted && !before.is_some_and(|b| b.report.is_some_and(|r| r.drifted)) {
                tracing::warn!(model = %name, version, "dataset drift detected");
            }
            self.metrics
                .record_drift(&name, &version.to_string(), status.report.as_ref());
            statuses.insert(name, status);
        }
        self.metrics
            .retain_drift(|model| statuses.contains_key(model));
        self.board.set(statuses);
    }

    /// Tests one model's newest logged rows.
    fn check(&mut self, model: &str, version: u64) -> Status {
        let mut status = Status {
            model: model.to_owned(),
            version: version.to_string(),
            state: State::Unavailable,
            checked_ms: super::log::now_ms(),
            rows: 0,
            min_rows: self.options.min_rows,
            reason: None,
            report: None,
        };
        let window = self.options.window;
        let result = self.reference(model, version).and_then(|reference| {
            let log = self.log()?;
            let current = reference
                .current_of_log(log, model, Some(&status.version), 0, window)
                .map_err(|e| format!("reading the prediction log: {e:#}"))?;
            Ok((reference, current))
        });
        let (reference, current) = match result {
            Ok(both) => both,
            Err(reason) => {
                status.reason = Some(reason);
                return status;
            }
        };
        status.rows = current.rows;
        if current.rows < self.options.min_rows {
            status.state = State::Waiting;
            return status;
        }
        match drift::test(&reference.sample, &current, &[]) {
            Ok(report) => {
                status.state = State::Tested;
                status.report = Some(report);
            }
            Err(e) => status.reason = Some(format!("{e:#}")),
        }
        status
    }

    /// The reference of `model`'s `version`: beside its version folder's model, or beside
    /// the model's. Read again when its profile changes.
    fn reference(&mut self, model: &str, version: u64) -> Result<Arc<Reference>, String> {
        let dir = self.registry.repo().join(model);
        let versioned = dir.join(version.to_string());
        let dir = if versioned.is_dir() { versioned } else { dir };
        let modified = std::fs::metadata(Reference::dir_of(&dir).join("profile.json"))
            .and_then(|m| m.modified())
            .ok();
        let stale = self
            .references
            .get(&dir)
            .is_none_or(|cached| cached.modified != modified);
        if stale {
            let reference = match Reference::load(&dir) {
                Ok(Some(r)) => Ok(Arc::new(r)),
                Ok(None) => Err(no_reference(&dir)),
                Err(e) => Err(format!("{e:#}")),
            };
            let cached = Cached {
                modified,
                reference,
            };
            self.references.insert(dir.clone(), cached);
        }
        self.references
            .get(&dir)
            .map_or_else(|| Err(no_reference(&dir)), |c| c.reference.clone())
    }

    /// The log, opened read-only once it exists.
    fn log(&mut self) -> Result<&Connection, String> {
        if self.log.is_none() {
            let log =
                super::log::open_read_only(&self.options.log).map_err(|e| format!("{e:#}"))?;
            self.log = Some(log);
        }
        self.log.as_ref().ok_or_else(String::new)
    }
}

/// Why a model folder is not watched.
fn no_reference(dir: &Path) -> String {
    format!(
        "{} has no reference profile: make one with `wafer profile {} --data <training data>`",
        dir.display(),
        dir.display()
    )
}
