//! The bad-input corpus: hundreds of generated malformed requests (truncations, type
//! confusions, huge and deeply nested values, invalid UTF-8, binary headers that lie about
//! lengths, overlong heads, unknown routes, path traversal) sent over HTTP as JSON and through
//! the binary extension. Every one must answer 4xx with `{"error": "..."}`: none 5xx, none a
//! hang, none a crash.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{fixture, get, infer_request, post, try_request, wafer_server};

/// One malformed request.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Case {
    fn json(name: impl Into<String>, path: &str, body: impl Into<Vec<u8>>) -> Case {
        Case {
            name: name.into(),
            method: "POST",
            path: path.to_owned(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    /// A binary-extension request: `header_length` as the header says, then `body`.
    fn binary(name: impl Into<String>, header_length: &str, body: Vec<u8>) -> Case {
        Case {
            name: name.into(),
            method: "POST",
            path: IRIS.to_owned(),
            headers: vec![
                ("content-type".into(), "application/octet-stream".into()),
                (
                    "inference-header-content-length".into(),
                    header_length.to_owned(),
                ),
            ],
            body,
        }
    }
}

const IRIS: &str = "/v2/models/iris/infer";

/// A valid iris request, as a JSON value.
fn valid() -> Value {
    let fx = fixture("iris");
    infer_request(&fx.input, &fx.rows[..2])
}

/// A valid binary-extension request: its JSON header and eight FP32 values.
fn valid_binary() -> (Vec<u8>, Vec<u8>) {
    let header = json!({
        "inputs": [{"name": "X", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": 32}}],
        "outputs": [{"name": "label", "parameters": {"binary_data": true}}],
    });
    let data: Vec<u8> = [5.1f32, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    (serde_json::to_vec(&header).expect("json"), data)
}

/// Every case of the corpus.
fn corpus() -> Vec<Case> {
    let mut cases = Vec::new();
    let valid = valid();
    let text = valid.to_string();

    // Truncations of a valid JSON request, at 60 places.
    let step = (text.len() / 60).max(1);
    for cut in (0..text.len()).step_by(step) {
        cases.push(Case::json(
            format!("truncated at {cut}"),
            IRIS,
            &text[..cut],
        ));
    }

    // Type confusions: each field replaced by values of the wrong kind.
    let swaps: Vec<(&str, Value)> = vec![
        ("/inputs", json!(1)),
        ("/inputs", json!("X")),
        ("/inputs", json!({})),
        ("/inputs", json!([])),
        ("/inputs", json!([null])),
        ("/inputs", json!([1, 2])),
        ("/inputs/0/name", json!(7)),
        ("/inputs/0/name", json!(null)),
        ("/inputs/0/name", json!("not_an_input")),
        ("/inputs/0/shape", json!("2,4")),
        ("/inputs/0/shape", json!([2, -4])),
        ("/inputs/0/shape", json!([2.5, 4])),
        ("/inputs/0/shape", json!([2, 5])),
        ("/inputs/0/shape", json!([3, 4])),
        ("/inputs/0/shape", json!([8])),
        ("/inputs/0/shape", json!([2, 4, 1, 1])),
        ("/inputs/0/shape", json!([1_000_000_000_000u64, 4])),
        ("/inputs/0/shape", json!([u64::MAX, u64::MAX])),
        ("/inputs/0/shape", json!([0, 4])),
        ("/inputs/0/shape", json!(null)),
        ("/inputs/0/datatype", json!("FP128")),
        ("/inputs/0/datatype", json!(32)),
        ("/inputs/0/datatype", json!("BYTES")),
        ("/inputs/0/datatype", json!("BOOL")),
        ("/inputs/0/datatype", json!("")),
        ("/inputs/0/data", json!("5.1")),
        (
            "/inputs/0/data",
            json!(["a", "b", "c", "d", "e", "f", "g", "h"]),
        ),
        (
            "/inputs/0/data",
            json!([true, false, true, false, true, false, true, false]),
        ),
        ("/inputs/0/data", json!([[], 1, 2, 3, 4, 5, 6, 7])),
        ("/inputs/0/data", json!([{}, 1, 2, 3, 4, 5, 6, 7])),
        ("/inputs/0/data", json!([1, 2, 3])),
        ("/inputs/0/data", json!([[1, 2], [3]])),
        ("/inputs/0/data", json!({"a": 1})),
        ("/inputs/0/parameters", json!("x")),
        ("/inputs/0/parameters", json!({"binary_data_size": 32})),
        ("/outputs", json!("label")),
        ("/outputs", json!([{"name": "nope"}])),
        ("/outputs", json!([{"name": 1}])),
        ("/outputs", json!([7])),
        ("/id", json!({"nested": true})),
        ("/parameters", json!([1])),
    ];
    for (pointer, replacement) in swaps {
        let mut body = valid.clone();
        match body.pointer_mut(pointer) {
            Some(slot) => *slot = replacement.clone(),
            None => {
                // A field the valid request lacks: add it to its parent object.
                let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
                body.pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .expect("the parent object")
                    .insert(key.to_owned(), replacement.clone());
            }
        }
        cases.push(Case::json(
            format!("{pointer} = {replacement}"),
            IRIS,
            body.to_string(),
        ));
    }

    // Whole bodies of the wrong kind.
    for (name, body) in [
        ("empty body", String::new()),
        ("null", "null".into()),
        ("a number", "42".into()),
        ("a string", "\"inputs\"".into()),
        ("an array", "[]".into()),
        ("an empty object", "{}".into()),
        ("NaN", "NaN".into()),
        ("trailing garbage", format!("{text}xyz")),
        ("two documents", format!("{text}{text}")),
        ("a comment", format!("// hi\n{text}")),
        ("single quotes", text.replace('"', "'")),
        ("a BOM", format!("\u{feff}{text}")),
    ] {
        cases.push(Case::json(name, IRIS, body));
    }

    // Huge and deeply nested values.
    let nested_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let mut deep_data = valid.clone();
    deep_data["inputs"][0]["data"] =
        serde_json::from_str(&format!("{}1{}", "[".repeat(100), "]".repeat(100)))
            .expect("100 levels parse");
    let mut long_name = valid.clone();
    long_name["inputs"][0]["name"] = json!("x".repeat(1 << 20));
    let mut long_datatype = valid.clone();
    long_datatype["inputs"][0]["datatype"] = json!("F".repeat(1 << 16));
    let mut many_inputs = valid.clone();
    many_inputs["inputs"] = Value::Array(vec![valid["inputs"][0].clone(); 10_000]);
    let mut big_data = valid.clone();
    big_data["inputs"][0]["data"] = json!(vec![1.0; 1 << 20]);
    let mut long_number = valid.clone();
    long_number["inputs"][0]["data"][0] = json!(0);
    let long_number = long_number.to_string();
    let past_f64 = long_number.replacen("[0,", "[1e400,", 1);
    let long_number = long_number.replacen("[0,", &format!("[{},", "9".repeat(100_000)), 1);
    for (name, body) in [
        ("10,000 nested arrays".to_owned(), nested_array.clone()),
        ("10,000 nested objects".to_owned(), nested_object.clone()),
        ("data nested 100 deep".to_owned(), deep_data.to_string()),
        ("a 1 MiB input name".to_owned(), long_name.to_string()),
        ("a 64 KiB datatype".to_owned(), long_datatype.to_string()),
        ("10,000 inputs".to_owned(), many_inputs.to_string()),
        (
            "a million values for eight".to_owned(),
            big_data.to_string(),
        ),
        ("a 100,000-digit number".to_owned(), long_number),
        ("a number past f64".to_owned(), past_f64),
        (
            "inputs nested in inputs".to_owned(),
            json!({"inputs": [{"inputs": valid["inputs"]}]}).to_string(),
        ),
    ] {
        cases.push(Case::json(name, IRIS, body));
    }

    // Invalid UTF-8 inside and around the JSON.
    let bytes = text.as_bytes();
    for (i, bad) in [
        &b"\xff"[..],
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x00",
    ]
    .iter()
    .enumerate()
    {
        let at = text.find("\"X\"").expect("the input name") + 2;
        let mut inside = bytes[..at].to_vec();
        inside.extend_from_slice(bad);
        inside.extend_from_slice(&bytes[at..]);
        cases.push(Case::json(
            format!("invalid UTF-8 #{i} in a name"),
            IRIS,
            inside,
        ));
        let mut before = bad.to_vec();
        before.extend_from_slice(bytes);
        cases.push(Case::json(
            format!("invalid UTF-8 #{i} before"),
            IRIS,
            before,
        ));
    }

    // The binary extension: headers that lie about lengths, and truncations.
    let (header, data) = valid_binary();
    let whole = [header.clone(), data.clone()].concat();
    let n = header.len();
    for (name, length) in [
        ("header length past the body", (whole.len() + 1).to_string()),
        ("header length far past the body", "1000000000".to_owned()),
        ("header length 0", "0".to_owned()),
        ("header length 1", "1".to_owned()),
        ("header length mid-JSON", (n / 2).to_string()),
        ("header length one short", (n - 1).to_string()),
        ("header length one long", (n + 1).to_string()),
        ("header length negative", "-5".to_owned()),
        ("header length not a number", "twelve".to_owned()),
        (
            "header length overflowing u64",
            "99999999999999999999999".to_owned(),
        ),
        ("header length empty", String::new()),
        ("header length with spaces", format!(" {n} x")),
    ] {
        cases.push(Case::binary(name, &length, whole.clone()));
    }
    for cut in (n..whole.len()).step_by(4).chain([n + 1, whole.len() - 1]) {
        cases.push(Case::binary(
            format!("binary data cut at {cut}"),
            &n.to_string(),
            whole[..cut].to_vec(),
        ));
    }
    for (name, size) in [
        ("binary_data_size larger than the data", json!(64)),
        ("binary_data_size smaller than the data", json!(16)),
        ("binary_data_size not a multiple of 4", json!(30)),
        ("binary_data_size negative", json!(-32)),
        ("binary_data_size huge", json!(u64::MAX)),
        ("binary_data_size a string", json!("32")),
        ("binary_data_size zero", json!(0)),
    ] {
        let mut lying: Value = serde_json::from_slice(&header).expect("json");
        lying["inputs"][0]["parameters"]["binary_data_size"] = size;
        let lying = serde_json::to_vec(&lying).expect("json");
        let length = lying.len().to_string();
        cases.push(Case::binary(name, &length, [lying, data.clone()].concat()));
    }
    let mut both: Value = serde_json::from_slice(&header).expect("json");
    both["inputs"][0]["data"] = json!([1, 2, 3, 4, 5, 6, 7, 8]);
    let both = serde_json::to_vec(&both).expect("json");
    let length = both.len().to_string();
    cases.push(Case::binary(
        "both binary and JSON data",
        &length,
        [both, data.clone()].concat(),
    ));
    let mut two: Value = serde_json::from_slice(&header).expect("json");
    two["inputs"] = json!([two["inputs"][0], two["inputs"][0]]);
    let two = serde_json::to_vec(&two).expect("json");
    let length = two.len().to_string();
    cases.push(Case::binary(
        "two inputs, data for one",
        &length,
        [two, data.clone()].concat(),
    ));
    cases.push(Case::binary(
        "a header that is not JSON",
        "8",
        [b"\xff\xfe\x00garb".to_vec(), data.clone()].concat(),
    ));
    let bytes_header = serde_json::to_vec(&json!({
        "inputs": [{"name": "X", "shape": [1], "datatype": "BYTES",
                    "parameters": {"binary_data_size": 8}}]
    }))
    .expect("json");
    let length = bytes_header.len().to_string();
    cases.push(Case::binary(
        "BYTES whose length prefix lies",
        &length,
        [
            bytes_header,
            vec![0xff, 0xff, 0xff, 0x7f, b'a', b'b', b'c', b'd'],
        ]
        .concat(),
    ));

    // KServe v1.
    for (name, body) in [
        (
            "v1 instances a string",
            json!({"instances": "x"}).to_string(),
        ),
        ("v1 no instances", json!({"inputs": []}).to_string()),
        (
            "v1 ragged rows",
            json!({"instances": [[1, 2, 3, 4], [1]]}).to_string(),
        ),
        (
            "v1 text cells",
            json!({"instances": [["a", "b", "c", "d"]]}).to_string(),
        ),
        (
            "v1 too wide",
            json!({"instances": [[1, 2, 3, 4, 5]]}).to_string(),
        ),
        ("v1 truncated", "{\"instances\": [[1, 2".to_owned()),
        ("v1 nested", json!({"instances": [[[[1]]]]}).to_string()),
    ] {
        cases.push(Case::json(name, "/v1/models/iris:predict", body));
    }

    // Raw records through credit's features.toml.
    for (name, body) in [
        (
            "records missing a required field",
            json!({"instances": [{"amount": 10}]}),
        ),
        (
            "records with text for a number",
            json!({"instances": [{"amount": "ten", "user_id": "u1"}]}),
        ),
        ("records as numbers", json!({"instances": [1, 2, 3]})),
        ("records of nulls", json!({"instances": [null]})),
    ] {
        cases.push(Case::json(
            name,
            "/v1/models/credit:predict",
            body.to_string(),
        ));
    }

    // Routes: unknown, traversal, wrong methods.
    for path in [
        "/v3/models/iris/infer",
        "/v2/models/iris/explain",
        "/v2/models/iris/versions/one/infer",
        "/v2/models/iris/versions/7/infer",
        "/v2/models/nope/infer",
        "/v2/models/../infer",
        "/v2/models/..%2F..%2Fetc%2Fpasswd/infer",
        "/v2/models/%2e%2e/infer",
        "/v2/models/iris%00/infer",
        "/v2/models/./infer",
        "/v2/models//infer",
        "/v1/models/:predict",
        "/v1/models/../credit:predict",
        "/v2/repository/models/../load",
        "/v2/repository/index",
    ] {
        cases.push(Case::json(format!("route {path}"), path, text.clone()));
    }
    for (method, path) in [
        ("DELETE", IRIS),
        ("PUT", IRIS),
        ("GET", IRIS),
        ("PATCH", "/v2/models/iris"),
        ("POST", "/v2/health/ready"),
    ] {
        cases.push(Case {
            name: format!("{method} {path}"),
            method,
            path: path.to_owned(),
            headers: vec![],
            body: vec![],
        });
    }

    // Heads: overlong header values and too many headers.
    for (name, headers) in [
        (
            "a 32 KiB header",
            vec![("x-pad".to_owned(), "y".repeat(32 << 10))],
        ),
        (
            "a 32 KiB content type",
            vec![(
                "content-type".to_owned(),
                format!("application/json{}", ";a=b".repeat(8 << 10)),
            )],
        ),
        (
            "300 headers",
            (0..300)
                .map(|i| (format!("x-h{i}"), "v".repeat(64)))
                .collect(),
        ),
    ] {
        cases.push(Case {
            name: name.to_owned(),
            method: "POST",
            path: IRIS.to_owned(),
            headers,
            body: text.clone().into_bytes(),
        });
    }
    cases
}

#[test]
fn every_malformed_request_answers_4xx_with_an_error() {
    let server = wafer_server();
    let cases = corpus();
    assert!(cases.len() >= 200, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let url = format!("{}{}", server.base, case.path);
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let started = Instant::now();
        let answer = match try_request(case.method, &url, &headers, &case.body) {
            Ok((answer, _)) => answer,
            Err(e) => {
                failures.push(format!("{}: {e:#}", case.name));
                continue;
            }
        };
        let took = started.elapsed();
        let has_error = answer.json["error"].as_str().is_some_and(|e| !e.is_empty());
        if !(400..500).contains(&answer.status) || !has_error || took > Duration::from_secs(10) {
            let text: String = answer.text.chars().take(200).collect();
            failures.push(format!(
                "{}: {} in {took:?}: {text}",
                case.name, answer.status
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The server is alive and well.
    assert_eq!(get(&format!("{}/v2/health/live", server.base)).status, 200);
    let good = post(
        &format!("{}{IRIS}", server.base),
        valid().to_string().as_bytes(),
    );
    assert_eq!(good.status, 200, "{}", good.text);
}
