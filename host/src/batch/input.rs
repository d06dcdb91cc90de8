//! Reading a batch's input in blocks of rows (CSV, JSON Lines, Parquet), and shaping each block
//! into what the model takes: a JSON array of records for a model with a feature spec, a
//! tensor of numbers for one without.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::Path;

use anyhow::{Context as _, bail};
use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::{Field, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use wafer_features::{Packed, Value};
use wafer_scoring::{Tensor, TensorInfo};

/// A file format, chosen by the file's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// One JSON value per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
}

impl Format {
    /// The format of `path`, by its extension.
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match ext.as_deref() {
            Some("csv") => Format::Csv,
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("parquet" | "pq") => Format::Parquet,
            _ => bail!(
                "{}: the format is chosen by the extension: .csv, .jsonl (or .ndjson), or .parquet",
                path.display()
            ),
        })
    }

    /// The extension of a file in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }
}

/// Consecutive input rows, as read.
pub enum Block {
    /// CSV rows, cells as bytes.
    Csv(Vec<csv::ByteRecord>),
    /// JSON lines, blank lines left out.
    Lines(Vec<Vec<u8>>),
    /// Parquet rows.
    Parquet(Vec<Row>),
}

impl Block {
    /// How many rows it holds.
    pub fn len(&self) -> usize {
        match self {
            Block::Csv(rows) => rows.len(),
            Block::Lines(rows) => rows.len(),
            Block::Parquet(rows) => rows.len(),
        }
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An input file, read a block at a time.
pub struct Reader {
    inner: Inner,
    /// The CSV header or the Parquet columns; empty for JSON Lines.
    columns: Vec<String>,
}

enum Inner {
    Csv(csv::Reader<BufReader<File>>),
    Lines(BufReader<File>, u64),
    Parquet(parquet::record::reader::RowIter<'static>, u64),
}

impl Reader {
    /// Opens `path`, reading its header (CSV) or schema (Parquet).
    pub fn open(path: &Path, format: Format) -> anyhow::Result<Reader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .buffer_capacity(1 << 20)
                    .from_reader(BufReader::with_capacity(1 << 20, file));
                let columns = reader
                    .headers()
                    .with_context(|| format!("reading the header of {}", path.display()))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                Reader {
                    inner: Inner::Csv(reader),
                    columns,
                }
            }
            Format::Jsonl => Reader {
                inner: Inner::Lines(BufReader::with_capacity(1 << 20, file), 0),
                columns: Vec::new(),
            },
            Format::Parquet => {
                let reader = SerializedFileReader::new(file)
                    .with_context(|| format!("reading {} as Parquet", path.display()))?;
                let columns = reader
                    .metadata()
                    .file_metadata()
                    .schema_descr()
                    .root_schema()
                    .get_fields()
                    .iter()
                    .map(|f| f.name().to_owned())
                    .collect();
                Reader {
                    inner: Inner::Parquet(
                        parquet::record::reader::RowIter::from_file_into(Box::new(reader)),
                        0,
                    ),
                    columns,
                }
            }
        })
    }

    /// The CSV header or the Parquet columns, in file order; empty for JSON Lines.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// How far the reader is: bytes of CSV or JSON Lines, rows of Parquet.
    pub fn position(&self) -> u64 {
        match &self.inner {
            Inner::Csv(r) => r.position().byte(),
            Inner::Lines(_, read) | Inner::Parquet(_, read) => *read,
        }
    }

    /// Up to `n` more rows; `None` at the end.
    pub fn next_block(&mut self, n: usize) -> anyhow::Result<Option<Block>> {
        let block = match &mut self.inner {
            Inner::Csv(reader) => {
                let mut rows = Vec::with_capacity(n);
                let mut record = csv::ByteRecord::new();
                while rows.len() < n && reader.read_byte_record(&mut record)? {
                    rows.push(std::mem::take(&mut record));
                }
                Block::Csv(rows)
            }
            Inner::Lines(reader, read) => {
                let mut rows = Vec::with_capacity(n);
                while rows.len() < n {
                    let mut line = Vec::new();
                    let got = reader.read_until(b'\n', &mut line)?;
                    if got == 0 {
                        break;
                    }
                    *read += got as u64;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    rows.push(line);
                }
                Block::Lines(rows)
            }
            Inner::Parquet(iter, read) => {
                let mut rows = Vec::with_capacity(n);
                for row in iter.by_ref().take(n) {
                    rows.push(row.context("reading a Parquet row")?);
                }
                *read += rows.len() as u64;
                Block::Parquet(rows)
            }
        };
        Ok((!block.is_empty()).then_some(block))
    }
}

/// What the model takes from each row.
#[derive(Clone, Debug)]
pub enum Shape {
    /// Raw fields, through the model's `features.toml`: these columns (its fields and lookup
    /// keys), whichever the input has.
    Records {
        /// The fields.
        fields: Vec<String>,
    },
    /// These columns, as numbers, for the model's first input.
    Numbers {
        /// The columns, in the input's order.
        columns: Vec<String>,
        /// The input they fill.
        input: TensorInfo,
    },
}

/// How rows are turned into model inputs: the shape, and the column that names each row.
#[derive(Clone, Debug)]
pub struct Layout {
    /// What the model takes.
    pub shape: Shape,
    /// The column whose value names a row in the output, instead of its number.
    pub id_column: Option<String>,
    /// The CSV header (cells are found by position).
    pub header: Vec<String>,
}

/// A block, shaped for the model.
pub struct Shaped {
    /// The numbers of the rows in the payload, in order.
    pub rows: Vec<u64>,
    /// Their ids, when the layout has an id column.
    pub ids: Option<Vec<String>>,
    /// What the model is called with.
    pub payload: Payload,
    /// The rows refused before the model saw them: number, id, why.
    pub rejected: Vec<Reject>,
}

/// A row that was not scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Reject {
    /// The row's number, from 0.
    pub row: u64,
    /// The row's id, when the layout has an id column and the row has one.
    pub id: Option<String>,
    /// Why it was not scored.
    pub reason: String,
}

/// What the model is called with.
pub enum Payload {
    /// Raw records, one packed column per field, for `predict-batch`.
    Records {
        /// The fields and their columns, one cell per row.
        columns: Vec<(String, Packed)>,
    },
    /// One `[rows, columns]` tensor for the model's first input, and its rows.
    Numbers {
        /// The tensor.
        tensor: Tensor,
        /// Its rows, as numbers.
        rows: Vec<Vec<f64>>,
    },
    /// No row survived.
    Nothing,
}

/// One row's cells, by column name.
trait Cells {
    /// The value of `column`, if the row has it.
    fn get(&self, column: &str) -> Option<Value>;

    /// Appends the row's value of each of `fields` to its column (missing where the row lacks
    /// it); `positions` are their places in the CSV header.
    fn pack(
        &self,
        fields: &[String],
        _positions: &[usize],
        columns: &mut [Packed],
    ) -> Result<(), String> {
        for (field, column) in fields.iter().zip(columns) {
            column.push_value(&self.get(field).unwrap_or(Value::Missing));
        }
        Ok(())
    }

    /// The text of `column` that names the row, as written (`007` stays `007`).
    fn id(&self, column: &str) -> Option<String> {
        self.get(column).map(|v| text_of(&v))
    }

    /// The row's values for `columns`, as numbers (missing is NaN); `positions` are their
    /// places in the CSV header.
    fn numbers(&self, columns: &[String], _positions: &[usize]) -> Result<Vec<f64>, String> {
        columns
            .iter()
            .map(|column| number_of(column, self.get(column)))
            .collect()
    }
}

/// A cell as a number.
fn number_of(column: &str, value: Option<Value>) -> Result<f64, String> {
    match value {
        None | Some(Value::Missing) => Ok(f64::NAN),
        Some(Value::Number(n)) => Ok(n),
        Some(Value::Bool(b)) => Ok(f64::from(u8::from(b))),
        Some(Value::Text(t)) => Err(format!("column \"{column}\": \"{t}\" is not a number")),
    }
}

impl Layout {
    /// Shapes `block`, whose first row is number `first`.
    pub fn shape(&self, first: u64, block: &Block) -> Shaped {
        let mut shaped = Shaped {
            rows: Vec::with_capacity(block.len()),
            ids: self
                .id_column
                .as_ref()
                .map(|_| Vec::with_capacity(block.len())),
            payload: Payload::Nothing,
            rejected: Vec::new(),
        };
        let mut numbers: Vec<Vec<f64>> = Vec::new();
        let columns = match &self.shape {
            Shape::Numbers { columns, .. } => columns,
            Shape::Records { fields } => fields,
        };
        let positions: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.header
                    .iter()
                    .position(|h| h == c)
                    .unwrap_or(usize::MAX)
            })
            .collect();
        let mut packed = match &self.shape {
            Shape::Records { fields } => vec![Packed::with_capacity(block.len()); fields.len()],
            Shape::Numbers { .. } => Vec::new(),
        };
        for i in 0..block.len() {
            let row = first + i as u64;
            let cells: Result<Box<dyn Cells + '_>, String> = match block {
                Block::Csv(rows) => CsvRow::new(&self.header, &rows[i]).map(|c| Box::new(c) as _),
                Block::Lines(lines) => JsonRow::parse(&lines[i]).map(|c| Box::new(c) as _),
                Block::Parquet(rows) => Ok(Box::new(ParquetRow(&rows[i])) as _),
            };
            let id = self
                .id_column
                .as_deref()
                .and_then(|column| match (&cells, block) {
                    (Ok(cells), _) => cells.id(column),
                    // A CSV row with the wrong number of cells still has its id where the header
                    // says.
                    (Err(_), Block::Csv(rows)) => {
                        let at = self.header.iter().position(|h| h == column)?;
                        rows[i]
                            .get(at)
                            .map(|c| String::from_utf8_lossy(c).trim().to_owned())
                    }
                    (Err(_), _) => None,
                });
            let taken = cells.and_then(|cells| match &self.shape {
                Shape::Records { fields } => cells.pack(fields, &positions, &mut packed),
                Shape::Numbers { columns, .. } => {
                    cells.numbers(columns, &positions).map(|n| numbers.push(n))
                }
            });
            match taken {
                Ok(()) => {
                    shaped.rows.push(row);
                    if let Some(ids) = &mut shaped.ids {
                        ids.push(id.unwrap_or_default());
                    }
                }
                Err(reason) => shaped.rejected.push(Reject { row, id, reason }),
            }
        }
        shaped.payload = match &self.shape {
            _ if shaped.rows.is_empty() => Payload::Nothing,
            Shape::Records { fields } => Payload::Records {
                columns: fields.iter().cloned().zip(packed).collect(),
            },
            Shape::Numbers { input, .. } => loop {
                // Almost always one pass: a row that the input's datatype refuses (a fraction
                // for an integer input) is set aside and the rest assembled again.
                match wafer_features::assemble_rows(input, &numbers) {
                    Ok(tensor) => {
                        break Payload::Numbers {
                            tensor,
                            rows: numbers,
                        };
                    }
                    Err(e) => {
                        let Some(i) = e.row() else {
                            let reason = e.to_string();
                            for (k, row) in shaped.rows.drain(..).enumerate() {
                                let id = shaped.ids.as_ref().map(|ids| ids[k].clone());
                                shaped.rejected.push(Reject {
                                    row,
                                    id,
                                    reason: reason.clone(),
                                });
                            }
                            shaped.ids = shaped.ids.map(|_| Vec::new());
                            break Payload::Nothing;
                        };
                        let reason = e.to_string();
                        let reason = reason
                            .strip_prefix(&format!("row {i}, "))
                            .or_else(|| reason.strip_prefix(&format!("row {i}: ")))
                            .unwrap_or(&reason)
                            .to_owned();
                        numbers.remove(i);
                        let row = shaped.rows.remove(i);
                        let id = shaped.ids.as_mut().map(|ids| ids.remove(i));
                        shaped.rejected.push(Reject { row, id, reason });
                        if numbers.is_empty() {
                            break Payload::Nothing;
                        }
                    }
                }
            },
        };
        shaped.rejected.sort_by_key(|r| r.row);
        shaped
    }
}

/// A CSV row, by the header.
struct CsvRow<'a> {
    header: &'a [String],
    cells: Vec<&'a str>,
}

impl<'a> CsvRow<'a> {
    fn new(header: &'a [String], record: &'a csv::ByteRecord) -> Result<CsvRow<'a>, String> {
        if record.len() != header.len() {
            return Err(format!(
                "{} cells where the header has {}",
                record.len(),
                header.len()
            ));
        }
        let cells = record
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                std::str::from_utf8(cell)
                    .map_err(|_| format!("column \"{}\" is not valid UTF-8", header[i]))
            })
            .collect::<Result<_, _>>()?;
        Ok(CsvRow { header, cells })
    }
}

impl Cells for CsvRow<'_> {
    fn get(&self, column: &str) -> Option<Value> {
        let i = self.header.iter().position(|h| h == column)?;
        Some(Value::from_csv(self.cells[i]))
    }

    fn id(&self, column: &str) -> Option<String> {
        let i = self.header.iter().position(|h| h == column)?;
        Some(self.cells[i].trim().to_owned())
    }

    fn numbers(&self, columns: &[String], positions: &[usize]) -> Result<Vec<f64>, String> {
        columns
            .iter()
            .zip(positions)
            .map(|(column, &i)| number_of(column, self.cells.get(i).map(|c| Value::from_csv(c))))
            .collect()
    }

    fn pack(
        &self,
        _fields: &[String],
        positions: &[usize],
        columns: &mut [Packed],
    ) -> Result<(), String> {
        for (&i, column) in positions.iter().zip(columns) {
            column.push_csv(self.cells.get(i).copied().unwrap_or_default());
        }
        Ok(())
    }
}

/// A JSON line: an object (a record) or an array (a row of numbers).
struct JsonRow {
    value: Json,
}

impl JsonRow {
    fn parse(line: &[u8]) -> Result<JsonRow, String> {
        let text = std::str::from_utf8(line).map_err(|_| "the line is not valid UTF-8")?;
        let value: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if !value.is_object() && !value.is_array() {
            return Err("a line is a record (a JSON object) or a row (a JSON array)".into());
        }
        Ok(JsonRow { value })
    }
}

impl Cells for JsonRow {
    fn get(&self, column: &str) -> Option<Value> {
        match &self.value {
            Json::Object(fields) => fields.get(column).map(Value::from_json),
            _ => None,
        }
    }

    fn id(&self, column: &str) -> Option<String> {
        match self.value.get(column)? {
            Json::String(s) => Some(s.clone()),
            Json::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn numbers(&self, columns: &[String], _positions: &[usize]) -> Result<Vec<f64>, String> {
        match &self.value {
            // A line that is an array of numbers is the row itself.
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(c, v)| number_of(&format!("{c}"), Some(Value::from_json(v))))
                .collect(),
            _ => columns
                .iter()
                .map(|column| number_of(column, self.get(column)))
                .collect(),
        }
    }

    fn pack(
        &self,
        fields: &[String],
        _positions: &[usize],
        columns: &mut [Packed],
    ) -> Result<(), String> {
        let Json::Object(object) = &self.value else {
            return Err("a record is a JSON object".into());
        };
        for (field, column) in fields.iter().zip(columns) {
            column.push_value(&object.get(field).map_or(Value::Missing, Value::from_json));
        }
        Ok(())
    }
}

/// A Parquet row.
struct ParquetRow<'a>(&'a Row);

impl Cells for ParquetRow<'_> {
    fn get(&self, column: &str) -> Option<Value> {
        self.0
            .get_column_iter()
            .find(|(name, _)| name.as_str() == column)
            .map(|(_, field)| value_of(field))
    }
}

/// A Parquet field as a raw value: numbers, text, booleans; dates and timestamps as epoch
/// seconds; anything nested as its JSON text.
fn value_of(field: &Field) -> Value {
    match field {
        Field::Null => Value::Missing,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::Number(f64::from(*v)),
        Field::Short(v) => Value::Number(f64::from(*v)),
        Field::Int(v) => Value::Number(f64::from(*v)),
        Field::Long(v) => Value::Number(*v as f64),
        Field::UByte(v) => Value::Number(f64::from(*v)),
        Field::UShort(v) => Value::Number(f64::from(*v)),
        Field::UInt(v) => Value::Number(f64::from(*v)),
        Field::ULong(v) => Value::Number(*v as f64),
        Field::Float16(v) => number(f64::from(*v)),
        Field::Float(v) => number(f64::from(*v)),
        Field::Double(v) => number(*v),
        Field::Str(s) => Value::Text(s.clone()),
        Field::Date(days) => Value::Number(f64::from(*days) * 86_400.0),
        Field::TimestampMillis(ms) => Value::Number(*ms as f64 / 1e3),
        Field::TimestampMicros(us) => Value::Number(*us as f64 / 1e6),
        other => Value::Text(other.to_string()),
    }
}

fn number(v: f64) -> Value {
    if v.is_nan() {
        Value::Missing
    } else {
        Value::Number(v)
    }
}

/// Each row's value of each of `columns` (`Value::Missing` where a row lacks it or cannot be
/// read): what `wafer drift` tests, column by column.
pub fn values(header: &[String], block: &Block, columns: &[String]) -> Vec<Vec<Value>> {
    (0..block.len())
        .map(|i| {
            let cells: Option<Box<dyn Cells + '_>> = match block {
                Block::Csv(rows) => CsvRow::new(header, &rows[i]).ok().map(|c| Box::new(c) as _),
                Block::Lines(lines) => JsonRow::parse(&lines[i]).ok().map(|c| Box::new(c) as _),
                Block::Parquet(rows) => Some(Box::new(ParquetRow(&rows[i])) as _),
            };
            columns
                .iter()
                .map(|c| {
                    cells
                        .as_ref()
                        .and_then(|cells| cells.get(c))
                        .unwrap_or(Value::Missing)
                })
                .collect()
        })
        .collect()
}

/// The field names of the first JSON object line of `block`, sorted.
pub fn first_record_fields(block: &Block) -> Vec<String> {
    match block {
        Block::Lines(lines) => lines
            .iter()
            .find_map(|line| match JsonRow::parse(line).ok()?.value {
                Json::Object(fields) => Some(fields.keys().cloned().collect()),
                _ => None,
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A value as the text a CSV cell would hold.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::Missing => String::new(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_block(text: &str) -> (Vec<String>, Block) {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader.byte_records().map(|r| r.expect("row")).collect();
        (header, Block::Csv(rows))
    }

    #[test]
    fn csv_rows_become_columns_of_the_fields_with_empty_cells_missing() {
        let (header, block) = csv_block("id,age,city\na,41,oslo\nb,,rome\nc,1\n");
        let layout = Layout {
            shape: Shape::Records {
                fields: vec!["age".into(), "city".into(), "absent".into()],
            },
            id_column: Some("id".into()),
            header,
        };
        let shaped = layout.shape(10, &block);
        assert_eq!(shaped.rows, [10, 11]);
        assert_eq!(shaped.ids, Some(vec!["a".to_owned(), "b".to_owned()]));
        let Payload::Records { columns } = &shaped.payload else {
            panic!("records")
        };
        let text = |t: &str| Value::Text(t.into());
        let columns: Vec<(&str, Vec<Value>)> = columns
            .iter()
            .map(|(name, packed)| (name.as_str(), packed.unpack().expect("unpacks")))
            .collect();
        assert_eq!(
            columns,
            [
                ("age", vec![Value::Number(41.0), Value::Missing]),
                ("city", vec![text("oslo"), text("rome")]),
                ("absent", vec![Value::Missing, Value::Missing]),
            ]
        );
        assert_eq!(
            shaped.rejected,
            [Reject {
                row: 12,
                id: Some("c".into()),
                reason: "2 cells where the header has 3".into()
            }]
        );
    }

    #[test]
    fn rows_of_numbers_refuse_text_and_fractions_for_an_integer_input() {
        let input = TensorInfo {
            name: "X".into(),
            datatype: wafer_scoring::DataType::I64,
            shape: vec![
                wafer_scoring::Dim::Dynamic("N".into()),
                wafer_scoring::Dim::Fixed(2),
            ],
            class_labels: vec![],
        };
        let (header, block) = csv_block("a,b,c\n1,2,x\n3,oops,x\n5,6.5,x\n7,8,x\n");
        let layout = Layout {
            shape: Shape::Numbers {
                columns: vec!["b".into(), "a".into()],
                input,
            },
            id_column: None,
            header,
        };
        let shaped = layout.shape(0, &block);
        assert_eq!(shaped.rows, [0, 3]);
        let Payload::Numbers { tensor: t, .. } = &shaped.payload else {
            panic!("numbers")
        };
        assert_eq!(t.shape(), &[2, 2]);
        let reasons: Vec<(u64, &str)> = shaped
            .rejected
            .iter()
            .map(|r| (r.row, r.reason.as_str()))
            .collect();
        assert_eq!(reasons[0], (1, "column \"b\": \"oops\" is not a number"));
        assert_eq!(reasons[1].0, 2);
        assert!(reasons[1].1.contains("6.5"), "{reasons:?}");
    }

    #[test]
    fn json_lines_are_records_or_rows_and_anything_else_is_refused() {
        let block = Block::Lines(vec![
            br#"{"id": 7, "age": 41}"#.to_vec(),
            b"not json".to_vec(),
            b"[1, 2]".to_vec(),
            b"42".to_vec(),
        ]);
        let layout = Layout {
            shape: Shape::Records {
                fields: vec!["age".into()],
            },
            id_column: Some("id".into()),
            header: vec![],
        };
        let shaped = layout.shape(0, &block);
        assert_eq!(shaped.rows, [0]);
        let Payload::Records { columns } = &shaped.payload else {
            panic!("records")
        };
        assert_eq!(columns[0].1.unpack(), Ok(vec![Value::Number(41.0)]));
        assert_eq!(shaped.ids, Some(vec!["7".to_owned()]));
        let rows: Vec<u64> = shaped.rejected.iter().map(|r| r.row).collect();
        assert_eq!(rows, [1, 2, 3]);
        assert!(shaped.rejected[0].reason.starts_with("not JSON"));
    }
}
