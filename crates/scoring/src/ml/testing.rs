//! Runs the single-operator fixtures of `fixtures/ops/` (written by `tools/ops.py` from
//! onnxruntime) through [`Model`], for the unit tests of each operator.

use serde_json::Value;

use crate::{Model, Tensor, TensorData};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ops");

/// The attribute a malformed case's load error must name.
const MALFORMED: &[(&str, &str)] = &[
    (
        "tree_ensemble_regressor_bad_aggregate",
        "aggregate_function",
    ),
    ("tree_ensemble_regressor_bad_node_id", "nodes_truenodeids"),
    ("tree_ensemble_classifier_bad_mode", "nodes_modes"),
    (
        "tree_ensemble_classifier_binary_one_id_probit",
        "post_transform",
    ),
    ("svm_classifier_bad_vectors_per_class", "vectors_per_class"),
    ("svm_classifier_binary_probit", "post_transform"),
    ("linear_classifier_bad_coefficients", "coefficients"),
    ("linear_classifier_binary_probit", "post_transform"),
    ("scaler_no_offset", "offset"),
    ("scaler_bad_length", "offset"),
    ("one_hot_encoder_no_categories", "cats_int64s"),
    ("imputer_missing_values", "imputed_value_floats"),
    ("label_encoder_mismatched_lengths", "values_strings"),
];

/// A fixture tensor (NaN as `null`) as a [`Tensor`].
pub(crate) fn tensor(t: &Value) -> Tensor {
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .expect("shape")
        .iter()
        .map(|d| usize::try_from(d.as_u64().expect("dim")).expect("usize"))
        .collect();
    let data = t["data"].as_array().expect("data");
    // NaN is `null`; infinities are the strings "Infinity" and "-Infinity".
    let f = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(f64::NAN)
    };
    let data = match t["datatype"].as_str().expect("datatype") {
        #[expect(clippy::cast_possible_truncation, reason = "fixtures hold f32 values")]
        "FP32" => TensorData::F32(data.iter().map(|v| f(v) as f32).collect()),
        "FP64" => TensorData::F64(data.iter().map(f).collect()),
        "INT64" => TensorData::I64(data.iter().map(|v| v.as_i64().expect("i64")).collect()),
        "INT32" => TensorData::I32(
            data.iter()
                .map(|v| i32::try_from(v.as_i64().expect("i64")).expect("i32"))
                .collect(),
        ),
        "BYTES" => TensorData::String(
            data.iter()
                .map(|v| v.as_str().expect("str").to_owned())
                .collect(),
        ),
        other => panic!("fixture datatype {other}"),
    };
    Tensor::new(t["name"].as_str().expect("name"), shape, data).expect("fixture tensor")
}

/// Whether `got` equals onnxruntime's `want`: labels exactly, floats within 1e-5 absolute or
/// relative (NaN equals NaN).
pub(crate) fn assert_close(context: &str, got: &Tensor, want: &Tensor, tolerance: f64) {
    assert_eq!(
        got.shape(),
        want.shape(),
        "{context}: shape of {}",
        want.name()
    );
    let floats = |d: &TensorData| -> Option<Vec<f64>> {
        match d {
            TensorData::F32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
            TensorData::F64(v) => Some(v.clone()),
            _ => None,
        }
    };
    match (floats(got.data()), floats(want.data())) {
        (Some(g), Some(w)) => {
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                let close = (a.is_nan() && b.is_nan())
                    || a == b
                    || (a - b).abs() <= tolerance
                    || (a - b).abs() <= tolerance * b.abs();
                assert!(
                    close,
                    "{context}: {}[{i}] = {a}, onnxruntime {b}",
                    want.name()
                );
            }
        }
        _ => assert_eq!(got.data(), want.data(), "{context}: {}", want.name()),
    }
}

/// Runs every case named `<prefix>*` and returns how many there were.
pub(crate) fn check_operator(prefix: &str) -> usize {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .expect("fixtures/ops")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8");
            name.strip_suffix(".json").map(str::to_owned)
        })
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    for name in &names {
        check_case(name);
    }
    assert!(!names.is_empty(), "no fixture starts with {prefix}");
    names.len()
}

fn check_case(name: &str) {
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{DIR}/{name}.json")).expect("case json"),
    )
    .expect("case");
    let onnx = std::fs::read(format!("{DIR}/{name}.onnx")).expect("case onnx");
    let inputs: Vec<Tensor> = case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(tensor)
        .collect();
    let expects_error = case.get("error").is_some() || case.get("undefined").is_some();
    let model = match Model::load(name, &onnx) {
        Ok(m) => m,
        Err(e) => {
            assert!(expects_error, "{name}: onnxruntime runs it, but: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("Node {name}")),
                "{name}: the error names no node: {msg}"
            );
            if let Some((_, attr)) = MALFORMED.iter().find(|(n, _)| *n == name) {
                assert!(
                    msg.contains(&format!("'{attr}'")),
                    "{name}: the error names no {attr}: {msg}"
                );
            }
            return;
        }
    };
    assert!(
        !MALFORMED.iter().any(|(n, _)| *n == name),
        "{name}: a malformed model loaded"
    );
    let result = model.predict(inputs, &[]);
    if expects_error {
        assert!(
            result.is_err(),
            "{name}: onnxruntime refuses it, wafer gave {result:?}"
        );
        return;
    }
    let outputs = result.unwrap_or_else(|e| panic!("{name}: {e}"));
    let want = case["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), want.len(), "{name}: outputs");
    for (got, want) in outputs.iter().zip(want) {
        assert_close(name, got, &tensor(want), 1e-5);
    }
}
