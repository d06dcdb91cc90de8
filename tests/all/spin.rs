//! `spin.toml` is a valid Spin manifest v2 whose sources are what its build commands produce.

use std::path::Path;

use crate::support::{repo_root, wafer};

#[test]
fn spin_manifest_serves_each_model_from_the_component_its_build_produces() {
    let text = std::fs::read_to_string(repo_root().join("spin.toml")).expect("spin.toml");
    let manifest: toml::Table = text.parse().expect("spin.toml is TOML");
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    assert!(manifest["application"]["name"].is_str());
    let triggers = manifest["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]");
    let components = manifest["component"].as_table().expect("[component.*]");

    for model in ["iris", "digits"] {
        let route = format!("/v2/models/{model}/...");
        let trigger = triggers
            .iter()
            .find(|t| t["route"].as_str() == Some(route.as_str()))
            .unwrap_or_else(|| panic!("no trigger for {route}"));
        assert_eq!(trigger["component"].as_str(), Some(model));

        let component = &components[model];
        assert_eq!(
            component["allowed_outbound_hosts"].as_array().map(Vec::len),
            Some(0)
        );
        let source = component["source"].as_str().expect("source");
        let command = component["build"]["command"]
            .as_str()
            .expect("build.command");

        // Run the command's `wafer build` step with this test's binary, from the manifest's
        // folder as Spin does, and check that it writes exactly the file `source` names.
        let step = command
            .split("&&")
            .map(str::trim)
            .find(|s| s.starts_with("cargo run --release -p wafer -- build"))
            .expect("the build command runs `wafer build`");
        let args: Vec<&str> = step.split_whitespace().skip(6).collect();
        assert_eq!(args[..2], ["build", &format!("models/{model}") as &str]);
        assert_eq!(
            args[2..],
            ["-o", source],
            "the build writes the manifest's source"
        );
        let status = wafer().args(&args).status().expect("wafer build runs");
        assert!(status.success(), "{step} failed");
        let built = repo_root().join(source);
        assert!(built.is_file(), "{} was not produced", built.display());
        assert!(Path::new(source).extension().is_some_and(|e| e == "wasm"));
        let bytes = std::fs::read(&built).expect("component");
        assert_eq!(
            &bytes[..8],
            b"\0asm\x0d\0\x01\0",
            "{source} is a WebAssembly component"
        );
    }
}
