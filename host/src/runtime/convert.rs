//! Conversions between the component's WIT types and `wafer-scoring`'s, and the one place
//! where a guest error becomes a protocol error (and so an HTTP status or an exit code).

use wafer_features::{Kind, Packed};
use wafer_protocol::ProtocolError;

use crate::bindings::exports::wafer::inference::scorer::{Cell, Column, Table};
use crate::bindings::wafer::inference::types::Error;

wafer_scoring::wit_conversions!(crate::bindings::wafer::inference::types);

/// The protocol error for an error the guest returned.
pub fn guest_error(e: Error) -> ProtocolError {
    match e {
        Error::InvalidInput(m) => ProtocolError::InvalidInput(m),
        Error::NotLoaded(m) | Error::Runtime(m) => ProtocolError::Internal(m),
    }
}

/// A batch of raw records, as packed columns of `rows` cells each, as the guest's `table`.
pub fn table(rows: usize, columns: &[(String, Packed)]) -> Table {
    Table {
        rows: u32::try_from(rows).unwrap_or(u32::MAX),
        columns: columns
            .iter()
            .map(|(name, packed)| Column {
                name: name.clone(),
                cells: packed
                    .kinds
                    .iter()
                    .map(|kind| match kind {
                        Kind::Missing => Cell::Missing,
                        Kind::Number => Cell::Number,
                        Kind::False => Cell::False,
                        Kind::True => Cell::True,
                        Kind::Text => Cell::Text,
                    })
                    .collect(),
                numbers: packed.numbers.clone(),
                text: packed.text.clone(),
                ends: packed.ends.clone(),
            })
            .collect(),
    }
}
