//! Raw records by column: the form a batch takes when it comes from a file, and the one the spec
//! resolves, fills from stores and transforms.
//!
//! A [`Record`] is a map per row, right for one request; a [`Table`] holds one column of
//! [`Value`]s per field, so a batch names each field once, not once per row. [`Packed`] is a
//! column in the shape that crosses into a component in a few copies (the kinds, the numbers,
//! the text), not one per cell.

use crate::FeatureError;
use crate::record::{Cell, Record, Value};

/// A batch of raw records: one column of values per field, every column `rows` long. A field
/// the table lacks is missing in every row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    rows: usize,
    names: Vec<String>,
    columns: Vec<Vec<Value>>,
}

impl Table {
    /// A table of `rows` rows and no columns yet.
    pub fn new(rows: usize) -> Table {
        Table {
            rows,
            ..Table::default()
        }
    }

    /// The columns `names` (each once) of `records`; absent keys are missing.
    pub fn of_records<'a>(records: &[Record], names: impl IntoIterator<Item = &'a str>) -> Table {
        let mut table = Table::new(records.len());
        for name in names {
            let values = records
                .iter()
                .map(|r| r.get(name).cloned().unwrap_or(Value::Missing))
                .collect();
            table.names.push(name.to_owned());
            table.columns.push(values);
        }
        table
    }

    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Sets column `name` to `values`, one per row, replacing a column of that name.
    pub fn insert(&mut self, name: &str, values: Vec<Value>) -> Result<(), FeatureError> {
        if values.len() != self.rows {
            return Err(FeatureError::Spec(format!(
                "column \"{name}\" has {} values for {} rows",
                values.len(),
                self.rows
            )));
        }
        match self.position(name) {
            Some(i) => self.columns[i] = values,
            None => {
                self.names.push(name.to_owned());
                self.columns.push(values);
            }
        }
        Ok(())
    }

    /// The column `name`, if the table has it.
    pub fn column(&self, name: &str) -> Option<&[Value]> {
        self.position(name).map(|i| self.columns[i].as_slice())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The column `name`, added as all missing if the table lacks it.
    pub(crate) fn column_mut(&mut self, name: &str) -> &mut Vec<Value> {
        let i = match self.position(name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.columns.push(vec![Value::Missing; self.rows]);
                self.columns.len() - 1
            }
        };
        &mut self.columns[i]
    }
}

/// What one cell of a [`Packed`] column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Missing.
    Missing,
    /// A number, the next of [`Packed::numbers`].
    Number,
    /// `false`.
    False,
    /// `true`.
    True,
    /// Text, the next of [`Packed::text`]'s pieces.
    Text,
}

/// A column of values packed into a few flat lists, to cross into a component in as many
/// copies, not one per cell.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Packed {
    /// Each row's kind of value.
    pub kinds: Vec<Kind>,
    /// The numbers, in row order: one per [`Kind::Number`].
    pub numbers: Vec<f64>,
    /// The texts, concatenated in row order: one per [`Kind::Text`] ...
    pub text: String,
    /// ... each ending at this byte offset of `text`.
    pub ends: Vec<u32>,
}

impl Packed {
    /// An empty column with room for `rows` rows.
    pub fn with_capacity(rows: usize) -> Packed {
        Packed {
            kinds: Vec::with_capacity(rows),
            numbers: Vec::with_capacity(rows),
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// Packs values.
    pub fn of(values: &[Value]) -> Packed {
        let mut packed = Packed::with_capacity(values.len());
        for v in values {
            packed.push_value(v);
        }
        packed
    }

    /// Appends a CSV cell, read as [`Value::from_csv`] reads it.
    pub fn push_csv(&mut self, cell: &str) {
        self.push(Cell::of_csv(cell));
    }

    /// Appends a value.
    pub fn push_value(&mut self, value: &Value) {
        self.push(match value {
            Value::Missing => Cell::Missing,
            Value::Number(n) => Cell::Number(*n),
            Value::Bool(b) => Cell::Bool(*b),
            Value::Text(t) => Cell::Text(t),
        });
    }

    fn push(&mut self, cell: Cell<'_>) {
        let kind = match cell {
            Cell::Missing => Kind::Missing,
            Cell::Number(n) => {
                self.numbers.push(n);
                Kind::Number
            }
            Cell::Bool(false) => Kind::False,
            Cell::Bool(true) => Kind::True,
            Cell::Text(t) => {
                self.text.push_str(t);
                // A column over 4 GiB of text cannot cross into a 32-bit component anyway.
                self.ends
                    .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
                Kind::Text
            }
        };
        self.kinds.push(kind);
    }

    /// The values again; an error if the lists do not agree with the kinds.
    pub fn unpack(&self) -> Result<Vec<Value>, FeatureError> {
        let bad = |why: &str| Err(FeatureError::Spec(format!("a packed column {why}")));
        let (mut numbers, mut ends) = (self.numbers.iter(), self.ends.iter());
        let mut start = 0usize;
        let mut values = Vec::with_capacity(self.kinds.len());
        for kind in &self.kinds {
            values.push(match kind {
                Kind::Missing => Value::Missing,
                Kind::Number => match numbers.next() {
                    Some(&n) => Value::Number(n),
                    None => return bad("has fewer numbers than its kinds say"),
                },
                Kind::False => Value::Bool(false),
                Kind::True => Value::Bool(true),
                Kind::Text => {
                    let Some(end) = ends.next().and_then(|&e| usize::try_from(e).ok()) else {
                        return bad("has fewer texts than its kinds say");
                    };
                    let Some(text) = self.text.get(start..end) else {
                        return bad("has a text that ends out of place");
                    };
                    start = end;
                    Value::Text(text.to_owned())
                }
            });
        }
        if numbers.next().is_some() || ends.next().is_some() {
            return bad("has more numbers or texts than its kinds say");
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_columns_come_back_as_they_went() {
        let values = vec![
            Value::Number(1.5),
            Value::Missing,
            Value::Text("é€".into()),
            Value::Bool(true),
            Value::Text(String::new()),
            Value::Bool(false),
            Value::Number(-0.0),
        ];
        let packed = Packed::of(&values);
        assert_eq!(packed.numbers, [1.5, -0.0]);
        assert_eq!(packed.ends, [5, 5]);
        assert_eq!(packed.unpack(), Ok(values));
    }

    #[test]
    fn csv_cells_pack_as_values_read_them() {
        let cells = ["", " 4.5 ", "NaN", "true", "FR", "null", "1e3"];
        let mut packed = Packed::default();
        for c in cells {
            packed.push_csv(c);
        }
        let read: Vec<Value> = cells.iter().map(|c| Value::from_csv(c)).collect();
        assert_eq!(packed.unpack(), Ok(read));
    }

    #[test]
    fn a_packed_column_that_disagrees_with_its_kinds_is_refused() {
        let mut packed = Packed::of(&[Value::Text("ab".into())]);
        packed.ends = vec![3];
        assert!(packed.unpack().is_err());
        let mut packed = Packed::of(&[Value::Number(1.0)]);
        packed.numbers.push(2.0);
        assert!(packed.unpack().is_err());
        let mut packed = Packed::of(&[Value::Number(1.0)]);
        packed.numbers.clear();
        assert!(packed.unpack().is_err());
    }

    #[test]
    fn tables_take_columns_of_their_length() {
        let mut table = Table::new(2);
        assert!(table.insert("a", vec![Value::Missing]).is_err());
        table
            .insert("a", vec![Value::Number(1.0), Value::Missing])
            .expect("fits");
        assert_eq!(
            table.column("a"),
            Some(&[Value::Number(1.0), Value::Missing][..])
        );
        assert_eq!(table.column("b"), None);
    }
}
