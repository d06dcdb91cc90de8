//! `wafer batch`: every row gets what `wafer serve` gives it, in every input and output format;
//! Parquet in and out as pandas writes and reads it (tools/.venv-batch); bad rows go to the
//! rejects file and the rest are scored; a job killed with SIGKILL at random points and resumed
//! each time ends with the bytes of a run never interrupted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader as _, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Value, json};

use crate::support::{
    build_dir, fixture, infer_request, labels_and_probabilities, post, repo_root, target_dir,
    wafer, wafer_server,
};

/// A scratch folder of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("wafer-test-batch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// The Python of tools/.venv-batch (pandas, pyarrow), made by tools/test.sh.
fn python(script: &str, args: &[&Path]) -> String {
    let venv = repo_root().join("tools/.venv-batch/bin/python");
    let out = Command::new(&venv)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} (run tools/test.sh): {e}", venv.display()));
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Converts a CSV file to Parquet as pandas does by default (pyarrow, snappy, nullable
/// columns); `text` names columns read as strings.
fn pandas_parquet(csv: &Path, parquet: &Path, text: &[&str]) {
    let dtypes: Vec<String> = text.iter().map(|c| format!("'{c}': 'string'")).collect();
    python(
        &format!(
            "import sys, pandas as pd\n\
             df = pd.read_csv(sys.argv[1], dtype={{{}}})\n\
             df.to_parquet(sys.argv[2])",
            dtypes.join(", ")
        ),
        &[csv, parquet],
    );
}

fn batch(model: &str, input: &Path, output: &Path, extra: &[&str]) -> Output {
    wafer()
        .args(["batch", model, "--quiet", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .arg("--build-dir")
        .arg(build_dir())
        .args(extra)
        .output()
        .expect("wafer batch runs")
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An output file's rows, each a map of column to value (numbers as numbers).
fn read_rows(path: &Path) -> Vec<BTreeMap<String, Value>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "csv" => {
            let mut reader = csv::Reader::from_path(path).expect("csv");
            let header: Vec<String> = reader
                .headers()
                .expect("header")
                .iter()
                .map(str::to_owned)
                .collect();
            reader
                .records()
                .map(|r| {
                    let r = r.expect("row");
                    header
                        .iter()
                        .zip(r.iter())
                        .map(|(h, cell)| {
                            let v = cell
                                .parse::<f64>()
                                .map_or_else(|_| json!(cell), |n| json!(n));
                            (h.clone(), v)
                        })
                        .collect()
                })
                .collect()
        }
        "jsonl" => std::fs::read_to_string(path)
            .expect("jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect(),
        "parquet" => {
            let reader = SerializedFileReader::new(std::fs::File::open(path).expect("parquet"))
                .expect("a Parquet file");
            reader
                .get_row_iter(None)
                .expect("rows")
                .map(|r| {
                    r.expect("row")
                        .get_column_iter()
                        .map(|(name, field)| {
                            let v = match field {
                                Field::Long(n) => json!(n),
                                Field::Float(x) => json!(x),
                                Field::Double(x) => json!(x),
                                Field::Str(s) => json!(s),
                                Field::Bool(b) => json!(b),
                                other => panic!("{name}: unexpected {other}"),
                            };
                            (name.clone(), v)
                        })
                        .collect()
                })
                .collect()
        }
        other => panic!("unknown output format {other}"),
    }
}

/// A row's label and probabilities, by the output's column names.
fn prediction(row: &BTreeMap<String, Value>, classes: usize) -> (i64, Vec<f32>) {
    let number = |k: &str| -> f64 {
        match &row[k] {
            Value::Number(n) => n.as_f64().expect("f64"),
            Value::String(s) => s.parse().expect("a number"),
            other => panic!("{k}: {other}"),
        }
    };
    #[expect(clippy::cast_possible_truncation, reason = "labels and FP32 outputs")]
    (
        number("label") as i64,
        (0..classes)
            .map(|c| number(&format!("probabilities_{c}")) as f32)
            .collect(),
    )
}

/// What `wafer serve` answers for rows of numbers, as FP32.
fn served(model: &str, input: &str, rows: &[Vec<f64>]) -> Vec<(i64, Vec<f32>)> {
    let url = format!("{}/v2/models/{model}/infer", wafer_server().base);
    let answer = post(&url, infer_request(input, rows).to_string().as_bytes());
    assert_eq!(answer.status, 200, "{}", answer.text);
    fp32(labels_and_probabilities(&answer.json))
}

/// Labels and probabilities as `(label, FP32 probabilities)` per row.
fn fp32((labels, probabilities): (Vec<i64>, Vec<Vec<f64>>)) -> Vec<(i64, Vec<f32>)> {
    #[expect(clippy::cast_possible_truncation, reason = "FP32 outputs")]
    labels
        .into_iter()
        .zip(probabilities)
        .map(|(l, p)| (l, p.into_iter().map(|x| x as f32).collect()))
        .collect()
}

/// Writes rows of numbers as CSV (`f0..`) and as JSON lines of arrays, and the CSV as
/// pandas's Parquet.
fn numeric_inputs(dir: &Path, rows: &[Vec<f64>]) -> Vec<PathBuf> {
    let width = rows[0].len();
    let header: Vec<String> = (0..width).map(|i| format!("f{i}")).collect();
    let mut csv = header.join(",") + "\n";
    let mut jsonl = String::new();
    for r in rows {
        let cells: Vec<String> = r.iter().map(ToString::to_string).collect();
        csv += &(cells.join(",") + "\n");
        jsonl += &(json!(r).to_string() + "\n");
    }
    let paths = [
        dir.join("in.csv"),
        dir.join("in.jsonl"),
        dir.join("in.parquet"),
    ];
    std::fs::write(&paths[0], csv).expect("write");
    std::fs::write(&paths[1], jsonl).expect("write");
    pandas_parquet(&paths[0], &paths[2], &[]);
    paths.to_vec()
}

#[test]
fn iris_and_digits_rows_get_what_serve_gives_in_every_format() {
    for (model, classes) in [("iris", 3), ("digits", 10)] {
        let f = fixture(model);
        let expected = served(model, &f.input, &f.rows);
        let dir = scratch(model);
        for input in numeric_inputs(&dir, &f.rows) {
            for ext in ["csv", "jsonl", "parquet"] {
                let in_ext = input.extension().and_then(|e| e.to_str()).unwrap_or("");
                let output = dir.join(format!("out-from-{in_ext}.{ext}"));
                let out = batch(&format!("models/{model}"), &input, &output, &[]);
                assert_exit(&out, 0, &format!("{model}: {in_ext} → {ext}"));
                let rows = read_rows(&output);
                assert_eq!(rows.len(), f.rows.len(), "{model}: {in_ext} → {ext}");
                for (i, row) in rows.iter().enumerate() {
                    assert_eq!(
                        row["row"].as_f64(),
                        Some(i as f64),
                        "{model}: rows stay in order"
                    );
                    assert_eq!(
                        prediction(row, classes),
                        expected[i],
                        "{model}: {in_ext} → {ext}, row {i}"
                    );
                }
            }
        }
    }
}

/// credit's 50 test records, each with the fields a CSV holds.
fn credit_records() -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join("models/credit/test_records.json"))
        .expect("records");
    serde_json::from_str(&text).expect("JSON")
}

const CREDIT_FIELDS: [&str; 7] = [
    "user_id", "age", "income", "debt", "country", "merchant", "signup",
];

/// `n` rows of credit's records repeated, with a `txn` id, as CSV; `bad(i)` may replace row
/// `i`'s cells (in `CREDIT_FIELDS` order) to make it one the spec refuses.
fn credit_csv(path: &Path, n: usize, bad: impl Fn(usize) -> Option<String>) {
    let records = credit_records();
    let mut text = format!("txn,{}\n", CREDIT_FIELDS.join(","));
    for i in 0..n {
        let cells = bad(i).unwrap_or_else(|| {
            let r = &records[i % records.len()];
            let cells: Vec<String> = CREDIT_FIELDS
                .iter()
                .map(|f| match &r[*f] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            cells.join(",")
        });
        text += &format!("t{i},{cells}\n");
    }
    std::fs::write(path, text).expect("write");
}

/// What `wafer serve` answers for credit's records, through KServe v1 (with lookups).
fn credit_served() -> Vec<(i64, Vec<f32>)> {
    let url = format!("{}/v1/models/credit:predict", wafer_server().base);
    let answer = post(
        &url,
        json!({ "instances": credit_records() })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    fp32(crate::support::v1_labels_and_probabilities(&answer.json))
}

fn credit_db() -> PathBuf {
    // The shared server's store, loaded with models/credit/users.csv.
    let _ = wafer_server();
    build_dir().join("features.db")
}

#[test]
fn credit_records_with_lookups_get_what_serve_gives_in_every_format() {
    const ROWS: usize = 100_000;
    let expected = credit_served();
    let dir = scratch("credit");
    let csv = dir.join("in.csv");
    credit_csv(&csv, ROWS, |_| None);
    // The same rows as JSON lines, and as pandas's Parquet (ids and text columns as strings).
    let records = credit_records();
    let mut jsonl = String::new();
    for i in 0..ROWS {
        let mut r = records[i % records.len()].clone();
        r["txn"] = json!(format!("t{i}"));
        jsonl += &(r.to_string() + "\n");
    }
    let jsonl_path = dir.join("in.jsonl");
    std::fs::write(&jsonl_path, jsonl).expect("write");
    let parquet = dir.join("in.parquet");
    pandas_parquet(
        &csv,
        &parquet,
        &["txn", "user_id", "country", "merchant", "signup"],
    );
    let db = credit_db();
    let db = db.to_str().expect("path");
    let runs = [
        (&csv, "csv"),
        (&csv, "jsonl"),
        (&csv, "parquet"),
        (&jsonl_path, "csv"),
        (&parquet, "csv"),
    ];
    for (input, ext) in runs {
        let in_ext = input.extension().and_then(|e| e.to_str()).unwrap_or("");
        let output = dir.join(format!("out-from-{in_ext}.{ext}"));
        let out = batch(
            "models/credit",
            input,
            &output,
            &["--id-column", "txn", "--db", db],
        );
        assert_exit(&out, 0, &format!("credit: {in_ext} → {ext}"));
        let rows = read_rows(&output);
        assert_eq!(rows.len(), ROWS, "credit: {in_ext} → {ext}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["txn"], json!(format!("t{i}")), "rows stay in order");
            assert_eq!(
                prediction(row, 2),
                expected[i % expected.len()],
                "credit: {in_ext} → {ext}, row {i}"
            );
        }
    }
    // pandas reads the Parquet that wafer wrote: the same ids and numbers as the CSV.
    let from_pandas = python(
        "import sys, pandas as pd\n\
         df = pd.read_parquet(sys.argv[1])\n\
         print(df.dtypes.to_dict())\n\
         print(len(df), df['txn'].iloc[-1], int(df['label'].sum()), repr(float(df['probabilities_1'].sum())))",
        &[&dir.join("out-from-csv.parquet")],
    );
    let csv_rows = read_rows(&dir.join("out-from-csv.csv"));
    let labels: f64 = csv_rows
        .iter()
        .map(|r| r["label"].as_f64().expect("label"))
        .sum();
    #[expect(clippy::cast_possible_truncation, reason = "FP32 outputs")]
    let p1: f32 = csv_rows
        .iter()
        .map(|r| r["probabilities_1"].as_f64().expect("p") as f32)
        .sum();
    let lines: Vec<&str> = from_pandas.lines().collect();
    assert!(
        lines[0].contains("'txn': dtype('O')") || lines[0].contains("'txn': string"),
        "{from_pandas}"
    );
    assert!(
        lines[0].contains("'label': dtype('int64')"),
        "{from_pandas}"
    );
    assert!(
        lines[0].contains("'probabilities_1': dtype('float32')"),
        "{from_pandas}"
    );
    let fields: Vec<&str> = lines[1].split(' ').collect();
    assert_eq!(fields[0], ROWS.to_string(), "{from_pandas}");
    assert_eq!(fields[1], format!("t{}", ROWS - 1), "{from_pandas}");
    assert_eq!(fields[2], format!("{labels}"), "{from_pandas}");
    // pandas sums FP32 in its own order; the totals agree to FP32 rounding.
    let pandas_p1: f64 = fields[3].parse().expect("a sum");
    assert!(
        (pandas_p1 - f64::from(p1)).abs() < 1e-2 * f64::from(p1).max(1.0),
        "{pandas_p1} vs {p1}"
    );
}

/// Row `i` made bad when `i % 100 == 37`, three kinds in turn: a value of the wrong type, a
/// required field missing, a row with too few cells.
fn one_percent_bad(i: usize) -> Option<String> {
    if i % 100 != 37 {
        return None;
    }
    Some(match (i / 100) % 3 {
        0 => "u1,old,1000,,FR,mcc1,1747392028".into(),
        1 => "u1,40,1000,,FR,mcc1,".into(),
        _ => "u1,40,1000".into(),
    })
}

#[test]
fn one_percent_of_bad_rows_go_to_the_rejects_and_the_rest_are_scored() {
    const ROWS: usize = 10_000;
    let dir = scratch("rejects");
    let input = dir.join("in.csv");
    credit_csv(&input, ROWS, one_percent_bad);
    let output = dir.join("out.csv");
    let rejects = dir.join("rejects.csv");
    let db = credit_db();
    let out = batch(
        "models/credit",
        &input,
        &output,
        &[
            "--id-column",
            "txn",
            "--rejects",
            rejects.to_str().expect("path"),
            "--db",
            db.to_str().expect("path"),
        ],
    );
    assert_exit(&out, 3, "some rows rejected");
    let bad: Vec<usize> = (0..ROWS)
        .filter(|&i| one_percent_bad(i).is_some())
        .collect();
    assert_eq!(bad.len(), ROWS / 100);
    let rejected = read_rows(&rejects);
    let rows: Vec<usize> = rejected
        .iter()
        .map(|r| r["row"].as_f64().expect("row") as usize)
        .collect();
    assert_eq!(rows, bad, "exactly the bad rows, in order");
    for r in &rejected {
        let row = r["row"].as_f64().expect("row") as usize;
        assert_eq!(r["id"], json!(format!("t{row}")));
        let reason = r["reason"].as_str().expect("reason");
        let want = match (row / 100) % 3 {
            0 => "field \"age\": expected a number, got text (\"old\")",
            1 => "field \"signup\" is required",
            _ => "4 cells where the header has 8",
        };
        assert!(reason.contains(want), "row {row}: {reason}");
    }
    let scored = read_rows(&output);
    assert_eq!(scored.len(), ROWS - bad.len());
    let ids: Vec<String> = scored
        .iter()
        .map(|r| r["txn"].as_str().expect("id").to_owned())
        .collect();
    let want: Vec<String> = (0..ROWS)
        .filter(|i| !bad.contains(i))
        .map(|i| format!("t{i}"))
        .collect();
    assert_eq!(ids, want, "every other row scored, in order");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} rows scored, {} rejected",
            ROWS - bad.len(),
            bad.len()
        )),
        "{stderr}"
    );
}

/// A small deterministic generator for the kill points (xorshift).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_job_killed_at_random_points_and_resumed_ends_with_the_uninterrupted_bytes() {
    const ROWS: usize = 100_000;
    let dir = scratch("resume");
    let input = dir.join("in.csv");
    credit_csv(&input, ROWS, one_percent_bad);
    let db = credit_db();
    let args = |output: &Path, rejects: &Path| -> Vec<String> {
        [
            "--id-column",
            "txn",
            "--chunk",
            "500",
            "--workers",
            "2",
            "--resume",
            "--db",
            db.to_str().expect("path"),
            "--rejects",
            rejects.to_str().expect("path"),
            "--output",
            output.to_str().expect("path"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    };
    let command = |output: &Path, rejects: &Path| -> Command {
        let mut cmd = wafer();
        cmd.args(["batch", "models/credit", "--quiet", "--input"])
            .arg(&input)
            .arg("--build-dir")
            .arg(build_dir())
            .args(args(output, rejects));
        cmd
    };
    // The run never interrupted.
    let (whole, whole_rejects) = (dir.join("whole.csv"), dir.join("whole-rejects.csv"));
    let started = Instant::now();
    let out = command(&whole, &whole_rejects).output().expect("runs");
    assert_exit(&out, 3, "the uninterrupted run");
    let took = started.elapsed();

    // The same job killed at random points, resumed each time: after a random number of
    // committed chunks (the first time, before any, while it loads), and a random moment more.
    let (output, rejects) = (dir.join("out.csv"), dir.join("rejects.csv"));
    let work = dir.join(".out.csv.wafer-batch");
    let log = work.join("commits.log");
    let commits = || {
        std::fs::read_to_string(&log)
            .map(|l| l.lines().count())
            .unwrap_or(0)
    };
    let seed = 0x5eed_0000 + u64::from(std::process::id());
    let mut random = Random(seed);
    const CHUNKS: u64 = (ROWS / 500) as u64;
    let mut targets: Vec<u64> = (0..6).map(|_| 1 + random.below(CHUNKS - 10)).collect();
    targets[0] = 0;
    targets.sort_unstable();
    let mut commits_seen = Vec::new();
    for target in &targets {
        let mut child = command(&output, &rejects)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starts");
        let deadline = Instant::now() + took * 4 + Duration::from_secs(30);
        while (commits() as u64) < *target {
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the job ended before {target} commits (seed {seed})"
            );
            assert!(Instant::now() < deadline, "no progress (seed {seed})");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(random.below(if *target == 0 {
            300
        } else {
            15
        })));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        assert!(
            !output.exists(),
            "the output appears only when the job is done"
        );
        commits_seen.push(commits());
    }
    assert!(
        commits_seen.windows(2).all(|w| w[0] <= w[1]) && commits_seen[5] > 0,
        "the killed runs made progress (seed {seed}): {commits_seen:?}"
    );
    let out = command(&output, &rejects).output().expect("runs");
    assert_exit(&out, 3, "the resumed run");
    assert!(
        std::fs::read(&output).expect("output") == std::fs::read(&whole).expect("whole"),
        "the resumed output differs from the uninterrupted one (seed {seed}, commits at kills \
         {commits_seen:?})"
    );
    assert_eq!(
        std::fs::read(&rejects).expect("rejects"),
        std::fs::read(&whole_rejects).expect("rejects"),
        "the rejects differ (seed {seed})"
    );
    assert!(!work.exists(), "the work folder is removed at the end");
}

#[test]
fn a_job_refuses_inputs_that_do_not_fit_and_an_unfinished_run_without_resume() {
    let dir = scratch("refusals");
    let f = fixture("iris");
    let inputs = numeric_inputs(&dir, &f.rows[..5]);
    let output = dir.join("out.csv");
    let out = batch("models/iris", &inputs[0], &output, &["--columns", "f0,f1"]);
    assert_exit(&out, 2, "two columns for a four-column input");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("takes 4 columns, and 2 are chosen"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = batch("models/iris", &inputs[0], &dir.join("out.xlsx"), &[]);
    assert_exit(&out, 1, "an unknown output format");
    // A work folder left by a killed run is not overwritten without --resume.
    let work = dir.join(".out.csv.wafer-batch");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("manifest.json"), "{}").expect("write");
    let out = batch("models/iris", &inputs[0], &output, &[]);
    assert_exit(&out, 1, "an interrupted run in the way");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --resume"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
