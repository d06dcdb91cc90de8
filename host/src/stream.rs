//! Streams of newline-delimited JSON: one prediction per line, each answer written and flushed
//! as soon as it is computed (`wafer predict --stream`).
//!
//! A line is a raw record (a JSON object, through the model's `features.toml`), a row of
//! numbers (a JSON array, for the model's first input), or a whole v2 inference request (an
//! object with `inputs`). Its answer is the v2 response with the line's number added,
//! `{"line": n, "model_name", "model_version", "outputs"}`; a line that cannot be scored answers
//! `{"line": n, "error": "..."}` and the stream goes on. Blank lines are skipped but counted.
//! `wafer serve` answers `POST .../infer` bodies of `application/x-ndjson` the same way, line
//! by line ([`answer_line`]).

use anyhow::Context as _;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};
use wafer_protocol::{self as protocol, ProtocolError};

use crate::runtime::{LoadedModel, Measured};

/// What a stream carried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Lines answered with a prediction.
    pub scored: u64,
    /// Lines answered with an error.
    pub rejected: u64,
}

/// Answers every line of `input` on `output`, flushing after each, until `input` ends.
pub async fn predict_lines(
    model: &LoadedModel,
    input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> anyhow::Result<Summary> {
    let mut lines = input.lines();
    let mut summary = Summary::default();
    let mut number = 0u64;
    while let Some(line) = lines.next_line().await.context("reading the stream")? {
        number += 1;
        let Some(answer) = answer_line(model, number, &line).await else {
            continue;
        };
        summary.count(answer.error.is_none());
        output
            .write_all(&answer.bytes)
            .await
            .context("writing the stream")?;
        output.flush().await.context("writing the stream")?;
    }
    Ok(summary)
}

impl Summary {
    /// Counts one answered line.
    pub fn count(&mut self, scored: bool) {
        if scored {
            self.scored += 1;
        } else {
            self.rejected += 1;
        }
    }
}

/// One line's answer.
#[derive(Debug)]
pub struct Answer {
    /// The answer line, with its newline.
    pub bytes: Vec<u8>,
    /// Why the line was not scored, if it was not.
    pub error: Option<ProtocolError>,
    /// What running it measured.
    pub measured: Measured,
}

/// The answer to line `number` (counting from 1); `None` for a blank line, which is not
/// answered.
pub async fn answer_line(model: &LoadedModel, number: u64, line: &str) -> Option<Answer> {
    if line.trim().is_empty() {
        return None;
    }
    let (result, measured) = answer(model, line).await;
    let (json, error) = match result {
        Ok(mut response) => {
            if let Value::Object(fields) = &mut response {
                fields.insert("line".into(), number.into());
            }
            (response, None)
        }
        Err(e) => (
            serde_json::json!({ "line": number, "error": e.to_string() }),
            Some(e),
        ),
    };
    let mut bytes = protocol::to_json(&json);
    bytes.push(b'\n');
    Some(Answer {
        bytes,
        error,
        measured,
    })
}

/// What a prediction is asked with.
pub enum Input<'a> {
    /// A whole v2 inference request.
    Request(&'a [u8]),
    /// A JSON array of raw records (through the model's `features.toml`) or of rows of numbers
    /// for its first input.
    Records(String),
}

/// Runs `input` on `model` and encodes the v2 response: JSON only, binary tensor data being for
/// HTTP clients. `wafer predict` answers with it, once or per line.
pub async fn respond(
    model: &LoadedModel,
    input: Input<'_>,
) -> (Result<Vec<u8>, ProtocolError>, Measured) {
    let ((outputs, measured), id) = match input {
        Input::Request(body) => match protocol::decode_infer_request(body, None) {
            Ok(request) => (
                model.predict(request.inputs, &request.outputs).await,
                request.id,
            ),
            Err(e) => return (Err(e), Measured::default()),
        },
        Input::Records(records) => (model.predict_records(records, &[]).await, None),
    };
    let body = outputs.map(|outputs| {
        protocol::encode_infer_response(
            model.name(),
            Some(protocol::MODEL_VERSION),
            id,
            outputs,
            &protocol::BinaryOutputs::default(),
        )
        .body
    });
    (body, measured)
}

/// The v2 response to one line, and what running it measured.
async fn answer(model: &LoadedModel, line: &str) -> (Result<Value, ProtocolError>, Measured) {
    let input = match protocol::parse_json(line.as_bytes()) {
        Ok(Value::Object(fields)) if fields.contains_key("inputs") => {
            Input::Request(line.as_bytes())
        }
        Ok(Value::Object(_) | Value::Array(_)) => Input::Records(format!("[{line}]")),
        Ok(_) => {
            let why = "a line is a record (object), a row (array) or a v2 request";
            return (
                Err(ProtocolError::InvalidRequest(why.into())),
                Measured::default(),
            );
        }
        Err(e) => return (Err(e), Measured::default()),
    };
    let (body, measured) = respond(model, input).await;
    let response = body.and_then(|body| {
        serde_json::from_slice(&body)
            .map_err(|e| ProtocolError::Internal(format!("unreadable response: {e}")))
    });
    (response, measured)
}
