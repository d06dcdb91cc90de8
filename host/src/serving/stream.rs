//! Streams of newline-delimited JSON on a model loaded here: `wafer predict --stream` over
//! stdin and stdout, and the lines `wafer serve` answers on `POST .../infer` bodies of
//! `application/x-ndjson` ([`answer_line`]). What a line holds and what it is answered with is
//! [`wafer_protocol::ndjson`]'s, shared with the guest's own HTTP handler.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};
use wafer_protocol::ndjson::{self, LineInput};
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
    model: &Arc<LoadedModel>,
    mut input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut number = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .await
            .context("reading the stream")?;
        if read == 0 {
            break;
        }
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
pub async fn answer_line(model: &Arc<LoadedModel>, number: u64, line: &[u8]) -> Option<Answer> {
    let (result, measured) = match ndjson::parse_line(line)? {
        Ok(LineInput::Request(body)) => respond(model, Input::Request(body)).await,
        Ok(LineInput::Records(records)) => respond(model, Input::Records(records)).await,
        Err(e) => (Err(e), Measured::default()),
    };
    let bytes = ndjson::answer(number, result.as_deref());
    Some(Answer {
        bytes,
        error: result.err(),
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
    model: &Arc<LoadedModel>,
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
    let version = model.version().to_string();
    let body = outputs.map(|outputs| {
        protocol::encode_infer_response(
            model.name(),
            Some(&version),
            id,
            outputs,
            &protocol::BinaryOutputs::default(),
        )
        .body
    });
    (body, measured)
}
