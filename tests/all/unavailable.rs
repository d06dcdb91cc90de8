//! A model that cannot be built or loaded fails alone: `wafer serve` starts, serves the other
//! models, and answers 503 naming the reason for the broken one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::support::{
    Server, assert_matches, build_dir, fixture, get, infer_request, labels_and_probabilities, post,
    prebuild, repo_root, serve_command, target_dir, wafer,
};

/// The bundled models, linked into the broken repository.
const BUNDLED: [&str; 4] = ["credit", "digits", "digits_wide", "iris"];

/// A repository holding the bundled models, a corrupt ONNX file (`corrupt`: the first half of
/// iris's model) and a valid model whose operator tract lacks (`unsupported`: `Det`).
fn broken_repo() -> PathBuf {
    let repo = target_dir().join("wafer-test-broken-repo");
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).expect("create the repository");
    for name in BUNDLED {
        std::os::unix::fs::symlink(repo_root().join("models").join(name), repo.join(name))
            .expect("link a bundled model");
    }
    let iris = std::fs::read(repo_root().join("models/iris/model.onnx")).expect("iris");
    write(&repo.join("corrupt/model.onnx"), &iris[..iris.len() / 2]);
    let det = std::fs::read(repo_root().join("tests/fixtures/unsupported_op/model.onnx"))
        .expect("the unsupported-operator fixture");
    write(&repo.join("unsupported/model.onnx"), &det);
    repo
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
    std::fs::write(path, bytes).expect("write");
}

fn start(repo: &Path, extra: &[&str]) -> Server {
    Server::start(serve_command(repo, &build_dir(), extra), false).expect("wafer serve starts")
}

/// The reason in a 503 `{"error": "model \"m\" is unavailable: ..."}`.
fn unavailable_reason(model: &str, answer: &crate::support::Answer) -> String {
    assert_eq!(answer.status, 503, "{model}: {}", answer.text);
    let error = answer.json["error"].as_str().expect("an error message");
    let prefix = format!("model \"{model}\" is unavailable: ");
    assert!(error.starts_with(&prefix), "{model}: {error}");
    error[prefix.len()..].to_owned()
}

#[test]
fn a_broken_model_fails_alone_and_names_its_reason() {
    // The bundled models come from the same build folder and cache as the other tests'.
    prebuild(Path::new("models"), &build_dir());
    let repo = broken_repo();
    let server = start(&repo, &[]);
    let base = &server.base;

    // The bundled models answer.
    let fx = fixture("iris");
    let answer = post(
        &format!("{base}/v2/models/iris/infer"),
        infer_request(&fx.input, &fx.rows).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_matches(
        "iris",
        &labels_and_probabilities(&answer.json),
        &fx.sklearn_labels,
        &fx.ort_probabilities,
        1e-5,
    );
    for name in BUNDLED {
        let ready = get(&format!("{base}/v2/models/{name}/ready"));
        assert_eq!(ready.status, 200, "{name}: {}", ready.text);
        assert_eq!(ready.json["ready"], true, "{name}");
    }

    // The broken ones answer 503 with their reasons, on every model route.
    let request = br#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#;
    let mut reasons = Vec::new();
    for name in ["corrupt", "unsupported"] {
        let infer = post(&format!("{base}/v2/models/{name}/infer"), request);
        let reason = unavailable_reason(name, &infer);
        let metadata = get(&format!("{base}/v2/models/{name}"));
        assert_eq!(unavailable_reason(name, &metadata), reason);
        let ready = get(&format!("{base}/v2/models/{name}/ready"));
        assert_eq!(unavailable_reason(name, &ready), reason);
        assert_eq!(ready.json["ready"], false);
        reasons.push(reason);
    }
    assert!(
        reasons[0].contains("model.onnx"),
        "the corrupt model's reason names its file: {}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("Det"),
        "the unsupported model's reason names the operator: {}",
        reasons[1]
    );

    // The listing says which models are unavailable and why.
    let list = get(&format!("{base}/v2/models"));
    let models = list.json["models"].as_array().expect("models");
    let state = |name: &str| -> &Value {
        models
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    assert_eq!(state("iris")["state"], "READY");
    assert_eq!(state("corrupt")["state"], "UNAVAILABLE");
    assert_eq!(state("unsupported")["reason"], reasons[1].as_str());

    // Strict readiness: not ready while a model is unavailable; live all the same.
    let ready = get(&format!("{base}/v2/health/ready"));
    assert_eq!(
        (ready.status, &ready.json["ready"]),
        (503, &Value::Bool(false))
    );
    assert_eq!(get(&format!("{base}/v2/health/live")).status, 200);
    let metrics = get(&format!("{base}/metrics")).text;
    assert!(
        metrics.contains(r#"wafer_model_ready{model="corrupt",version="1"} 0"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"wafer_model_ready{model="iris",version="1"} 1"#));
    server.stop();

    // Relaxed readiness: ready once listening.
    let relaxed = start(&repo, &["--strict-readiness", "false"]);
    let ready = get(&format!("{}/v2/health/ready", relaxed.base));
    assert_eq!(
        (ready.status, &ready.json["ready"]),
        (200, &Value::Bool(true))
    );
    relaxed.stop();

    // --exit-on-error: today's behaviour for CI pipelines, exit 1 naming the model. (Its stdin
    // stays open until it exits: the server stops by itself when stdin closes.)
    let mut child = serve_command(&repo, &build_dir(), &["--exit-on-error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wafer serve runs");
    let stdin = child.stdin.take();
    let out = child.wait_with_output().expect("wafer serve exits");
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be loaded"), "{stderr}");

    // wafer build and wafer predict still refuse the broken model, with the same reason.
    let out = wafer()
        .arg("build")
        .arg(repo.join("unsupported"))
        .arg("-o")
        .arg(target_dir().join("wafer-test-broken-repo/unsupported.wasm"))
        .output()
        .expect("wafer build runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "wafer build succeeded on a broken model"
    );
    assert!(stderr.contains("Det"), "{stderr}");
    let out = wafer()
        .arg("predict")
        .arg(repo.join("corrupt"))
        .args(["--input", "-", "--build-dir"])
        .arg(target_dir().join("wafer-test-broken-repo"))
        .stdin(Stdio::null())
        .output()
        .expect("wafer predict runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&reasons[0]),
        "{stderr}\nexpected: {}",
        reasons[0]
    );
}
