//! The browser builds in a real browser: the demo page (web/index.html, on the wafer-web and
//! wafer-web-lite packages that `tools/web.sh --package-only` builds) served by `wafer web`,
//! driven in Debian's
//! headless Chromium by web/test/drive.mjs (Playwright's driver, pinned in
//! web/package-lock.json). Expected numbers are the committed scikit-learn and onnxruntime
//! fixtures, as for the server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{Server, assert_matches, fixture, repo_root, target_dir, wafer};
use crate::zoo;

/// The page's folder: the wasm-bindgen package, the page from `web/`, and a bundle per model.
fn page_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new("bash")
            .arg("tools/web.sh")
            .arg("--package-only")
            .current_dir(repo_root())
            .status()
            .expect("tools/web.sh runs");
        assert!(status.success(), "tools/web.sh --package-only failed");
        let dir = target_dir().join("wafer-test-web");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("models/zoo")).expect("page folder");
        for pkg in ["pkg", "pkg-lite"] {
            copy_dir(&target_dir().join("web").join(pkg), &dir.join(pkg));
        }
        for file in ["index.html", "demo.js"] {
            std::fs::copy(repo_root().join("web").join(file), dir.join(file)).expect("copy page");
        }
        std::fs::copy(
            repo_root().join("models/credit/users.csv"),
            dir.join("models/credit.users.csv"),
        )
        .expect("copy users.csv");
        let mut models: Vec<(String, PathBuf)> = ["iris", "digits", "credit"]
            .iter()
            .map(|m| (format!("models/{m}"), dir.join(format!("models/{m}.wafer"))))
            .collect();
        for case in zoo::cases() {
            let bundle = dir.join(format!("models/zoo/{}.wafer", case.name));
            models.push((format!("models/zoo/{}", case.name), bundle));
        }
        for (model, bundle) in models {
            let out = wafer()
                .args(["build", "--web", &model, "-o"])
                .arg(&bundle)
                .output()
                .expect("wafer build --web runs");
            assert!(
                out.status.success(),
                "wafer build --web {model}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("the wasm-bindgen package") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// Runs web/test/drive.mjs on the page with `job`, returning what it reports.
fn drive(job: &Value) -> Value {
    let dir = page_dir();
    let server = Server::start(
        {
            let mut cmd = wafer();
            cmd.arg("web").arg(dir).args(["--addr", "127.0.0.1:0"]);
            cmd
        },
        false,
    )
    .expect("wafer web listens");
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, job.to_string()).expect("write job");
    let out = Command::new("node")
        .arg("web/test/drive.mjs")
        .arg(format!("{}/", server.base))
        .arg(&job_path)
        .current_dir(repo_root())
        .output()
        .expect("node runs");
    server.stop();
    assert!(
        out.status.success(),
        "the browser driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the driver prints JSON")
}

/// One request per row, as the page sends them, through `call` (`infer` or `run`).
fn row_cases(model: &str, call: &str, cases: &mut Vec<Value>) {
    let f = fixture(model);
    for (i, row) in f.rows.iter().enumerate() {
        cases.push(json!({
            "id": format!("{model}-{call}/{i}"),
            "bundle": format!("models/{model}.wafer"),
            "call": call,
            "input": crate::support::infer_request(&f.input, std::slice::from_ref(row)),
        }));
    }
}

/// The credit users as the page's store: `{key: {column: value}}` from users.csv.
fn users_store() -> Value {
    let text = std::fs::read_to_string(repo_root().join("models/credit/users.csv")).expect("csv");
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().expect("header").split(',').collect();
    let mut store = serde_json::Map::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let row: serde_json::Map<String, Value> = columns[1..]
            .iter()
            .zip(&cells[1..])
            .map(|(c, v)| {
                (
                    c.to_string(),
                    v.parse::<f64>().map_or(Value::Null, |x| json!(x)),
                )
            })
            .collect();
        store.insert(cells[0].to_owned(), Value::Object(row));
    }
    Value::Object(store)
}

/// Outputs of the cases whose id starts with `prefix`, in order, or the first error.
fn outputs_of<'a>(report: &'a Value, prefix: &str) -> Vec<&'a Value> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter(|c| c["id"].as_str().is_some_and(|id| id.starts_with(prefix)))
        .map(|c| {
            assert!(c["error"].is_null(), "{}: {}", c["id"], c["error"]);
            &c["outputs"]
        })
        .collect()
}

/// Concatenates one-row responses into labels and probability rows.
fn rows_of(responses: &[&Value]) -> (Vec<i64>, Vec<Vec<f64>>) {
    let mut all = (Vec::new(), Vec::new());
    for outputs in responses {
        let (labels, probabilities) =
            crate::support::labels_and_probabilities(&json!({ "outputs": outputs }));
        all.0.extend(labels);
        all.1.extend(probabilities);
    }
    all
}

#[test]
fn the_demo_page_gives_scikit_learns_labels_and_onnxruntimes_numbers_in_chromium() {
    let mut bundles = vec![
        "models/iris.wafer".to_owned(),
        "models/digits.wafer".to_owned(),
        "models/credit.wafer".to_owned(),
    ];
    let mut cases = Vec::new();
    for call in ["infer", "run"] {
        row_cases("iris", call, &mut cases);
        row_cases("digits", call, &mut cases);
    }
    let records: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/credit/test_records.json"))
            .expect("records"),
    )
    .expect("records JSON");
    let stores = json!({ "users": users_store() });
    for (i, record) in records.iter().enumerate() {
        cases.push(json!({
            "id": format!("credit/{i}"),
            "bundle": "models/credit.wafer",
            "call": "records",
            "input": [record],
            "options": { "stores": stores },
        }));
    }
    let zoo = zoo::cases();
    for case in &zoo {
        let bundle = format!("models/zoo/{}.wafer", case.name);
        cases.push(json!({
            "id": format!("zoo/{}", case.name),
            "bundle": bundle,
            "call": "infer",
            // Text, so that missing values travel as the bare `NaN` tritonclient writes.
            "input": zoo::json_request(case),
        }));
        bundles.push(bundle);
    }
    let report = drive(&json!({ "bundles": bundles, "cases": cases }));

    for model in ["iris", "digits"] {
        let f = fixture(model);
        for call in ["infer", "run"] {
            let outputs = outputs_of(&report, &format!("{model}-{call}/"));
            let got = rows_of(&outputs);
            assert_matches(model, &got, &f.sklearn_labels, &f.ort_probabilities, 1e-5);
            if call == "run" {
                let typed: Vec<&Value> = outputs[0]
                    .as_array()
                    .expect("outputs")
                    .iter()
                    .map(|o| &o["typed"])
                    .collect();
                assert_eq!(
                    typed,
                    ["BigInt64Array", "Float32Array"],
                    "{model}: typed outputs"
                );
            }
        }
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/credit/expected.json")).expect("read"),
    )
    .expect("expected.json");
    let labels: Vec<i64> =
        serde_json::from_value(expected["sklearn"]["label"].clone()).expect("labels");
    let probabilities: Vec<Vec<f64>> =
        serde_json::from_value(expected["onnxruntime"]["probabilities"].clone()).expect("floats");
    let got = rows_of(&outputs_of(&report, "credit/"));
    assert_matches("credit", &got, &labels, &probabilities, 1e-5);
    for case in &zoo {
        let outputs = outputs_of(&report, &format!("zoo/{}", case.name));
        let outputs = outputs[0].as_array().expect("outputs");
        case.assert_outputs("browser", outputs);
    }

    // The lite build (no tract) runs every bundle `wafer build --web` marks lite: the three
    // the page offers, every scikit-learn model of the zoo and two PyTorch ones; the full
    // build runs convolutions, recurrent layers and attention.
    let builds = report["builds"].as_object().expect("builds");
    let full: Vec<&str> = builds
        .iter()
        .filter(|(_, build)| *build != "lite")
        .map(|(bundle, _)| bundle.as_str())
        .collect();
    assert_eq!(
        full,
        [
            "models/zoo/torch_cnn_digits.wafer",
            "models/zoo/torch_gru.wafer",
            "models/zoo/torch_transformer.wafer",
        ],
        "the bundles the full build runs"
    );
    assert!(
        builds.values().all(|b| b == "lite" || b == "full"),
        "{builds:?}"
    );

    let ui = &report["ui"];
    let shows = |step: &str, what: &str| {
        let error = ui[step]["error"].as_str().expect("error text");
        assert!(
            error.contains(what),
            "{step}: the page shows {error:?}, not {what:?}"
        );
        assert_eq!(
            ui[step]["label"], "",
            "{step}: no prediction is shown beside an error"
        );
    };
    let predicts = |step: &str| {
        assert_eq!(ui[step]["error"], "", "{step}: {}", ui[step]["error"]);
        let label = ui[step]["label"].as_str().expect("label");
        assert!(label.starts_with("prediction: "), "{step}: {label:?}");
        assert!(
            ui[step]["latency"]
                .as_str()
                .is_some_and(|l| l.ends_with("ms in this page"))
        );
        assert!(
            ui[step]["bars"].as_u64() >= Some(2),
            "{step}: probability bars"
        );
    };
    predicts("iris_typed");
    assert_eq!(ui["iris_typed"]["label"], "prediction: virginica");
    shows(
        "wrong_shape",
        "input \"X\": expected shape [N,4], got [1,3]",
    );
    predicts("after_wrong_shape");
    assert_eq!(ui["after_wrong_shape"]["label"], "prediction: setosa");
    predicts("digits_drawn");
    predicts("credit_form");
    shows("missing_required", "age");
    predicts("after_missing_required");
    shows(
        "spec_too_narrow",
        "features.toml: output \"X\" fills 29 columns, the model's input takes 30",
    );
    predicts("spec_unknown_error");
    shows("unknown_category", "unknown category \"XX\"");
    predicts("after_unknown_category");
    shows("malformed_spec", "features.toml");
    predicts("after_malformed_spec");

    assert_eq!(
        report["pageErrors"],
        json!([]),
        "uncaught errors in the page"
    );
    let requests = report["requests"].as_array().expect("requests");
    assert!(
        requests.iter().any(|r| r["phase"] == "load"),
        "the page loads its models over the network"
    );
    let after_load: Vec<&Value> = requests.iter().filter(|r| r["phase"] != "load").collect();
    assert!(
        after_load.is_empty(),
        "predictions made requests: {after_load:?}"
    );
}
