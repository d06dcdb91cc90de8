//! Reference profiles: what a model's training data looked like, kept beside the model so
//! that drift can be tested against it later, offline (`wafer drift MODEL`) or online
//! (`wafer serve`).
//!
//! `wafer profile MODEL --data train.csv` writes `MODEL/reference/`:
//! - `sample.csv`: a seeded, bounded sample of the data's raw fields (or input columns), and
//!   the model's outputs on those rows (scored natively: the spec's transform and tract);
//! - `profile.json`: how each column is tested (`num` or `cat`), its summary (count, missing
//!   share, and quantiles or category frequencies, over the sample), and the fields left out
//!   (looked up from a store, or identifiers).
//!
//! The same code turns current data into the same columns: a file of records (scored the same
//! way), or a window of the prediction log (the raw records or tensors the server was sent,
//! and what it answered).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use wafer_evaluation::Sample;
use wafer_evaluation::profile::{Reservoir, Summary, summarize_categories, summarize_numbers};
use wafer_features::{FieldType, Typed, Value};
use wafer_protocol::{self as protocol, Pipeline};

use crate::batch::input::{self, Format, Reader};
use crate::store::FeatureStore;

/// The folder beside `model.onnx` that holds the reference profile.
pub const REFERENCE_DIR: &str = "reference";
const PROFILE_FILE: &str = "profile.json";
const SAMPLE_FILE: &str = "sample.csv";

/// Rows a profile samples by default.
pub const DEFAULT_SAMPLE: usize = 5_000;

/// How a column is tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Numbers.
    Num,
    /// Categories.
    Cat,
}

/// Where a column comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A raw field of the model's `features.toml`.
    Field,
    /// A column of the input tensor of a model without a spec: `X[0]`, `X[1]`, ...
    Input,
    /// A model output: `label`, or `probabilities[1]` for a column of a wider one.
    Output,
}

/// One profiled column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// The column.
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// How it is tested.
    pub kind: Kind,
    /// The raw field's type, for fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_type: Option<FieldType>,
    /// Its summary over the sample.
    #[serde(flatten)]
    pub summary: Summary,
}

/// A field the profile leaves out, and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Skipped {
    /// The field.
    pub name: String,
    /// Why it is not tested.
    pub reason: String,
}

/// `profile.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// The model folder's name.
    pub model: String,
    /// The file the profile was made from.
    pub data: String,
    /// Rows read from it.
    pub rows: u64,
    /// Rows in the sample (those the model scored).
    pub sample_rows: usize,
    /// Sampled rows the model refused (left out of the sample).
    pub rejected: usize,
    /// The sampling seed.
    pub seed: u64,
    /// The tested columns, fields (or inputs) first, then outputs.
    pub columns: Vec<ColumnProfile>,
    /// Fields left out.
    pub skipped: Vec<Skipped>,
}

/// One column's values (numbers for `num`, text for `cat`, or missing).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The column.
    pub name: String,
    /// How it is tested.
    pub kind: Kind,
    /// Its values, one per row.
    pub values: Vec<Value>,
}

impl Column {
    /// The present values as a drift test's sample.
    pub fn sample(&self) -> Sample {
        let present = self.values.iter().filter(|v| !matches!(v, Value::Missing));
        match self.kind {
            Kind::Num => Sample::Numbers(present.filter_map(number).collect()),
            Kind::Cat => Sample::Categories(present.filter_map(category).collect()),
        }
    }

    /// The share of missing values.
    pub fn missing(&self) -> f64 {
        let missing = self.values.iter().filter(|v| category(v).is_none()).count();
        missing as f64 / self.values.len().max(1) as f64
    }
}

/// Columns of equal length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    /// Rows.
    pub rows: usize,
    /// Columns, in order.
    pub columns: Vec<Column>,
}

impl Frame {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Appends `other`'s rows; a column either lacks is missing there.
    fn append(&mut self, other: Frame) {
        let before = self.rows;
        for c in other.columns {
            match self.columns.iter_mut().find(|x| x.name == c.name) {
                Some(x) => x.values.extend(c.values),
                None => {
                    let mut values = vec![Value::Missing; before];
                    values.extend(c.values);
                    self.columns.push(Column {
                        name: c.name,
                        kind: c.kind,
                        values,
                    });
                }
            }
        }
        self.rows += other.rows;
        for c in &mut self.columns {
            c.values.resize(self.rows, Value::Missing);
        }
    }
}

/// A number of a numeric column: booleans as 0 and 1, numeric text parsed.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Text(t) => t.trim().parse().ok(),
        Value::Missing => None,
    }
}

/// A value as a category: text, numbers in their shortest form (`1`, not `1.0`).
fn category(v: &Value) -> Option<String> {
    match v {
        Value::Missing => None,
        Value::Bool(b) => Some(b.to_string()),
        other => Some(
            other
                .coerce(FieldType::String)
                .ok()?
                .category()?
                .into_owned(),
        ),
    }
}

/// What a model takes, as columns.
#[derive(Clone, Debug)]
enum Inputs {
    /// Raw records through a spec: every field it reads, and those tested with their types.
    Fields {
        all: Vec<String>,
        tested: Vec<(String, FieldType)>,
    },
    /// A tensor, for a model without a spec.
    Tensor { name: String },
}

/// How a model's rows become columns.
struct ModelView {
    pipeline: Pipeline,
    inputs: Inputs,
    skipped: Vec<Skipped>,
}

impl ModelView {
    /// Loads the model folder `dir` natively.
    fn load(dir: &Path, name: &str) -> anyhow::Result<ModelView> {
        let pipeline = super::native_pipeline(dir, name)?;
        let mut skipped = Vec::new();
        let inputs = match pipeline.spec() {
            Some(spec) => {
                let keys: Vec<&str> = spec
                    .fields
                    .iter()
                    .filter_map(|f| f.lookup.as_ref().map(|l| l.key.as_str()))
                    .collect();
                let mut tested = Vec::new();
                for f in &spec.fields {
                    if let Some(lookup) = &f.lookup {
                        skipped.push(Skipped {
                            name: f.name.clone(),
                            reason: format!(
                                "looked up from the store \"{}\", not sent in requests",
                                lookup.store
                            ),
                        });
                    } else if keys.contains(&f.name.as_str()) {
                        skipped.push(Skipped {
                            name: f.name.clone(),
                            reason: "a lookup key: it names an entity (an identifier)".into(),
                        });
                    } else {
                        tested.push((f.name.clone(), f.kind));
                    }
                }
                Inputs::Fields {
                    all: spec.fields.iter().map(|f| f.name.clone()).collect(),
                    tested,
                }
            }
            None => {
                let input = pipeline
                    .model()
                    .metadata()
                    .inputs
                    .first()
                    .context("the model declares no input")?;
                Inputs::Tensor {
                    name: input.name.clone(),
                }
            }
        };
        Ok(ModelView {
            pipeline,
            inputs,
            skipped,
        })
    }

    /// Reads `path` (every row, or a seeded sample of `capacity` rows) as the values the model
    /// reads: the spec's fields, or every column in file order for a tensor.
    fn read(
        &self,
        path: &Path,
        capacity: usize,
        seed: u64,
    ) -> anyhow::Result<(u64, Vec<String>, Vec<Vec<Value>>)> {
        let format = Format::of(path)?;
        let mut reader = Reader::open(path, format)?;
        let header = reader.columns().to_vec();
        let mut names: Option<Vec<String>> = None;
        let mut reservoir = Reservoir::new(capacity, seed);
        let mut kept: Vec<Vec<Value>> = Vec::new();
        while let Some(block) = reader
            .next_block(8192)
            .with_context(|| format!("reading {}", path.display()))?
        {
            let names = names.get_or_insert_with(|| {
                let present = match format {
                    Format::Jsonl => input::first_record_fields(&block),
                    _ => header.clone(),
                };
                match &self.inputs {
                    // JSON Lines records may leave optional fields out.
                    Inputs::Fields { all, .. } if format == Format::Jsonl => all.clone(),
                    Inputs::Fields { all, .. } => all
                        .iter()
                        .filter(|f| present.contains(f))
                        .cloned()
                        .collect(),
                    Inputs::Tensor { .. } => present,
                }
            });
            for row in input::values(&header, &block, names) {
                if let Some(slot) = reservoir.offer() {
                    match kept.get_mut(slot) {
                        Some(old) => *old = row,
                        None => kept.push(row),
                    }
                }
            }
        }
        let names = names.unwrap_or_default();
        // The sample in the order the rows came.
        let mut order: Vec<(u64, Vec<Value>)> =
            reservoir.rows().iter().copied().zip(kept).collect();
        order.sort_by_key(|(row, _)| *row);
        Ok((
            reservoir.seen(),
            names,
            order.into_iter().map(|(_, r)| r).collect(),
        ))
    }

    /// Scores `rows` natively; returns the columns of the rows the model took, and how many
    /// it refused.
    fn score(
        &self,
        names: &[String],
        rows: Vec<Vec<Value>>,
        features: Option<&Arc<FeatureStore>>,
    ) -> anyhow::Result<(Frame, usize)> {
        let json = match &self.inputs {
            Inputs::Fields { .. } => Json::Array(
                rows.iter()
                    .map(|row| {
                        Json::Object(
                            names
                                .iter()
                                .zip(row)
                                .filter(|(_, v)| !matches!(v, Value::Missing))
                                .map(|(n, v)| (n.clone(), to_json(v)))
                                .collect(),
                        )
                    })
                    .collect(),
            ),
            Inputs::Tensor { .. } => Json::Array(
                rows.iter()
                    .map(|row| Json::Array(row.iter().map(to_json).collect()))
                    .collect(),
            ),
        };
        let mut snapshot = features.map(FeatureStore::snapshot);
        let mut fetch = |store: &str, key: &str| match &mut snapshot {
            Some(s) => s.get(store, key).map_err(|e| format!("{e:#}")),
            None => Ok(None),
        };
        let batch = self
            .pipeline
            .predict_batch(&json.to_string(), &[], &mut fetch)
            .context("scoring the rows")?;
        let kept: Vec<&Vec<Value>> = batch.kept.iter().map(|&i| &rows[i]).collect();
        let mut frame = Frame {
            rows: kept.len(),
            columns: Vec::new(),
        };
        match &self.inputs {
            Inputs::Fields { tested, .. } => {
                for (field, kind) in tested {
                    let at = names.iter().position(|n| n == field);
                    let values = kept
                        .iter()
                        .map(|row| at.map_or(Value::Missing, |i| typed(&row[i], *kind)))
                        .collect();
                    frame.columns.push(Column {
                        name: field.clone(),
                        kind: kind_of_field(*kind),
                        values,
                    });
                }
            }
            Inputs::Tensor { name } => {
                for (i, _) in names.iter().enumerate() {
                    frame.columns.push(Column {
                        name: format!("{name}[{i}]"),
                        kind: Kind::Num,
                        values: kept
                            .iter()
                            .map(|row| number(&row[i]).map_or(Value::Missing, Value::Number))
                            .collect(),
                    });
                }
            }
        }
        if !batch.outputs.is_empty() {
            let answer = protocol::tensors_to_json(batch.outputs);
            let outputs = tensor_columns(
                answer.as_array().map_or(&[][..], Vec::as_slice),
                |_, datatype| {
                    if datatype.starts_with("FP") {
                        Kind::Num
                    } else {
                        Kind::Cat
                    }
                },
            )?;
            frame.columns.extend(outputs.columns);
        }
        Ok((frame, batch.rejected.len()))
    }
}

/// A raw value as JSON.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Missing => Json::Null,
        Value::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Value::Bool(b) => Json::Bool(*b),
        Value::Text(t) => Json::String(t.clone()),
    }
}

/// How a raw field is tested.
fn kind_of_field(kind: FieldType) -> Kind {
    match kind {
        FieldType::String => Kind::Cat,
        FieldType::Float | FieldType::Int | FieldType::Bool | FieldType::Timestamp => Kind::Num,
    }
}

/// A raw value coerced to its field's type (timestamps as epoch seconds); one that does not
/// fit is missing.
fn typed(v: &Value, kind: FieldType) -> Value {
    match v.coerce(kind) {
        Ok(Typed::Number(n)) => Value::Number(n),
        Ok(Typed::Category(c)) => Value::Text(c.into_owned()),
        Ok(Typed::Missing) | Err(_) => Value::Missing,
    }
}

/// The columns of v2 tensors (`{"name", "shape", "datatype", "data"}` with flat data): a
/// tensor `[N]` or `[N, 1]` is the column `name`, a wider one `name[0]`, `name[1]`, ...
fn tensor_columns(tensors: &[Json], kind: impl Fn(&str, &str) -> Kind) -> anyhow::Result<Frame> {
    let mut frame = Frame::default();
    for (t, tensor) in tensors.iter().enumerate() {
        let name = tensor["name"].as_str().context("a tensor without a name")?;
        let shape: Vec<usize> = tensor["shape"]
            .as_array()
            .context("a tensor without a shape")?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .context("a shape of non-numbers")?;
        let data = tensor["data"].as_array().context("a tensor without data")?;
        let rows = shape.first().copied().unwrap_or(1);
        let width: usize = shape.iter().skip(1).product();
        if rows * width != data.len() {
            bail!(
                "tensor \"{name}\": shape {shape:?} does not hold {} values",
                data.len()
            );
        }
        if t == 0 {
            frame.rows = rows;
        } else if rows != frame.rows {
            bail!(
                "tensor \"{name}\" has {rows} rows, the first {}",
                frame.rows
            );
        }
        let datatype = tensor["datatype"].as_str().unwrap_or("");
        for k in 0..width {
            let column = if width == 1 {
                name.to_owned()
            } else {
                format!("{name}[{k}]")
            };
            let kind = kind(&column, datatype);
            let values = (0..rows)
                .map(|r| cell(&data[r * width + k], kind))
                .collect();
            frame.columns.push(Column {
                name: column,
                kind,
                values,
            });
        }
    }
    Ok(frame)
}

/// A JSON value as a column's cell.
fn cell(v: &Json, kind: Kind) -> Value {
    let v = Value::from_json(v);
    match kind {
        Kind::Num => number(&v).map_or(Value::Missing, Value::Number),
        Kind::Cat => category(&v).map_or(Value::Missing, Value::Text),
    }
}

/// A profile and its sample.
#[derive(Clone, Debug)]
pub struct Reference {
    /// `profile.json`.
    pub profile: Profile,
    /// `sample.csv`, as the profile's columns.
    pub sample: Frame,
}

/// Profiles `data` for the model folder `dir`: samples `sample` rows with `seed`, scores them
/// natively (lookups from `features`), and summarizes every column.
pub fn profile(
    dir: &Path,
    data: &Path,
    sample: usize,
    seed: u64,
    features: Option<&Arc<FeatureStore>>,
) -> anyhow::Result<Reference> {
    let model = crate::serving::repo::source(dir)?;
    let mut view = ModelView::load(&model.dir, &model.name)?;
    let (rows, names, sampled) = view.read(data, sample.max(1), seed)?;
    if sampled.is_empty() {
        bail!("{} holds no rows", data.display());
    }
    if let Inputs::Fields { tested, .. } = &view.inputs
        && let Some((missing, _)) = tested.iter().find(|(f, _)| !names.contains(f))
    {
        bail!(
            "{} has no column \"{missing}\", a field of {}",
            data.display(),
            model.dir.join("features.toml").display()
        );
    }
    let (mut frame, rejected) = view.score(&names, sampled, features)?;
    if frame.rows == 0 {
        bail!("the model refused every sampled row of {}", data.display());
    }
    // Text where nearly every value differs names rows, not a distribution.
    frame.columns.retain(|c| {
        let present: Vec<String> = c.values.iter().filter_map(category).collect();
        let mut distinct = present.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let identifier = c.kind == Kind::Cat
            && present.len() >= 20
            && distinct.len() as f64 >= 0.9 * present.len() as f64;
        if identifier {
            view.skipped.push(Skipped {
                name: c.name.clone(),
                reason: format!(
                    "{} of {} values are distinct: an identifier",
                    distinct.len(),
                    present.len()
                ),
            });
        }
        !identifier
    });
    let field_types: HashMap<String, FieldType> = match &view.inputs {
        Inputs::Fields { tested, .. } => tested.iter().cloned().collect(),
        Inputs::Tensor { .. } => HashMap::new(),
    };
    let columns = frame
        .columns
        .iter()
        .map(|c| ColumnProfile {
            name: c.name.clone(),
            source: match (&view.inputs, field_types.contains_key(&c.name)) {
                (_, true) => Source::Field,
                (Inputs::Tensor { name }, false) if c.name.starts_with(&format!("{name}[")) => {
                    Source::Input
                }
                _ => Source::Output,
            },
            kind: c.kind,
            field_type: field_types.get(&c.name).copied(),
            summary: summarize(c),
        })
        .collect();
    Ok(Reference {
        profile: Profile {
            model: model.name,
            data: data.display().to_string(),
            rows,
            sample_rows: frame.rows,
            rejected,
            seed,
            columns,
            skipped: view.skipped,
        },
        sample: frame,
    })
}

/// A column's summary.
fn summarize(c: &Column) -> Summary {
    match c.kind {
        Kind::Num => summarize_numbers(&c.values.iter().map(number).collect::<Vec<_>>()),
        Kind::Cat => {
            let text: Vec<Option<String>> = c.values.iter().map(category).collect();
            summarize_categories(&text.iter().map(Option::as_deref).collect::<Vec<_>>())
        }
    }
}

impl Reference {
    /// Where the reference of the model folder `dir` lives.
    pub fn dir_of(dir: &Path) -> PathBuf {
        dir.join(REFERENCE_DIR)
    }

    /// Writes `profile.json` and `sample.csv` under `dir/reference/`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let out = Reference::dir_of(dir);
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(self.sample.columns.iter().map(|c| c.name.as_str()))?;
        for r in 0..self.sample.rows {
            csv.write_record(self.sample.columns.iter().map(|c| match &c.values[r] {
                Value::Number(n) => format!("{n:?}"),
                other => input::text_of(other),
            }))?;
        }
        let csv = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::store::offline::write_atomically(&out.join(SAMPLE_FILE), |f| {
            std::io::Write::write_all(f, &csv).map_err(Into::into)
        })?;
        let mut json = serde_json::to_vec_pretty(&self.profile)?;
        json.push(b'\n');
        crate::store::offline::write_atomically(&out.join(PROFILE_FILE), |f| {
            std::io::Write::write_all(f, &json).map_err(Into::into)
        })?;
        Ok(out)
    }

    /// Reads the reference of the model folder `dir`; `None` when it has none.
    pub fn load(dir: &Path) -> anyhow::Result<Option<Reference>> {
        let at = Reference::dir_of(dir);
        let profile_path = at.join(PROFILE_FILE);
        if !profile_path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read(&profile_path)
            .with_context(|| format!("reading {}", profile_path.display()))?;
        let profile: Profile = serde_json::from_slice(&text)
            .with_context(|| format!("reading {}", profile_path.display()))?;
        let sample_path = at.join(SAMPLE_FILE);
        let mut reader = csv::Reader::from_path(&sample_path)
            .with_context(|| format!("reading {}", sample_path.display()))?;
        let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        let mut columns: Vec<Column> = Vec::new();
        for c in &profile.columns {
            if !header.contains(&c.name) {
                bail!("{} has no column \"{}\"", sample_path.display(), c.name);
            }
            columns.push(Column {
                name: c.name.clone(),
                kind: c.kind,
                values: Vec::new(),
            });
        }
        let at_of: Vec<usize> = profile
            .columns
            .iter()
            .map(|c| header.iter().position(|h| *h == c.name).unwrap_or(0))
            .collect();
        let mut rows = 0;
        for record in reader.records() {
            let record = record.with_context(|| format!("reading {}", sample_path.display()))?;
            for (column, &i) in columns.iter_mut().zip(&at_of) {
                let raw = Value::from_csv(record.get(i).unwrap_or(""));
                let value = match column.kind {
                    Kind::Num => number(&raw).map_or(Value::Missing, Value::Number),
                    Kind::Cat => category(&raw).map_or(Value::Missing, Value::Text),
                };
                column.values.push(value);
            }
            rows += 1;
        }
        Ok(Some(Reference {
            profile,
            sample: Frame { rows, columns },
        }))
    }

    /// The current data of a file, as this reference's columns: the model folder `dir`
    /// scores every row, as the profile did.
    pub fn current_of_file(
        &self,
        dir: &Path,
        path: &Path,
        features: Option<&Arc<FeatureStore>>,
    ) -> anyhow::Result<Frame> {
        let model = crate::serving::repo::source(dir)?;
        let view = ModelView::load(&model.dir, &model.name)?;
        let (_, names, rows) = view.read(path, usize::MAX, 0)?;
        let (frame, _) = view.score(&names, rows, features)?;
        Ok(self.conform(frame))
    }

    /// The `max_rows` newest logged rows of `model` (version `version`, or any) from
    /// `since_ms` on, as this reference's columns: the raw records or tensors it was sent
    /// and what it answered. Failed requests are left out.
    pub fn current_of_log(
        &self,
        log: &Connection,
        model: &str,
        version: Option<&str>,
        since_ms: u64,
        max_rows: usize,
    ) -> anyhow::Result<Frame> {
        let mut query = log.prepare_cached(
            "SELECT input, output FROM predictions
             WHERE model = ?1 AND (?2 IS NULL OR version = ?2) AND outcome = 'ok'
               AND output IS NOT NULL AND time_ms >= ?3
             ORDER BY id DESC",
        )?;
        let mut rows = query.query(params![model, version, since_ms as i64])?;
        let mut parts = Vec::new();
        let mut total = 0;
        while total < max_rows {
            let Some(row) = rows.next()? else { break };
            let (input, output): (String, String) = (row.get(0)?, row.get(1)?);
            // A record this reference cannot read (another model's shape) is left out.
            if let Ok(part) = self.logged(&input, &output) {
                total += part.rows;
                parts.push(part);
            }
        }
        let mut frame = Frame::default();
        for part in parts.into_iter().rev() {
            frame.append(part);
        }
        Ok(self.conform(frame))
    }

    /// One logged request and answer as columns.
    fn logged(&self, input: &str, output: &str) -> anyhow::Result<Frame> {
        let kind = |name: &str, _: &str| {
            self.profile
                .columns
                .iter()
                .find(|c| c.name == name)
                .map_or(Kind::Num, |c| c.kind)
        };
        let mut frame = self.logged_inputs(input, &kind)?;
        let answer: Json = serde_json::from_str(output)?;
        let outputs = match &answer {
            Json::Array(tensors) => tensor_columns(tensors, kind)?,
            Json::Object(o) if o.contains_key("outputs") => tensor_columns(
                answer["outputs"].as_array().map_or(&[][..], Vec::as_slice),
                kind,
            )?,
            Json::Object(o) if o.contains_key("predictions") => {
                self.prediction_columns(&answer["predictions"], &kind)?
            }
            _ => bail!("an answer without outputs"),
        };
        if outputs.rows != frame.rows {
            bail!("{} inputs, {} outputs", frame.rows, outputs.rows);
        }
        frame.columns.extend(outputs.columns);
        Ok(frame)
    }

    /// The logged input's columns: records, rows of numbers, or v2 tensors.
    fn logged_inputs(
        &self,
        input: &str,
        kind: &impl Fn(&str, &str) -> Kind,
    ) -> anyhow::Result<Frame> {
        let json: Json = serde_json::from_str(input)?;
        let fields: Vec<(&str, FieldType)> = self
            .profile
            .columns
            .iter()
            .filter_map(|c| Some((c.name.as_str(), c.field_type?)))
            .collect();
        let records: Vec<&serde_json::Map<String, Json>> = match &json {
            Json::Array(items) if items.iter().all(Json::is_object) => {
                items.iter().filter_map(Json::as_object).collect()
            }
            Json::Object(o) if !o.contains_key("inputs") => vec![o],
            Json::Array(items) => {
                // Rows of numbers for the input tensor.
                let base = self
                    .input_base()
                    .context("rows of numbers for a model with a spec")?;
                let width = items.first().and_then(Json::as_array).map_or(0, Vec::len);
                let mut frame = Frame {
                    rows: items.len(),
                    columns: Vec::new(),
                };
                for k in 0..width {
                    let name = if width == 1 {
                        base.to_owned()
                    } else {
                        format!("{base}[{k}]")
                    };
                    let values = items
                        .iter()
                        .map(|row| row.get(k).map_or(Value::Missing, |v| cell(v, Kind::Num)))
                        .collect();
                    frame.columns.push(Column {
                        name,
                        kind: Kind::Num,
                        values,
                    });
                }
                return Ok(frame);
            }
            _ => {
                let request = protocol::decode_infer_request(input.as_bytes(), None)?;
                let is_field = |n: &str| fields.iter().any(|(f, _)| *f == n);
                if !fields.is_empty() && request.inputs.iter().all(|t| is_field(t.name())) {
                    let records = records_of_tensors(request.inputs, &fields)?;
                    return Ok(record_frame(&records, &fields));
                }
                let tensors = protocol::tensors_to_json(request.inputs);
                let mut frame =
                    tensor_columns(tensors.as_array().map_or(&[][..], Vec::as_slice), kind)?;
                // Only the input tensor's columns are tested (and none of a model with a spec
                // called with its model tensor directly).
                let rows = frame.rows;
                frame.columns.retain(|c| {
                    self.profile
                        .columns
                        .iter()
                        .any(|p| p.name == c.name && p.source == Source::Input)
                });
                frame.rows = rows;
                return Ok(frame);
            }
        };
        let records: Vec<Vec<Value>> = records
            .iter()
            .map(|o| {
                fields
                    .iter()
                    .map(|(f, _)| o.get(*f).map_or(Value::Missing, Value::from_json))
                    .collect()
            })
            .collect();
        Ok(record_frame(&records, &fields))
    }

    /// The input tensor's name, for a model without a spec.
    fn input_base(&self) -> Option<&str> {
        self.profile
            .columns
            .iter()
            .find(|c| c.source == Source::Input)
            .map(|c| c.name.split('[').next().unwrap_or(&c.name))
    }

    /// KServe v1 `predictions`: objects by output name, or, for a single output, its values.
    fn prediction_columns(
        &self,
        predictions: &Json,
        kind: &impl Fn(&str, &str) -> Kind,
    ) -> anyhow::Result<Frame> {
        let rows = predictions.as_array().context("predictions: not a list")?;
        let mut bases: Vec<&str> = self
            .profile
            .columns
            .iter()
            .filter(|c| c.source == Source::Output)
            .map(|c| c.name.split('[').next().unwrap_or(&c.name))
            .collect();
        bases.dedup();
        let mut frame = Frame::default();
        for row in rows {
            let mut part = Frame {
                rows: 1,
                columns: Vec::new(),
            };
            let mut add = |base: &str, v: &Json| match v {
                Json::Array(items) => {
                    for (k, item) in items.iter().enumerate() {
                        let name = if items.len() == 1 {
                            base.to_owned()
                        } else {
                            format!("{base}[{k}]")
                        };
                        let kind = kind(&name, "");
                        part.columns.push(Column {
                            values: vec![cell(item, kind)],
                            name,
                            kind,
                        });
                    }
                }
                scalar => {
                    let kind = kind(base, "");
                    part.columns.push(Column {
                        name: base.to_owned(),
                        kind,
                        values: vec![cell(scalar, kind)],
                    });
                }
            };
            match (row, bases.as_slice()) {
                (Json::Object(outputs), _) => outputs.iter().for_each(|(k, v)| add(k, v)),
                (single, [base]) => add(base, single),
                _ => bail!("a prediction without output names for a model with several"),
            }
            frame.append(part);
        }
        Ok(frame)
    }

    /// `frame` with exactly this reference's columns, in its order (missing where absent).
    fn conform(&self, frame: Frame) -> Frame {
        let rows = frame.rows;
        let columns = self
            .profile
            .columns
            .iter()
            .map(|p| match frame.column(&p.name) {
                Some(c) => Column {
                    kind: p.kind,
                    ..c.clone()
                },
                None => Column {
                    name: p.name.clone(),
                    kind: p.kind,
                    values: vec![Value::Missing; rows],
                },
            })
            .collect();
        Frame { rows, columns }
    }
}

/// Records (values of `fields`, in order) from one tensor per field, `[N]` or `[N, 1]`.
fn records_of_tensors(
    tensors: Vec<wafer_scoring::Tensor>,
    fields: &[(&str, FieldType)],
) -> anyhow::Result<Vec<Vec<Value>>> {
    let json = protocol::tensors_to_json(tensors);
    let tensors = json.as_array().map_or(&[][..], Vec::as_slice);
    let rows = tensors
        .first()
        .and_then(|t| t["shape"][0].as_u64())
        .unwrap_or(0) as usize;
    let mut records = vec![Vec::with_capacity(fields.len()); rows];
    for (f, _) in fields {
        let data = tensors
            .iter()
            .find(|t| t["name"] == *f)
            .and_then(|t| t["data"].as_array());
        if data.is_some_and(|d| d.len() != rows) {
            bail!("field \"{f}\": one value per row expected");
        }
        for (r, record) in records.iter_mut().enumerate() {
            record.push(data.map_or(Value::Missing, |d| Value::from_json(&d[r])));
        }
    }
    Ok(records)
}

/// Raw records (values of `fields`, in order) as typed columns.
fn record_frame(records: &[Vec<Value>], fields: &[(&str, FieldType)]) -> Frame {
    Frame {
        rows: records.len(),
        columns: fields
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| Column {
                name: (*name).to_owned(),
                kind: kind_of_field(*kind),
                values: records.iter().map(|r| typed(&r[i], *kind)).collect(),
            })
            .collect(),
    }
}
