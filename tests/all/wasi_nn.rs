//! The wasi-nn flavour (`--backend wasi-nn`): the guest keeps the feature pipeline, the input
//! checks and the v2 codec, and the host runs the graph natively behind `wasi:nn`. Every model
//! whose tensors `wasi:nn` carries answers as onnxruntime does; the others are refused when
//! they are built, naming the tensor; bad input gets the self-contained guest's 4xx.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{
    Server, assert_matches, fixture, get, infer_request, labels_and_probabilities, post,
    serve_command, target_dir, wafer_server,
};
use crate::zoo::{cases, json_request};

/// The datatypes a `wasi:nn` tensor carries.
const CARRIED: [&str; 6] = ["FP16", "FP32", "FP64", "UINT8", "INT32", "INT64"];

/// `wafer serve REPO --backend wasi-nn`, building into its own folder.
fn start(repo: &str, build: &str) -> Server {
    crate::support::nn_guests();
    let cmd = serve_command(
        std::path::Path::new(repo),
        &target_dir().join(build),
        &["--backend", "wasi-nn", "--strict-readiness", "false"],
    );
    Server::start(cmd, false).expect("wafer serve --backend wasi-nn starts")
}

/// The zoo under the wasi-nn flavour, for the whole test run.
fn nn_zoo_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start("models/zoo", "wafer-test-zoo-nn"))
}

/// The bundled models under the wasi-nn flavour, for the whole test run.
fn nn_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start("models", "wafer-test-nn"))
}

/// The zoo served by the one unbuilt wasi-nn guest (`--shared-guest`).
fn shared_zoo_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_shared("models/zoo"))
}

/// The bundled models served by the one unbuilt wasi-nn guest (`--shared-guest`).
fn shared_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_shared("models"))
}

/// `wafer serve REPO --backend wasi-nn --shared-guest`, which builds nothing.
fn start_shared(repo: &str) -> Server {
    crate::support::nn_guests();
    let cmd = serve_command(
        std::path::Path::new(repo),
        &target_dir().join("wafer-test-nn-shared"),
        &[
            "--backend",
            "wasi-nn",
            "--shared-guest",
            "--strict-readiness",
            "false",
        ],
    );
    Server::start(cmd, false).expect("wafer serve --backend wasi-nn --shared-guest starts")
}

#[test]
fn every_zoo_model_wasi_nn_carries_matches_onnxruntime_and_the_others_are_refused_by_name() {
    assert_zoo(nn_zoo_server(), "wasi-nn");
}

#[test]
fn every_zoo_model_matches_onnxruntime_through_the_shared_wasi_nn_guest() {
    assert_zoo(shared_zoo_server(), "wasi-nn, shared guest");
}

/// Every zoo model `server` serves answers as onnxruntime does, through `flavour`, and those
/// whose tensors `wasi:nn` cannot carry are unavailable, with the tensor named.
fn assert_zoo(server: &Server, flavour: &str) {
    let listed = get(&format!("{}/v2/models", server.base));
    assert_eq!(listed.status, 200, "{}", listed.text);
    let models = listed.json["models"].as_array().expect("models").clone();
    let mut refused = Vec::new();
    for case in cases() {
        let entry = models
            .iter()
            .find(|m| m["name"] == case.name.as_str())
            .unwrap_or_else(|| panic!("{} is listed", case.name));
        let tensors = case.json["inputs"]
            .as_array()
            .expect("inputs")
            .iter()
            .chain(case.expected());
        let uncarried: Vec<&str> = tensors
            .filter(|t| !CARRIED.contains(&t["datatype"].as_str().expect("datatype")))
            .map(|t| t["name"].as_str().expect("name"))
            .collect();
        if uncarried.is_empty() {
            assert_eq!(entry["state"], "READY", "{}: {entry}", case.name);
            let url = format!("{}/v2/models/{}/infer", server.base, case.name);
            let answer = post(&url, json_request(&case).as_bytes());
            assert_eq!(answer.status, 200, "{}: {}", case.name, answer.text);
            let outputs = answer.json["outputs"].as_array().expect("outputs");
            case.assert_outputs(flavour, outputs);
        } else {
            assert_eq!(entry["state"], "UNAVAILABLE", "{}: {entry}", case.name);
            let reason = entry["reason"].as_str().expect("a reason");
            assert!(
                reason.contains("which wasi:nn tensors cannot carry")
                    && uncarried
                        .iter()
                        .any(|t| reason.contains(&format!("\"{t}\""))),
                "{}: the reason names one of {uncarried:?}: {reason}",
                case.name
            );
            refused.push(case.name.clone());
        }
    }
    eprintln!("refused by the wasi-nn flavour ({flavour}): {refused:?}");
}

#[test]
fn bundled_models_match_onnxruntime_through_wasi_nn() {
    assert_bundled(&nn_server().base);
}

/// iris, digits and digits_wide, served at `base`, answer as scikit-learn and onnxruntime do.
fn assert_bundled(base: &str) {
    for name in ["iris", "digits", "digits_wide"] {
        let fx = fixture(name);
        let body = infer_request(&fx.input, &fx.rows).to_string();
        let answer = post(&format!("{base}/v2/models/{name}/infer"), body.as_bytes());
        assert_eq!(answer.status, 200, "{name}: {}", answer.text);
        let got = labels_and_probabilities(&answer.json);
        assert_eq!(got.0, fx.sklearn_labels, "{name}: scikit-learn's labels");
        assert_matches(name, &got, &fx.ort_labels, &fx.ort_probabilities, 1e-5);
    }
}

#[test]
fn credit_with_its_features_and_lookups_matches_onnxruntime_through_wasi_nn() {
    let build = target_dir().join("wafer-test-nn-predict");
    let build = build.to_str().expect("a UTF-8 path");
    crate::credit::assert_credit_paths(
        &nn_server().base,
        &["--backend", "wasi-nn", "--build-dir", build],
        "wasi-nn",
    );
}

#[test]
fn the_shared_guest_serves_every_bundled_model_and_credit_from_its_environment() {
    let base = &shared_server().base;
    assert_bundled(base);
    crate::credit::assert_credit_paths(
        base,
        &["--backend", "wasi-nn", "--shared-guest"],
        "wasi-nn, shared guest",
    );
    // Each fresh instance reads its model's description: one parse per request.
    let fx = fixture("iris");
    let body = infer_request(&fx.input, &fx.rows[..1]).to_string();
    let answer = post(&format!("{base}/v2/models/iris/infer"), body.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.model_parses.as_deref(), Some("1"));
    // The metadata read back from the environment is the snapshot's.
    for name in ["iris", "digits", "credit"] {
        let shared = get(&format!("{base}/v2/models/{name}"));
        let built = get(&format!("{}/v2/models/{name}", nn_server().base));
        assert_eq!(shared.status, 200, "{}", shared.text);
        assert_eq!(shared.json, built.json, "{name}");
    }
}

#[test]
fn bad_input_gets_the_same_4xx_in_both_flavours() {
    let iris = |inputs: Value| json!({ "inputs": inputs }).to_string();
    let record = || crate::credit::first_record();
    let mut no_age = record();
    no_age.as_object_mut().expect("object").remove("age");
    let mut bad_age = record();
    bad_age["age"] = json!("old");
    let cases: Vec<(&str, String)> = vec![
        (
            "/v2/models/iris/infer",
            iris(
                json!([{"name": "X", "shape": [2, 5], "datatype": "FP32", "data": vec![0.5; 10]}]),
            ),
        ),
        (
            "/v2/models/iris/infer",
            iris(json!([{"name": "X", "shape": [1, 4], "datatype": "FP64", "data": vec![0.5; 4]}])),
        ),
        (
            "/v2/models/iris/infer",
            iris(json!([{"name": "Y", "shape": [1, 4], "datatype": "FP32", "data": vec![0.5; 4]}])),
        ),
        (
            "/v2/models/iris/infer",
            iris(json!([{"name": "X", "shape": [0, 4], "datatype": "FP32", "data": []}])),
        ),
        ("/v2/models/iris/infer", iris(json!([]))),
        ("/v2/models/iris/infer", "{\"inputs\": [".to_owned()),
        (
            "/v2/models/iris/infer",
            json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                               "data": vec![0.5; 4]}], "outputs": [{"name": "nope"}]})
            .to_string(),
        ),
        (
            "/v1/models/credit:predict",
            json!({"instances": [record(), no_age]}).to_string(),
        ),
        (
            "/v1/models/credit:predict",
            json!({"instances": [bad_age]}).to_string(),
        ),
    ];
    for (path, body) in cases {
        let guest = post(&format!("{}{path}", wafer_server().base), body.as_bytes());
        assert!(
            (400..500).contains(&guest.status),
            "{path} {body}: the guest answers {}: {}",
            guest.status,
            guest.text
        );
        for nn in [nn_server(), shared_server()] {
            let nn = post(&format!("{}{path}", nn.base), body.as_bytes());
            assert_eq!(
                (nn.status, &nn.json["error"]),
                (guest.status, &guest.json["error"]),
                "{path} {body}: wasi-nn answers {}",
                nn.text
            );
        }
    }
}

#[test]
fn metrics_say_which_backend_served() {
    let base = &nn_server().base;
    let fx = fixture("iris");
    let body = infer_request(&fx.input, &fx.rows[..1]).to_string();
    let answer = post(&format!("{base}/v2/models/iris/infer"), body.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let metrics = get(&format!("{base}/metrics")).text;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wafer_backend_invocations_total{")
                && l.contains("model=\"iris\"")
                && l.contains("backend=\"wasi-nn\"")),
        "{metrics}"
    );
}

#[test]
fn a_failure_in_the_backend_answers_500_and_the_next_request_succeeds() {
    // An embedding index far out of range: tract's Gather panics on it, natively as in wasm.
    let case = cases()
        .into_iter()
        .find(|c| c.name == "torch_embedding_bag")
        .expect("case");
    let mut out_of_range = case.json.clone();
    out_of_range["inputs"][0]["data"][0] = json!(1_000_000_000);
    let broken = crate::zoo::Case {
        json: out_of_range,
        ..case.clone()
    };
    let url = format!("{}/v2/models/{}/infer", nn_zoo_server().base, case.name);
    for _ in 0..2 {
        let failed = post(&url, json_request(&broken).as_bytes());
        assert_eq!(failed.status, 500, "{}", failed.text);
        let error = failed.json["error"].as_str().expect("an error message");
        assert!(error.contains("wasi:nn compute"), "{error}");
        let answer = post(&url, json_request(&case).as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
        case.assert_outputs(
            "wasi-nn after a failure",
            answer.json["outputs"].as_array().expect("outputs"),
        );
    }
}

#[test]
fn the_shared_guest_is_refused_where_it_cannot_serve() {
    let run = |args: &[&str]| {
        let out = crate::support::wafer()
            .args(args)
            .output()
            .expect("wafer runs");
        assert!(!out.status.success(), "wafer {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let compile = run(&["compile", "models/iris", "--shared-guest"]);
    assert!(compile.contains("it needs --backend wasi-nn"), "{compile}");
    let build = run(&[
        "build",
        "models/iris",
        "--backend",
        "wasi-nn",
        "--shared-guest",
    ]);
    assert!(build.contains("`wafer build` builds one"), "{build}");
}
