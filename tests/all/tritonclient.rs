//! The real Python `tritonclient[http]` (pinned in `tools/requirements-client.txt`, installed in
//! `tools/.venv-client` by `tools/test.sh`) against `wafer serve`, with the client's defaults:
//! binary tensor data both ways.

use std::process::Command;

use serde_json::Value;

use crate::support::repo_root;
use crate::zoo::{cases, zoo_server};

#[test]
fn tritonclient_works_unchanged_with_its_binary_defaults() {
    let root = repo_root();
    let python = root.join("tools/.venv-client/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tools/test.sh`, which creates it",
        python.display()
    );
    let server = zoo_server();
    let models = [
        "column_transformer_rf",
        "hist_gradient_boosting_regressor",
        "svc_rbf",
        "zipmap_logreg",
    ];
    let chosen: Vec<_> = cases()
        .into_iter()
        .filter(|c| models.contains(&c.name.as_str()))
        .collect();
    assert_eq!(chosen.len(), models.len());
    for case in chosen {
        let out = Command::new(&python)
            .arg(root.join("tools/tritonclient_infer.py"))
            .arg(&server.base)
            .arg(&case.name)
            .arg(root.join("models/zoo").join(&case.name).join("case.json"))
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}: tritonclient failed: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
        let outputs = result["outputs"].as_array().expect("outputs");
        for got in outputs {
            assert_eq!(
                got["binary"], true,
                "{}: {} came back as JSON",
                case.name, got["name"]
            );
        }
        case.assert_outputs("tritonclient", outputs);
    }
}
