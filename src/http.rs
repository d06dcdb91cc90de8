//! The KServe v2 REST API over `wasi:http/incoming-handler`, for Spin and `wasmtime serve`.

use wafer_protocol::ndjson::{self, LineInput};
use wafer_protocol::{self as protocol, ProtocolError, Route};

use crate::bindings::exports::wasi::http::incoming_handler;
use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use crate::bindings::wasi::io::streams::{OutputStream, StreamError};
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
        let ndjson = request
            .headers()
            .get("content-type")
            .first()
            .is_some_and(|v| v.starts_with(ndjson::CONTENT_TYPE.as_bytes()));
        if ndjson {
            return stream(&method, &path, request, response_out);
        }
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
        Route::ModelList => protocol::to_json(&protocol::model_list([(
            name.as_str(),
            vec![protocol::MODEL_VERSION.to_owned()],
            None,
        )])),
        // Counters, drift and the repository live in the host that runs the component.
        Route::Metrics
        | Route::ModelStats { .. }
        | Route::ModelDrift { .. }
        | Route::RepositoryIndex
        | Route::RepositoryLoad { .. }
        | Route::RepositoryUnload { .. } => {
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

/// Answers a streamed inference (`application/x-ndjson` on `.../infer`) line by line as the
/// lines arrive: each answer is written and flushed before the next line is read, so a client
/// that sends faster than it reads is slowed down by the host's flow control.
fn stream(method: &str, path: &str, request: IncomingRequest, response_out: ResponseOutparam) {
    let name = match stream_model(method, path) {
        Ok(name) => name,
        Err(e) => return send(response_out, e.status(), &e.body(), None),
    };
    let input = request.consume().ok().and_then(|body| {
        let stream = body.stream().ok()?;
        Some((body, stream))
    });
    let Some((_body, input)) = input else {
        let e = ProtocolError::InvalidRequest("cannot read body".into());
        return send(response_out, e.status(), &e.body(), None);
    };
    let headers = Fields::new();
    let _ = headers.set("content-type", &[ndjson::CONTENT_TYPE.as_bytes().to_vec()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(200);
    let Ok(out_body) = response.body() else {
        return;
    };
    ResponseOutparam::set(response_out, Ok(response));
    let Ok(out) = out_body.write() else {
        return;
    };
    let mut lines = ndjson::Lines::default();
    loop {
        let ended = match input.blocking_read(64 * 1024) {
            Ok(chunk) => {
                lines.push(&chunk);
                false
            }
            // The request ended, or the client went away: answer what is left.
            Err(_) => true,
        };
        while let Some((number, line)) = lines.next_line() {
            if let Some(answer) = answer_line(&name, number, line)
                && !write_all(&out, &answer)
            {
                return; // The client went away: stop the work.
            }
        }
        if let Some(refusal) = lines.overlong() {
            write_all(&out, &refusal);
            break;
        }
        if ended {
            if let Some((number, line)) = lines.rest()
                && let Some(answer) = answer_line(&name, number, line)
            {
                write_all(&out, &answer);
            }
            break;
        }
    }
    drop(out);
    let _ = OutgoingBody::finish(out_body, None);
}

/// The model a stream's route names, checked to be this one.
fn stream_model(method: &str, path: &str) -> Result<String, ProtocolError> {
    let Route::Infer { model, version } = protocol::route(method, path)? else {
        return Err(ProtocolError::InvalidRequest(format!(
            "only .../infer takes {}",
            ndjson::CONTENT_TYPE
        )));
    };
    let pipeline = state::pipeline().map_err(|e| ProtocolError::Internal(e.to_string()))?;
    let name = &pipeline.model().metadata().name;
    if &model != name {
        return Err(ProtocolError::ModelNotFound(model));
    }
    protocol::check_version(name, version.as_deref())?;
    Ok(model)
}

/// The answer to one streamed line; `None` for a blank line.
fn answer_line(name: &str, number: u64, line: &[u8]) -> Option<Vec<u8>> {
    let result = ndjson::parse_line(line)?.and_then(|input| {
        let (id, outputs) = match input {
            LineInput::Request(body) => {
                let decoded = protocol::decode_infer_request(body, None)?;
                (
                    decoded.id,
                    state::predict(decoded.inputs, &decoded.outputs)?,
                )
            }
            LineInput::Records(records) => (None, state::predict_records(&records, &[])?),
        };
        let binary = protocol::BinaryOutputs::default();
        Ok(protocol::encode_infer_response(name, None, id, outputs, &binary).body)
    });
    Some(ndjson::answer(number, result.as_deref()))
}

/// Writes and flushes `bytes`; false once the stream is closed.
fn write_all(out: &OutputStream, bytes: &[u8]) -> bool {
    // `blocking-write-and-flush` takes at most 4096 bytes at a time.
    bytes
        .chunks(4096)
        .all(|chunk| out.blocking_write_and_flush(chunk).is_ok())
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
    if let Ok(stream) = out_body.write()
        && !write_all(&stream, body)
    {
        return;
    }
    let _ = OutgoingBody::finish(out_body, None);
}
