//! The KServe v2 REST API over `wasi:http/incoming-handler`, for Spin and `wasmtime serve`.

use wafer_protocol::{self as protocol, ProtocolError, Route};

use crate::bindings::exports::wasi::http::incoming_handler;
use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::state;

/// The largest request body read, in bytes.
const MAX_BODY: usize = 64 << 20;

impl incoming_handler::Guest for crate::Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Other(m) => m,
        };
        let path = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let (status, body, header_length) = match respond(&method, &path, &request) {
            Ok(r) => (200, r.body, r.header_length),
            Err(e) => (e.status(), e.body(), None),
        };
        send(response_out, status, &body, header_length);
    }
}

fn respond(
    method: &str,
    path: &str,
    request: &IncomingRequest,
) -> Result<protocol::EncodedResponse, ProtocolError> {
    let route = protocol::route(method, path)?;
    let header = request.headers().get(protocol::binary::HEADER_LENGTH);
    let header_length = protocol::binary::header_length(header.first().map(Vec::as_slice))?;
    // Read the whole body before answering anything, so that a client still sending it never
    // sees the connection closed under it.
    let body = if matches!(route, Route::Infer { .. } | Route::V1Predict { .. }) {
        read_body(request)?
    } else {
        Vec::new()
    };
    let pipeline = state::pipeline().map_err(|e| ProtocolError::Internal(e.to_string()))?;
    let model = pipeline.model();
    let name = &model.metadata().name;
    if let Some(wanted) = route.model()
        && wanted != name
    {
        return Err(ProtocolError::ModelNotFound(wanted.to_owned()));
    }
    let json = |body: Vec<u8>| protocol::EncodedResponse {
        body,
        header_length: None,
    };
    let body = match route {
        Route::Live => protocol::to_json(&serde_json::json!({ "live": true })),
        Route::Ready => protocol::to_json(&serde_json::json!({ "ready": true })),
        Route::ServerMetadata => protocol::to_json(&protocol::server_metadata()),
        Route::ModelList => protocol::to_json(&protocol::model_list([(name.as_str(), None)])),
        // Counters live in the host that runs the component; a guest has only its own.
        Route::Metrics | Route::ModelStats { .. } => {
            return Err(ProtocolError::RouteNotFound {
                method: method.into(),
                path: path.into(),
            });
        }
        Route::ModelMetadata { version, .. } => {
            protocol::check_version(name, version.as_deref())?;
            protocol::to_json(&protocol::model_metadata(model.metadata()))
        }
        Route::ModelReady { version, .. } => {
            protocol::check_version(name, version.as_deref())?;
            protocol::to_json(&serde_json::json!({ "name": name, "ready": true }))
        }
        Route::V1Predict { .. } => {
            let instances = protocol::v1_instances(&body)?;
            let outputs = state::predict_records(&instances, &[])?;
            protocol::encode_v1_response(&outputs)
        }
        Route::Infer { version, .. } => {
            protocol::check_version(name, version.as_deref())?;
            let decoded = protocol::decode_infer_request(&body, header_length)?;
            let outputs = state::predict(decoded.inputs, &decoded.outputs)?;
            return Ok(protocol::encode_infer_response(
                name,
                None,
                decoded.id,
                outputs,
                &decoded.binary,
            ));
        }
    };
    Ok(json(body))
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, ProtocolError> {
    let broken = |what: &str| ProtocolError::InvalidRequest(format!("cannot read body: {what}"));
    let body = request.consume().map_err(|()| broken("already consumed"))?;
    let stream = body.stream().map_err(|()| broken("no stream"))?;
    let mut buf = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                buf.extend_from_slice(&chunk);
                if buf.len() > MAX_BODY {
                    return Err(ProtocolError::PayloadTooLarge { limit: MAX_BODY });
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(broken(&e.to_debug_string())),
        }
    }
    Ok(buf)
}

fn send(response_out: ResponseOutparam, status: u16, body: &[u8], header_length: Option<usize>) {
    let headers = Fields::new();
    let content_type: &[u8] = match header_length {
        Some(n) => {
            let _ = headers.set(
                protocol::binary::HEADER_LENGTH,
                &[n.to_string().into_bytes()],
            );
            b"application/octet-stream"
        }
        None => b"application/json",
    };
    let _ = headers.set("content-type", &[content_type.to_vec()]);
    let _ = headers.set("content-length", &[body.len().to_string().into_bytes()]);
    let stats = state::stats();
    let _ = headers.set(
        protocol::INSTANCE_PREDICTIONS_HEADER,
        &[stats.predictions.to_string().into_bytes()],
    );
    let _ = headers.set(
        protocol::INSTANCE_MODEL_PARSES_HEADER,
        &[stats.model_parses.to_string().into_bytes()],
    );
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(out_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    if let Ok(stream) = out_body.write() {
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(out_body, None);
}
