//! Writing a batch's predictions: the output columns a model's metadata gives, each chunk's
//! rows as a part in the output's format, and the parts joined into the finished file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde::{Deserialize, Serialize};
use wafer_scoring::{DataType, Dim, ModelMetadata, Tensor, TensorData};

use super::input::{Format, Reject};

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Integers (any integer output).
    Int64,
    /// 32-bit floats (FP16 and FP32 outputs).
    Float,
    /// 64-bit floats.
    Double,
    /// Booleans.
    Bool,
    /// Text (string outputs, and ids).
    Text,
}

/// One output column: where its values come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name: the output's, or `<output>_<class label>` (`<output>_<index>`) for one column
    /// of a wider output.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// The output it comes from, by position in the model's outputs.
    pub output: usize,
    /// Its place among that output's columns.
    pub index: usize,
    /// How many columns that output has.
    pub width: usize,
}

/// The output's columns: the row's id, then every model output, a column per class for
/// probabilities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The first column's name: `row`, or the id column's.
    pub id: String,
    /// Whether the id is the row's number (an integer) rather than a given id (text).
    pub numbered: bool,
    /// The model's output columns.
    pub columns: Vec<Column>,
}

impl Schema {
    /// The columns of `metadata`'s outputs, led by `id_column` (or `row`).
    pub fn new(metadata: &ModelMetadata, id_column: Option<&str>) -> anyhow::Result<Schema> {
        let mut columns = Vec::new();
        for (output, info) in metadata.outputs.iter().enumerate() {
            let kind = match info.datatype {
                DataType::F16 | DataType::F32 => Kind::Float,
                DataType::F64 => Kind::Double,
                DataType::Bool => Kind::Bool,
                DataType::String => Kind::Text,
                _ => Kind::Int64,
            };
            let mut width = 1;
            for dim in info.shape.iter().skip(1) {
                match dim {
                    Dim::Fixed(n) => width *= n,
                    Dim::Dynamic(_) => bail!(
                        "output \"{}\" has a dynamic width ({}): wafer batch writes a column per \
                         value, so it needs the model to declare it",
                        info.name,
                        shape_text(&info.shape)
                    ),
                }
            }
            for index in 0..width {
                let name = if width == 1 {
                    info.name.clone()
                } else if info.class_labels.len() == width {
                    format!("{}_{}", info.name, info.class_labels[index])
                } else {
                    format!("{}_{index}", info.name)
                };
                columns.push(Column {
                    name,
                    kind,
                    output,
                    index,
                    width,
                });
            }
        }
        Ok(Schema {
            id: id_column.unwrap_or("row").to_owned(),
            numbered: id_column.is_none(),
            columns,
        })
    }

    /// Every column's name, the id's first.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(self.id.as_str())
            .chain(self.columns.iter().map(|c| c.name.as_str()))
            .collect()
    }
}

fn shape_text(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Dynamic(name) => name.clone(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// A chunk's scored rows: their ids and the model's outputs, row `i` of each being theirs.
pub struct Scored<'a> {
    /// The rows' numbers.
    pub rows: &'a [u64],
    /// Their given ids, when the schema has an id column.
    pub ids: Option<&'a [String]>,
    /// The model's outputs (empty when no row was scored).
    pub outputs: &'a [Tensor],
}

impl<'a> Scored<'a> {
    fn len(&self) -> usize {
        self.rows.len()
    }

    /// The output tensor of `column`, checked to hold a value for every row.
    fn tensor(&self, column: &Column) -> anyhow::Result<&'a Tensor> {
        let t = self
            .outputs
            .get(column.output)
            .context("the model returned fewer outputs than it declares")?;
        if t.data().len() != self.len() * column.width {
            bail!(
                "output \"{}\" has {} values for {} rows of {} columns",
                t.name(),
                t.data().len(),
                self.len(),
                column.width
            );
        }
        Ok(t)
    }

    /// The id cell of row `i`, as text.
    /// Writes row `i`'s id into `out`, replacing what it held.
    fn write_id(&self, i: usize, out: &mut String) {
        out.clear();
        match self.ids {
            Some(ids) => out.push_str(&ids[i]),
            None => {
                let _ = write!(out, "{}", self.rows[i]);
            }
        }
    }
}

/// One value as CSV text: shortest round-trip numbers, missing numbers empty.
fn cell(t: &Tensor, at: usize) -> String {
    let mut out = String::new();
    write_cell(t, at, &mut out);
    out
}

/// Writes [`cell`] into `out`, replacing what it held.
fn write_cell(t: &Tensor, at: usize, out: &mut String) {
    out.clear();
    let _ = match t.data() {
        TensorData::F32(v) if v[at].is_nan() => Ok(()),
        TensorData::F32(v) => write!(out, "{}", v[at]),
        TensorData::F64(v) if v[at].is_nan() => Ok(()),
        TensorData::F64(v) => write!(out, "{}", v[at]),
        TensorData::F16(v) => write!(out, "{}", f32::from(v[at])),
        TensorData::String(v) => {
            out.push_str(&v[at]);
            Ok(())
        }
        TensorData::Bool(v) => write!(out, "{}", v[at]),
        _ => write!(out, "{}", int(t, at)),
    };
}

/// One value as JSON.
fn json(t: &Tensor, at: usize) -> serde_json::Value {
    match t.data() {
        TensorData::F32(v) => serde_json::Value::from(v[at]),
        TensorData::F64(v) => serde_json::Value::from(v[at]),
        TensorData::F16(v) => serde_json::Value::from(f32::from(v[at])),
        TensorData::String(v) => serde_json::Value::from(v[at].as_str()),
        TensorData::Bool(v) => serde_json::Value::from(v[at]),
        _ => serde_json::Value::from(int(t, at)),
    }
}

/// One value of an integer tensor as an `i64` (UINT64 wraps above `i64::MAX`).
fn int(t: &Tensor, at: usize) -> i64 {
    #[expect(clippy::cast_possible_wrap, reason = "INT64 columns; documented")]
    match t.data() {
        TensorData::I64(v) => v[at],
        TensorData::I32(v) => i64::from(v[at]),
        TensorData::I16(v) => i64::from(v[at]),
        TensorData::I8(v) => i64::from(v[at]),
        TensorData::U64(v) => v[at] as i64,
        TensorData::U32(v) => i64::from(v[at]),
        TensorData::U16(v) => i64::from(v[at]),
        TensorData::U8(v) => i64::from(v[at]),
        _ => 0,
    }
}

/// Writes a chunk's rows to `out` in `format`: CSV without the header, JSON Lines, or a whole
/// Parquet file with a row group per piece. A chunk is one piece, or a piece per row when its
/// rows had to be scored one at a time.
pub fn write_part<'a>(
    format: Format,
    schema: &Schema,
    pieces: &[Scored<'a>],
    out: File,
) -> anyhow::Result<File> {
    let columns = |scored: &Scored<'a>| -> anyhow::Result<Vec<&'a Tensor>> {
        if scored.len() == 0 {
            return Ok(Vec::new());
        }
        schema.columns.iter().map(|c| scored.tensor(c)).collect()
    };
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 16, out));
            // One buffer per cell, reused row after row.
            let mut cells = vec![String::new(); schema.columns.len() + 1];
            for scored in pieces {
                let tensors = columns(scored)?;
                for i in 0..scored.len() {
                    scored.write_id(i, &mut cells[0]);
                    for ((c, t), out) in schema.columns.iter().zip(&tensors).zip(&mut cells[1..]) {
                        write_cell(t, i * c.width + c.index, out);
                    }
                    w.write_record(&cells)?;
                }
            }
            w.flush()?;
            Ok(w.into_inner().map_err(|e| e.into_error())?.into_inner()?)
        }
        Format::Jsonl => {
            let mut w = BufWriter::with_capacity(1 << 16, out);
            let names: Vec<String> = schema
                .names()
                .iter()
                .map(|n| serde_json::Value::from(*n).to_string())
                .collect();
            for scored in pieces {
                let tensors = columns(scored)?;
                for i in 0..scored.len() {
                    let id = match scored.ids {
                        Some(ids) => serde_json::Value::from(ids[i].as_str()),
                        None => serde_json::Value::from(scored.rows[i]),
                    };
                    write!(w, "{{{}:{id}", names[0])?;
                    for ((c, t), name) in schema.columns.iter().zip(&tensors).zip(&names[1..]) {
                        write!(w, ",{name}:{}", json(t, i * c.width + c.index))?;
                    }
                    w.write_all(b"}\n")?;
                }
            }
            w.flush()?;
            Ok(w.into_inner().map_err(|e| e.into_error())?)
        }
        Format::Parquet => {
            let mut writer =
                SerializedFileWriter::new(out, parquet_schema(schema)?, parquet_properties())?;
            for scored in pieces.iter().filter(|s| s.len() > 0) {
                write_row_group(&mut writer, schema, scored, &columns(scored)?)?;
            }
            Ok(writer.into_inner()?)
        }
    }
}

/// The Parquet schema: every column required; text as UTF-8 strings.
fn parquet_schema(schema: &Schema) -> anyhow::Result<Arc<Type>> {
    let field = |name: &str, kind: Kind| -> anyhow::Result<Arc<Type>> {
        let physical = match kind {
            Kind::Int64 => Physical::INT64,
            Kind::Float => Physical::FLOAT,
            Kind::Double => Physical::DOUBLE,
            Kind::Bool => Physical::BOOLEAN,
            Kind::Text => Physical::BYTE_ARRAY,
        };
        let mut builder =
            Type::primitive_type_builder(name, physical).with_repetition(Repetition::REQUIRED);
        if kind == Kind::Text {
            builder = builder.with_logical_type(Some(LogicalType::String));
        }
        Ok(Arc::new(builder.build()?))
    };
    let id_kind = if schema.numbered {
        Kind::Int64
    } else {
        Kind::Text
    };
    let mut fields = vec![field(&schema.id, id_kind)?];
    for c in &schema.columns {
        fields.push(field(&c.name, c.kind)?);
    }
    Ok(Arc::new(
        Type::group_type_builder("predictions")
            .with_fields(fields)
            .build()?,
    ))
}

fn parquet_properties() -> Arc<WriterProperties> {
    Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("wafer {}", env!("CARGO_PKG_VERSION")))
            .build(),
    )
}

fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    schema: &Schema,
    scored: &Scored<'_>,
    tensors: &[&Tensor],
) -> anyhow::Result<()> {
    let mut group = writer.next_row_group()?;
    let mut column = group.next_column()?.context("the id column")?;
    if let Some(ids) = scored.ids {
        let values: Vec<ByteArray> = ids.iter().map(|s| ByteArray::from(s.as_str())).collect();
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)?;
    } else {
        #[expect(clippy::cast_possible_wrap, reason = "row numbers")]
        let values: Vec<i64> = scored.rows.iter().map(|&r| r as i64).collect();
        column
            .typed::<Int64Type>()
            .write_batch(&values, None, None)?;
    }
    column.close()?;
    for (c, t) in schema.columns.iter().zip(tensors) {
        let mut column = group.next_column()?.context("an output column")?;
        let at = |i: usize| i * c.width + c.index;
        let n = scored.len();
        match c.kind {
            Kind::Float => {
                let values: Vec<f32> = (0..n)
                    .map(|i| match t.data() {
                        TensorData::F32(v) => v[at(i)],
                        TensorData::F16(v) => f32::from(v[at(i)]),
                        _ => f32::NAN,
                    })
                    .collect();
                column
                    .typed::<FloatType>()
                    .write_batch(&values, None, None)?;
            }
            Kind::Double => {
                let values: Vec<f64> = (0..n)
                    .map(|i| match t.data() {
                        TensorData::F64(v) => v[at(i)],
                        _ => f64::NAN,
                    })
                    .collect();
                column
                    .typed::<DoubleType>()
                    .write_batch(&values, None, None)?;
            }
            Kind::Int64 => {
                let values: Vec<i64> = (0..n).map(|i| int(t, at(i))).collect();
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, None, None)?;
            }
            Kind::Bool => {
                let values: Vec<bool> = (0..n)
                    .map(|i| matches!(t.data(), TensorData::Bool(v) if v[at(i)]))
                    .collect();
                column
                    .typed::<BoolType>()
                    .write_batch(&values, None, None)?;
            }
            Kind::Text => {
                let values: Vec<ByteArray> = (0..n)
                    .map(|i| ByteArray::from(cell(t, at(i)).as_str()))
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, None, None)?;
            }
        }
        column.close()?;
    }
    group.close()?;
    Ok(())
}

/// Writes a chunk's rejects as JSON lines of `{"row", "id", "reason"}`: the work folder's
/// form, whatever the rejects file's.
pub fn write_rejects(rejects: &[Reject], out: File) -> anyhow::Result<File> {
    let mut w = BufWriter::new(out);
    for r in rejects {
        let line = serde_json::json!({ "row": r.row, "id": r.id, "reason": r.reason });
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// Reads a chunk's rejects back.
pub fn read_rejects(path: &Path) -> anyhow::Result<Vec<Reject>> {
    #[derive(Deserialize)]
    struct Line {
        row: u64,
        id: Option<String>,
        reason: String,
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .map(|line| {
            let l: Line = serde_json::from_str(line)
                .with_context(|| format!("a malformed line in {}", path.display()))?;
            Ok(Reject {
                row: l.row,
                id: l.id,
                reason: l.reason,
            })
        })
        .collect()
}

/// Joins the chunks' rejects, in order, into `out`: CSV `row,id,reason` under a header, or
/// JSON lines.
pub fn join_rejects(
    format: Format,
    parts: &[std::path::PathBuf],
    out: File,
) -> anyhow::Result<File> {
    let mut w = BufWriter::with_capacity(1 << 16, out);
    if format == Format::Jsonl {
        for part in parts {
            let mut f = File::open(part).with_context(|| format!("opening {}", part.display()))?;
            std::io::copy(&mut f, &mut w)?;
        }
    } else {
        let mut csv = csv::Writer::from_writer(&mut w);
        csv.write_record(["row", "id", "reason"])?;
        for part in parts {
            for r in read_rejects(part)? {
                csv.write_record([
                    r.row.to_string().as_str(),
                    r.id.as_deref().unwrap_or(""),
                    r.reason.as_str(),
                ])?;
            }
        }
        csv.flush()?;
    }
    w.flush()?;
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// Checks that `path` can hold rejects: CSV or JSON Lines.
pub fn rejects_format(path: &Path) -> anyhow::Result<Format> {
    match Format::of(path)? {
        Format::Parquet => bail!("{}: rejects are written as .csv or .jsonl", path.display()),
        format => Ok(format),
    }
}

/// Joins the parts, in order, into `out`: the CSV header then the parts' bytes; the JSON
/// lines; or one Parquet file with every part's row groups, copied without decoding.
pub fn join(
    format: Format,
    schema: &Schema,
    parts: &[std::path::PathBuf],
    out: File,
) -> anyhow::Result<File> {
    match format {
        Format::Csv | Format::Jsonl => {
            let mut w = BufWriter::with_capacity(1 << 20, out);
            if format == Format::Csv {
                let mut header = csv::Writer::from_writer(Vec::new());
                header.write_record(schema.names())?;
                w.write_all(&header.into_inner().map_err(|e| e.into_error())?)?;
            }
            for part in parts {
                let mut f =
                    File::open(part).with_context(|| format!("opening {}", part.display()))?;
                std::io::copy(&mut f, &mut w)?;
            }
            w.flush()?;
            Ok(w.into_inner().map_err(|e| e.into_error())?)
        }
        Format::Parquet => {
            let mut writer =
                SerializedFileWriter::new(out, parquet_schema(schema)?, parquet_properties())?;
            for part in parts {
                let file =
                    File::open(part).with_context(|| format!("opening {}", part.display()))?;
                let reader = SerializedFileReader::new(file.try_clone()?)
                    .with_context(|| format!("reading {}", part.display()))?;
                for group in reader.metadata().row_groups() {
                    let mut out = writer.next_row_group()?;
                    for column in group.columns() {
                        #[expect(clippy::cast_sign_loss, reason = "sizes and counts")]
                        let close = ColumnCloseResult {
                            bytes_written: column.compressed_size() as u64,
                            rows_written: group.num_rows() as u64,
                            metadata: column.clone(),
                            bloom_filter: None,
                            column_index: None,
                            offset_index: None,
                        };
                        out.append_column(&file, close)?;
                    }
                    out.close()?;
                }
            }
            Ok(writer.into_inner()?)
        }
    }
}
