//! `wafer features fit` and `wafer features transform`: the feature spec over CSV files (and
//! Parquet output), with the same `wafer-features` code the server and the browser run. Outputs are written to a temporary
//! file and renamed into place, so an error never leaves a half-written file or touches the input.

use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use wafer_features::{Record, Spec, Value};
use wafer_scoring::{Tensor, TensorData};

use crate::store::FeatureStore;

/// Reads a spec file.
pub fn read_spec(path: &Path) -> anyhow::Result<Spec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Spec::parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Reads a CSV file with a header row into records, with a progress bar on large files.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<Record>> {
    let (mut reader, headers, bar) = open_csv(path, "reading")?;
    let mut records = Vec::new();
    for (row, result) in reader.records().enumerate() {
        let cells = result.with_context(|| format!("{}: row {row}", path.display()))?;
        records.push(
            headers
                .iter()
                .cloned()
                .zip(cells.iter().map(Value::from_csv))
                .collect(),
        );
    }
    bar.finish_and_clear();
    Ok(records)
}

/// Opens a CSV file with a header row: its reader, read through a progress bar labelled `what`
/// (shown on large files), the column names, and the bar to finish.
pub(crate) fn open_csv(
    path: &Path,
    what: &str,
) -> anyhow::Result<(csv::Reader<impl std::io::Read>, Vec<String>, ProgressBar)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(len, what);
    let mut reader = csv::Reader::from_reader(bar.wrap_read(BufReader::new(file)));
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .iter()
        .map(str::to_owned)
        .collect();
    Ok((reader, headers, bar))
}

/// A progress bar over `len` bytes, hidden for small files.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    // Small files finish before a bar would mean anything.
    if len < (8 << 20) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Writes `path` through a temporary file in the same folder, synced, and a rename: on error
/// the file is as it was.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("the output path has no file name")?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = File::create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))
        .and_then(|mut f| {
            write(&mut f)?;
            f.sync_all()?;
            Ok(())
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fills the looked-up fields that records lack from `db`, through one snapshot.
fn fill_lookups(
    spec: &Spec,
    records: &mut [Record],
    db: Option<&Arc<FeatureStore>>,
) -> anyhow::Result<()> {
    if let Some(db) = db {
        let mut snapshot = db.snapshot();
        spec.fill_record_lookups(records, |store, key| {
            snapshot.get(store, key).map_err(|e| format!("{e:#}"))
        })?;
    }
    Ok(())
}

/// `wafer features fit`: learns the spec's statistics from `data` (its looked-up fields filled
/// from `db`) and writes the spec back.
pub fn fit(
    spec_path: &Path,
    data: &Path,
    output: Option<&Path>,
    db: Option<&Arc<FeatureStore>>,
) -> anyhow::Result<()> {
    let mut spec = read_spec(spec_path)?;
    let mut records = read_csv(data)?;
    fill_lookups(&spec, &mut records, db)?;
    spec.fit(&records)
        .with_context(|| format!("fitting {} on {}", spec_path.display(), data.display()))?;
    let text = spec.to_toml()?;
    write_atomically(output.unwrap_or(spec_path), |f| {
        Ok(f.write_all(text.as_bytes())?)
    })?;
    eprintln!(
        "fitted {} on {} rows of {}",
        spec_path.display(),
        records.len(),
        data.display()
    );
    Ok(())
}

/// `wafer features transform`: writes the model-ready columns of `data` as CSV, or as Parquet
/// when `output` ends in `.parquet`. With `db`, the looked-up fields that records lack are
/// filled from it first, as the server fills them.
pub fn transform(
    spec_path: &Path,
    data: &Path,
    output: &Path,
    db: Option<&Arc<FeatureStore>>,
) -> anyhow::Result<()> {
    let spec = read_spec(spec_path)?;
    let mut records = read_csv(data)?;
    fill_lookups(&spec, &mut records, db)?;
    let tensors = spec
        .transform(&records)
        .with_context(|| format!("transforming {}", data.display()))?;
    let columns = spec.columns();
    let mut header = Vec::new();
    for t in &tensors {
        header.extend(columns.get(t.name()).cloned().unwrap_or_default());
    }
    let bar = progress(u64::try_from(records.len()).unwrap_or(0) * 64, "writing");
    if output.extension().is_some_and(|e| e == "parquet") {
        write_atomically(output, |f| write_parquet(f, &header, &tensors, &bar))?;
    } else {
        write_atomically(output, |f| write_csv(f, &header, &tensors, &bar))?;
    }
    bar.finish_and_clear();
    eprintln!(
        "wrote {} rows of {} columns to {}",
        records.len(),
        header.len(),
        output.display()
    );
    Ok(())
}

/// The rows of `[N, width]` output tensors as CSV cells, missing numbers empty.
fn write_csv(
    f: &mut File,
    header: &[String],
    tensors: &[Tensor],
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let rows = tensors.first().map_or(0, |t| t.shape()[0]);
    let mut w = csv::Writer::from_writer(f);
    w.write_record(header)?;
    for row in 0..rows {
        let mut cells: Vec<String> = Vec::with_capacity(header.len());
        for t in tensors {
            let width = t.shape()[1];
            let range = row * width..(row + 1) * width;
            match t.data() {
                TensorData::F32(v) => cells.extend(v[range].iter().map(|x| {
                    if x.is_nan() {
                        String::new()
                    } else {
                        x.to_string()
                    }
                })),
                TensorData::F64(v) => cells.extend(v[range].iter().map(|x| cell(*x))),
                TensorData::I64(v) => cells.extend(v[range].iter().map(ToString::to_string)),
                other => bail!("output {} has datatype {}", t.name(), other.datatype()),
            }
        }
        w.write_record(&cells)?;
        bar.inc(64);
    }
    w.flush()?;
    Ok(())
}

/// Rows per Parquet row group.
const ROW_GROUP: usize = 64 * 1024;

/// The columns of `[N, width]` output tensors as a Parquet file: one required column per
/// feature column, FLOAT, DOUBLE or INT64 as the output's datatype; missing numbers are NaN.
fn write_parquet(
    f: &mut File,
    header: &[String],
    tensors: &[Tensor],
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    use parquet::basic::{Repetition, Type as Physical};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    let mut fields = Vec::with_capacity(header.len());
    let mut names = header.iter();
    for t in tensors {
        let physical = match t.data() {
            TensorData::F32(_) => Physical::FLOAT,
            TensorData::F64(_) => Physical::DOUBLE,
            TensorData::I64(_) => Physical::INT64,
            other => bail!("output {} has datatype {}", t.name(), other.datatype()),
        };
        for _ in 0..t.shape()[1] {
            let name = names.next().context("fewer column names than columns")?;
            fields.push(Arc::new(
                Type::primitive_type_builder(name, physical)
                    .with_repetition(Repetition::REQUIRED)
                    .build()?,
            ));
        }
    }
    let schema = Arc::new(
        Type::group_type_builder("features")
            .with_fields(fields)
            .build()?,
    );
    let mut writer = SerializedFileWriter::new(
        f.try_clone()?,
        schema,
        Arc::new(WriterProperties::builder().build()),
    )?;
    let rows = tensors.first().map_or(0, |t| t.shape()[0]);
    for start in (0..rows).step_by(ROW_GROUP) {
        let end = (start + ROW_GROUP).min(rows);
        let mut group = writer.next_row_group()?;
        for t in tensors {
            let width = t.shape()[1];
            for column in 0..width {
                let pick = |row: usize| row * width + column;
                let mut w = group
                    .next_column()?
                    .context("the schema has fewer columns")?;
                match t.data() {
                    TensorData::F32(v) => {
                        let values: Vec<f32> = (start..end).map(|r| v[pick(r)]).collect();
                        w.typed::<parquet::data_type::FloatType>()
                            .write_batch(&values, None, None)?;
                    }
                    TensorData::F64(v) => {
                        let values: Vec<f64> = (start..end).map(|r| v[pick(r)]).collect();
                        w.typed::<parquet::data_type::DoubleType>()
                            .write_batch(&values, None, None)?;
                    }
                    TensorData::I64(v) => {
                        let values: Vec<i64> = (start..end).map(|r| v[pick(r)]).collect();
                        w.typed::<parquet::data_type::Int64Type>()
                            .write_batch(&values, None, None)?;
                    }
                    other => bail!("output {} has datatype {}", t.name(), other.datatype()),
                }
                w.close()?;
            }
        }
        group.close()?;
        bar.inc(64 * (end - start) as u64);
    }
    writer.close()?;
    Ok(())
}

/// A number as a CSV cell: shortest round-trip text, empty for missing.
fn cell(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        v.to_string()
    }
}
