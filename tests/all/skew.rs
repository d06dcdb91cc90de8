//! Training-serving skew: credit's records served by `wafer serve` and logged, then recomputed
//! offline by `wafer skew` with the same folder (no skew) and with a copy whose spec moved one
//! standardize mean (skew, named by output).

use std::path::Path;

use serde_json::{Value, json};

use crate::operations::{place, repository, serve};
use crate::support::{post, repo_root, wafer};

fn skew(dir: &Path, log: &Path, db: &Path) -> Value {
    let out = wafer()
        .args(["skew", "--json", "--model", "credit", "--log-db"])
        .arg(log)
        .arg("--db")
        .arg(db)
        .arg(dir)
        .output()
        .expect("wafer skew runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn served_records_show_no_skew_and_a_moved_mean_does() {
    let repo = repository("skew");
    for file in ["model.onnx", "features.toml"] {
        place(
            &format!("models/credit/{file}"),
            &repo.join("credit").join(file),
        );
    }
    let log = repo.with_extension("predictions.db");
    let _ = std::fs::remove_file(&log);
    let server = serve(&repo, &["--log-db", log.to_str().expect("utf-8")]);
    let records: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/credit/test_records.json"))
            .expect("the records"),
    )
    .expect("parses");
    let url = format!("{}/v1/models/credit:predict", server.base);
    for record in &records {
        let answer = post(&url, json!({"instances": [record]}).to_string().as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    // Two records at once too.
    let answer = post(
        &url,
        json!({"instances": &records[..2]}).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200);
    // A graceful stop commits what the log still holds.
    let mut server = server;
    server.terminate();
    let status = server.wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let db = repo.with_extension("db");

    let same = skew(&repo.join("credit"), &log, &db);
    assert_eq!(same["requests"], records.len() + 1, "{same}");
    assert_eq!(same["failed"], 0, "{same}");
    assert_eq!(same["differing"], 0, "served and offline agree: {same}");

    // A copy whose spec moved the first standardize mean.
    let moved = repo.join("moved");
    place("models/credit/model.onnx", &moved.join("model.onnx"));
    let spec =
        std::fs::read_to_string(repo_root().join("models/credit/features.toml")).expect("the spec");
    let spec = spec.replacen("mean = 49.13333333333333", "mean = 39.13333333333333", 1);
    std::fs::write(moved.join("features.toml"), spec).expect("writing");
    let skewed = skew(&moved, &log, &db);
    assert!(
        skewed["differing"].as_u64().unwrap_or(0) > 0,
        "a moved mean is skew: {skewed}"
    );
    let probabilities = &skewed["outputs"]["probabilities"];
    assert!(
        probabilities["max_abs_diff"].as_f64().unwrap_or(0.0) > 1e-3,
        "{skewed}"
    );
    assert!(skewed["share"].as_f64().unwrap_or(0.0) > 0.0);
}
