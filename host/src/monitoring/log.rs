//! The prediction log: what each sampled invocation was asked and answered, in an embedded
//! SQLite database, written off the request path.
//!
//! A request hands its record to a bounded queue and goes on; one writer thread drains the
//! queue in batches, each batch one transaction. When the queue is full the record is dropped
//! and counted, never waited for: serving is never slowed by the log. A batch taken from the
//! queue is retried until it commits, and is committed whole or not at all (WAL journal), so
//! a killed server leaves a database that opens cleanly with every batch it had committed.
//! Retention keeps rows younger than the maximum age and no more than the maximum count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rusqlite::{Connection, params};

/// The log's table.
const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    request_id TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    latency_us INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
";

/// The default database, under the working directory.
pub const DEFAULT_DB: &str = ".wafer/predictions.db";

/// Records a batch holds at most.
const BATCH: usize = 1_000;

/// Rows one INSERT statement writes.
const ROWS_PER_INSERT: usize = 64;

/// `INSERT INTO predictions ... VALUES (...), (...)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO predictions (time_ms, model, version, request_id, input, output, latency_us, outcome) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// How long the writer waits to fill a batch.
const LINGER: Duration = Duration::from_millis(50);

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// One logged invocation.
#[derive(Clone, Debug)]
pub struct Record {
    /// When it was answered, ms since the Unix epoch.
    pub time_ms: u64,
    /// The model.
    pub model: String,
    /// Its version.
    pub version: String,
    /// The v2 request id, or the one the server made up and returned.
    pub request_id: String,
    /// The raw records (models with a spec) or the input tensors, as JSON.
    pub input: String,
    /// The outputs, as JSON; none when it failed.
    pub output: Option<String>,
    /// The whole request, µs.
    pub latency_us: u64,
    /// `ok`, `client_error`, `guest_error` or `timeout`.
    pub outcome: String,
}

/// How the log is kept.
#[derive(Clone, Debug)]
pub struct Options {
    /// The database.
    pub path: PathBuf,
    /// The share of invocations logged, from 0 to 1.
    pub sample: f64,
    /// Records that may wait for the writer; more are dropped.
    pub queue: usize,
    /// Rows older than this are deleted.
    pub max_age: Duration,
    /// At most this many rows are kept, the newest.
    pub max_rows: u64,
}

/// The log's handle, shared by every request.
pub struct PredictionLog {
    sender: SyncSender<Record>,
    sample: f64,
    sampled: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    written: std::sync::Arc<AtomicU64>,
}

impl PredictionLog {
    /// Opens (creating) the database and starts the writer thread.
    pub fn open(options: &Options) -> anyhow::Result<PredictionLog> {
        let conn = connect(&options.path)?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(options.queue.max(1));
        let written = std::sync::Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            receiver,
            max_age: options.max_age,
            max_rows: options.max_rows,
            written: std::sync::Arc::clone(&written),
        };
        std::thread::Builder::new()
            .name("wafer-log".into())
            .spawn(move || writer.run())
            .context("starting the prediction log's writer")?;
        Ok(PredictionLog {
            sender,
            sample: options.sample.clamp(0.0, 1.0),
            sampled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            written,
        })
    }

    /// Whether the next invocation is to be logged: every `1/sample`-th one, spread evenly.
    pub fn wants(&self) -> bool {
        if self.sample >= 1.0 {
            return true;
        }
        if self.sample <= 0.0 {
            return false;
        }
        even_share(&self.sampled, self.sample)
    }

    /// Queues `record`; drops it (and counts it) when the queue is full. Never blocks. False
    /// when it was dropped.
    pub fn record(&self, record: Record) -> bool {
        match self.sender.try_send(record) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records committed to the database.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Waits, up to `timeout`, until every queued record is committed: what a server does
    /// after draining, before it exits. False if some were still waiting.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.written() < self.queued.load(Ordering::Relaxed) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Whether the next of a stream of events, counted in `count`, falls in `share` (0 to 1) of
/// them taken evenly: every `1/share`-th, with no randomness.
pub fn even_share(count: &AtomicU64, share: f64) -> bool {
    let n = count.fetch_add(1, Ordering::Relaxed) as f64;
    ((n + 1.0) * share).floor() != (n * share).floor()
}

/// The current time, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Opens the database, creating it and its folder.
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let conn = Connection::open(path)
        .and_then(|c| c.busy_timeout(Duration::from_secs(5)).map(|()| c))
        .and_then(|c| c.execute_batch(SCHEMA).map(|()| c))
        .with_context(|| format!("opening the prediction log {}", path.display()))?;
    Ok(conn)
}

/// Opens an existing log for reading: what export, drift and skew read it with, beside a
/// server writing it.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    anyhow::ensure!(path.is_file(), "no prediction log at {}", path.display());
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening the prediction log {}", path.display()))
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    receiver: Receiver<Record>,
    max_age: Duration,
    max_rows: u64,
    written: std::sync::Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self) {
        let mut last_retention = Instant::now();
        // Waits for a first record, sleeps while the batch fills, then takes what came. The
        // writer wakes once per batch: a request that queues a record finds no one waiting,
        // so queueing costs it no wake-up of this thread. After a full batch more are likely
        // waiting, so the next is taken without sleeping.
        let mut behind = false;
        while let Ok(first) = self.receiver.recv() {
            let mut batch = vec![first];
            if !behind {
                std::thread::sleep(LINGER);
            }
            batch.extend(self.receiver.try_iter().take(BATCH - 1));
            behind = batch.len() == BATCH;
            // A batch in hand is kept until it commits (a locked or full disk is retried):
            // meanwhile the queue fills, and what does not fit is dropped and counted.
            let mut attempt = 0u32;
            while let Err(e) = self.commit(&batch) {
                attempt += 1;
                if attempt.is_power_of_two() {
                    tracing::warn!(error = %format!("{e:#}"), records = batch.len(), attempt, "prediction log: commit failed; retrying");
                }
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 100));
            }
            self.written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if last_retention.elapsed() >= RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(e) = self.retain() {
                    tracing::warn!(error = %format!("{e:#}"), "prediction log: retention failed");
                }
            }
        }
    }

    /// Writes a batch in one transaction, [`ROWS_PER_INSERT`] rows per statement.
    fn commit(&mut self, batch: &[Record]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for chunk in batch.chunks(ROWS_PER_INSERT) {
            let sql = insert_sql(chunk.len());
            let mut insert = tx.prepare_cached(&sql)?;
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 8);
            let numbers: Vec<(i64, i64)> = chunk
                .iter()
                .map(|r| (r.time_ms as i64, r.latency_us as i64))
                .collect();
            for (r, (time, latency)) in chunk.iter().zip(&numbers) {
                values.extend([
                    time as &dyn rusqlite::ToSql,
                    &r.model,
                    &r.version,
                    &r.request_id,
                    &r.input,
                    &r.output,
                    latency,
                    &r.outcome,
                ]);
            }
            insert.execute(values.as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes rows past the maximum age, then the oldest past the maximum count.
    fn retain(&mut self) -> anyhow::Result<()> {
        // Rows are appended in time order: the old ones are the first ids, found without an
        // index (which would cost every insert).
        let oldest = now_ms().saturating_sub(self.max_age.as_millis() as u64);
        self.conn.execute(
            "DELETE FROM predictions WHERE id < COALESCE(
                (SELECT id FROM predictions WHERE time_ms >= ?1 ORDER BY id LIMIT 1),
                (SELECT MAX(id) + 1 FROM predictions))",
            params![oldest as i64],
        )?;
        self.conn.execute(
            "DELETE FROM predictions WHERE id <= (SELECT MAX(id) FROM predictions) - ?1",
            params![self.max_rows as i64],
        )?;
        Ok(())
    }
}

/// Writes the logged rows of `model` (all models when `None`) from `since_ms` on, oldest
/// first, to `output`: `.jsonl` (inputs and outputs as JSON values), `.csv` or `.parquet`
/// (inputs and outputs as JSON text). Returns the number of rows written.
pub fn export(
    db: &Path,
    model: Option<&str>,
    since_ms: Option<u64>,
    output: &Path,
) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let extension = output.extension().and_then(|e| e.to_str());
    let jsonl = match extension {
        Some("jsonl" | "ndjson") => true,
        Some("csv" | "parquet") => false,
        _ => anyhow::bail!(
            "{}: the export is written as .jsonl, .csv or .parquet",
            output.display()
        ),
    };
    let conn = open_read_only(db)?;
    let mut query = conn.prepare(
        "SELECT time_ms, model, version, request_id, input, output, latency_us, outcome
         FROM predictions WHERE (?1 IS NULL OR model = ?1) AND time_ms >= ?2 ORDER BY id",
    )?;
    let mut rows = query.query(params![model, since_ms.unwrap_or(0) as i64])?;
    if extension == Some("parquet") {
        let mut table = Table::default();
        while let Some(row) = rows.next()? {
            table.push(row)?;
        }
        let n = table.time_ms.len() as u64;
        crate::store::offline::write_atomically(output, |file| table.write_parquet(file))?;
        return Ok(n);
    }
    let mut n = 0u64;
    crate::store::offline::write_atomically(output, |file| {
        let mut out = std::io::BufWriter::new(file);
        let mut csv = (!jsonl).then(|| csv::Writer::from_writer(Vec::new()));
        if let Some(csv) = &mut csv {
            csv.write_record([
                "time_ms",
                "model",
                "version",
                "request_id",
                "input",
                "output",
                "latency_us",
                "outcome",
            ])?;
        }
        while let Some(row) = rows.next()? {
            let (time_ms, model, version, id): (i64, String, String, String) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let (input, output, latency, outcome): (String, Option<String>, i64, String) =
                (row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?);
            match &mut csv {
                Some(csv) => {
                    csv.write_record([
                        time_ms.to_string(),
                        model,
                        version,
                        id,
                        input,
                        output.unwrap_or_default(),
                        latency.to_string(),
                        outcome,
                    ])?;
                }
                None => {
                    let json = |text: &str| {
                        serde_json::from_str::<serde_json::Value>(text)
                            .unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
                    };
                    let line = serde_json::json!({
                        "time_ms": time_ms, "model": model, "version": version,
                        "request_id": id, "input": json(&input),
                        "output": output.as_deref().map(json),
                        "latency_us": latency, "outcome": outcome,
                    });
                    serde_json::to_writer(&mut out, &line)?;
                    out.write_all(b"\n")?;
                }
            }
            n += 1;
        }
        if let Some(csv) = csv {
            let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
            out.write_all(&bytes)?;
        }
        out.flush()?;
        Ok(())
    })?;
    Ok(n)
}

/// Logged rows column by column, for Parquet.
#[derive(Default)]
struct Table {
    time_ms: Vec<i64>,
    model: Vec<String>,
    version: Vec<String>,
    request_id: Vec<String>,
    input: Vec<String>,
    output: Vec<Option<String>>,
    latency_us: Vec<i64>,
    outcome: Vec<String>,
}

impl Table {
    fn push(&mut self, row: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        self.time_ms.push(row.get(0)?);
        self.model.push(row.get(1)?);
        self.version.push(row.get(2)?);
        self.request_id.push(row.get(3)?);
        self.input.push(row.get(4)?);
        self.output.push(row.get(5)?);
        self.latency_us.push(row.get(6)?);
        self.outcome.push(row.get(7)?);
        Ok(())
    }

    /// One row group, snappy; `output` optional (a failed invocation has none).
    fn write_parquet(&self, file: &mut std::fs::File) -> anyhow::Result<()> {
        use std::sync::Arc;

        use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::types::Type;

        let field = |name: &str, physical: Physical, optional: bool| {
            let mut b = Type::primitive_type_builder(name, physical).with_repetition(if optional {
                Repetition::OPTIONAL
            } else {
                Repetition::REQUIRED
            });
            if physical == Physical::BYTE_ARRAY {
                b = b.with_logical_type(Some(LogicalType::String));
            }
            b.build().map(Arc::new)
        };
        let fields = vec![
            field("time_ms", Physical::INT64, false)?,
            field("model", Physical::BYTE_ARRAY, false)?,
            field("version", Physical::BYTE_ARRAY, false)?,
            field("request_id", Physical::BYTE_ARRAY, false)?,
            field("input", Physical::BYTE_ARRAY, false)?,
            field("output", Physical::BYTE_ARRAY, true)?,
            field("latency_us", Physical::INT64, false)?,
            field("outcome", Physical::BYTE_ARRAY, false)?,
        ];
        let schema = Arc::new(
            Type::group_type_builder("predictions")
                .with_fields(fields)
                .build()?,
        );
        let properties = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        );
        let mut writer = SerializedFileWriter::new(file, schema, properties)?;
        let mut group = writer.next_row_group()?;
        let text = |v: &[String]| -> Vec<ByteArray> {
            v.iter().map(|s| ByteArray::from(s.as_str())).collect()
        };
        let output_levels: Vec<i16> = self.output.iter().map(|o| i16::from(o.is_some())).collect();
        let outputs: Vec<ByteArray> = self
            .output
            .iter()
            .flatten()
            .map(|s| ByteArray::from(s.as_str()))
            .collect();
        for i in 0..8 {
            let mut column = group.next_column()?.context("a column")?;
            match i {
                0 | 6 => {
                    let v = if i == 0 {
                        &self.time_ms
                    } else {
                        &self.latency_us
                    };
                    column.typed::<Int64Type>().write_batch(v, None, None)?;
                }
                5 => {
                    column.typed::<ByteArrayType>().write_batch(
                        &outputs,
                        Some(&output_levels),
                        None,
                    )?;
                }
                _ => {
                    let v = match i {
                        1 => &self.model,
                        2 => &self.version,
                        3 => &self.request_id,
                        4 => &self.input,
                        _ => &self.outcome,
                    };
                    column
                        .typed::<ByteArrayType>()
                        .write_batch(&text(v), None, None)?;
                }
            }
            column.close()?;
        }
        group.close()?;
        writer.close()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: u64) -> Record {
        Record {
            time_ms: now_ms(),
            model: "m".into(),
            version: "1".into(),
            request_id: format!("r{i}"),
            input: "[]".into(),
            output: Some("[]".into()),
            latency_us: 1,
            outcome: "ok".into(),
        }
    }

    #[test]
    fn sampling_spreads_evenly() {
        let dir = std::env::temp_dir().join(format!("wafer-log-sample-{}", std::process::id()));
        let log = PredictionLog::open(&Options {
            path: dir.join("p.db"),
            sample: 0.25,
            queue: 10,
            max_age: Duration::from_secs(3600),
            max_rows: 100,
        })
        .unwrap();
        let taken = (0..1000).filter(|_| log.wants()).count();
        assert_eq!(taken, 250);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn retention_keeps_the_newest_rows() {
        let dir = std::env::temp_dir().join(format!("wafer-log-retain-{}", std::process::id()));
        let mut writer = Writer {
            conn: connect(&dir.join("p.db")).unwrap(),
            receiver: std::sync::mpsc::sync_channel(1).1,
            max_age: Duration::from_secs(3600),
            max_rows: 10,
            written: Default::default(),
        };
        // Rows arrive in time order: five too old, then 25 recent.
        let old: Vec<Record> = (100..105)
            .map(|i| Record {
                time_ms: 0,
                ..record(i)
            })
            .collect();
        writer.commit(&old).unwrap();
        let batch: Vec<Record> = (0..25).map(record).collect();
        writer.commit(&batch).unwrap();
        writer.retain().unwrap();
        let ids: Vec<String> = writer
            .conn
            .prepare("SELECT request_id FROM predictions ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The rows older than the maximum age go; of the rest, the newest ten stay.
        assert_eq!(ids, (15..25).map(|i| format!("r{i}")).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(dir);
    }
}
