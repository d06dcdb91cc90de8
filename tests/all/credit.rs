//! No training-serving skew on `models/credit`: the same raw records give the same predictions
//! through `wafer serve` (KServe v1 instances, and v2 with one input per field), through
//! `wafer predict`, and offline (`wafer features transform` + onnxruntime, in `expected.json`).

use serde_json::{Value, json};

use crate::support::{post, repo_root, wafer, wafer_server};

/// Probabilities must agree this closely across the three paths.
const TOL: f64 = 1e-6;

struct Credit {
    records: Vec<Value>,
    labels: Vec<i64>,
    probabilities: Vec<Vec<f64>>,
}

fn credit() -> Credit {
    let dir = repo_root().join("models/credit");
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect("fixture")).expect("json")
    };
    let expected = read("expected.json");
    Credit {
        records: read("test_records.json")
            .as_array()
            .expect("records")
            .clone(),
        labels: expected["onnxruntime"]["label"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_i64().expect("i64"))
            .collect(),
        probabilities: expected["onnxruntime"]["probabilities"]
            .as_array()
            .expect("probabilities")
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("f64"))
                    .collect()
            })
            .collect(),
    }
}

fn assert_same(path: &str, c: &Credit, labels: &[i64], probabilities: &[Vec<f64>]) {
    assert_eq!(
        labels, c.labels,
        "{path}: labels differ from the offline path"
    );
    for (i, (got, want)) in probabilities.iter().zip(&c.probabilities).enumerate() {
        for (a, b) in got.iter().zip(want) {
            assert!(
                (a - b).abs() <= TOL,
                "{path} row {i}: {got:?} vs offline {want:?}"
            );
        }
    }
    assert_eq!(probabilities.len(), c.probabilities.len(), "{path}: rows");
}

/// Labels and probabilities of a v2 response.
fn v2_outputs(v: &Value) -> (Vec<i64>, Vec<Vec<f64>>) {
    let outputs = v["outputs"].as_array().expect("outputs");
    let labels = outputs[0]["data"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|x| x.as_i64().expect("i64"))
        .collect();
    let p: Vec<f64> = outputs[1]["data"]
        .as_array()
        .expect("p")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect();
    (labels, p.chunks(2).map(<[f64]>::to_vec).collect())
}

#[test]
fn raw_records_through_kserve_v1_match_the_offline_path() {
    let c = credit();
    let url = format!("{}/v1/models/credit:predict", wafer_server().base);
    let answer = post(&url, json!({"instances": c.records}).to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let predictions = answer.json["predictions"].as_array().expect("predictions");
    let labels: Vec<i64> = predictions
        .iter()
        .map(|p| p["label"].as_i64().expect("label"))
        .collect();
    let probabilities: Vec<Vec<f64>> = predictions
        .iter()
        .map(|p| {
            p["probabilities"]
                .as_array()
                .expect("p")
                .iter()
                .map(|x| x.as_f64().expect("f64"))
                .collect()
        })
        .collect();
    assert_same("v1 predict", &c, &labels, &probabilities);
}

#[test]
fn one_v2_input_per_field_matches_the_offline_path() {
    let c = credit();
    // BYTES cannot carry a missing string, so rows without a country stay out of this path.
    let rows: Vec<usize> = (0..c.records.len())
        .filter(|&i| !c.records[i]["country"].is_null())
        .collect();
    let column = |field: &str, datatype: &str| -> Value {
        let data: Vec<Value> = rows
            .iter()
            .map(|&i| match (&c.records[i][field], datatype) {
                (Value::Null, _) => json!("NaN"),
                (v, "BYTES") => json!(v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
                (v, _) => v.clone(),
            })
            .collect();
        json!({"name": field, "datatype": datatype, "shape": [rows.len(), 1], "data": data})
    };
    let body = json!({"inputs": [
        column("age", "FP64"), column("income", "FP64"), column("debt", "FP64"),
        column("country", "BYTES"), column("merchant", "BYTES"), column("signup", "BYTES"),
        column("user_id", "BYTES"),
    ]})
    .to_string()
    // tritonclient writes missing numbers as the bare token NaN.
    .replace("\"NaN\"", "NaN");
    let answer = post(
        &format!("{}/v2/models/credit/infer", wafer_server().base),
        body.as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let (labels, probabilities) = v2_outputs(&answer.json);
    let subset = Credit {
        records: vec![],
        labels: rows.iter().map(|&i| c.labels[i]).collect(),
        probabilities: rows.iter().map(|&i| c.probabilities[i].clone()).collect(),
    };
    assert_same("v2 per field", &subset, &labels, &probabilities);
}

#[test]
fn wafer_predict_on_the_same_records_matches_the_offline_path() {
    let c = credit();
    let out = wafer()
        .args([
            "predict",
            "models/credit",
            "--input",
            "models/credit/test_records.json",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (labels, probabilities) = v2_outputs(&v);
    assert_same("wafer predict", &c, &labels, &probabilities);
}

#[test]
fn bad_records_get_a_400_naming_field_and_row_and_the_server_keeps_serving() {
    let c = credit();
    let url = format!("{}/v1/models/credit:predict", wafer_server().base);
    let good = c.records[0].clone();
    let mut no_age = good.clone();
    no_age.as_object_mut().expect("object").remove("age");
    let mut bad_age = good.clone();
    bad_age["age"] = json!("old");
    let mut bad_time = good.clone();
    bad_time["signup"] = json!("yesterday");
    let cases = [
        (
            json!({"instances": [good.clone(), no_age]}),
            "row 1: field \"age\" is required",
        ),
        (
            json!({"instances": [bad_age]}),
            "row 0: field \"age\": expected a number, got text (\"old\")",
        ),
        (
            json!({"instances": [bad_time]}),
            "row 0: field \"signup\": expected an RFC 3339 timestamp",
        ),
        (json!({"instances": []}), "\"instances\" is empty"),
        (
            json!({"rows": [good.clone()]}),
            "expected {\"instances\": [...]}",
        ),
    ];
    for (body, expected) in cases {
        let answer = post(&url, body.to_string().as_bytes());
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        let error = answer.json["error"].as_str().expect("an error message");
        assert!(
            error.contains(expected),
            "{error} should contain {expected}"
        );
    }
    let answer = post(&url, json!({"instances": [good]}).to_string().as_bytes());
    assert_eq!(answer.status, 200, "still serving: {}", answer.text);
}
