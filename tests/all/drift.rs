//! `wafer drift` over files against Evidently's own numbers (the fixtures `tools/drift.py`
//! writes with the pinned evidently): the reference as CSV, the current data as JSON Lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{repo_root, target_dir, wafer};

/// Writes a fixture side as CSV: a header, then one row per record, missing cells empty.
fn csv(side: &Value, columns: &[String]) -> String {
    let rows = side[&columns[0]].as_array().expect("a column").len();
    let mut out = columns.join(",") + "\n";
    for i in 0..rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &side[c][i] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}

/// Writes a fixture side as JSON Lines, missing values as null.
fn jsonl(side: &Value, columns: &[String]) -> String {
    let rows = side[&columns[0]].as_array().expect("a column").len();
    (0..rows)
        .map(|i| {
            let record: serde_json::Map<String, Value> = columns
                .iter()
                .map(|c| (c.clone(), side[c][i].clone()))
                .collect();
            Value::Object(record).to_string() + "\n"
        })
        .collect()
}

/// Runs `wafer drift` on two files with `extra` arguments; it must succeed.
fn drift(reference: &Path, current: &Path, extra: &[&str]) -> std::process::Output {
    let out = wafer()
        .args(["drift", "--reference"])
        .arg(reference)
        .arg("--current")
        .arg(current)
        .args(extra)
        .output()
        .expect("wafer drift runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Evidently fixture of `regime`, its columns, and the folder the tests write into.
fn fixture(regime: &str) -> (Value, Vec<String>, PathBuf) {
    let path = repo_root().join(format!("tests/fixtures/drift/{regime}.json"));
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("parses");
    let columns: Vec<String> = fixture["columns"]
        .as_object()
        .expect("columns")
        .keys()
        .cloned()
        .collect();
    let dir = target_dir().join("wafer-test-drift");
    std::fs::create_dir_all(&dir).expect("a folder");
    (fixture, columns, dir)
}

#[test]
fn drift_over_files_gives_evidentlys_numbers() {
    for regime in ["small", "large"] {
        let (fixture, columns, dir) = fixture(regime);
        let reference = dir.join(format!("{regime}-reference.csv"));
        let current = dir.join(format!("{regime}-current.jsonl"));
        std::fs::write(&reference, csv(&fixture["reference"], &columns)).expect("writing");
        std::fs::write(&current, jsonl(&fixture["current"], &columns)).expect("writing");

        let out = drift(&reference, &current, &["--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let methods = [
            ("K-S p_value", "ks"),
            ("chi-square p_value", "chisquare"),
            ("Z-test p_value", "z"),
            ("Wasserstein distance (normed)", "wasserstein"),
            ("Jensen-Shannon distance", "jensenshannon"),
        ];
        for column in &columns {
            let want = &fixture["columns"][column];
            let got = report["columns"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["column"] == column.as_str()))
                .unwrap_or_else(|| panic!("{regime}: no {column} in {report}"));
            let method = methods
                .iter()
                .find(|(display, _)| want["method"] == *display)
                .map(|(_, name)| *name);
            assert_eq!(got["method"].as_str(), method, "{regime} {column}");
            let (g, w) = (got["score"].as_f64(), want["score"].as_f64());
            let (g, w) = (g.expect("a score"), w.expect("a score"));
            assert!(
                (g - w).abs() <= 1e-6,
                "{regime} {column}: {g} vs Evidently's {w}"
            );
            assert_eq!(got["drifted"], want["drifted"], "{regime} {column}");
        }
        assert_eq!(report["share"], fixture["share"], "{regime}");
        assert_eq!(report["drifted"], fixture["dataset_drift"], "{regime}");
        // Drifted columns come first.
        let verdicts: Vec<bool> = report["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["drifted"].as_bool().expect("a verdict"))
            .collect();
        assert!(verdicts.windows(2).all(|w| w[0] >= w[1]), "{verdicts:?}");
    }
}

#[test]
fn drift_refuses_what_it_cannot_compare() {
    let dir = target_dir().join("wafer-test-drift");
    std::fs::create_dir_all(&dir).expect("a folder");
    let a = dir.join("a.csv");
    std::fs::write(&a, "x,y\n1,a\n2,b\n").expect("writing");
    let b = dir.join("b.csv");
    std::fs::write(&b, "x\n1\n").expect("writing");
    for (args, why) in [
        (
            vec!["--current", b.to_str().unwrap_or_default()],
            "no column \"y\"",
        ),
        (
            vec![
                "--current",
                a.to_str().unwrap_or_default(),
                "--method",
                "x=nope",
            ],
            "unknown method",
        ),
        (
            vec![
                "--current",
                a.to_str().unwrap_or_default(),
                "--method",
                "y=ks",
            ],
            "ks cannot test a categorical column",
        ),
    ] {
        let out = wafer()
            .args(["drift", "--reference"])
            .arg(&a)
            .args(&args)
            .output()
            .expect("wafer drift runs");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn the_html_report_shows_every_column_offline_in_chromium() {
    // The report of the small regime, from wafer drift itself.
    let (fixture, columns, dir) = fixture("small");
    let (reference, current) = (dir.join("report-ref.csv"), dir.join("report-cur.csv"));
    std::fs::write(&reference, csv(&fixture["reference"], &columns)).expect("writing");
    std::fs::write(&current, csv(&fixture["current"], &columns)).expect("writing");
    let html = dir.join("report.html");
    drift(
        &reference,
        &current,
        &["--html", html.to_str().expect("utf-8")],
    );

    let out = std::process::Command::new("node")
        .arg("web/test/report.mjs")
        .arg(&html)
        .current_dir(repo_root())
        .output()
        .expect("node runs (tools/test.sh installs the browser test's packages)");
    assert!(
        out.status.success(),
        "the report driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the driver prints JSON");
    assert_eq!(
        seen["refused"],
        serde_json::json!([]),
        "the report asked the network"
    );
    assert_eq!(seen["pageErrors"], serde_json::json!([]));
    let shown = seen["columns"].as_array().expect("columns");
    assert_eq!(shown.len(), columns.len(), "{seen}");
    let mut drifted_first = true;
    for (i, column) in shown.iter().enumerate() {
        let name = column["name"].as_str().expect("a name");
        let want = &fixture["columns"][name];
        let verdict = if want["drifted"] == true {
            "drift"
        } else {
            "no drift"
        };
        assert_eq!(column["verdict"], verdict, "{name}");
        assert!(
            column["bars"].as_u64().unwrap_or(0) >= 4,
            "{name}: {column}"
        );
        assert_eq!(column["drawn"], true, "{name}");
        if i > 0 && want["drifted"] == true {
            drifted_first &= shown[i - 1]["verdict"] == "drift";
        }
    }
    assert!(drifted_first, "drifted columns come first: {seen}");
    assert!(
        seen["summary"]
            .as_str()
            .is_some_and(|s| s.contains("3 of 7 columns drifted")),
        "{seen}"
    );
}
