//! `spin.toml` is a valid Spin manifest v2 whose sources are what its build commands produce,
//! and whose key-value stores are the ones the models look fields up in.

use std::path::Path;

use crate::support::{repo_root, wafer};

/// The `wasi:keyvalue` interface Spin 3 serves and the lookup guest imports.
const KEYVALUE: &str = "wasi:keyvalue/store@0.2.0-draft2";

/// The interfaces a component imports.
fn imports(component: &Path) -> Vec<String> {
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::from_file(&engine, component).expect("a valid component");
    component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

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

    for model in ["iris", "digits", "credit"] {
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

        // A model that looks fields up imports wasi:keyvalue, and is granted exactly the stores
        // its spec names; the others import no store, so `wasmtime serve` runs them too.
        let spec = repo_root().join(format!("models/{model}/features.toml"));
        let mut stores: Vec<String> = match std::fs::read_to_string(&spec) {
            Ok(text) => wafer_features::Spec::parse(&text)
                .expect("spec")
                .lookups()
                .into_iter()
                .map(|g| g.store)
                .collect(),
            Err(_) => vec![],
        };
        stores.sort();
        stores.dedup();
        let granted: Vec<String> = component
            .get("key_value_stores")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(granted, stores, "{model}: key_value_stores");
        assert_eq!(
            imports(&built).iter().any(|i| i == KEYVALUE),
            !stores.is_empty(),
            "{model}: imports {KEYVALUE} exactly when it looks fields up"
        );
    }
    let credit_v1 = triggers
        .iter()
        .find(|t| t["route"].as_str() == Some("/v1/models/credit:predict"))
        .expect("the KServe v1 route of credit");
    assert_eq!(credit_v1["component"].as_str(), Some("credit"));
}

#[test]
fn spin_runtime_config_points_the_users_store_at_wafers_feature_database() {
    let text = std::fs::read_to_string(repo_root().join("runtime-config.toml"))
        .expect("runtime-config.toml");
    let config: toml::Table = text.parse().expect("runtime-config.toml is TOML");
    let users = &config["key_value_store"]["users"];
    assert_eq!(
        users["type"].as_str(),
        Some("spin"),
        "Spin's built-in SQLite store"
    );
    assert_eq!(
        users["path"].as_str(),
        Some(wafer_host::store::DEFAULT_DB),
        "the database `wafer features load` fills by default"
    );
}
