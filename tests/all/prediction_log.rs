//! The prediction log under load on 127.0.0.1: one row per successful request while the queue
//! has room; drops counted, never waited for, when it is full; every committed batch still
//! there after SIGKILL; and `wafer log export`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::support::{
    Server, build_dir, fixture, get, post, repo_root, serve_command, target_dir, wafer,
};

/// A fresh log database path for one test.
fn log_db(test: &str) -> PathBuf {
    let dir = target_dir().join("wafer-test-log").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    dir.join("predictions.db")
}

fn serve(db: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--log-db", db.to_str().expect("utf-8")];
    args.extend(extra);
    Server::start(
        serve_command(Path::new("models"), &build_dir(), &args),
        false,
    )
    .expect("wafer serve starts")
}

/// An iris request with the v2 id `id`.
fn request(id: &str) -> Vec<u8> {
    let fx = fixture("iris");
    let rows: Vec<f64> = fx.rows[0].clone();
    json!({"id": id, "inputs": [{"name": fx.input, "shape": [1, 4], "datatype": "FP32", "data": rows}]})
        .to_string()
        .into_bytes()
}

/// Rows in the log, read as another process would.
fn rows(db: &Path) -> Vec<(String, String, String, Option<String>)> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("opens");
    let mut q = conn
        .prepare("SELECT request_id, outcome, input, output FROM predictions ORDER BY id")
        .expect("the table");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Waits until `done` holds for the log's row count, or 20 s.
fn settle(db: &Path, done: impl Fn(usize) -> bool) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = rows(db).len();
        if done(n) || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` requests from `clients` threads, ids `prefix-i`; returns the ids answered 200.
fn load(base: &str, prefix: &str, n: usize, clients: usize) -> BTreeSet<String> {
    let url = format!("{base}/v2/models/iris/infer");
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (url, prefix) = (url.clone(), prefix.to_owned());
            std::thread::spawn(move || {
                (c..n)
                    .step_by(clients)
                    .filter_map(|i| {
                        let id = format!("{prefix}-{i}");
                        (post(&url, &request(&id)).status == 200).then_some(id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a client"))
        .collect()
}

fn dropped(base: &str) -> f64 {
    get(&format!("{base}/metrics"))
        .text
        .lines()
        .find_map(|l| l.strip_prefix("wafer_prediction_log_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the dropped counter")
}

#[test]
fn every_successful_request_is_logged_once() {
    let db = log_db("every");
    let server = serve(&db, &[]);
    let ok = load(&server.base, "r", 600, 4);
    assert_eq!(ok.len(), 600, "every request succeeds");
    settle(&db, |n| n >= ok.len());
    let logged = rows(&db);
    let ids: Vec<&String> = logged.iter().map(|r| &r.0).collect();
    let unique: BTreeSet<String> = ids.iter().map(|s| (*s).clone()).collect();
    assert_eq!(ids.len(), unique.len(), "no request logged twice");
    assert_eq!(unique, ok, "the log holds exactly the successful requests");
    for (id, outcome, input, output) in &logged {
        assert_eq!(outcome, "ok", "{id}");
        let input: Value = serde_json::from_str(input).expect("the input is JSON");
        assert_eq!(input["id"], id.as_str());
        let output: Value = serde_json::from_str(output.as_deref().expect("an output"))
            .expect("the output is JSON");
        assert_eq!(output["outputs"][0]["name"], "label");
    }
    assert_eq!(dropped(&server.base), 0.0);

    // Export: every row, as JSON Lines and CSV.
    for ext in ["jsonl", "csv"] {
        let out = db.with_extension(ext);
        let status = wafer()
            .args(["log", "export", "--model", "iris", "--log-db"])
            .arg(&db)
            .arg("-o")
            .arg(&out)
            .status()
            .expect("wafer log export runs");
        assert!(status.success());
        let text = std::fs::read_to_string(&out).expect("the export");
        let lines = text.lines().count() - usize::from(ext == "csv");
        assert_eq!(lines, 600, "{ext}");
    }
    // Parquet, as pandas reads it.
    let parquet = db.with_extension("parquet");
    let status = wafer()
        .args(["log", "export", "--log-db"])
        .arg(&db)
        .arg("-o")
        .arg(&parquet)
        .status()
        .expect("wafer log export runs");
    assert!(status.success());
    let python = repo_root().join("tools/.venv-batch/bin/python");
    let out = std::process::Command::new(&python)
        .arg("-c")
        // Printed, then out without the interpreter's teardown: pyarrow's threads can abort
        // it there ("terminate called without an active exception"), after the answer.
        .arg("import os, sys, pandas; d = pandas.read_parquet(sys.argv[1]); print(len(d), d.request_id.nunique(), (d.outcome == 'ok').sum(), flush=True); os._exit(0)")
        .arg(&parquet)
        .output()
        .expect("pandas runs (tools/test.sh creates tools/.venv-batch)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "600 600 600");
    let none = db.with_extension("none.jsonl");
    let status = wafer()
        .args(["log", "export", "--model", "digits", "--log-db"])
        .arg(&db)
        .arg("-o")
        .arg(&none)
        .status()
        .expect("runs");
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&none).expect("written"), "");
}

#[test]
fn a_full_queue_drops_and_counts_without_slowing_requests() {
    let db = log_db("full");
    let server = serve(&db, &["--log-queue", "8"]);
    assert_eq!(load(&server.base, "warm", 10, 1).len(), 10);
    settle(&db, |n| n >= 10);
    // Hold the database's write lock, so that the writer cannot commit (it retries) and its
    // queue of 8 fills.
    let lock = Connection::open(&db).expect("opens");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    let started = Instant::now();
    let ok = load(&server.base, "busy", 300, 4);
    let took = started.elapsed();
    assert_eq!(
        ok.len(),
        300,
        "every request succeeds while the log is stuck"
    );
    lock.execute_batch("COMMIT").expect("released");
    drop(lock);
    let total = 10 + 300;
    let dropped_now = dropped(&server.base);
    assert!(
        dropped_now > 0.0,
        "the queue was full, so records were dropped"
    );
    let logged = settle(&db, |n| n as f64 + dropped_now >= total as f64);
    assert_eq!(
        logged as f64 + dropped_now,
        total as f64,
        "rows {logged} + dropped {dropped_now} = requests {total}"
    );
    eprintln!("300 requests in {took:?} with the log stuck: {logged} rows, {dropped_now} dropped");
}

#[test]
fn sigkill_keeps_every_committed_batch() {
    let db = log_db("kill");
    let mut server = serve(&db, &[]);
    let base = server.base.clone();
    let loader = std::thread::spawn(move || load(&base, "k", 3000, 4));
    let committed = settle(&db, |n| n >= 500);
    assert!(committed >= 500, "the log is being written");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = server.wait_exit(Duration::from_secs(10));
    let _ = loader.join();
    let conn = Connection::open(&db).expect("the database opens after SIGKILL");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(conn);
    let after = rows(&db);
    assert!(
        after.len() >= committed,
        "{} rows after the kill, {committed} committed before",
        after.len()
    );
    for (id, _, input, output) in &after {
        assert!(serde_json::from_str::<Value>(input).is_ok(), "{id}: input");
        assert!(
            output
                .as_deref()
                .is_some_and(|o| serde_json::from_str::<Value>(o).is_ok()),
            "{id}: output"
        );
    }
}
