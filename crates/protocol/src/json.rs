//! JSON parsing that accepts the non-finite float tokens Python clients send.

use serde_json::Value;

use crate::ProtocolError;

/// Parses a JSON body, accepting bare `NaN`, `Infinity` and `-Infinity` as values.
///
/// Python's `json` module (and so `tritonclient`) writes non-finite floats as these bare
/// tokens. They become the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, which the tensor
/// decoder reads back as floats.
pub fn parse_json(body: &[u8]) -> Result<Value, ProtocolError> {
    parse_json_as(body)
}

/// Parses a JSON body straight into `T`, with no [`Value`] tree in between, accepting the
/// same non-finite tokens as [`parse_json`]. A body that is not JSON is malformed; JSON of
/// another shape than `T` is an invalid request.
pub(crate) fn parse_json_as<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, ProtocolError> {
    let quoted = quote_non_finite(body);
    serde_json::from_slice(quoted.as_deref().unwrap_or(body)).map_err(|e| {
        if e.is_data() {
            ProtocolError::InvalidRequest(e.to_string())
        } else {
            ProtocolError::MalformedJson(e.to_string())
        }
    })
}

/// Returns a copy of `body` with non-finite tokens outside strings quoted, or `None` if
/// there are none.
fn quote_non_finite(body: &[u8]) -> Option<Vec<u8>> {
    const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
        } else if let Some(token) = TOKENS.iter().find(|t| body[i..].starts_with(t)) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 16));
            buf.extend_from_slice(&body[copied..i]);
            buf.push(b'"');
            buf.extend_from_slice(token);
            buf.push(b'"');
            i += token.len();
            copied = i;
            continue;
        }
        i += 1;
    }
    let mut out = out?;
    out.extend_from_slice(&body[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_non_finite_tokens_become_strings() {
        let v = parse_json(br#"{"data":[NaN, Infinity,-Infinity, 1.5],"s":"NaN Infinity"}"#)
            .expect("parses");
        assert_eq!(
            v["data"],
            serde_json::json!(["NaN", "Infinity", "-Infinity", 1.5])
        );
        assert_eq!(v["s"], "NaN Infinity", "strings are left alone");
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        let v = parse_json(br#"{"s":"a\"NaN","x":NaN}"#).expect("parses");
        assert_eq!(v["s"], "a\"NaN");
        assert_eq!(v["x"], "NaN");
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = parse_json(b"{\"inputs\": [").expect_err("truncated");
        assert!(matches!(err, ProtocolError::MalformedJson(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn untouched_bodies_are_not_copied() {
        assert_eq!(quote_non_finite(br#"{"a":[1,2]}"#), None);
    }
}
