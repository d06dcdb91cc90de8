//! No training-serving skew on `models/credit`: the same raw records give the same predictions
//! through `wafer serve` (KServe v1 instances, and v2 with one input per field), through
//! `wafer predict`, and offline (`wafer features transform` + onnxruntime, in `expected.json`).
//! Two of its fields are looked up online by `user_id` in the `users` store; the store is
//! reloaded while requests run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};

use crate::support::{
    Answer, build_dir, get, load_credit_users, load_store, post, repo_root, start_wafer_on,
    target_dir, v1_labels_and_probabilities, wafer, wafer_server,
};

/// Probabilities must agree this closely across the three paths.
const TOL: f64 = 1e-6;

struct Credit {
    records: Vec<Value>,
    labels: Vec<i64>,
    probabilities: Vec<Vec<f64>>,
}

fn credit() -> Credit {
    let dir = repo_root().join("models/credit");
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect("fixture")).expect("json")
    };
    let expected = read("expected.json");
    Credit {
        records: read("test_records.json")
            .as_array()
            .expect("records")
            .clone(),
        labels: expected["onnxruntime"]["label"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_i64().expect("i64"))
            .collect(),
        probabilities: expected["onnxruntime"]["probabilities"]
            .as_array()
            .expect("probabilities")
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("f64"))
                    .collect()
            })
            .collect(),
    }
}

fn assert_same(path: &str, c: &Credit, labels: &[i64], probabilities: &[Vec<f64>]) {
    assert_eq!(
        labels, c.labels,
        "{path}: labels differ from the offline path"
    );
    for (i, (got, want)) in probabilities.iter().zip(&c.probabilities).enumerate() {
        for (a, b) in got.iter().zip(want) {
            assert!(
                (a - b).abs() <= TOL,
                "{path} row {i}: {got:?} vs offline {want:?}"
            );
        }
    }
    assert_eq!(probabilities.len(), c.probabilities.len(), "{path}: rows");
}

/// Labels and probabilities of a v2 response.
fn v2_outputs(v: &Value) -> (Vec<i64>, Vec<Vec<f64>>) {
    let outputs = v["outputs"].as_array().expect("outputs");
    let labels = outputs[0]["data"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|x| x.as_i64().expect("i64"))
        .collect();
    let p: Vec<f64> = outputs[1]["data"]
        .as_array()
        .expect("p")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect();
    (labels, p.chunks(2).map(<[f64]>::to_vec).collect())
}

/// Labels and probabilities of a KServe v1 response.
fn v1_outputs(answer: &Answer) -> (Vec<i64>, Vec<Vec<f64>>) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    v1_labels_and_probabilities(&answer.json)
}

/// Predicts `records` through KServe v1 on the server at `base`.
fn v1(base: &str, records: &[Value]) -> (Vec<i64>, Vec<Vec<f64>>) {
    let url = format!("{base}/v1/models/credit:predict");
    v1_outputs(&post(
        &url,
        json!({"instances": records}).to_string().as_bytes(),
    ))
}

/// Whether two answers agree: labels equal, probabilities within [`TOL`].
fn agree(a: &(Vec<i64>, Vec<Vec<f64>>), b: &(Vec<i64>, Vec<Vec<f64>>)) -> bool {
    a.0 == b.0
        && a.1.len() == b.1.len()
        && a.1
            .iter()
            .flatten()
            .zip(b.1.iter().flatten())
            .all(|(x, y)| (x - y).abs() <= TOL)
}

/// The looked-up fields of a users CSV: user id to (avg_spend_30d, orders_90d).
fn users(path: &Path) -> HashMap<String, (f64, i64)> {
    let text = std::fs::read_to_string(path).expect("users csv");
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let number = |i: usize| cells[i].parse::<f64>().expect("a number");
            (cells[0].to_owned(), (number(1), number(2) as i64))
        })
        .collect()
}

/// The records carrying the looked-up fields themselves (so nothing is looked up): the users'
/// values, or the spec's defaults for users `table` lacks.
fn with_fields(records: &[Value], table: &HashMap<String, (f64, i64)>) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let (spend, orders) = r["user_id"]
                .as_str()
                .and_then(|id| table.get(id))
                .copied()
                .unwrap_or((0.0, 0));
            let mut r = r.clone();
            r["avg_spend_30d"] = json!(spend);
            r["orders_90d"] = json!(orders);
            r
        })
        .collect()
}

#[test]
fn raw_records_through_kserve_v1_match_the_offline_path() {
    v1_matches_offline(&wafer_server().base, "v1 predict");
}

/// KServe v1 instances on the server at `base` give the offline path's predictions.
fn v1_matches_offline(base: &str, path: &str) {
    let c = credit();
    let (labels, probabilities) = v1(base, &c.records);
    assert_same(path, &c, &labels, &probabilities);
}

/// The three no-skew paths through the server at `base` and `wafer predict` run with `extra`
/// arguments: KServe v1 instances, v2 with one input per field, and `wafer predict`, each
/// against the offline path.
pub(crate) fn assert_credit_paths(base: &str, extra: &[&str], flavour: &str) {
    v1_matches_offline(base, &format!("v1 predict ({flavour})"));
    v2_per_field_matches_offline(base, &format!("v2 per field ({flavour})"));
    predict_matches_offline(extra, &format!("wafer predict ({flavour})"));
}

/// The first credit test record.
pub(crate) fn first_record() -> Value {
    credit().records[0].clone()
}

#[test]
fn looked_up_fields_equal_the_store_and_absent_keys_take_the_defaults() {
    let c = credit();
    let base = &wafer_server().base;
    let table = users(&repo_root().join("models/credit/users.csv"));
    let absent: Vec<usize> = (0..c.records.len())
        .filter(|&i| !table.contains_key(c.records[i]["user_id"].as_str().expect("id")))
        .collect();
    assert!(!absent.is_empty(), "the test set has users the store lacks");
    let looked_up = v1(base, &c.records);
    // The same records carrying the store's values (defaults for absent users): same answers.
    assert!(
        agree(&looked_up, &v1(base, &with_fields(&c.records, &table))),
        "looked-up fields differ from the store's values or the defaults"
    );
    // Every user absent, or no key at all: every row takes the declared defaults.
    let defaults = v1(base, &with_fields(&c.records, &HashMap::new()));
    let unknown: Vec<Value> = c
        .records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["user_id"] = json!("no-such-user");
            r
        })
        .collect();
    let keyless: Vec<Value> = c
        .records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().expect("object").remove("user_id");
            r
        })
        .collect();
    assert!(agree(&v1(base, &unknown), &defaults), "absent keys");
    assert!(
        agree(&v1(base, &keyless), &defaults),
        "records without a key"
    );
    assert!(
        !agree(&looked_up, &defaults),
        "the store's values must change some prediction, or this test proves nothing"
    );
}

#[test]
fn reloading_the_store_while_requests_run_fails_none_and_mixes_none() {
    let c = credit();
    let dir = target_dir().join("wafer-test-lookup");
    std::fs::create_dir_all(&dir).expect("test dir");
    let db = dir.join("features.db");
    let _ = std::fs::remove_file(&db);
    let a_csv = repo_root().join("models/credit/users.csv");
    let a = users(&a_csv);
    // Version B: every user spends more and orders more.
    let b: HashMap<String, (f64, i64)> = a
        .iter()
        .map(|(id, (spend, orders))| (id.clone(), (spend * 3.0 + 50.0, orders + 9)))
        .collect();
    let b_csv: PathBuf = dir.join("users_b.csv");
    let mut text = String::from("user_id,avg_spend_30d,orders_90d\n");
    for (id, (spend, orders)) in &b {
        text.push_str(&format!("{id},{spend},{orders}\n"));
    }
    std::fs::write(&b_csv, text).expect("users_b.csv");

    load_store(&db, "users", &a_csv, "user_id");
    let db_arg = db.to_str().expect("utf-8 path");
    let server = start_wafer_on("models", &build_dir(), &["--db", db_arg]);
    let base = server.base.clone();
    let want_a = v1(&base, &with_fields(&c.records, &a));
    let want_b = v1(&base, &with_fields(&c.records, &b));
    assert!(!agree(&want_a, &want_b), "the two versions must differ");
    assert!(agree(&v1(&base, &c.records), &want_a), "version A served");
    // That one request looked up its 50 users once each; two are not in the store.
    let absent = c
        .records
        .iter()
        .filter(|r| !a.contains_key(r["user_id"].as_str().expect("id")))
        .count();
    assert_eq!(absent, 2);
    let metrics = get(&format!("{base}/metrics")).text;
    let lookups = |result: &str| {
        let series = format!(
            "wafer_feature_lookups_total{{model=\"credit\",version=\"1\",result=\"{result}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
            .trim()
            .parse::<u64>()
            .expect("a count")
    };
    assert_eq!((lookups("hit"), lookups("miss")), (48, 2));

    let reloading = AtomicBool::new(true);
    let (seen_a, seen_b, during) = std::thread::scope(|s| {
        let reloader = s.spawn(|| {
            for round in 0..10 {
                let csv = if round % 2 == 0 { &b_csv } else { &a_csv };
                load_store(&db, "users", csv, "user_id");
            }
            load_store(&db, "users", &b_csv, "user_id");
            reloading.store(false, Ordering::SeqCst);
        });
        let clients: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let (mut seen_a, mut seen_b, mut during) = (0, 0, 0);
                    while reloading.load(Ordering::SeqCst) || seen_a + seen_b < 5 {
                        let url = format!("{base}/v1/models/credit:predict");
                        let answer =
                            post(&url, json!({"instances": c.records}).to_string().as_bytes());
                        assert_eq!(
                            answer.status, 200,
                            "a request failed during a reload: {}",
                            answer.text
                        );
                        during += u32::from(reloading.load(Ordering::SeqCst));
                        let got = v1_outputs(&answer);
                        if agree(&got, &want_a) {
                            seen_a += 1;
                        } else if agree(&got, &want_b) {
                            seen_b += 1;
                        } else {
                            panic!("a response mixes the two versions of the store: {got:?}");
                        }
                    }
                    (seen_a, seen_b, during)
                })
            })
            .collect();
        reloader.join().expect("reloader");
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .fold((0, 0, 0), |(a, b, d), (x, y, z)| (a + x, b + y, d + z))
    });
    assert!(
        during > 0,
        "no request was answered while the store was reloading"
    );
    // The last load was B, and the server reads it without a restart.
    assert!(
        agree(&v1(&base, &c.records), &want_b),
        "version B served after the reloads"
    );

    // A stored value of the wrong type is the store's fault: 500 naming store, key and field.
    let bad_csv = dir.join("users_bad.csv");
    std::fs::write(
        &bad_csv,
        "user_id,avg_spend_30d,orders_90d\nu900,12.5,many\n",
    )
    .expect("csv");
    load_store(&db, "users", &bad_csv, "user_id");
    let url = format!("{base}/v1/models/credit:predict");
    let answer = post(
        &url,
        json!({"instances": [c.records[0]]}).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 500, "{}", answer.text);
    let error = answer.json["error"].as_str().expect("an error message");
    let expected =
        r#"lookup in store "users", key "u900": field "orders_90d": expected a whole number"#;
    assert!(error.contains(expected), "{error}");
    load_store(&db, "users", &b_csv, "user_id");
    assert!(agree(&v1(&base, &c.records), &want_b), "serving again");
    eprintln!(
        "{during} responses during 11 reloads; {seen_a} from version A, {seen_b} from B, none mixed"
    );
}

#[test]
fn one_v2_input_per_field_matches_the_offline_path() {
    v2_per_field_matches_offline(&wafer_server().base, "v2 per field");
}

/// v2 with one input per field on the server at `base` gives the offline path's predictions.
fn v2_per_field_matches_offline(base: &str, path: &str) {
    let c = credit();
    // BYTES cannot carry a missing string, so rows without a country stay out of this path.
    let rows: Vec<usize> = (0..c.records.len())
        .filter(|&i| !c.records[i]["country"].is_null())
        .collect();
    let column = |field: &str, datatype: &str| -> Value {
        let data: Vec<Value> = rows
            .iter()
            .map(|&i| match (&c.records[i][field], datatype) {
                (Value::Null, _) => json!("NaN"),
                (v, "BYTES") => json!(v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
                (v, _) => v.clone(),
            })
            .collect();
        json!({"name": field, "datatype": datatype, "shape": [rows.len(), 1], "data": data})
    };
    let body = json!({"inputs": [
        column("age", "FP64"), column("income", "FP64"), column("debt", "FP64"),
        column("country", "BYTES"), column("merchant", "BYTES"), column("signup", "BYTES"),
        column("user_id", "BYTES"),
    ]})
    .to_string()
    // tritonclient writes missing numbers as the bare token NaN.
    .replace("\"NaN\"", "NaN");
    let answer = post(&format!("{base}/v2/models/credit/infer"), body.as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let (labels, probabilities) = v2_outputs(&answer.json);
    let subset = Credit {
        records: vec![],
        labels: rows.iter().map(|&i| c.labels[i]).collect(),
        probabilities: rows.iter().map(|&i| c.probabilities[i].clone()).collect(),
    };
    assert_same(path, &subset, &labels, &probabilities);
}

#[test]
fn wafer_predict_on_the_same_records_matches_the_offline_path() {
    predict_matches_offline(&[], "wafer predict");
}

/// `wafer predict` with `extra` arguments gives the offline path's predictions.
fn predict_matches_offline(extra: &[&str], path: &str) {
    let c = credit();
    let db = build_dir().join("features.db");
    load_credit_users(&db);
    let out = wafer()
        .args([
            "predict",
            "models/credit",
            "--input",
            "models/credit/test_records.json",
            "--db",
        ])
        .arg(&db)
        .args(extra)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let (labels, probabilities) = v2_outputs(&v);
    assert_same(path, &c, &labels, &probabilities);
}

#[test]
fn bad_records_get_a_400_naming_field_and_row_and_the_server_keeps_serving() {
    let c = credit();
    let url = format!("{}/v1/models/credit:predict", wafer_server().base);
    let good = c.records[0].clone();
    let mut no_age = good.clone();
    no_age.as_object_mut().expect("object").remove("age");
    let mut bad_age = good.clone();
    bad_age["age"] = json!("old");
    let mut bad_time = good.clone();
    bad_time["signup"] = json!("yesterday");
    let mut bad_spend = good.clone();
    bad_spend["avg_spend_30d"] = json!("lots");
    let cases = [
        (
            json!({"instances": [good.clone(), no_age]}),
            "row 1: field \"age\" is required",
        ),
        (
            json!({"instances": [bad_age]}),
            "row 0: field \"age\": expected a number, got text (\"old\")",
        ),
        (
            json!({"instances": [bad_time]}),
            "row 0: field \"signup\": expected an RFC 3339 timestamp",
        ),
        (
            json!({"instances": [good.clone(), bad_spend]}),
            "row 1: field \"avg_spend_30d\": expected a number, got text (\"lots\")",
        ),
        (json!({"instances": []}), "\"instances\" is empty"),
        (
            json!({"rows": [good.clone()]}),
            "expected {\"instances\": [...]}",
        ),
    ];
    for (body, expected) in cases {
        let answer = post(&url, body.to_string().as_bytes());
        assert_eq!(answer.status, 400, "{body}: {}", answer.text);
        let error = answer.json["error"].as_str().expect("an error message");
        assert!(
            error.contains(expected),
            "{error} should contain {expected}"
        );
    }
    let answer = post(&url, json!({"instances": [good]}).to_string().as_bytes());
    assert_eq!(answer.status, 200, "still serving: {}", answer.text);
}
