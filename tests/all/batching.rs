//! Dynamic batching never changes an answer: 1,000 concurrent requests of mixed sizes, output
//! selections and models, bad ones among them, get from a server that batches (joining
//! requests, the default) exactly what a server that does not batch answers them, byte for
//! byte; a bad request gets its own 4xx and its neighbours in a batch succeed. Joining rows
//! into one model call gives the same labels, statuses and errors, and floats within 1e-5.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::support::{self, Server};

/// The models served, from the repository: bundled ones, raw records with lookups (credit),
/// tree ensembles, string labels and an MLP.
const MODELS: [&str; 6] = [
    "iris",
    "digits",
    "credit",
    "zoo/random_forest_classifier",
    "zoo/decision_tree_string_labels",
    "zoo/torch_mlp",
];

/// A repository of [`MODELS`] under `target/tests/batching/<name>`, each with `wafer_toml` as
/// its `wafer.toml` when given.
fn repository(name: &str, wafer_toml: Option<&str>) -> PathBuf {
    let root = support::target_dir().join("tests/batching").join(name);
    let _ = std::fs::remove_dir_all(&root);
    for model in MODELS {
        let from = support::repo_root().join("models").join(model);
        let to = root.join(model.trim_start_matches("zoo/"));
        std::fs::create_dir_all(&to).expect("model folder");
        for file in ["model.onnx", "features.toml"] {
            if from.join(file).is_file() {
                std::fs::copy(from.join(file), to.join(file)).expect("copy the model");
            }
        }
        if let Some(text) = wafer_toml {
            std::fs::write(to.join("wafer.toml"), text).expect("wafer.toml");
        }
    }
    root
}

/// Rows of numbers a model takes, from its test inputs: its input's name, and the rows.
fn rows(model: &str) -> (String, Vec<Vec<f64>>) {
    let folder = support::repo_root().join("models").join(model);
    let read = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(folder.join(file)).expect(file)).expect(file)
    };
    if folder.join("case.json").is_file() {
        let input = &read("case.json")["inputs"][0];
        let width = input["shape"][1].as_u64().expect("width") as usize;
        let flat: Vec<f64> = input["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        let name = input["name"].as_str().expect("name").to_owned();
        return (name, flat.chunks(width).map(<[f64]>::to_vec).collect());
    }
    let inputs = read("test_inputs.json");
    let rows = inputs["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number"))
                .collect()
        })
        .collect();
    (inputs["input"].as_str().expect("input").to_owned(), rows)
}

/// One request of the mix.
struct Case {
    path: String,
    body: Vec<u8>,
    /// Whether it is meant to be refused.
    bad: bool,
}

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// 1,000 requests: v2 tensors of 1 to 6 rows with every output selection, v1 credit records,
/// and about one in twelve bad: wrong shapes and datatypes, unknown outputs (which the host
/// sees), and credit records the feature spec refuses (which only the guest sees).
fn mix(outputs: &dyn Fn(&str) -> Vec<String>) -> Vec<Case> {
    let mut dice = Dice(0x5eed_ba7c_0001);
    let credit: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(support::repo_root().join("models/credit/test_records.json"))
            .unwrap(),
    )
    .unwrap();
    let tensor_models: Vec<(&str, String, Vec<Vec<f64>>)> = MODELS
        .iter()
        .filter(|m| **m != "credit")
        .map(|m| {
            let (input, rows) = rows(m);
            (m.trim_start_matches("zoo/"), input, rows)
        })
        .collect();
    let mut cases = Vec::new();
    while cases.len() < 1000 {
        let n = 1 + dice.below(6);
        let bad = dice.below(12) == 0;
        if dice.below(5) == 0 {
            let start = dice.below(credit.len() - n);
            let mut records: Vec<Value> = credit[start..start + n].to_vec();
            if bad {
                let record = &mut records[dice.below(n)];
                match dice.below(2) {
                    0 => record.as_object_mut().unwrap().remove("age"),
                    _ => record
                        .as_object_mut()
                        .unwrap()
                        .insert("signup".into(), json!("not a date")),
                };
            }
            cases.push(Case {
                path: "/v1/models/credit:predict".into(),
                body: json!({ "instances": records }).to_string().into_bytes(),
                bad,
            });
            continue;
        }
        let (model, input, rows) = &tensor_models[dice.below(tensor_models.len())];
        let start = dice.below(rows.len() - n);
        let mut width = rows[0].len();
        let mut data: Vec<f64> = rows[start..start + n].iter().flatten().copied().collect();
        let mut datatype = "FP32";
        let names = outputs(model);
        let mut asked: Vec<String> = match dice.below(3) {
            0 => vec![],
            1 => vec![names[dice.below(names.len())].clone()],
            _ => names.iter().rev().cloned().collect(),
        };
        if bad {
            match dice.below(3) {
                0 => {
                    width -= 1;
                    data.truncate(n * width);
                }
                1 => {
                    datatype = "INT64";
                    data.iter_mut().for_each(|x| *x = x.round());
                }
                _ => asked = vec!["no_such_output".into()],
            }
        }
        let mut request = json!({
            "inputs": [{ "name": input, "shape": [n, width], "datatype": datatype, "data": data }]
        });
        if !asked.is_empty() {
            request["outputs"] = asked.iter().map(|name| json!({ "name": name })).collect();
        }
        cases.push(Case {
            path: format!("/v2/models/{model}/infer"),
            body: request.to_string().into_bytes(),
            bad,
        });
    }
    cases
}

/// What a server answered one request.
#[derive(Clone, Debug, Default)]
struct Answered {
    status: u16,
    body: String,
    batch_size: u64,
    instance_predictions: u64,
}

/// Sends every case to `server` from `clients` threads at once.
fn send_all(server: &Server, cases: &[Case], clients: usize) -> Vec<Answered> {
    let answers = Mutex::new(vec![Answered::default(); cases.len()]);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let url = format!("{}{}", server.base, case.path);
                    let (answer, headers) = support::request(
                        "POST",
                        &url,
                        &[("content-type", "application/json")],
                        &case.body,
                    );
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(name))
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0)
                    };
                    let answered = Answered {
                        status: answer.status,
                        body: answer.text,
                        batch_size: header("x-wafer-batch-size"),
                        instance_predictions: header("x-wafer-instance-predictions"),
                    };
                    answers.lock().unwrap()[i] = answered;
                }
            });
        }
    });
    answers.into_inner().unwrap()
}

/// The models whose answers joining rows may change in the last bits of a float: matrix
/// products (tract's kernels sum in another order at another batch size) and softmax.
const ROWS_INEXACT: [&str; 2] = ["digits", "torch_mlp"];

#[test]
fn batching_never_changes_an_answer() {
    let alone = repository("alone", None);
    // Joining requests with no queue delay (the default): a request that finds an executor
    // free leads a batch in its own task. Joining rows waits for company: a spawned leader.
    let batched = repository("batched", Some("[dynamic_batching]\nmax_batch_size = 16\n"));
    let rows = repository(
        "rows",
        Some(
            "[dynamic_batching]\nmax_batch_size = 16\nmax_queue_delay_us = 2000\njoin = \"rows\"\n",
        ),
    );
    // One build folder: the other repositories' components are the first's, already built
    // and compiled.
    let build_dir = support::target_dir().join("tests/batching/build");
    let alone = support::start_wafer_on(alone.to_str().unwrap(), &build_dir, &[]);
    let batched = support::start_wafer_on(batched.to_str().unwrap(), &build_dir, &[]);
    let rows = support::start_wafer_on(rows.to_str().unwrap(), &build_dir, &[]);

    let outputs = |model: &str| -> Vec<String> {
        let metadata = support::get(&format!("{}/v2/models/{model}", alone.base)).json;
        metadata["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| o["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let cases = mix(&outputs);
    let expected = send_all(&alone, &cases, 8);
    let mut bad = 0;
    for (i, (case, want)) in cases.iter().zip(&expected).enumerate() {
        // The mix is what it says: bad requests are refused alone, the rest answered.
        let refused = (400..500).contains(&want.status);
        assert!(
            refused == case.bad && (refused || want.status == 200),
            "case {i} ({}): unbatched {} {}",
            case.path,
            want.status,
            want.body
        );
        bad += usize::from(case.bad);
    }
    assert!(bad >= 40, "only {bad} bad requests in the mix");

    for (server, exact) in [(&batched, true), (&rows, false)] {
        let got = send_all(server, &cases, 64);
        let mut failures = Vec::new();
        for (i, ((case, want), got)) in cases.iter().zip(&expected).zip(&got).enumerate() {
            let same = got.status == want.status
                && (got.body == want.body
                    || (!exact
                        && ROWS_INEXACT
                            .iter()
                            .any(|m| case.path.contains(&format!("/{m}/")))
                        && close(&got.body, &want.body)));
            if !same {
                failures.push(format!(
                    "case {i} ({}, in a batch of {}): {} {}\n  unbatched: {} {}",
                    case.path, got.batch_size, got.status, got.body, want.status, want.body
                ));
            }
            if got.status == 200 {
                assert_eq!(
                    got.instance_predictions, 1,
                    "case {i}: not a fresh instance"
                );
            }
        }
        let join = if exact { "requests" } else { "rows" };
        assert!(
            failures.is_empty(),
            "joining {join}: {} of {} answers changed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        // Batches did form, on every model, and the metrics count each model call once.
        for model in MODELS.map(|m| m.trim_start_matches("zoo/")) {
            let ours = |c: &Case| {
                c.path.contains(&format!("/{model}/")) || c.path.contains(&format!("/{model}:"))
            };
            let largest = cases
                .iter()
                .zip(&got)
                .filter(|(c, _)| ours(c))
                .map(|(_, a)| a.batch_size)
                .max()
                .unwrap_or(0);
            assert!(
                largest > 1,
                "joining {join}, {model}: no request was batched"
            );
        }
        let metrics = support::get(&format!("{}/metrics", server.base)).text;
        let calls: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("wafer_batch_size_count"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let answered = got.iter().filter(|a| a.batch_size > 0).count() as f64;
        assert!(
            calls > 0.0 && calls < answered,
            "joining {join}: {calls} model calls for {answered} requests"
        );
    }
}

/// Whether two v2 responses hold the same outputs: equal but for floats, which are within
/// 1e-5 (absolute or relative).
fn close(a: &str, b: &str) -> bool {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                (x - y).abs() <= 1e-5 || (x - y).abs() <= 1e-5 * y.abs()
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => same(&a, &b),
        _ => false,
    }
}

#[test]
fn a_bad_batching_table_fails_its_model_alone() {
    let root = support::target_dir().join("tests/batching/bad-config");
    let _ = std::fs::remove_dir_all(&root);
    for (name, toml) in [
        ("iris", "[dynamic_batching]\nmax_batch_size = 4\n"),
        ("digits", "[dynamic_batching]\npreferred_batch_size = [4]\n"),
    ] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            support::repo_root()
                .join("models")
                .join(name)
                .join("model.onnx"),
            dir.join("model.onnx"),
        )
        .unwrap();
        std::fs::write(dir.join("wafer.toml"), toml).unwrap();
    }
    let build_dir = support::target_dir().join("tests/batching/build");
    let server = support::start_wafer_on(root.to_str().unwrap(), &build_dir, &[]);
    let ready = support::get(&format!("{}/v2/models/digits/ready", server.base));
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(
        ready.text.contains("preferred_batch_size"),
        "the reason names the key: {}",
        ready.text
    );
    let body = support::infer_request("X", &[vec![5.1, 3.5, 1.4, 0.2]]);
    let answer = support::post(
        &format!("{}/v2/models/iris/infer", server.base),
        body.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
}

/// A client that leaves while its request leads a batch strands no one: the batch, which
/// others may have joined, still runs, and the next requests are answered.
#[test]
fn a_client_that_leaves_strands_no_batch() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    use std::time::Duration;

    let root = support::target_dir().join("tests/batching/leaving");
    let _ = std::fs::remove_dir_all(&root);
    let model = root.join("iris");
    std::fs::create_dir_all(&model).expect("model folder");
    std::fs::copy(
        support::repo_root().join("models/iris/model.onnx"),
        model.join("model.onnx"),
    )
    .expect("copy the model");
    // No queue delay: a request that finds the executor free leads the batch in its own task.
    std::fs::write(
        model.join("wafer.toml"),
        "[dynamic_batching]\nmax_batch_size = 16\n",
    )
    .expect("wafer.toml");
    let build_dir = support::target_dir().join("tests/batching/leaving-build");
    let server = support::start_wafer_on(root.to_str().unwrap(), &build_dir, &[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body =
        r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
    let request = |close: bool| {
        format!(
            "POST /v2/models/iris/infer HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        )
    };
    for round in 0..20 {
        // 64 clients send a request each and leave without reading the answer.
        let leaving: Vec<TcpStream> = (0..64)
            .filter_map(|_| {
                let mut s = TcpStream::connect(&addr).ok()?;
                s.write_all(request(false).as_bytes()).ok()?;
                Some(s)
            })
            .collect();
        drop(leaving);
        // Clients that stay are answered, and soon.
        for _ in 0..3 {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s.write_all(request(true).as_bytes()).expect("send");
            let mut answer = String::new();
            let read = s.read_to_string(&mut answer);
            assert!(
                read.is_ok() && answer.starts_with("HTTP/1.1 200"),
                "round {round}: a request after clients left was not answered within 10 s: \
                 {read:?} {answer}"
            );
        }
    }
}
