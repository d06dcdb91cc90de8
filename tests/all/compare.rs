//! `wafer compare`: iris against itself, and against a retrained iris (C = 0.01,
//! tests/fixtures/compare, from tools/compare.py), with onnxruntime's labels and
//! scikit-learn's metrics as the reference; and the disagreement gate's exit status.

use std::process::Output;

use serde_json::Value;

use crate::support::{build_dir, repo_root, wafer};

fn compare(a: &str, b: &str, extra: &[&str]) -> Output {
    wafer()
        .args(["compare", a, b, "--data", "tests/fixtures/compare/iris.csv"])
        .args(["--labels", "species", "--build-dir"])
        .arg(build_dir().join("compare"))
        .args(extra)
        .output()
        .expect("wafer compare runs")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "wafer compare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_model_agrees_with_itself() {
    let result = json(&compare("models/iris", "models/iris", &["--json"]));
    assert_eq!(result["rows"], 30);
    assert_eq!(result["labels"][0]["agree"], 30);
    assert_eq!(result["labels"][0]["disagree"], serde_json::json!([]));
    assert_eq!(result["differences"][0]["max_abs"], 0.0);
    assert_eq!(result["a"], result["b"]);
}

#[test]
fn a_retrained_model_disagrees_where_onnxruntime_says() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/compare/iris.json"))
            .expect("the fixture"),
    )
    .expect("parses");
    let retrained = "tests/fixtures/compare/iris_c";
    let result = json(&compare("models/iris", retrained, &["--json"]));
    let labels = &result["labels"][0];
    assert_eq!(labels["output"], "label");
    assert_eq!(labels["disagree"], fixture["disagree"], "{result}");
    let rows = fixture["a"]["label"].as_array().expect("labels").len();
    let disagree = fixture["disagree"].as_array().expect("rows").len();
    assert_eq!(labels["agree"], rows - disagree);
    // The confusion table holds A's labels against B's, as onnxruntime gave them.
    let (a, b) = (&fixture["a"]["label"], &fixture["b"]["label"]);
    for i in 0..rows {
        let (la, lb) = (a[i].to_string(), b[i].to_string());
        assert!(
            labels["confusion"][&la][&lb].as_u64().unwrap_or(0) > 0,
            "{la} → {lb}"
        );
    }
    let diff = &result["differences"][0];
    assert_eq!(diff["output"], "probabilities");
    for (got, want) in [("max_abs", "max_abs_diff"), ("mean_abs", "mean_abs_diff")] {
        let (g, w) = (
            diff[got].as_f64().expect("f64"),
            fixture[want].as_f64().expect("f64"),
        );
        assert!((g - w).abs() < 1e-5, "{got}: {g} vs onnxruntime's {w}");
    }
    for side in ["a", "b"] {
        assert_eq!(
            result[side]["accuracy"], fixture[side]["accuracy"],
            "{side}"
        );
        for metric in ["log_loss", "roc_auc"] {
            let g = result[side][metric].as_f64().expect("f64");
            let w = fixture[side][metric].as_f64().expect("f64");
            assert!(
                (g - w).abs() < 1e-6,
                "{side} {metric}: {g} vs scikit-learn's {w}"
            );
        }
    }

    // The gate: 5 of 30 rows (16.7%) disagree.
    let within = compare("models/iris", retrained, &["--max-disagreement", "0.2"]);
    assert_eq!(
        within.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&within.stderr)
    );
    let beyond = compare("models/iris", retrained, &["--max-disagreement", "0.1"]);
    assert_eq!(
        beyond.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&beyond.stderr)
    );
    assert!(String::from_utf8_lossy(&beyond.stderr).contains("16.67%"));
}
