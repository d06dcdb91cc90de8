//! Cold start: the snapshot holds the parsed model, and the compiled cache makes a restart
//! compile nothing and never trusts a corrupt entry.

use std::path::{Path, PathBuf};

use crate::support::{
    assert_matches, build_dir, fixture, get, infer_request, labels_and_probabilities, post,
    start_wafer, target_dir, wafer_server,
};

#[test]
fn a_snapshotted_component_never_parses_its_model() {
    let fx = fixture("iris");
    let body = infer_request(&fx.input, &fx.rows[..1]).to_string();
    let url = |base: &str| format!("{base}/v2/models/iris/infer");

    let snapshot = post(&url(&wafer_server().base), body.as_bytes());
    assert_eq!(snapshot.status, 200, "{}", snapshot.text);
    assert_eq!(
        snapshot.model_parses.as_deref(),
        Some("0"),
        "the snapshot holds the parsed model"
    );

    // Without the snapshot, every fresh instance parses the model itself.
    let build_dir = target_dir().join("wafer-test-no-snapshot");
    let no_snapshot = start_wafer(&build_dir, &["--no-snapshot"]);
    for _ in 0..2 {
        let answer = post(&url(&no_snapshot.base), body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.model_parses.as_deref(), Some("1"));
        assert_eq!(answer.json["outputs"], snapshot.json["outputs"]);
    }
}

const MODELS: [&str; 4] = ["credit", "digits", "digits_wide", "iris"];

fn cache_results(base: &str) -> Vec<(String, String)> {
    MODELS
        .iter()
        .map(|m| {
            let stats = get(&format!("{base}/v2/models/{m}/stats"));
            assert_eq!(stats.status, 200, "{}", stats.text);
            (
                (*m).to_owned(),
                stats.json["compiled_cache"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            )
        })
        .collect()
}

/// Every model with the same cache result.
fn all(result: &str) -> Vec<(String, String)> {
    MODELS
        .iter()
        .map(|m| ((*m).to_owned(), result.to_owned()))
        .collect()
}

fn predicts_correctly(base: &str) {
    let fx = fixture("digits");
    let answer = post(
        &format!("{base}/v2/models/digits/infer"),
        infer_request(&fx.input, &fx.rows).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    let got = labels_and_probabilities(&answer.json);
    assert_matches("digits", &got, &fx.ort_labels, &fx.ort_probabilities, 1e-5);
}

#[test]
fn a_restart_hits_the_compiled_cache_and_a_corrupt_entry_is_replaced() {
    let cache = target_dir().join("wafer-test-cache");
    let _ = std::fs::remove_dir_all(&cache);
    // The guest's code shared, as from 8 models on (`--guest-code auto`).
    let args = [
        "--cache-dir",
        cache.to_str().expect("utf-8 path"),
        "--guest-code",
        "shared",
    ];
    let start_wafer = |args: &[&str]| start_wafer(&build_dir(), args);

    let first = start_wafer(&args);
    assert_eq!(cache_results(&first.base), all("miss"));
    first.stop();

    let second = start_wafer(&args);
    assert_eq!(cache_results(&second.base), all("hit"));
    let metrics = get(&format!("{}/metrics", second.base)).text;
    for model in MODELS {
        let line = format!(
            "wafer_compiled_cache_total{{model=\"{model}\",version=\"1\",result=\"hit\"}} 1"
        );
        assert!(metrics.contains(&line), "/metrics lacks {line}");
    }
    predicts_correctly(&second.base);
    second.stop();

    // Each model's component is split: one entry of guest code per guest, shared by the models
    // built from it, and one entry per model for the rest, its data.
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    let named = |prefix: &str, suffix: &str| -> Vec<(PathBuf, u64)> {
        let mut found: Vec<_> = entries
            .iter()
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with(prefix) && name.ends_with(suffix)
            })
            .map(|p| (p.clone(), std::fs::metadata(p).expect("entry").len()))
            .collect();
        found.sort();
        found
    };
    let (codes, rests) = (named("code-", ".cwasm"), named("", ".rest.cwasm"));
    assert_eq!(rests.len(), MODELS.len(), "one rest per model: {entries:?}");
    assert!(
        !codes.is_empty() && codes.len() < MODELS.len(),
        "fewer guest codes than models: {entries:?}"
    );
    assert_eq!(codes.len() + rests.len(), entries.len(), "{entries:?}");
    // Every rest but digits_wide's (a 6 MB model) is a small part of a guest's code.
    let smallest_code = codes.iter().map(|c| c.1).min().unwrap_or(0);
    let mut sizes: Vec<u64> = rests.iter().map(|r| r.1).collect();
    sizes.sort_unstable();
    sizes.pop();
    assert!(
        sizes.iter().all(|&size| size < smallest_code / 4),
        "rests {sizes:?} against guest code of {smallest_code} bytes"
    );
    // ...or, for one of them, lose its checksum.
    for (i, entry) in entries.iter().enumerate() {
        if i == 0 {
            std::fs::remove_file(entry.with_extension("sha256")).expect("checksum file");
        } else {
            corrupt(entry);
        }
    }
    let third = start_wafer(&args);
    assert_eq!(cache_results(&third.base), all("replaced"));
    predicts_correctly(&third.base);
    third.stop();

    let fourth = start_wafer(&args);
    assert_eq!(cache_results(&fourth.base), all("hit"));
    fourth.stop();
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).expect("entry");
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xA5;
    }
    std::fs::write(path, bytes).expect("write entry");
}
