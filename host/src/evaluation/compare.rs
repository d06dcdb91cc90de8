//! `wafer compare A B --data FILE`: two models scored on the same rows (through `wafer
//! batch`'s machinery) and compared: label agreement with a confusion table, and the largest
//! and mean absolute difference of each float output; with true labels, each model's quality
//! (accuracy, log-loss and one-vs-rest ROC AUC for classifiers, RMSE, MAE and R² for
//! regressors), computed as scikit-learn computes them. `--max-disagreement` turns it into a CI
//! gate for a model update.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::batch::{self, input};
use crate::runtime::LoadedModel;

/// A comparison that went past `--max-disagreement`: `wafer compare` exits 4 with it.
#[derive(Debug, thiserror::Error)]
#[error("the models disagree on {share:.2}% of the rows, more than the {limit:.2}% allowed")]
pub struct GateFailed {
    /// The disagreement, in percent.
    pub share: f64,
    /// The limit, in percent.
    pub limit: f64,
}

/// What to compare.
pub struct Options {
    /// The rows: CSV, JSON Lines or Parquet.
    pub data: PathBuf,
    /// The column holding the true label or target, left out of the models' inputs.
    pub labels: Option<String>,
    /// Where the two models' scored rows go (temporary).
    pub work_dir: PathBuf,
}

/// One label output's agreement.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// The output.
    pub output: String,
    /// Rows where both gave the same label.
    pub agree: usize,
    /// The rows (from 0) where they did not.
    pub disagree: Vec<usize>,
    /// The share of rows where they did not.
    pub disagreement: f64,
    /// Rows by A's label, then B's.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
}

/// One float output's differences.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// The output.
    pub output: String,
    /// The largest absolute difference over every value.
    pub max_abs: f64,
    /// The mean absolute difference.
    pub mean_abs: f64,
}

/// A model's quality against the true labels.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Quality {
    /// Classifiers: the share of rows labelled right.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Classifiers: the mean negative log-likelihood of the true class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_loss: Option<f64>,
    /// Classifiers: ROC AUC (binary, or the one-vs-rest macro average).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Regressors: root mean squared error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Regressors: mean absolute error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Regressors: the coefficient of determination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<f64>,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Rows both models scored.
    pub rows: usize,
    /// Per label output.
    pub labels: Vec<Agreement>,
    /// Per float output.
    pub differences: Vec<Difference>,
    /// Model A's quality, with `--labels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<Quality>,
    /// Model B's quality, with `--labels`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<Quality>,
}

impl Comparison {
    /// The disagreement share of the first label output (0 for a regressor).
    pub fn disagreement(&self) -> f64 {
        self.labels.first().map_or(0.0, |a| a.disagreement)
    }
}

/// Scores `options.data` with both models and compares what they said.
pub async fn run(
    a: Arc<LoadedModel>,
    b: Arc<LoadedModel>,
    options: &Options,
) -> anyhow::Result<Comparison> {
    std::fs::create_dir_all(&options.work_dir)
        .with_context(|| format!("creating {}", options.work_dir.display()))?;
    let scored_a = score(&a, "a", options).await?;
    let scored_b = score(&b, "b", options).await?;
    if scored_a.len() != scored_b.len() {
        bail!(
            "A scored {} rows and B {}: nothing to compare row by row",
            scored_a.len(),
            scored_b.len()
        );
    }
    let outputs = |m: &LoadedModel| -> Vec<String> {
        m.metadata()
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .collect()
    };
    let mut labels = Vec::new();
    let mut differences = Vec::new();
    for output in outputs(&a).into_iter().filter(|o| outputs(&b).contains(o)) {
        match label_column(&scored_a, &output) {
            Some(column) => labels.push(agreement(&output, &column, &scored_a, &scored_b)),
            None => {
                let columns = columns_of(&scored_a, &output);
                differences.push(difference(&output, &columns, &scored_a, &scored_b)?);
            }
        }
    }
    let (qa, qb) = match &options.labels {
        Some(column) => {
            let truth = read_labels(&options.data, column)?;
            if truth.len() != scored_a.len() {
                bail!(
                    "{} rows hold a label, {} were scored",
                    truth.len(),
                    scored_a.len()
                );
            }
            (
                Some(quality(&a, &scored_a, &truth)),
                Some(quality(&b, &scored_b, &truth)),
            )
        }
        None => (None, None),
    };
    Ok(Comparison {
        rows: scored_a.len(),
        labels,
        differences,
        a: qa,
        b: qb,
    })
}

/// Scores the data with `model` into `<work_dir>/<tag>.jsonl` and reads it back, in row order.
async fn score(
    model: &Arc<LoadedModel>,
    tag: &str,
    options: &Options,
) -> anyhow::Result<Vec<Map<String, Json>>> {
    let output = options.work_dir.join(format!("{tag}.jsonl"));
    // A model without a spec takes every column but the labels.
    let columns = match (&options.labels, model.features_toml()) {
        (Some(labels), None) => {
            let reader = input::Reader::open(&options.data, input::Format::of(&options.data)?)?;
            Some(
                reader
                    .columns()
                    .iter()
                    .filter(|c| *c != labels)
                    .cloned()
                    .collect(),
            )
        }
        _ => None,
    };
    let job = batch::Options {
        input: options.data.clone(),
        output: output.clone(),
        rejects: None,
        columns,
        id_column: None,
        workers: crate::cores(),
        chunk: 16_384,
        resume: false,
        progress: false,
    };
    batch::run(Arc::clone(model), &job)
        .await
        .with_context(|| format!("scoring the data with model {} ({tag})", model.name()))?;
    let file =
        std::fs::File::open(&output).with_context(|| format!("reading {}", output.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|line| {
            let line = line?;
            match serde_json::from_str(&line)? {
                Json::Object(row) => Ok(row),
                other => bail!("a scored row is not an object: {other}"),
            }
        })
        .collect()
}

/// The columns an output became: its name, or `<name>_<class>` for each class.
fn columns_of(rows: &[Map<String, Json>], output: &str) -> Vec<String> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let prefix = format!("{output}_");
    first
        .keys()
        .filter(|k| *k == output || k.starts_with(&prefix))
        .cloned()
        .collect()
}

/// The column of a label output: one column whose every value is an integer or text.
fn label_column(rows: &[Map<String, Json>], output: &str) -> Option<String> {
    let columns = columns_of(rows, output);
    let [column] = columns.as_slice() else {
        return None;
    };
    rows.iter()
        .all(|r| {
            r.get(column)
                .is_some_and(|v| v.is_i64() || v.is_u64() || v.is_string())
        })
        .then(|| column.clone())
}

/// A label as text.
fn label_text(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn agreement(
    output: &str,
    column: &str,
    a: &[Map<String, Json>],
    b: &[Map<String, Json>],
) -> Agreement {
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut disagree = Vec::new();
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        let (la, lb) = (label_text(ra.get(column)), label_text(rb.get(column)));
        if la != lb {
            disagree.push(i);
        }
        *confusion.entry(la).or_default().entry(lb).or_default() += 1;
    }
    Agreement {
        output: output.to_owned(),
        agree: a.len() - disagree.len(),
        disagreement: disagree.len() as f64 / a.len().max(1) as f64,
        disagree,
        confusion,
    }
}

fn number(row: &Map<String, Json>, column: &str) -> anyhow::Result<f64> {
    row.get(column)
        .and_then(Json::as_f64)
        .with_context(|| format!("column {column} is not a number in every row"))
}

fn difference(
    output: &str,
    columns: &[String],
    a: &[Map<String, Json>],
    b: &[Map<String, Json>],
) -> anyhow::Result<Difference> {
    let (mut max_abs, mut sum, mut n) = (0.0f64, 0.0, 0usize);
    for (ra, rb) in a.iter().zip(b) {
        for c in columns {
            let d = (number(ra, c)? - number(rb, c)?).abs();
            max_abs = max_abs.max(d);
            sum += d;
            n += 1;
        }
    }
    Ok(Difference {
        output: output.to_owned(),
        max_abs,
        mean_abs: sum / n.max(1) as f64,
    })
}

/// The `column` of every row of the data, as text.
fn read_labels(data: &Path, column: &str) -> anyhow::Result<Vec<String>> {
    let format = input::Format::of(data)?;
    let mut reader = input::Reader::open(data, format)?;
    let header = reader.columns().to_vec();
    if format != input::Format::Jsonl && !header.iter().any(|h| h == column) {
        bail!("{} has no column \"{column}\"", data.display());
    }
    let columns = [column.to_owned()];
    let mut labels = Vec::new();
    while let Some(block) = reader.next_block(8192)? {
        for row in input::values(&header, &block, &columns) {
            labels.push(input::text_of(&row[0]));
        }
    }
    Ok(labels)
}

/// A model's quality against `truth`: classification metrics when it has a label output (and
/// a probability output whose columns name the classes), regression metrics otherwise.
fn quality(model: &LoadedModel, rows: &[Map<String, Json>], truth: &[String]) -> Quality {
    let outputs: Vec<String> = model
        .metadata()
        .outputs
        .iter()
        .map(|o| o.name.clone())
        .collect();
    let label = outputs.iter().find_map(|o| label_column(rows, o));
    match label {
        Some(label) => {
            let right = rows
                .iter()
                .zip(truth)
                .filter(|(r, t)| label_text(r.get(&label)) == **t)
                .count();
            let probabilities = outputs.iter().find_map(|o| {
                let columns = columns_of(rows, o);
                (columns.len() > 1).then(|| (o.clone(), columns))
            });
            let (log_loss, roc_auc) = match probabilities {
                Some((output, columns)) => class_metrics(rows, truth, &output, &columns),
                None => (None, None),
            };
            Quality {
                accuracy: Some(right as f64 / rows.len().max(1) as f64),
                log_loss,
                roc_auc,
                ..Quality::default()
            }
        }
        None => {
            let Some(column) = outputs
                .first()
                .map(|o| columns_of(rows, o))
                .and_then(|c| c.first().cloned())
            else {
                return Quality::default();
            };
            let pairs: Vec<(f64, f64)> = rows
                .iter()
                .zip(truth)
                .filter_map(|(r, t)| Some((number(r, &column).ok()?, t.parse::<f64>().ok()?)))
                .collect();
            let n = pairs.len().max(1) as f64;
            let mean = pairs.iter().map(|(_, y)| y).sum::<f64>() / n;
            let sse: f64 = pairs.iter().map(|(p, y)| (p - y) * (p - y)).sum();
            let sst: f64 = pairs.iter().map(|(_, y)| (y - mean) * (y - mean)).sum();
            Quality {
                rmse: Some((sse / n).sqrt()),
                mae: Some(pairs.iter().map(|(p, y)| (p - y).abs()).sum::<f64>() / n),
                r2: Some(1.0 - sse / sst),
                ..Quality::default()
            }
        }
    }
}

/// Log-loss (probabilities clipped to [ε, 1 - ε], as scikit-learn clips them) and ROC AUC
/// (binary: of the second class; more: the one-vs-rest macro average), from the probability
/// columns `<output>_<class>`.
fn class_metrics(
    rows: &[Map<String, Json>],
    truth: &[String],
    output: &str,
    columns: &[String],
) -> (Option<f64>, Option<f64>) {
    let prefix = format!("{output}_");
    let classes: Vec<&str> = columns.iter().map(|c| &c[prefix.len()..]).collect();
    let Ok(p): Result<Vec<Vec<f64>>, _> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| number(r, c))
                .collect::<Result<Vec<f64>, _>>()
        })
        .collect()
    else {
        return (None, None);
    };
    let Some(truth_index): Option<Vec<usize>> = truth
        .iter()
        .map(|t| classes.iter().position(|c| c == t))
        .collect()
    else {
        return (None, None);
    };
    let eps = f64::EPSILON;
    let log_loss = -p
        .iter()
        .zip(&truth_index)
        .map(|(row, &k)| row[k].clamp(eps, 1.0 - eps).ln())
        .sum::<f64>()
        / p.len().max(1) as f64;
    let auc_of = |k: usize| {
        let scored: Vec<(f64, bool)> = p
            .iter()
            .zip(&truth_index)
            .map(|(row, &t)| (row[k], t == k))
            .collect();
        roc_auc(&scored)
    };
    let roc_auc = if classes.len() == 2 {
        auc_of(1)
    } else {
        let aucs: Option<Vec<f64>> = (0..classes.len()).map(auc_of).collect();
        aucs.map(|a| a.iter().sum::<f64>() / a.len() as f64)
    };
    (Some(log_loss), roc_auc)
}

/// The area under the ROC curve of (score, positive) pairs: the Mann-Whitney statistic, ties
/// counted half, as the trapezoids of scikit-learn's curve give it. `None` without both kinds.
fn roc_auc(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|(_, p)| *p).count();
    let negatives = scored.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut sorted = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += rank * sorted[i..=j].iter().filter(|(_, p)| *p).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (positives as f64, negatives as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

impl Comparison {
    /// The terminal summary.
    pub fn table(&self) -> String {
        let mut out = format!("{} rows\n", self.rows);
        for a in &self.labels {
            out.push_str(&format!(
                "{}: agree on {} of {} rows ({:.2}% disagree){}\n",
                a.output,
                a.agree,
                self.rows,
                a.disagreement * 100.0,
                if a.disagree.is_empty() {
                    String::new()
                } else {
                    let rows: Vec<String> =
                        a.disagree.iter().take(20).map(usize::to_string).collect();
                    format!(
                        "; rows {}{}",
                        rows.join(", "),
                        if a.disagree.len() > 20 { ", ..." } else { "" }
                    )
                }
            ));
            out.push_str("  confusion (A down, B across):\n");
            let columns: std::collections::BTreeSet<&String> =
                a.confusion.values().flat_map(|r| r.keys()).collect();
            out.push_str(&format!(
                "    {:>8} {}\n",
                "",
                columns
                    .iter()
                    .map(|c| format!("{c:>8}"))
                    .collect::<String>()
            ));
            for (la, row) in &a.confusion {
                out.push_str(&format!(
                    "    {la:>8} {}\n",
                    columns
                        .iter()
                        .map(|c| format!("{:>8}", row.get(*c).copied().unwrap_or(0)))
                        .collect::<String>()
                ));
            }
        }
        for d in &self.differences {
            out.push_str(&format!(
                "{}: max |A - B| {:.6}, mean {:.6}\n",
                d.output, d.max_abs, d.mean_abs
            ));
        }
        for (name, q) in [("A", &self.a), ("B", &self.b)] {
            if let Some(q) = q {
                out.push_str(&format!(
                    "{name}: {}\n",
                    serde_json::to_string(q).unwrap_or_default()
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(roc_auc(&perfect), Some(1.0));
        let tied = [(0.5, false), (0.5, true)];
        assert_eq!(roc_auc(&tied), Some(0.5));
        // scikit-learn: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let mixed = [(0.1, false), (0.4, false), (0.35, true), (0.8, true)];
        assert_eq!(roc_auc(&mixed), Some(0.75));
        assert_eq!(roc_auc(&[(0.3, true)]), None);
    }
}
