//! Conversions between the WIT types and `wafer-scoring`'s.

use wafer_scoring::ScoringError;

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
