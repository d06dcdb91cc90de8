//! `wafer drift`: every column of a current data set tested against a reference one, with the
//! test Evidently's `DataDriftPreset` picks (or the one named per column), and the dataset's
//! drift share. Files are CSV, JSON Lines or Parquet, by extension.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Serialize;
use wafer_evaluation::{ColumnDrift, Method, Sample, column_drift};
use wafer_features::Value;

use super::profile::{Column, Frame, Kind, Reference};
use crate::batch::input::{self, Format, Reader};

/// What to compare.
#[derive(Clone, Debug)]
pub struct Options {
    /// The reference data (training data, or a profile's sample).
    pub reference: PathBuf,
    /// The data to test.
    pub current: PathBuf,
    /// The columns to test [default: every column of the reference].
    pub columns: Option<Vec<String>>,
    /// Tests named per column, instead of the default choice.
    pub methods: Vec<(String, Method)>,
}

/// One column's result.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnReport {
    /// The column.
    pub column: String,
    /// `num` or `cat`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The test's name (`ks`, `chisquare`, `z`, `wasserstein`, `jensenshannon`, `psi`).
    pub method: &'static str,
    /// Its p-value or distance.
    pub score: f64,
    /// The threshold.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
    /// The share of missing values in the reference and in the current data.
    pub missing: [f64; 2],
    /// Both distributions, for the report's chart.
    pub histogram: Histogram,
}

/// Reference and current distributions over the same bins: equal-width bins over both
/// samples' range for numbers, the most frequent categories (the rest as one) for categories.
#[derive(Clone, Debug, Serialize)]
pub struct Histogram {
    /// Each bin's label: its lower edge, or the category.
    pub labels: Vec<String>,
    /// The reference's share in each bin.
    pub reference: Vec<f64>,
    /// The current data's share in each bin.
    pub current: Vec<f64>,
}

/// A bin edge as a short label.
fn short(x: f64) -> String {
    match x.abs() {
        a if a >= 1000.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

/// Bins a chart shows at most.
const CHART_BINS: usize = 20;

impl Histogram {
    fn of(reference: &Sample, current: &Sample) -> Histogram {
        match (reference, current) {
            (Sample::Numbers(r), Sample::Numbers(c)) => {
                let (lo, hi) = r
                    .iter()
                    .chain(c)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                let width = if hi > lo {
                    (hi - lo) / CHART_BINS as f64
                } else {
                    1.0
                };
                let shares = |v: &[f64]| {
                    let mut bins = vec![0.0; CHART_BINS];
                    for x in v {
                        let i = (((x - lo) / width) as usize).min(CHART_BINS - 1);
                        bins[i] += 1.0 / v.len() as f64;
                    }
                    bins
                };
                Histogram {
                    labels: (0..CHART_BINS)
                        .map(|i| short(lo + i as f64 * width))
                        .collect(),
                    reference: shares(r),
                    current: shares(c),
                }
            }
            (Sample::Categories(r), Sample::Categories(c)) => {
                let mut counts = std::collections::HashMap::<&str, (f64, f64)>::new();
                for x in r {
                    counts.entry(x).or_default().0 += 1.0 / r.len() as f64;
                }
                for x in c {
                    counts.entry(x).or_default().1 += 1.0 / c.len() as f64;
                }
                let mut ranked: Vec<(&str, (f64, f64))> = counts.into_iter().collect();
                ranked.sort_by(|a, b| {
                    (b.1.0 + b.1.1)
                        .total_cmp(&(a.1.0 + a.1.1))
                        .then(a.0.cmp(b.0))
                });
                let mut h = Histogram {
                    labels: Vec::new(),
                    reference: Vec::new(),
                    current: Vec::new(),
                };
                for (i, (label, (r, c))) in ranked.into_iter().enumerate() {
                    if i + 1 < CHART_BINS {
                        h.labels.push(label.to_owned());
                        h.reference.push(r);
                        h.current.push(c);
                    } else if i + 1 == CHART_BINS {
                        h.labels.push("(others)".to_owned());
                        h.reference.push(r);
                        h.current.push(c);
                    } else {
                        h.reference[CHART_BINS - 1] += r;
                        h.current[CHART_BINS - 1] += c;
                    }
                }
                h
            }
            _ => Histogram {
                labels: Vec::new(),
                reference: Vec::new(),
                current: Vec::new(),
            },
        }
    }
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Rows read from each side.
    pub reference_rows: usize,
    /// Rows read from the current data.
    pub current_rows: usize,
    /// Each column, drifted ones first, then by name.
    pub columns: Vec<ColumnReport>,
    /// Columns not tested: the current data has no value in them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untested: Vec<String>,
    /// The share of drifted columns.
    pub share: f64,
    /// Whether the dataset drifted (at least half its columns).
    pub drifted: bool,
}

/// Reads both files and tests every column.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let (header, reference) = read(&options.reference, options.columns.as_deref())?;
    let (_, current) = read(&options.current, Some(&header))?;
    let mut frames = (Frame::default(), Frame::default());
    frames.0.rows = reference.first().map_or(0, Vec::len);
    frames.1.rows = current.first().map_or(0, Vec::len);
    for ((name, r), c) in header.iter().zip(reference).zip(current) {
        let kind = kind_of(&r, &c);
        let column = |values| Column {
            name: name.clone(),
            kind,
            values,
        };
        frames.0.columns.push(column(r));
        frames.1.columns.push(column(c));
    }
    test(&frames.0, &frames.1, &options.methods)
}

/// Tests every column of `reference` against the same column of `current`, with the test
/// named in `methods` or Evidently's default.
pub fn test(
    reference: &Frame,
    current: &Frame,
    methods: &[(String, Method)],
) -> anyhow::Result<Report> {
    if reference.rows == 0 || current.rows == 0 {
        bail!(
            "nothing to compare: the reference has {} rows, the current data {}",
            reference.rows,
            current.rows
        );
    }
    for (column, _) in methods {
        if reference.column(column).is_none() {
            bail!("--method names \"{column}\", which is not a column of the reference");
        }
    }
    let mut columns = Vec::new();
    let mut untested = Vec::new();
    for r in &reference.columns {
        let Some(c) = current.column(&r.name) else {
            untested.push(r.name.clone());
            continue;
        };
        let c = Column {
            kind: r.kind,
            ..c.clone()
        };
        let (r_sample, c_sample) = (r.sample(), c.sample());
        if r_sample.is_empty() || c_sample.is_empty() {
            untested.push(r.name.clone());
            continue;
        }
        let method = methods
            .iter()
            .find(|(column, _)| *column == r.name)
            .map(|(_, m)| *m);
        let drift: ColumnDrift = column_drift(&r_sample, &c_sample, method, None)
            .with_context(|| format!("column \"{}\"", r.name))?;
        columns.push(ColumnReport {
            column: r.name.clone(),
            kind: match r.kind {
                Kind::Num => "num",
                Kind::Cat => "cat",
            },
            method: drift.method.name(),
            score: drift.score,
            threshold: drift.threshold,
            drifted: drift.drifted,
            missing: [r.missing(), c.missing()],
            histogram: Histogram::of(&r_sample, &c_sample),
        });
    }
    let drifted = columns.iter().filter(|c| c.drifted).count();
    let share = drifted as f64 / columns.len().max(1) as f64;
    columns.sort_by(|a, b| b.drifted.cmp(&a.drifted).then(a.column.cmp(&b.column)));
    Ok(Report {
        reference_rows: reference.rows,
        current_rows: current.rows,
        drifted: !columns.is_empty() && share >= wafer_evaluation::drift::DATASET_DRIFT_SHARE,
        columns,
        untested,
        share,
    })
}

/// A column pair's kind: numeric when every present value on both sides is a number
/// (booleans count as 0 and 1), else categories (numbers as their text).
fn kind_of(reference: &[Value], current: &[Value]) -> Kind {
    let numeric = reference
        .iter()
        .chain(current)
        .all(|v| matches!(v, Value::Missing | Value::Number(_) | Value::Bool(_)));
    if numeric { Kind::Num } else { Kind::Cat }
}

/// Reads `columns` (default: the file's own) of a file, column by column.
fn read(path: &Path, columns: Option<&[String]>) -> anyhow::Result<(Vec<String>, Vec<Vec<Value>>)> {
    let format = Format::of(path)?;
    let mut reader = Reader::open(path, format)?;
    let header = reader.columns().to_vec();
    let mut names: Option<Vec<String>> = columns.map(<[String]>::to_vec);
    let mut out: Vec<Vec<Value>> = Vec::new();
    while let Some(block) = reader
        .next_block(8192)
        .with_context(|| format!("reading {}", path.display()))?
    {
        let names = names.get_or_insert_with(|| match format {
            Format::Jsonl => input::first_record_fields(&block),
            _ => header.clone(),
        });
        if out.is_empty() {
            if let Some(missing) = names
                .iter()
                .find(|n| format != Format::Jsonl && !header.contains(n))
            {
                bail!("{} has no column \"{missing}\"", path.display());
            }
            out = vec![Vec::new(); names.len()];
        }
        for row in input::values(&header, &block, names) {
            for (column, value) in out.iter_mut().zip(row) {
                column.push(value);
            }
        }
    }
    let names = names.unwrap_or(header);
    if out.is_empty() {
        out = vec![Vec::new(); names.len()];
    }
    Ok((names, out))
}

impl Report {
    /// The terminal table: a line per column, drifted ones first.
    pub fn table(&self) -> String {
        let width = self
            .columns
            .iter()
            .map(|c| c.column.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = format!(
            "{:<width$}  type  {:<13}  {:>12}  {:>9}  drift\n",
            "column", "method", "score", "threshold"
        );
        for c in &self.columns {
            let score = if c.score == 0.0 || c.score.abs() >= 1e-4 {
                format!("{:.6}", c.score)
            } else {
                format!("{:.3e}", c.score)
            };
            out.push_str(&format!(
                "{:<width$}  {:<4}  {:<13}  {:>12}  {:>9}  {}\n",
                c.column,
                c.kind,
                c.method,
                score,
                c.threshold,
                if c.drifted { "DRIFT" } else { "-" }
            ));
        }
        for c in &self.untested {
            out.push_str(&format!(
                "{c:<width$}  -     (not tested: no value in the current data)\n"
            ));
        }
        let drifted = self.columns.iter().filter(|c| c.drifted).count();
        out.push_str(&format!(
            "{drifted} of {} columns drifted ({:.1}%): {} ({} reference rows, {} current rows)\n",
            self.columns.len(),
            self.share * 100.0,
            if self.drifted {
                "the dataset drifted"
            } else {
                "no dataset drift"
            },
            self.reference_rows,
            self.current_rows
        ));
        out
    }
}

/// What a model's reference is tested against.
#[derive(Clone, Debug)]
pub enum Current {
    /// A file of records (or rows), scored natively by the model.
    File(PathBuf),
    /// Logged requests of the model and what it answered.
    Log {
        /// The prediction log.
        db: PathBuf,
        /// The model's name in the log.
        model: String,
        /// Only this version's requests.
        version: Option<String>,
        /// Only requests from this time on, ms since the epoch.
        since_ms: u64,
        /// The newest rows at most.
        rows: usize,
    },
}

/// Tests `current` against the reference profile of the model folder `dir` (see
/// [`super::profile`]): every profiled field (or input column) and output, or `columns`.
pub fn against_profile(
    dir: &Path,
    current: &Current,
    columns: Option<&[String]>,
    methods: &[(String, Method)],
    features: Option<&std::sync::Arc<crate::store::FeatureStore>>,
) -> anyhow::Result<Report> {
    let Some(mut reference) = Reference::load(dir)? else {
        bail!(
            "{} has no reference profile: make one with `wafer profile {} --data <training data>`",
            dir.display(),
            dir.display()
        );
    };
    if let Some(columns) = columns {
        for c in columns {
            if reference.sample.column(c).is_none() {
                bail!("--columns names \"{c}\", which the profile does not hold");
            }
        }
        reference
            .sample
            .columns
            .retain(|c| columns.contains(&c.name));
    }
    let frame = match current {
        Current::File(path) => reference.current_of_file(dir, path, features)?,
        Current::Log {
            db,
            model,
            version,
            since_ms,
            rows,
        } => {
            let log = crate::monitoring::log::open_read_only(db)?;
            reference.current_of_log(&log, model, version.as_deref(), *since_ms, *rows)?
        }
    };
    test(&reference.sample, &frame, methods)
}
