//! Conversions between the component's WIT types and `wafer-scoring`'s, and the one place
//! where a guest error becomes a protocol error (and so an HTTP status or an exit code).

use wafer_protocol::ProtocolError;

use crate::bindings::wafer::inference::types::Error;

wafer_scoring::wit_conversions!(crate::bindings::wafer::inference::types);

/// The protocol error for an error the guest returned.
pub fn guest_error(e: Error) -> ProtocolError {
    match e {
        Error::InvalidInput(m) => ProtocolError::InvalidInput(m),
        Error::NotLoaded(m) | Error::Runtime(m) => ProtocolError::Internal(m),
    }
}
