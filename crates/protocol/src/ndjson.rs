//! Streams of newline-delimited JSON (`application/x-ndjson`): one prediction per line, the
//! same wherever the stream is served (`wafer serve`, the guest's own HTTP handler under
//! `wasmtime serve` and Spin, `wafer predict --stream`).
//!
//! A line is a raw record (a JSON object, through the model's `features.toml`), a row of
//! numbers (a JSON array, for the model's first input), or a whole v2 inference request (an
//! object with `inputs`). Its answer is the v2 response with the line's number first,
//! `{"line": n, "model_name", ...}`; a line that cannot be scored answers
//! `{"line": n, "error": "..."}` and the stream goes on. Blank lines are counted, not answered.

use serde_json::Value;

use crate::ProtocolError;

/// The content type of a stream.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// The longest line a stream takes, in bytes.
pub const MAX_LINE: usize = 16 << 20;

/// What one line asks for.
#[derive(Debug, PartialEq)]
pub enum LineInput<'a> {
    /// A whole v2 inference request: the line's bytes.
    Request(&'a [u8]),
    /// A JSON array of one raw record or one row of numbers.
    Records(String),
}

/// Reads a line: `None` when it is blank.
pub fn parse_line(line: &[u8]) -> Option<Result<LineInput<'_>, ProtocolError>> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(match crate::parse_json(line) {
        Ok(Value::Object(fields)) if fields.contains_key("inputs") => Ok(LineInput::Request(line)),
        Ok(Value::Object(_) | Value::Array(_)) => Ok(LineInput::Records(format!(
            "[{}]",
            String::from_utf8_lossy(line).trim()
        ))),
        Ok(_) => Err(ProtocolError::InvalidRequest(
            "a line is a record (object), a row (array) or a v2 request".into(),
        )),
        Err(e) => Err(e),
    })
}

/// The answer line (with its newline) to line `number`: `response`, a JSON object, with
/// `"line": number` put first, or the error.
pub fn answer(number: u64, response: Result<&[u8], &ProtocolError>) -> Vec<u8> {
    let mut out = match response {
        Ok(body) => match body.strip_prefix(b"{") {
            Some(rest) => {
                let mut out = format!("{{\"line\":{number}").into_bytes();
                if rest.first().is_some_and(|&b| b != b'}') {
                    out.push(b',');
                }
                out.extend_from_slice(rest);
                out
            }
            None => {
                let e = ProtocolError::Internal("a response is not a JSON object".into());
                return answer(number, Err(&e));
            }
        },
        Err(e) => crate::to_json(&serde_json::json!({ "line": number, "error": e.to_string() })),
    };
    out.push(b'\n');
    out
}

/// The bytes of a stream as they arrive, cut into whole lines.
#[derive(Debug, Default)]
pub struct Lines {
    pending: Vec<u8>,
    start: usize,
    number: u64,
}

impl Lines {
    /// Adds what arrived, dropping the lines already taken.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.drain(..self.start);
        self.start = 0;
        self.pending.extend_from_slice(bytes);
    }

    /// The next whole line and its number (from 1), if one has arrived.
    pub fn next_line(&mut self) -> Option<(u64, &[u8])> {
        let end = self.pending[self.start..]
            .iter()
            .position(|&b| b == b'\n')?;
        let line = &self.pending[self.start..self.start + end];
        self.start += end + 1;
        self.number += 1;
        Some((self.number, line))
    }

    /// Whether the unfinished line has grown past [`MAX_LINE`]: the answer to send before
    /// ending the stream.
    pub fn overlong(&self) -> Option<Vec<u8>> {
        (self.pending.len() - self.start > MAX_LINE).then(|| {
            let e = ProtocolError::PayloadTooLarge { limit: MAX_LINE };
            answer(self.number + 1, Err(&e))
        })
    }

    /// At the end of the stream: the last line, if it has no newline.
    pub fn rest(&mut self) -> Option<(u64, &[u8])> {
        let rest = &self.pending[self.start..];
        self.start = self.pending.len();
        if rest.is_empty() {
            return None;
        }
        self.number += 1;
        Some((self.number, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_as_they_arrive_and_numbered() {
        let mut lines = Lines::default();
        lines.push(b"{\"a\":1}\n[1,");
        assert_eq!(lines.next_line(), Some((1, &b"{\"a\":1}"[..])));
        assert_eq!(lines.next_line(), None);
        lines.push(b"2]\n\n{\"b\"");
        assert_eq!(lines.next_line(), Some((2, &b"[1,2]"[..])));
        assert_eq!(lines.next_line(), Some((3, &b""[..])));
        assert_eq!(lines.next_line(), None);
        assert_eq!(lines.rest(), Some((4, &b"{\"b\""[..])));
        assert_eq!(lines.rest(), None);
    }

    #[test]
    fn a_line_is_a_record_a_row_or_a_request() {
        assert_eq!(parse_line(b"  "), None);
        assert_eq!(
            parse_line(b"{\"age\": 3}"),
            Some(Ok(LineInput::Records("[{\"age\": 3}]".into())))
        );
        assert_eq!(
            parse_line(b"[1, 2]"),
            Some(Ok(LineInput::Records("[[1, 2]]".into())))
        );
        let request = br#"{"inputs": []}"#;
        assert_eq!(parse_line(request), Some(Ok(LineInput::Request(request))));
        assert!(matches!(parse_line(b"42"), Some(Err(_))));
        assert!(matches!(parse_line(b"{nope"), Some(Err(_))));
    }

    #[test]
    fn an_answer_puts_the_line_number_first() {
        assert_eq!(
            answer(7, Ok(br#"{"model_name":"m"}"#)),
            b"{\"line\":7,\"model_name\":\"m\"}\n"
        );
        assert_eq!(answer(1, Ok(b"{}")), b"{\"line\":1}\n");
        let e = ProtocolError::InvalidInput("bad".into());
        let line = answer(3, Err(&e));
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v, serde_json::json!({"line": 3, "error": e.to_string()}));
    }
}
