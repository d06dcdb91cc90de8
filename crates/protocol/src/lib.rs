//! wafer-protocol: the KServe Open Inference Protocol v2 (REST, JSON form), shared by the guest
//! component and the `wafer` host so both speak it identically.
//!
//! It holds the routes, the request and response bodies, the JSON codec between v2 tensors and
//! [`wafer_scoring::Tensor`], the one mapping from errors to HTTP statuses
//! ([`ProtocolError::status`]), and the [`Pipeline`] (a model and its feature spec) that the
//! guest component and the browser build both serve. It does no I/O and knows nothing of HTTP servers.

pub mod binary;
mod bundle;
mod codec;
mod error;
#[cfg(test)]
mod fuzz;
mod json;
pub mod ndjson;
mod pipeline;
mod route;
pub mod shared_guest;
mod types;

pub use bundle::Bundle;
pub use codec::{
    BinaryOutputs, DecodedRequest, EncodedResponse, decode_infer_request, decode_rows,
    encode_infer_response, encode_v1_response, model_metadata, tensors_to_json, v1_instances,
};
pub use error::ProtocolError;
pub use json::parse_json;
pub use pipeline::{Batch, Fetch, Pipeline, no_store};
pub use route::{Route, route};
pub use types::{
    InferRequest, InferResponse, MetadataTensor, ModelMetadataResponse, RequestInput,
    RequestOutput, ResponseOutput, ServerMetadata, TensorParameters,
};

/// The name this server reports in `GET /v2`.
pub const SERVER_NAME: &str = "wafer";

/// The version a model without numbered version folders is served as.
pub const MODEL_VERSION: &str = "1";

/// Response header with the number of predictions the answering instance has run. A host
/// that gives every request a fresh instance always reports 1.
pub const INSTANCE_PREDICTIONS_HEADER: &str = "x-wafer-instance-predictions";

/// Response header with the number of times the answering instance parsed its model: 0 when
/// the parsed model came in the component's snapshot.
pub const INSTANCE_MODEL_PARSES_HEADER: &str = "x-wafer-instance-model-parses";

/// Response header: how many requests the model call that answered this one served: 1 alone,
/// more when dynamic batching joined it with others.
pub const BATCH_SIZE_HEADER: &str = "x-wafer-batch-size";

/// The body of `GET /v2`.
pub fn server_metadata() -> ServerMetadata {
    ServerMetadata {
        name: SERVER_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        extensions: Vec::new(),
    }
}

/// The body of `GET /v2/models`: `{"models": [{"name": ..., "versions": [...], "state": ...}]}`,
/// for models given as their name, the versions served, and, when it cannot serve, the reason.
/// `state` is `READY` or `UNAVAILABLE` (with `reason`), as Triton's repository index says it.
pub fn model_list<'a>(
    models: impl IntoIterator<Item = (&'a str, Vec<String>, Option<&'a str>)>,
) -> serde_json::Value {
    let models: Vec<serde_json::Value> = models
        .into_iter()
        .map(|(name, versions, unavailable)| match unavailable {
            None => serde_json::json!({
                "name": name, "versions": versions, "state": "READY"
            }),
            Some(reason) => serde_json::json!({
                "name": name, "versions": versions, "state": "UNAVAILABLE",
                "reason": reason
            }),
        })
        .collect();
    serde_json::json!({ "models": models })
}

/// Checks that a path's version, if any, is one this server has for `model`.
pub fn check_version(model: &str, version: Option<&str>) -> Result<(), ProtocolError> {
    match version {
        None | Some(MODEL_VERSION) => Ok(()),
        Some(v) => Err(ProtocolError::ModelNotFound(format!(
            "{model}\" version \"{v}"
        ))),
    }
}

/// Serializes any response body; these types cannot fail to serialize.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| error_body(&e.to_string()))
}

/// The `{"error": "..."}` body of a failed request.
pub fn error_body(message: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": message });
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"unprintable error\"}".to_vec())
}
