//! Conversions between the WIT types and `wafer-scoring`'s.

use wafer_features::{Kind, Packed, Table};
use wafer_scoring::ScoringError;

use crate::bindings::exports::wafer::inference::scorer;
use crate::bindings::wafer::inference::types::Error;

wafer_scoring::wit_conversions!(crate::bindings::wafer::inference::types);

/// The WIT error for a scoring error: the one place the guest classifies failures.
pub(crate) fn error(e: ScoringError) -> Error {
    match e {
        ScoringError::Load(_) => Error::NotLoaded(e.to_string()),
        ScoringError::Run(_) => Error::Runtime(e.to_string()),
        _ => Error::InvalidInput(e.to_string()),
    }
}

/// The raw records of a `table`.
pub(crate) fn table(table: scorer::Table) -> Result<Table, ScoringError> {
    let rows = usize::try_from(table.rows).unwrap_or(usize::MAX);
    let mut out = Table::new(rows);
    for column in table.columns {
        let packed = Packed {
            kinds: column
                .cells
                .iter()
                .map(|cell| match cell {
                    scorer::Cell::Missing => Kind::Missing,
                    scorer::Cell::Number => Kind::Number,
                    scorer::Cell::False => Kind::False,
                    scorer::Cell::True => Kind::True,
                    scorer::Cell::Text => Kind::Text,
                })
                .collect(),
            numbers: column.numbers,
            text: column.text,
            ends: column.ends,
        };
        let bad = |e: wafer_features::FeatureError| {
            ScoringError::Record(format!("column \"{}\": {e}", column.name))
        };
        out.insert(&column.name, packed.unpack().map_err(bad)?)
            .map_err(bad)?;
    }
    Ok(out)
}
