//! Drift against Evidently's own numbers: `tools/drift.py` ran `DataDriftPreset` (evidently
//! 0.7.23, pinned in tools/requirements-drift.txt) on credit's raw fields with injected shifts,
//! for a 600-row and a 4,000-row reference, and wrote `tests/fixtures/drift/*.json`.

use serde_json::Value;

use crate::{Method, Sample, column_drift, dataset_drift};

/// Evidently's display name of a method.
fn method(display: &str) -> Method {
    match display {
        "K-S p_value" => Method::Ks,
        "chi-square p_value" => Method::ChiSquare,
        "Z-test p_value" => Method::ZTest,
        "Wasserstein distance (normed)" => Method::Wasserstein,
        "Jensen-Shannon distance" => Method::JensenShannon,
        "PSI" => Method::Psi,
        other => panic!("unknown Evidently method {other}"),
    }
}

/// A fixture column, missing values left out.
fn sample(values: &Value, numeric: bool) -> Sample {
    let values = values
        .as_array()
        .expect("an array")
        .iter()
        .filter(|v| !v.is_null());
    if numeric {
        Sample::Numbers(values.map(|v| v.as_f64().expect("a number")).collect())
    } else {
        Sample::Categories(
            values
                .map(|v| v.as_str().expect("text").to_owned())
                .collect(),
        )
    }
}

fn check(fixture: &str) {
    let fixture: Value = serde_json::from_str(fixture).expect("the fixture parses");
    let expected = fixture["columns"].as_object().expect("columns");
    let mut columns = Vec::new();
    for (name, want) in expected {
        let numeric = want["type"] == "num";
        let reference = sample(&fixture["reference"][name], numeric);
        let current = sample(&fixture["current"][name], numeric);
        let got = column_drift(&reference, &current, None, None).expect("testable");
        assert_eq!(
            got.method,
            method(want["method"].as_str().expect("text")),
            "{name}"
        );
        assert_eq!(Some(got.threshold), want["threshold"].as_f64(), "{name}");
        let score = want["score"].as_f64().expect("a score");
        assert!(
            (got.score - score).abs() <= 1e-6,
            "{name}: {:?} {} vs Evidently's {score}",
            got.method,
            got.score
        );
        assert_eq!(Some(got.drifted), want["drifted"].as_bool(), "{name}");
        let psi = column_drift(&reference, &current, Some(Method::Psi), None).expect("PSI");
        let want_psi = want["psi"].as_f64().expect("psi");
        assert!(
            (psi.score - want_psi).abs() <= 1e-6,
            "{name}: PSI {} vs Evidently's {want_psi}",
            psi.score
        );
        assert_eq!(
            Some(psi.drifted),
            want["psi_drifted"].as_bool(),
            "{name}: PSI"
        );
        columns.push((name.clone(), reference, current));
    }
    let dataset = dataset_drift(&columns).expect("testable");
    assert_eq!(Some(dataset.share), fixture["share"].as_f64());
    assert_eq!(Some(dataset.drifted), fixture["dataset_drift"].as_bool());
}

#[test]
fn the_p_value_regime_matches_evidently() {
    check(include_str!("../../../tests/fixtures/drift/small.json"));
}

#[test]
fn the_distance_regime_matches_evidently() {
    check(include_str!("../../../tests/fixtures/drift/large.json"));
}
