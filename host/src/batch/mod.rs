//! `wafer batch`: a model over a file of any size (CSV, JSON Lines or Parquet, in and out).
//!
//! A reader thread cuts the input into chunks of `--chunk` rows; `--workers` workers, each
//! with one instance of the model ([`Session`]), shape and score them. A row the spec or the
//! input refuses is set aside with its reason ([`input::Reject`]) and the job goes on.
//!
//! Crash safety: every chunk is committed on its own in a work folder beside the output
//! (`.<output>.wafer-batch/`): its predictions as a part file and its rejects, both renamed
//! into place, then a line in `commits.log`. The log line is the commit; a part without one
//! is redone. `--resume` continues from what the log holds, so a job killed at any point
//! loses nothing and repeats nothing. When every chunk is in, the parts are joined in order
//! into a temporary file that is renamed over the output, and the folder is removed: the
//! finished output appears whole or not at all.
//!
//! Memory is bounded by the chunks in flight (two per worker), not by the file.

pub mod input;
pub mod output;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use wafer_features::Packed;
use wafer_protocol::ProtocolError;
use wafer_scoring::Tensor;

use crate::runtime::{LoadedModel, Session};
use input::{Block, Format, Layout, Payload, Reject, Shape, Shaped};
use output::{Schema, Scored};

/// What a batch job is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The input file.
    pub input: PathBuf,
    /// The output file; written whole, at the end, by a rename.
    pub output: PathBuf,
    /// Where rejected rows go, with their reasons (CSV or JSON Lines).
    pub rejects: Option<PathBuf>,
    /// For a model without a feature spec, the columns that fill its input, in order
    /// [default: every column but the id column].
    pub columns: Option<Vec<String>>,
    /// The column whose value names each row in the output [default: the row's number].
    pub id_column: Option<String>,
    /// Workers, each with its own instance of the model.
    pub workers: usize,
    /// Rows per chunk: what a worker scores at once and what is committed at once.
    pub chunk: usize,
    /// Continue an interrupted job from its last committed chunk.
    pub resume: bool,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// A job that finished with rows set aside: the output holds every other row. `wafer batch`
/// exits 3 with it.
#[derive(Debug, thiserror::Error)]
#[error("{rejected} of {rows} rows could not be scored")]
pub struct SomeRejected {
    /// Rows set aside.
    pub rejected: u64,
    /// Rows in the input.
    pub rows: u64,
}

/// What a finished job did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows written to the output.
    pub scored: u64,
    /// Rows set aside.
    pub rejected: u64,
    /// Chunks an earlier, interrupted run had committed.
    pub resumed_chunks: u64,
    /// Chunks in the file.
    pub chunks: u64,
}

/// What the work folder's `manifest.json` records: a resumed job must be the same job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    wafer_batch: u32,
    input: PathBuf,
    input_bytes: u64,
    input_modified_ns: u64,
    model: String,
    chunk: usize,
    columns: Option<Vec<String>>,
    id_column: Option<String>,
    output: Format,
    schema: Schema,
}

/// A committed chunk, as a line of `commits.log`: `chunk scored rejected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Commit {
    chunk: u64,
    scored: u64,
    rejected: u64,
}

/// The work folder of an unfinished job.
struct WorkDir {
    dir: PathBuf,
    format: Format,
    log: std::sync::Mutex<File>,
}

impl WorkDir {
    fn part(&self, chunk: u64) -> PathBuf {
        self.dir
            .join(format!("part-{chunk:08}.{}", self.format.extension()))
    }

    fn rejects(&self, chunk: u64) -> PathBuf {
        self.dir.join(format!("rejects-{chunk:08}.jsonl"))
    }

    /// Commits a chunk: its rejects and its part renamed into place, then its log line.
    fn commit(
        &self,
        commit: Commit,
        write_rejects: impl FnOnce(File) -> anyhow::Result<File>,
        write_part: impl FnOnce(File) -> anyhow::Result<File>,
    ) -> anyhow::Result<()> {
        write_durably(&self.rejects(commit.chunk), write_rejects)?;
        write_durably(&self.part(commit.chunk), write_part)?;
        let line = format!("{} {} {}\n", commit.chunk, commit.scored, commit.rejected);
        let mut log = self
            .log
            .lock()
            .map_err(|_| anyhow::anyhow!("the commit log's lock is poisoned"))?;
        // One write: a killed process leaves the line whole or absent. The parts are synced
        // before it; the line itself need not be: a line lost to a power cut only makes its
        // chunk be done again.
        log.write_all(line.as_bytes())
            .context("appending to the commit log")
    }
}

/// Writes `path` through a temporary file beside it, synced, then renamed into place.
fn write_durably(
    path: &Path,
    write: impl FnOnce(File) -> anyhow::Result<File>,
) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let file = write(file).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}

/// The work folder of the job writing `output`.
pub fn work_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.wafer-batch"))
}

/// Runs `model` over `options.input` into `options.output`.
pub async fn run(model: Arc<LoadedModel>, options: &Options) -> anyhow::Result<Summary> {
    let in_format = Format::of(&options.input)?;
    let out_format = Format::of(&options.output)?;
    let rejects_format = options
        .rejects
        .as_deref()
        .map(output::rejects_format)
        .transpose()?;
    if options.chunk == 0 || options.workers == 0 {
        bail!("--chunk and --workers must be at least 1");
    }
    let reader = input::Reader::open(&options.input, in_format)?;
    let layout = layout(&model, options, reader.columns(), in_format)?;
    let schema = Schema::new(model.metadata(), options.id_column.as_deref())?;
    let meta = std::fs::metadata(&options.input)
        .with_context(|| format!("reading {}", options.input.display()))?;
    let manifest = Manifest {
        wafer_batch: 1,
        input: options
            .input
            .canonicalize()
            .unwrap_or_else(|_| options.input.clone()),
        input_bytes: meta.len(),
        input_modified_ns: meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        model: model.digest().to_owned(),
        chunk: options.chunk,
        columns: options.columns.clone(),
        id_column: options.id_column.clone(),
        output: out_format,
        schema: schema.clone(),
    };
    let (work, committed) = open_work_dir(&options.output, &manifest, options.resume)?;
    let work = Arc::new(work);
    let done: HashSet<u64> = committed.iter().map(|c| c.chunk).collect();
    let counts = Arc::new(Counts::default());
    for c in &committed {
        counts.scored.fetch_add(c.scored, Ordering::Relaxed);
        counts.rejected.fetch_add(c.rejected, Ordering::Relaxed);
    }
    if !committed.is_empty() {
        tracing::info!(
            chunks = committed.len(),
            rows = counts.scored.load(Ordering::Relaxed) + counts.rejected.load(Ordering::Relaxed),
            "resuming after the committed chunks"
        );
    }

    let bar = progress_bar(options.progress, in_format, &options.input, meta.len());
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, u64, Block)>(options.workers * 2);
    let chunk = options.chunk;
    let reader_bar = bar.clone();
    let reading = std::thread::Builder::new()
        .name("wafer-batch-reader".into())
        .spawn(move || -> anyhow::Result<u64> {
            let mut reader = reader;
            let (mut index, mut first) = (0u64, 0u64);
            while let Some(block) = reader.next_block(chunk)? {
                let n = block.len() as u64;
                if !done.contains(&index) && tx.blocking_send((index, first, block)).is_err() {
                    // The workers stopped: their error is the job's.
                    break;
                }
                reader_bar.set_position(reader.position());
                index += 1;
                first += n;
            }
            Ok(index)
        })
        .context("starting the reader")?;

    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..options.workers {
        let worker = Worker {
            session: model.session(),
            layout: layout.clone(),
            schema: schema.clone(),
            work: Arc::clone(&work),
            counts: Arc::clone(&counts),
            bar: bar.clone(),
            started,
        };
        let rx = Arc::clone(&rx);
        workers.spawn(async move {
            let mut worker = worker;
            loop {
                let next = rx.lock().await.recv().await;
                let Some((index, first, block)) = next else {
                    return anyhow::Ok(());
                };
                worker.chunk(index, first, &block).await?;
            }
        });
    }
    let mut failed = None;
    while let Some(joined) = workers.join_next().await {
        let result = joined
            .map_err(anyhow::Error::from)
            .and_then(std::convert::identity);
        if let Err(e) = result
            && failed.is_none()
        {
            // Stop the others and the reader: this error is the job's.
            rx.lock().await.close();
            failed = Some(e);
        }
    }
    let chunks = reading
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    if let Some(e) = failed {
        bar.abandon();
        return Err(e);
    }
    let chunks = chunks.with_context(|| format!("reading {}", options.input.display()))?;
    bar.finish_and_clear();

    // Every chunk is committed: join them into the outputs, rejects first, so that the
    // output's appearance means the job is done.
    let parts: Vec<PathBuf> = (0..chunks).map(|c| work.part(c)).collect();
    let rejects: Vec<PathBuf> = (0..chunks).map(|c| work.rejects(c)).collect();
    if let (Some(path), Some(format)) = (&options.rejects, rejects_format) {
        write_durably_over(path, |f| output::join_rejects(format, &rejects, f))?;
    }
    write_durably_over(&options.output, |f| {
        output::join(out_format, &schema, &parts, f)
    })?;
    std::fs::remove_dir_all(&work.dir)
        .with_context(|| format!("removing the work folder {}", work.dir.display()))?;
    Ok(Summary {
        scored: counts.scored.load(Ordering::Relaxed),
        rejected: counts.rejected.load(Ordering::Relaxed),
        resumed_chunks: committed.len() as u64,
        chunks,
    })
}

/// Writes `path` whole: through a synced temporary file beside it, renamed over it.
fn write_durably_over(
    path: &Path,
    write: impl FnOnce(File) -> anyhow::Result<File>,
) -> anyhow::Result<()> {
    crate::store::offline::write_atomically(path, |f| {
        write(f.try_clone()?)?;
        Ok(())
    })
}

/// Opens the work folder: a new one, or with `resume` the interrupted job's, checked to be the
/// same job; and the chunks it committed.
fn open_work_dir(
    output: &Path,
    manifest: &Manifest,
    resume: bool,
) -> anyhow::Result<(WorkDir, Vec<Commit>)> {
    let dir = work_dir(output);
    let manifest_path = dir.join("manifest.json");
    let log_path = dir.join("commits.log");
    let mut committed = Vec::new();
    if manifest_path.is_file() {
        if !resume {
            bail!(
                "{} holds an interrupted run of this output: pass --resume to continue it, or \
                 remove the folder to start over",
                dir.display()
            );
        }
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let earlier: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        if let Some(why) = different(&earlier, manifest) {
            bail!(
                "cannot resume: {why} since the interrupted run ({}); remove it to start over",
                dir.display()
            );
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        // A line cut short by a crash is not a commit.
        committed = log
            .split_terminator('\n')
            .filter_map(|line| {
                let mut fields = line.split(' ').map(str::parse::<u64>);
                match (fields.next(), fields.next(), fields.next(), fields.next()) {
                    (Some(Ok(chunk)), Some(Ok(scored)), Some(Ok(rejected)), None) => Some(Commit {
                        chunk,
                        scored,
                        rejected,
                    }),
                    _ => None,
                }
            })
            .collect();
        if !log.is_empty() && !log.ends_with('\n') {
            // Drop the torn tail, so that appends start on a line of their own.
            let whole = log.rfind('\n').map_or(0, |i| i + 1);
            let f = OpenOptions::new().write(true).open(&log_path)?;
            f.set_len(whole as u64)?;
        }
        committed.sort_by_key(|c| c.chunk);
        committed.dedup_by_key(|c| c.chunk);
    } else {
        // A folder without a manifest never started a chunk.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_json::to_string_pretty(manifest)?;
        write_durably(&manifest_path, |mut f| {
            f.write_all(text.as_bytes())?;
            Ok(f)
        })?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    Ok((
        WorkDir {
            dir,
            format: manifest.output,
            log: std::sync::Mutex::new(log),
        },
        committed,
    ))
}

/// Why a resumed job is not the interrupted one, if it is not.
fn different(earlier: &Manifest, now: &Manifest) -> Option<&'static str> {
    if earlier.wafer_batch != now.wafer_batch {
        Some("the work folder was written by another version of wafer")
    } else if earlier.input != now.input {
        Some("the input is another file")
    } else if (earlier.input_bytes, earlier.input_modified_ns)
        != (now.input_bytes, now.input_modified_ns)
    {
        Some("the input changed")
    } else if earlier.model != now.model {
        Some("the model changed")
    } else if earlier.chunk != now.chunk {
        Some("--chunk changed")
    } else if earlier.columns != now.columns || earlier.id_column != now.id_column {
        Some("--columns or --id-column changed")
    } else if earlier.output != now.output || earlier.schema != now.schema {
        Some("the output's format or columns changed")
    } else {
        None
    }
}

/// An input that does not fit the model: the CLI's "bad input" exit.
fn misfit(why: String) -> anyhow::Error {
    ProtocolError::InvalidInput(why).into()
}

/// How rows become model inputs: records through the model's spec, or numeric columns.
fn layout(
    model: &LoadedModel,
    options: &Options,
    header: &[String],
    format: Format,
) -> anyhow::Result<Layout> {
    if let Some(id) = &options.id_column
        && format != Format::Jsonl
        && !header.contains(id)
    {
        return Err(misfit(format!(
            "--id-column {id}: {} has no such column",
            options.input.display()
        )));
    }
    let shape = if model.features_toml().is_some() {
        if options.columns.is_some() {
            return Err(misfit(
                "--columns is for models without a features.toml; this model takes raw records"
                    .into(),
            ));
        }
        let spec = wafer_features::Spec::parse(model.features_toml().unwrap_or_default())
            .context("reading the model's features.toml")?;
        Shape::Records {
            fields: spec.raw_fields().into_iter().map(str::to_owned).collect(),
        }
    } else {
        let input = model
            .metadata()
            .inputs
            .first()
            .context("the model declares no input")?
            .clone();
        let columns = match &options.columns {
            Some(columns) => columns.clone(),
            None => header
                .iter()
                .filter(|h| Some(*h) != options.id_column.as_ref())
                .cloned()
                .collect(),
        };
        if format != Format::Jsonl || options.columns.is_some() {
            for c in &columns {
                if format != Format::Jsonl && !header.contains(c) {
                    return Err(misfit(format!(
                        "--columns: {} has no column \"{c}\"",
                        options.input.display()
                    )));
                }
            }
            if let Some(wafer_scoring::Dim::Fixed(width)) = input.shape.get(1)
                && *width != columns.len()
            {
                return Err(misfit(format!(
                    "the model's input \"{}\" takes {width} columns, and {} are chosen ({}); \
                     choose them with --columns",
                    input.name,
                    columns.len(),
                    columns.join(", ")
                )));
            }
        }
        Shape::Numbers { columns, input }
    };
    Ok(Layout {
        shape,
        id_column: options.id_column.clone(),
        header: header.to_vec(),
    })
}

/// A bar over the input's bytes (rows for Parquet), with rows per second and an ETA; hidden
/// when not asked for or not on a terminal.
fn progress_bar(show: bool, format: Format, input: &Path, bytes: u64) -> ProgressBar {
    if !show || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let len = match format {
        Format::Parquet => File::open(input)
            .ok()
            .and_then(|f| parquet::file::reader::SerializedFileReader::new(f).ok())
            .map_or(0, |r| {
                use parquet::file::reader::FileReader as _;
                u64::try_from(r.metadata().file_metadata().num_rows()).unwrap_or(0)
            }),
        _ => bytes,
    };
    let bar = ProgressBar::new(len);
    let template = match format {
        Format::Parquet => "{bar:40} {percent:>3}% {msg} (ETA {eta})",
        _ => "{bar:40} {bytes}/{total_bytes} {msg} (ETA {eta})",
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[derive(Default)]
struct Counts {
    scored: AtomicU64,
    rejected: AtomicU64,
}

/// One worker: an instance of the model, scoring and committing chunks.
struct Worker {
    session: Session,
    layout: Layout,
    schema: Schema,
    work: Arc<WorkDir>,
    counts: Arc<Counts>,
    bar: ProgressBar,
    started: Instant,
}

/// A chunk's scored rows, as one call or row by row.
struct Piece {
    rows: Vec<u64>,
    ids: Option<Vec<String>>,
    outputs: Vec<Tensor>,
}

impl Worker {
    async fn chunk(&mut self, index: u64, first: u64, block: &Block) -> anyhow::Result<()> {
        let shaped = self.layout.shape(first, block);
        let (pieces, rejected) = self.score(shaped).await?;
        let scored: u64 = pieces.iter().map(|p| p.rows.len() as u64).sum();
        let commit = Commit {
            chunk: index,
            scored,
            rejected: rejected.len() as u64,
        };
        let views: Vec<Scored<'_>> = pieces
            .iter()
            .map(|p| Scored {
                rows: &p.rows,
                ids: p.ids.as_deref(),
                outputs: &p.outputs,
            })
            .collect();
        let format = self.work.format;
        let schema = &self.schema;
        tokio::task::block_in_place(|| {
            self.work.commit(
                commit,
                |f| output::write_rejects(&rejected, f),
                |f| output::write_part(format, schema, &views, f),
            )
        })
        .with_context(|| format!("committing chunk {index}"))?;
        let scored = self
            .counts
            .scored
            .fetch_add(commit.scored, Ordering::Relaxed)
            + commit.scored;
        let rejected = self
            .counts
            .rejected
            .fetch_add(commit.rejected, Ordering::Relaxed)
            + commit.rejected;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{scored} rows scored, {rejected} rejected, {:.0} rows/s",
            (scored + rejected) as f64 / secs
        ));
        Ok(())
    }

    /// Scores a shaped chunk in one call. If the call fails as a whole (the model itself
    /// failed), its rows are scored one at a time, so that only the rows that fail are
    /// rejected, each with its error.
    async fn score(&mut self, shaped: Shaped) -> anyhow::Result<(Vec<Piece>, Vec<Reject>)> {
        let Shaped {
            rows,
            ids,
            payload,
            mut rejected,
        } = shaped;
        let whole = match &payload {
            Payload::Nothing => return Ok((Vec::new(), rejected)),
            Payload::Records { columns } => {
                self.session.predict_batch(rows.len(), columns, &[]).await
            }
            Payload::Numbers { tensor, .. } => self
                .session
                .predict(vec![tensor.clone()], &[])
                .await
                .map(|outputs| wafer_protocol::Batch {
                    outputs,
                    kept: (0..rows.len()).collect(),
                    rejected: Vec::new(),
                }),
        };
        let mut pieces = Vec::new();
        match whole {
            Ok(batch) => {
                for (i, reason) in batch.rejected {
                    rejected.push(Reject {
                        row: rows[i],
                        id: ids.as_ref().map(|ids| ids[i].clone()),
                        reason,
                    });
                }
                pieces.push(Piece {
                    rows: batch.kept.iter().map(|&i| rows[i]).collect(),
                    ids: ids
                        .as_ref()
                        .map(|ids| batch.kept.iter().map(|&i| ids[i].clone()).collect()),
                    outputs: batch.outputs,
                });
            }
            Err(e) if rows.len() == 1 => rejected.push(Reject {
                row: rows[0],
                id: ids.as_ref().map(|ids| ids[0].clone()),
                reason: e.to_string(),
            }),
            Err(e) => {
                tracing::warn!(
                    rows = rows.len(),
                    error = %e,
                    "a chunk failed as a whole; scoring its rows one at a time"
                );
                // Records' columns, unpacked once for all the rows scored alone.
                let values = match &payload {
                    Payload::Records { columns } => columns
                        .iter()
                        .map(|(name, packed)| {
                            let values = packed
                                .unpack()
                                .with_context(|| format!("column \"{name}\""))?;
                            anyhow::Ok((name.as_str(), values))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()?,
                    _ => Vec::new(),
                };
                for (i, &row) in rows.iter().enumerate() {
                    let id = ids.as_ref().map(|ids| ids[i].clone());
                    match self.one(&payload, &values, i).await {
                        Ok(batch) if batch.rejected.is_empty() => pieces.push(Piece {
                            rows: vec![row],
                            ids: id.map(|id| vec![id]),
                            outputs: batch.outputs,
                        }),
                        Ok(batch) => rejected.push(Reject {
                            row,
                            id,
                            reason: batch.rejected[0].1.clone(),
                        }),
                        Err(e) => rejected.push(Reject {
                            row,
                            id,
                            reason: e.to_string(),
                        }),
                    }
                }
            }
        }
        rejected.sort_by_key(|r| r.row);
        Ok((pieces, rejected))
    }

    /// Scores row `i` of a payload alone; `values` are a records payload's columns, unpacked.
    async fn one(
        &mut self,
        payload: &Payload,
        values: &[(&str, Vec<wafer_features::Value>)],
        i: usize,
    ) -> Result<wafer_protocol::Batch, ProtocolError> {
        match payload {
            Payload::Records { .. } => {
                let one: Vec<(String, Packed)> = values
                    .iter()
                    .map(|(name, values)| ((*name).to_owned(), Packed::of(&values[i..=i])))
                    .collect();
                self.session.predict_batch(1, &one, &[]).await
            }
            Payload::Numbers { rows, .. } => {
                let Shape::Numbers { input, .. } = &self.layout.shape else {
                    return Err(ProtocolError::Internal("numbers without an input".into()));
                };
                let row = wafer_features::assemble_rows(input, std::slice::from_ref(&rows[i]))
                    .map_err(|e| ProtocolError::InvalidInput(e.to_string()))?;
                let outputs = self.session.predict(vec![row], &[]).await?;
                Ok(wafer_protocol::Batch {
                    outputs,
                    kept: vec![0],
                    rejected: Vec::new(),
                })
            }
            Payload::Nothing => Err(ProtocolError::Internal("no rows".into())),
        }
    }
}

/// How long a chunk may run in the guest.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(300);
