//! `wafer serve` over real HTTP on 127.0.0.1.

use serde_json::{Value, json};

use crate::operations::metric;
use crate::support::{
    assert_matches, build_dir, fixture, get, infer_request, labels_and_probabilities, post,
    start_wafer, wafer_server,
};

/// onnxruntime agreement required of probabilities.
const TOL: f64 = 1e-5;

fn infer_url(model: &str) -> String {
    format!("{}/v2/models/{model}/infer", wafer_server().base)
}

#[test]
fn every_test_row_matches_scikit_learn_and_onnxruntime() {
    for model in ["iris", "digits", "digits_wide"] {
        let fx = fixture(model);
        let mut labels = Vec::new();
        let mut probabilities = Vec::new();
        for row in &fx.rows {
            let body = infer_request(&fx.input, std::slice::from_ref(row)).to_string();
            let answer = post(&infer_url(model), body.as_bytes());
            assert_eq!(answer.status, 200, "{model}: {}", answer.text);
            let (l, p) = labels_and_probabilities(&answer.json);
            labels.extend(l);
            probabilities.extend(p);
        }
        assert_eq!(
            labels, fx.sklearn_labels,
            "{model}: labels differ from scikit-learn"
        );
        assert_matches(
            model,
            &(labels, probabilities),
            &fx.ort_labels,
            &fx.ort_probabilities,
            TOL,
        );
    }
}

#[test]
fn batches_of_up_to_1000_rows_come_back_in_order() {
    let fx = fixture("digits");
    let n = 1000;
    let rows: Vec<Vec<f64>> = (0..n).map(|i| fx.rows[i % fx.rows.len()].clone()).collect();
    let labels: Vec<i64> = (0..n).map(|i| fx.ort_labels[i % fx.rows.len()]).collect();
    let probs: Vec<Vec<f64>> = (0..n)
        .map(|i| fx.ort_probabilities[i % fx.rows.len()].clone())
        .collect();
    let answer = post(
        &infer_url("digits"),
        infer_request(&fx.input, &rows).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let got = labels_and_probabilities(&answer.json);
    assert_eq!(got.0.len(), n);
    assert_matches("digits batch", &got, &labels, &probs, TOL);
    let label_shape = &answer.json["outputs"][0]["shape"];
    assert_eq!(label_shape, &json!([n]));
}

#[test]
fn each_request_runs_in_a_fresh_instance() {
    let fx = fixture("iris");
    let body = infer_request(&fx.input, &fx.rows[..2]).to_string();
    for _ in 0..5 {
        let answer = post(&infer_url("iris"), body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
        // The guest counts predictions in a static; a reused instance would report 2, 3, ...
        assert_eq!(answer.instance_predictions.as_deref(), Some("1"));
    }
}

/// A pool of 4 instances, one of which may be made ahead of the next call: requests one at a
/// time (each finding its instance made ahead), then 8 clients at once, all answer from a
/// fresh instance, the same answer, and none fails on a full pool.
#[test]
fn instances_made_ahead_are_fresh_and_never_crowd_out_a_call() {
    let fx = fixture("iris");
    let server = start_wafer(&build_dir(), &["--max-instances", "4"]);
    let url = format!("{}/v2/models/iris/infer", server.base);
    let body = infer_request(&fx.input, &fx.rows[..3]).to_string();
    let check = |answer: crate::support::Answer, want: &Value| {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.instance_predictions.as_deref(), Some("1"));
        assert_eq!(&answer.json["outputs"], want);
    };
    let first = post(&url, body.as_bytes());
    assert_eq!(first.status, 200, "{}", first.text);
    let want = first.json["outputs"].clone();
    for _ in 0..20 {
        check(post(&url, body.as_bytes()), &want);
    }
    // One request at a time leaves the server idle between them: their instances are made
    // ahead (the metric counts them; the headers above said each served one call).
    let counted = |name: &str| {
        let metrics = get(&format!("{}/metrics", server.base)).text;
        metric(&metrics, name, &[("model", "iris"), ("version", "1")])
    };
    let made_ahead = counted("wafer_instances_made_ahead_total");
    assert!(
        made_ahead > 0.0,
        "no instance was made ahead in 20 requests"
    );
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..25 {
                    check(post(&url, body.as_bytes()), &want);
                }
            });
        }
    });
    assert_eq!(counted("wafer_inference_request_success_total"), 221.0);
}

/// `--no-make-ahead`: requests one at a time, and none finds its instance made ahead.
#[test]
fn no_make_ahead_makes_every_instance_on_the_request_path() {
    let fx = fixture("iris");
    let server = start_wafer(&build_dir(), &["--no-make-ahead"]);
    let url = format!("{}/v2/models/iris/infer", server.base);
    let body = infer_request(&fx.input, &fx.rows[..1]).to_string();
    for _ in 0..20 {
        let answer = post(&url, body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.instance_predictions.as_deref(), Some("1"));
    }
    let metrics = get(&format!("{}/metrics", server.base)).text;
    let iris = [("model", "iris"), ("version", "1")];
    let ok = [iris[0], iris[1], ("outcome", "ok")];
    assert_eq!(
        metric(&metrics, "wafer_requests_total", &ok),
        20.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "wafer_instances_made_ahead_total", &iris),
        0.0,
        "an instance was made ahead: {metrics}"
    );
}

#[test]
fn non_finite_values_are_inputs_not_errors() {
    // tritonclient (Python's json) writes NaN and infinities as bare tokens.
    let body = br#"{"inputs":[{"name":"X","shape":[3,4],"datatype":"FP32",
        "data":[NaN,3.5,1.4,0.2, Infinity,3.0,1.4,0.2, -Infinity,3.2,1.3,0.2]}]}"#;
    let answer = post(&infer_url("iris"), body);
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["outputs"][0]["shape"], json!([3]));
    assert_eq!(answer.json["outputs"][1]["shape"], json!([3, 3]));
}

#[test]
fn bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving() {
    let x = |shape: Value, datatype: &str, data: Value| {
        json!({"inputs":[{"name":"X","shape":shape,"datatype":datatype,"data":data}]}).to_string()
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("iris", "{\"inputs\": [".into(), 400, "malformed JSON"),
        ("iris", "{}".into(), 400, "missing field `inputs`"),
        ("iris", x(json!([1, 5]), "FP32", json!([1, 2, 3, 4, 5])), 400, "expected shape [N,4], got [1,5]"),
        ("iris", x(json!([2, 5]), "FP32", json!(vec![0; 10])), 400, "expected shape [N,4], got [2,5]"),
        ("iris", x(json!([1, 4]), "FP64", json!([1, 2, 3, 4])), 400, "expected datatype FP32, got FP64"),
        ("iris", x(json!([1, 4]), "FP32", json!([1, 2, 3])), 400, "shape [1,4] holds 4 elements, got 3"),
        ("iris", x(json!([0, 4]), "FP32", json!([])), 400, "empty batch"),
        ("iris", x(json!([1, 4]), "FP32", json!(["a", 2, 3, 4])), 400, "is not a valid FP32"),
        ("iris", json!({"inputs": []}).to_string(), 400, "\"inputs\" is empty"),
        ("iris", json!({"inputs":[{"name":"Y","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}).to_string(), 400, "unknown input \"Y\""),
        ("iris", json!({"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"nope"}]}).to_string(), 400, "unknown output \"nope\""),
        ("nosuchmodel", x(json!([1, 4]), "FP32", json!([1, 2, 3, 4])), 404, "model \"nosuchmodel\" not found"),
        // A large body to an unknown model: answered once the body is read, not mid-upload.
        ("nosuchmodel", infer_request("X", &fixture("digits").rows).to_string(), 404, "not found"),
    ];
    let fx = fixture("iris");
    let good = infer_request(&fx.input, &fx.rows[..1]).to_string();
    for (model, body, status, message) in cases {
        let answer = post(&infer_url(model), body.as_bytes());
        assert_eq!(answer.status, status, "{body} -> {}", answer.text);
        let error = answer.json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{body}: error {error:?} should contain {message:?}"
        );
        let next = post(&infer_url("iris"), good.as_bytes());
        assert_eq!(
            next.status, 200,
            "the server must keep serving after {body}"
        );
    }
}

#[test]
fn health_metadata_and_model_listing() {
    let base = &wafer_server().base;
    assert_eq!(get(&format!("{base}/v2/health/live")).status, 200);
    assert_eq!(get(&format!("{base}/v2/health/ready")).status, 200);
    let server = get(&format!("{base}/v2"));
    assert_eq!(server.json["name"], "wafer");
    let list = get(&format!("{base}/v2/models"));
    let names: Vec<&str> = list.json["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["credit", "digits", "digits_wide", "iris"]);
    let meta = get(&format!("{base}/v2/models/iris"));
    assert_eq!(meta.status, 200);
    assert_eq!(meta.json["platform"], "onnx");
    assert_eq!(
        meta.json["inputs"],
        json!([{"name":"X","datatype":"FP32","shape":[-1,4]}])
    );
    assert_eq!(
        meta.json["outputs"][0],
        json!({"name":"label","datatype":"INT64","shape":[-1]})
    );
    assert_eq!(
        get(&format!("{base}/v2/models/iris/ready")).json["ready"],
        true
    );
    assert_eq!(
        get(&format!("{base}/v2/models/iris/versions/1/ready")).status,
        200
    );
    let missing = get(&format!("{base}/v2/models/nosuchmodel"));
    assert_eq!(missing.status, 404);
    assert!(
        missing.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("nosuchmodel"))
    );
    assert_eq!(
        get(&format!("{base}/v2/models/iris/versions/7")).status,
        404
    );
    assert_eq!(get(&format!("{base}/v2/models/iris/infer")).status, 405);
}
