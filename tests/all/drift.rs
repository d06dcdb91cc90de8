//! Drift. `wafer drift` over files against Evidently's own numbers (the fixtures
//! `tools/drift.py` writes with the pinned evidently): the reference as CSV, the current data
//! as JSON Lines. The bundled models' reference profiles (`wafer profile`) against pandas's
//! summaries of the same rows (`tools/profiles.py`); `wafer drift MODEL` against them, from a
//! file and from the prediction log; and online drift in `wafer serve`, on credit traffic that
//! shifts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::operations::{place, repository, serve};
use crate::support::{Server, get, post, repo_root, target_dir, wafer};

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

/// A JSON file of the workspace.
fn read_json(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join(path)).expect(path);
    serde_json::from_str(&text).expect("parses")
}

/// Whether `a` and `b` agree to a relative `tolerance` (absolute near zero).
fn close(a: &Value, b: &Value, tolerance: f64) -> bool {
    let (a, b) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-3)
}

#[test]
fn bundled_profiles_summarize_their_training_rows_as_pandas_does() {
    for model in ["iris", "credit"] {
        let profile = read_json(&format!("models/{model}/reference/profile.json"));
        let expected = read_json(&format!("tests/fixtures/profile/{model}.json"));
        let expected = expected.as_object().expect("columns");
        let columns = profile["columns"].as_array().expect("columns");
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        let mut wanted: Vec<&str> = expected.keys().map(String::as_str).collect();
        wanted.sort_unstable();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, wanted, "{model}: the profiled columns");
        assert_eq!(
            profile["sample_rows"], profile["rows"],
            "{model}: every row"
        );
        for c in columns {
            let name = c["name"].as_str().expect("a name");
            let want = &expected[name];
            // Fields are read exactly; outputs are tract's float32 against onnxruntime's.
            let tolerance = if c["source"] == "output" { 1e-5 } else { 1e-9 };
            let context = format!("{model}.{name}: wafer {c}, pandas {want}");
            assert_eq!(c["count"], want["count"], "{context}");
            assert!(close(&c["missing"], &want["missing"], 1e-12), "{context}");
            if c["kind"] == "num" {
                assert!(close(&c["mean"], &want["mean"], tolerance), "{context}");
                assert!(close(&c["std"], &want["std"], tolerance), "{context}");
                let quantiles = want["quantiles"].as_object().expect("quantiles");
                assert_eq!(quantiles.len(), 7, "{context}");
                for (q, v) in quantiles {
                    assert!(close(&c["quantiles"][q], v, tolerance), "{context}: {q}");
                }
            } else {
                assert_eq!(c["distinct"], want["distinct"], "{context}");
                let shares = want["frequencies"].as_object().expect("frequencies");
                assert_eq!(
                    c["frequencies"].as_object().map(|f| f.len()),
                    Some(shares.len())
                );
                for (k, v) in shares {
                    assert!(close(&c["frequencies"][k], v, 1e-12), "{context}: {k}");
                }
            }
        }
    }
    // Credit's lookups and their key are named, with why they are not tested.
    let skipped = read_json("models/credit/reference/profile.json")["skipped"].clone();
    let skipped: Vec<&str> = skipped
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(skipped, ["user_id", "avg_spend_30d", "orders_90d"]);
}

/// Runs wafer with `args`; returns its exit success, stdout and stderr.
fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = wafer().args(args).output().expect("wafer runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn profile_samples_by_seed_and_drift_reads_it_back() {
    let dir = target_dir().join("wafer-test-profile");
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("iris");
    place("models/iris/model.onnx", &model.join("model.onnx"));
    // Iris's training rows, from its bundled sample: the four inputs only.
    let sample = std::fs::read_to_string(repo_root().join("models/iris/reference/sample.csv"))
        .expect("the sample");
    let rows: String = sample
        .lines()
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let data = dir.join("train.csv");
    std::fs::write(&data, &rows).expect("writing");
    let os = |s: &str| std::ffi::OsString::from(s);
    let profile = |seed: &str| {
        let (ok, _, err) = run(&[
            &os("profile"),
            model.as_os_str(),
            &os("--data"),
            data.as_os_str(),
            &os("--sample"),
            &os("50"),
            &os("--seed"),
            &os(seed),
        ]);
        assert!(ok, "{err}");
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(model.join("reference/profile.json")).expect("written"),
        )
        .expect("parses");
        let sample = std::fs::read_to_string(model.join("reference/sample.csv")).expect("written");
        (json, sample)
    };
    let (first, sample_7) = profile("7");
    assert_eq!(first["rows"], 120);
    assert_eq!(first["sample_rows"], 50);
    assert_eq!(sample_7.lines().count(), 51, "a header and 50 rows");
    assert_eq!(profile("7").1, sample_7, "one seed, one sample");
    assert_ne!(profile("8").1, sample_7, "another seed, another sample");

    // The training rows themselves do not drift from their sample.
    let (ok, out, err) = run(&[
        &os("drift"),
        model.as_os_str(),
        &os("--current"),
        data.as_os_str(),
        &os("--json"),
    ]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["drifted"], false, "{report}");
    assert_eq!(report["reference_rows"], 50);
    assert_eq!(report["current_rows"], 120);
    let tested: Vec<&str> = report["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["column"].as_str())
        .collect();
    for column in ["X[0]", "X[3]", "label", "probabilities[2]"] {
        assert!(tested.contains(&column), "{column} tested: {report}");
    }

    // A model without a profile says how to make one, and exits non-zero.
    std::fs::remove_dir_all(model.join("reference")).expect("removing");
    let (ok, _, err) = run(&[
        &os("drift"),
        model.as_os_str(),
        &os("--current"),
        data.as_os_str(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("no reference profile") && err.contains("wafer profile"),
        "{err}"
    );
    // Data without the spec's fields is refused.
    let (ok, _, err) = run(&[
        &os("profile"),
        repo_root().join("models/credit").as_os_str(),
        &os("--data"),
        data.as_os_str(),
    ]);
    assert!(!ok);
    assert!(err.contains("has no column"), "{err}");
}

/// Credit's online-drift traffic, also written beside `repo` as `REPO.{unshifted,shifted}.jsonl`.
fn traffic(repo: &Path) -> (Vec<Value>, Vec<Value>) {
    let traffic = read_json("tests/fixtures/profile/traffic.json");
    let side = |name: &str| traffic[name].as_array().expect("records").clone();
    let (unshifted, shifted) = (side("unshifted"), side("shifted"));
    for (name, records) in [("unshifted", &unshifted), ("shifted", &shifted)] {
        let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(repo.with_extension(format!("{name}.jsonl")), lines).expect("writing");
    }
    (unshifted, shifted)
}

/// The columns of a drift report that drifted.
fn drifted(report: &Value) -> Vec<String> {
    report["columns"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["drifted"] == true)
                .filter_map(|c| c["column"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// One series of `/metrics` text, by name and a label that picks it.
fn series(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls `/v2/models/credit/drift` until `done` holds of it (or 60 s pass).
fn drift_until(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let url = format!("{}/v2/models/credit/drift", server.base);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let answer = get(&url);
        assert_eq!(answer.status, 200, "{}", answer.text);
        if done(&answer.json) {
            return answer.json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "online drift never got there: {}",
            answer.text
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn online_drift_turns_on_when_credit_traffic_shifts() {
    let repo = repository("drift");
    for file in [
        "model.onnx",
        "features.toml",
        "reference/profile.json",
        "reference/sample.csv",
    ] {
        place(
            &format!("models/credit/{file}"),
            &repo.join("credit").join(file),
        );
    }
    place("models/iris/model.onnx", &repo.join("iris/model.onnx"));
    let (unshifted, shifted) = traffic(&repo);
    let log = repo.with_extension("predictions.db");
    let _ = std::fs::remove_file(&log);
    let log_arg = log.to_str().expect("utf-8");
    // The store the reference's outputs were scored with.
    let db = repo.with_extension("db");
    crate::support::load_credit_users(&db);
    let server = serve(
        &repo,
        &[
            "--log-db",
            log_arg,
            "--drift-interval-ms",
            "100",
            "--drift-window",
            "200",
            "--drift-min-rows",
            "100",
        ],
    );
    // Once checked (`checked_ms`), with no traffic yet.
    let waiting = drift_until(&server, |d| {
        d["state"] == "waiting" && d["checked_ms"].is_u64()
    });
    assert_eq!(waiting["version"], "1", "{waiting}");
    // A model without a reference, an unknown model: 404 with the reason.
    let iris = get(&format!("{}/v2/models/iris/drift", server.base));
    assert_eq!(iris.status, 404, "{}", iris.text);
    let reason = iris.json["error"].as_str().unwrap_or_default();
    assert!(reason.contains("wafer profile"), "{reason}");
    assert_eq!(
        get(&format!("{}/v2/models/nope/drift", server.base)).status,
        404
    );

    let url = format!("{}/v1/models/credit:predict", server.base);
    let send = |records: &[Value]| {
        for chunk in records.chunks(20) {
            let body = serde_json::json!({ "instances": chunk }).to_string();
            let answer = post(&url, body.as_bytes());
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
    };
    send(&unshifted);
    let calm = drift_until(&server, |d| d["state"] == "tested" && d["rows"] == 200);
    assert_eq!(calm["drifted"], false, "{calm}");
    let metrics = get(&format!("{}/metrics", server.base)).text;
    let detected = series(&metrics, "wafer_drift_detected", "model=\"credit\"");
    assert_eq!(detected, Some(0.0), "{metrics}");

    send(&shifted);
    let shift = drift_until(&server, |d| d["drifted"] == true);
    let named = drifted(&shift);
    for column in ["age", "income", "debt", "country", "merchant"] {
        assert!(
            named.iter().any(|c| c == column),
            "{column} drifted: {shift}"
        );
    }
    assert!(
        !named.iter().any(|c| c == "signup"),
        "signup did not move: {shift}"
    );
    let metrics = get(&format!("{}/metrics", server.base)).text;
    assert_eq!(
        series(&metrics, "wafer_drift_detected", "model=\"credit\""),
        Some(1.0),
        "{metrics}"
    );
    let share = series(&metrics, "wafer_dataset_drift_share", "model=\"credit\"");
    assert!(share.is_some_and(|s| s >= 0.5), "{metrics}");
    let income = series(&metrics, "wafer_feature_drift", "column=\"income\"");
    assert!(metrics.contains("method=\"ks\""), "{metrics}");
    assert!(income.is_some_and(|p| p < 0.05), "{metrics}");

    // `wafer drift MODEL` over the log's newest 200 rows (the shifted records, committed by a
    // graceful stop) and over the same records from a file give one verdict, column by column.
    let mut server = server;
    server.terminate();
    let status = server.wait_exit(std::time::Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let os = std::ffi::OsStr::new;
    let (ok, out, err) = run(&[
        os("drift"),
        repo.join("credit").as_os_str(),
        os("--current"),
        os("log:200"),
        os("--log-db"),
        log.as_os_str(),
        os("--json"),
    ]);
    assert!(ok, "{err}");
    let logged: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(logged["current_rows"], 200, "{logged}");
    let mut verdicts = Vec::new();
    for side in ["unshifted", "shifted"] {
        let file = repo.with_extension(format!("{side}.jsonl"));
        let (ok, out, err) = run(&[
            os("drift"),
            repo.join("credit").as_os_str(),
            os("--current"),
            file.as_os_str(),
            os("--db"),
            db.as_os_str(),
            os("--json"),
        ]);
        assert!(ok, "{err}");
        let report: Value = serde_json::from_str(&out).expect("JSON");
        verdicts.push(report["drifted"].clone());
        if side == "shifted" {
            assert_eq!(drifted(&report), drifted(&logged), "{report}\n{logged}");
        }
    }
    assert_eq!(verdicts, [false, true]);
}
