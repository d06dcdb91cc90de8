//! The model zoo (`models/zoo/`, from `tools/zoo.py`): every model runs twice, natively through
//! `wafer-scoring` and in the wasm guest under `wafer serve`, and must give onnxruntime's outputs.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};
use wafer_scoring::{Model, Tensor, TensorData};

use crate::support::{Server, post, repo_root, start_wafer_on, target_dir};

/// Float outputs must agree with onnxruntime within this, absolutely or relatively, unless the
/// case names another tolerance with its reason.
const TOL: f64 = 1e-5;

/// One zoo model and its fixture.
#[derive(Clone)]
pub struct Case {
    /// The model's folder name.
    pub name: String,
    /// Its `model.onnx`.
    pub onnx: PathBuf,
    /// `case.json`.
    pub json: Value,
}

impl Case {
    /// The float tolerance: 1e-5, or the case's own, which must say why.
    pub fn tolerance(&self) -> f64 {
        let own = &self.json["tolerance"];
        if own.is_null() {
            return TOL;
        }
        let reason = own["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.is_empty(),
            "{}: a tolerance override needs a reason",
            self.name
        );
        own["value"].as_f64().expect("tolerance value")
    }

    fn inputs(&self) -> &[Value] {
        self.json["inputs"].as_array().expect("inputs")
    }

    /// onnxruntime's outputs.
    pub fn expected(&self) -> &[Value] {
        self.json["onnxruntime"]
            .as_array()
            .expect("onnxruntime outputs")
    }

    /// Checks that `outputs` (v2 JSON outputs, reached by `path`) are onnxruntime's: as many,
    /// in order, each within the case's tolerance.
    pub fn assert_outputs(&self, path: &str, outputs: &[Value]) {
        assert_eq!(
            outputs.len(),
            self.expected().len(),
            "{} ({path}): outputs",
            self.name
        );
        for (got, want) in outputs.iter().zip(self.expected()) {
            assert_output(
                &format!("{} ({path})", self.name),
                got,
                want,
                self.tolerance(),
            );
        }
    }
}

/// Every zoo model, by name.
pub fn cases() -> Vec<Case> {
    let dir = repo_root().join("models/zoo");
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .expect("models/zoo")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("case.json").is_file())
        .map(|p| Case {
            name: p.file_name().expect("name").to_string_lossy().into_owned(),
            onnx: p.join("model.onnx"),
            json: serde_json::from_str(
                &std::fs::read_to_string(p.join("case.json")).expect("read"),
            )
            .expect("case.json"),
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 30, "the zoo has {} models", cases.len());
    cases
}

/// A fixture element as a float: NaN is `null`, infinities are strings.
fn float(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Checks one output (as v2 JSON: name, datatype, shape, flat data) against onnxruntime's.
fn assert_output(context: &str, got: &Value, want: &Value, tol: f64) {
    let name = want["name"].as_str().expect("name");
    assert_eq!(got["name"], want["name"], "{context}: output order");
    assert_eq!(
        got["datatype"], want["datatype"],
        "{context}: {name} datatype"
    );
    assert_eq!(got["shape"], want["shape"], "{context}: {name} shape");
    let (g, w) = (
        got["data"].as_array().expect("data"),
        want["data"].as_array().expect("data"),
    );
    assert_eq!(g.len(), w.len(), "{context}: {name} length");
    if want["datatype"] == "FP32" || want["datatype"] == "FP64" {
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            let (a, b) = (float(a), float(b));
            let close = (a.is_nan() && b.is_nan())
                || a == b
                || (a - b).abs() <= tol
                || (a - b).abs() <= tol * b.abs();
            assert!(
                close,
                "{context}: {name}[{i}] = {a}, onnxruntime {b} (tolerance {tol})"
            );
        }
    } else {
        assert_eq!(g, w, "{context}: {name}");
    }
}

/// A fixture tensor as a [`Tensor`].
fn tensor(t: &Value) -> Tensor {
    let shape = t["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let data = t["data"].as_array().expect("data");
    let data = match t["datatype"].as_str().expect("datatype") {
        "FP32" => TensorData::F32(data.iter().map(|v| float(v) as f32).collect()),
        "FP64" => TensorData::F64(data.iter().map(float).collect()),
        "INT64" => TensorData::I64(data.iter().map(|v| v.as_i64().expect("i64")).collect()),
        "BYTES" => TensorData::String(
            data.iter()
                .map(|v| v.as_str().expect("str").to_owned())
                .collect(),
        ),
        other => panic!("fixture datatype {other}"),
    };
    Tensor::new(t["name"].as_str().expect("name"), shape, data).expect("tensor")
}

/// A [`Tensor`] as v2 JSON.
fn to_json(t: &Tensor) -> Value {
    let data: Vec<Value> = match t.data() {
        TensorData::F32(v) => v
            .iter()
            .map(|&x| if x.is_nan() { Value::Null } else { json!(x) })
            .collect(),
        TensorData::F64(v) => v
            .iter()
            .map(|&x| if x.is_nan() { Value::Null } else { json!(x) })
            .collect(),
        TensorData::I64(v) => v.iter().map(|&x| json!(x)).collect(),
        TensorData::String(v) => v.iter().map(|x| json!(x)).collect(),
        other => panic!("output {other:?}"),
    };
    json!({"name": t.name(), "datatype": t.datatype().v2_name(), "shape": t.shape(), "data": data})
}

#[test]
fn every_zoo_model_matches_onnxruntime_natively() {
    for case in cases() {
        let onnx = std::fs::read(&case.onnx).expect("model.onnx");
        let model = Model::load(&case.name, &onnx).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let inputs = case.inputs().iter().map(tensor).collect();
        let outputs = model
            .predict(inputs, &[])
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let outputs: Vec<Value> = outputs.iter().map(to_json).collect();
        case.assert_outputs("native", &outputs);
    }
}

/// `wafer serve models/zoo`, for the whole test run.
pub fn zoo_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_wafer_on("models/zoo", &target_dir().join("wafer-test-zoo"), &[]))
}

/// A v2 JSON request body for the case's inputs, with missing values sent as tritonclient sends
/// them: the bare token `NaN`.
pub fn json_request(case: &Case) -> String {
    let inputs: Vec<String> = case
        .inputs()
        .iter()
        .map(|t| {
            let data: Vec<String> = t["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|v| {
                    if v.is_null() {
                        "NaN".to_owned()
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            format!(
                r#"{{"name":{},"datatype":{},"shape":{},"data":[{}]}}"#,
                t["name"],
                t["datatype"],
                t["shape"],
                data.join(",")
            )
        })
        .collect();
    format!(r#"{{"inputs":[{}]}}"#, inputs.join(","))
}

#[test]
fn every_zoo_model_matches_onnxruntime_in_wasm_over_http() {
    let server = zoo_server();
    for case in cases() {
        let url = format!("{}/v2/models/{}/infer", server.base, case.name);
        let answer = post(&url, json_request(&case).as_bytes());
        assert_eq!(answer.status, 200, "{}: {}", case.name, answer.text);
        let outputs = answer.json["outputs"].as_array().expect("outputs");
        case.assert_outputs("wasm", outputs);
    }
}

#[test]
fn string_columns_reach_the_one_hot_encoder_and_match_scikit_learn() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "column_transformer_rf")
        .expect("case");
    assert!(
        case.inputs().iter().any(|t| t["datatype"] == "BYTES"),
        "string inputs"
    );
    let url = format!("{}/v2/models/{}/infer", zoo_server().base, case.name);
    let answer = post(&url, json_request(&case).as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let labels = &answer.json["outputs"][0]["data"];
    let sklearn = &case.json["sklearn"]["predict"];
    assert_eq!(labels, sklearn, "labels differ from scikit-learn");
}

#[test]
fn a_zipmap_model_serves_its_probabilities_with_class_labels_in_the_metadata() {
    let server = zoo_server();
    let meta = crate::support::get(&format!("{}/v2/models/zipmap_logreg", server.base));
    assert_eq!(meta.status, 200, "{}", meta.text);
    let probabilities = &meta.json["outputs"][1];
    assert_eq!(probabilities["datatype"], "FP32");
    assert_eq!(
        probabilities["parameters"]["class_labels"],
        json!(["0", "1", "2"])
    );
}

/// The models also sent with the binary tensor extension: those with several named inputs or
/// missing values, and the regression cases of INT64 inputs into ai.onnx.ml operators and of a
/// saturating ReduceLogSumExp.
pub const BINARY_MODELS: [&str; 8] = [
    "column_transformer_rf",
    "feature_vectorizer_logreg",
    "ordinal_encoder_gbr",
    "imputer_minmax_ridge",
    "hist_gradient_boosting_regressor",
    "onehot_int64_logreg",
    "isolation_forest",
    "gaussian_nb_zipmap",
];

/// A fixture tensor's elements as the binary extension's bytes: little-endian numbers (NaN for
/// `null`), strings after their 4-byte little-endian length.
fn binary_elements(t: &Value) -> Vec<u8> {
    let data = t["data"].as_array().expect("data");
    match t["datatype"].as_str().expect("datatype") {
        "FP32" => data
            .iter()
            .flat_map(|v| (float(v) as f32).to_le_bytes())
            .collect(),
        "INT64" => data
            .iter()
            .flat_map(|v| v.as_i64().expect("i64").to_le_bytes())
            .collect(),
        "BYTES" => data
            .iter()
            .flat_map(|v| {
                let s = v.as_str().expect("str").as_bytes();
                (s.len() as u32)
                    .to_le_bytes()
                    .into_iter()
                    .chain(s.iter().copied())
            })
            .collect(),
        other => panic!("fixture datatype {other}"),
    }
}

/// Reads `count` elements of a binary output back into JSON values.
fn binary_output(datatype: &str, bytes: &[u8]) -> Vec<Value> {
    match datatype {
        "FP32" => bytes
            .chunks_exact(4)
            .map(|b| json!(f32::from_le_bytes(b.try_into().expect("4"))))
            .collect(),
        "INT64" => bytes
            .chunks_exact(8)
            .map(|b| json!(i64::from_le_bytes(b.try_into().expect("8"))))
            .collect(),
        "BYTES" => {
            let (mut rest, mut out) = (bytes, Vec::new());
            while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                let (s, tail) = tail.split_at(u32::from_le_bytes(*len) as usize);
                out.push(json!(std::str::from_utf8(s).expect("utf-8")));
                rest = tail;
            }
            out
        }
        other => panic!("output datatype {other}"),
    }
}

#[test]
fn named_inputs_and_missing_values_work_over_the_binary_tensor_extension() {
    let server = zoo_server();
    let models = BINARY_MODELS;
    let chosen: Vec<Case> = cases()
        .into_iter()
        .filter(|c| models.contains(&c.name.as_str()))
        .collect();
    assert_eq!(
        chosen.len(),
        models.len(),
        "every chosen model is in the zoo"
    );
    for case in chosen {
        // As tritonclient[http] sends it: every input binary, every output asked back binary.
        let mut binary = Vec::new();
        let inputs: Vec<Value> = case
            .inputs()
            .iter()
            .map(|t| {
                let bytes = binary_elements(t);
                let size = bytes.len();
                binary.extend(bytes);
                json!({"name": t["name"], "datatype": t["datatype"], "shape": t["shape"],
                       "parameters": {"binary_data_size": size}})
            })
            .collect();
        let header =
            json!({"inputs": inputs, "parameters": {"binary_data_output": true}}).to_string();
        let mut body = header.clone().into_bytes();
        body.extend(binary);
        let url = format!("{}/v2/models/{}/infer", server.base, case.name);
        let response = ureq::post(&url)
            .set("content-type", "application/octet-stream")
            .set("inference-header-content-length", &header.len().to_string())
            .send_bytes(&body)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let json_len: usize = response
            .header("inference-header-content-length")
            .expect("a binary answer says its JSON length")
            .parse()
            .expect("length");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).expect("body");
        let head: Value = serde_json::from_slice(&bytes[..json_len]).expect("json part");
        let mut rest = &bytes[json_len..];
        let mut outputs = Vec::new();
        for got in head["outputs"].as_array().expect("outputs") {
            let size = got["parameters"]["binary_data_size"]
                .as_u64()
                .expect("binary size") as usize;
            let (mine, tail) = rest.split_at(size);
            rest = tail;
            let mut got = got.clone();
            got["data"] = Value::Array(binary_output(got["datatype"].as_str().expect("dt"), mine));
            outputs.push(got);
        }
        assert!(rest.is_empty(), "{}: trailing bytes", case.name);
        case.assert_outputs("binary", &outputs);
    }
}
