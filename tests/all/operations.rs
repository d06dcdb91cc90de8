//! Production operations: the repository API behind its token, versions side by side, live
//! model swaps under load, overload, limits, and the drain on SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    Server, build_dir, fixture, get, hostile_wasm, infer_request, labels_and_probabilities, post,
    repo_root, request, serve_command, target_dir,
};

/// The bearer token the tests' servers take.
const TOKEN: &str = "test-admin-token";

/// A fresh, empty model repository for one test.
pub(crate) fn repository(test: &str) -> PathBuf {
    let dir = target_dir().join("wafer-test-ops").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test repository");
    dir
}

/// Copies `model` (a path under the workspace) to `dest`, creating its folder.
pub(crate) fn place(model: &str, dest: &Path) {
    std::fs::create_dir_all(dest.parent().expect("a folder")).expect("creating the folder");
    std::fs::copy(repo_root().join(model), dest).expect("copying the model");
}

/// `wafer serve REPO` with the admin token and `extra` arguments, its own feature database.
pub(crate) fn serve(repo: &Path, extra: &[&str]) -> Server {
    let token = repo.with_extension("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("writing the token");
    let db = repo.with_extension("db");
    let mut args = vec!["--admin-token-file", token.to_str().expect("utf-8 path")];
    args.extend(["--db", db.to_str().expect("utf-8 path")]);
    args.extend(extra);
    let build = build_dir()
        .join("ops")
        .join(repo.file_name().expect("a name"));
    let mut cmd = serve_command(repo, &build, &args);
    // Loads, swaps and refusals show in a failed test's output.
    cmd.env("WAFER_LOG", "warn,wafer_host::serving=info");
    Server::start(cmd, false).expect("wafer serve starts")
}

/// A management call with the token.
fn admin(server: &Server, method: &str, path: &str) -> crate::support::Answer {
    let auth = format!("Bearer {TOKEN}");
    let url = format!("{}{path}", server.base);
    request(method, &url, &[("authorization", &auth)], b"").0
}

/// The body of an inference on the first `n` iris test rows.
pub(crate) fn iris_request(n: usize) -> String {
    let fx = fixture("iris");
    infer_request(&fx.input, &fx.rows[..n]).to_string()
}

#[test]
fn repository_api_is_off_without_a_token_and_guarded_with_one() {
    let repo = repository("auth");
    place("models/iris/model.onnx", &repo.join("iris/model.onnx"));
    let build = build_dir().join("ops/auth-off");
    let off = Server::start(
        serve_command(&repo, &build, &["--db", "target/wafer-test-ops/auth.db"]),
        false,
    )
    .expect("wafer serve starts");
    for (method, path) in [
        ("GET", "/v2/repository/index"),
        ("POST", "/v2/repository/index"),
        ("POST", "/v2/repository/models/iris/unload"),
        ("POST", "/v2/repository/models/iris/load"),
    ] {
        let (answer, _) = request(method, &format!("{}{path}", off.base), &[], b"");
        assert_eq!(answer.status, 404, "{method} {path} with the API off");
        assert!(answer.json["error"].is_string(), "{}", answer.text);
    }
    drop(off);

    let on = serve(&repo, &[]);
    let index = format!("{}/v2/repository/index", on.base);
    for auth in [None, Some("Bearer wrong"), Some(TOKEN), Some("Bearer ")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (answer, response_headers) = request("GET", &index, &headers, b"");
        assert_eq!(answer.status, 401, "{auth:?}: {}", answer.text);
        assert!(answer.json["error"].is_string());
        assert!(
            response_headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Bearer")),
            "{response_headers:?}"
        );
    }
    let unload = format!("{}/v2/repository/models/iris/unload", on.base);
    assert_eq!(request("POST", &unload, &[], b"").0.status, 401);
    assert_eq!(
        post(
            &format!("{}/v2/models/iris/infer", on.base),
            iris_request(1).as_bytes()
        )
        .status,
        200,
        "a refused unload unloads nothing"
    );
    let listed = admin(&on, "POST", "/v2/repository/index");
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.json,
        json!([{"name": "iris", "version": "1", "state": "READY", "reason": ""}])
    );
    // Model names are folder names: nothing outside the repository is reachable.
    for name in ["..", ".hidden", "a%2F..%2F..", "%2e%2e"] {
        let answer = admin(&on, "POST", &format!("/v2/repository/models/{name}/load"));
        assert!(
            matches!(answer.status, 400 | 404),
            "{name}: {} {}",
            answer.status,
            answer.text
        );
    }
    let server_meta = get(&format!("{}/v2", on.base)).json;
    assert_eq!(server_meta["extensions"], json!(["model_repository"]));
}

#[test]
fn versions_are_served_side_by_side() {
    let repo = repository("versions");
    place("models/iris/model.onnx", &repo.join("iris/1/model.onnx"));
    place(
        "models/zoo/scaler_logreg/model.onnx",
        &repo.join("iris/2/model.onnx"),
    );
    // Version 3 exists on disk, but the policy serves 1 and 2 only.
    place("models/iris/model.onnx", &repo.join("iris/3/model.onnx"));
    std::fs::write(
        repo.join("iris/wafer.toml"),
        "version_policy = { specific = [1, 2] }\n",
    )
    .expect("writing wafer.toml");
    let server = serve(&repo, &[]);

    // Version 1 is models/iris: its test set against onnxruntime's outputs.
    let fx = fixture("iris");
    let v1 = post(
        &format!("{}/v2/models/iris/versions/1/infer", server.base),
        infer_request(&fx.input, &fx.rows).to_string().as_bytes(),
    );
    assert_eq!(v1.status, 200, "{}", v1.text);
    assert_eq!(v1.json["model_version"], "1");
    crate::support::assert_matches(
        "iris v1",
        &labels_and_probabilities(&v1.json),
        &fx.sklearn_labels,
        &fx.ort_probabilities,
        1e-5,
    );

    // Version 2 is the zoo's scaler_logreg: its own case against onnxruntime's outputs.
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/zoo/scaler_logreg/case.json"))
            .expect("reading case.json"),
    )
    .expect("case.json parses");
    for route in ["/v2/models/iris/versions/2/infer", "/v2/models/iris/infer"] {
        let v2 = post(
            &format!("{}{route}", server.base),
            json!({"inputs": case["inputs"]}).to_string().as_bytes(),
        );
        assert_eq!(v2.status, 200, "{route}: {}", v2.text);
        assert_eq!(v2.json["model_version"], "2", "{route} answers the newest");
        for expected in case["onnxruntime"].as_array().expect("outputs") {
            let got = v2.json["outputs"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["name"] == expected["name"]))
                .unwrap_or_else(|| panic!("{route}: no output {}", expected["name"]));
            let (got, want) = (got["data"].as_array(), expected["data"].as_array());
            let (got, want) = (got.expect("data"), want.expect("data"));
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                let (g, w) = (g.as_f64().expect("number"), w.as_f64().expect("number"));
                assert!((g - w).abs() <= 1e-5, "{route}: {g} vs onnxruntime {w}");
            }
        }
    }
    let missing = post(
        &format!("{}/v2/models/iris/versions/3/infer", server.base),
        iris_request(1).as_bytes(),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);

    let index = admin(&server, "GET", "/v2/repository/index");
    assert_eq!(
        index.json,
        json!([
            {"name": "iris", "version": "1", "state": "READY", "reason": ""},
            {"name": "iris", "version": "2", "state": "READY", "reason": ""},
        ])
    );
    let list = get(&format!("{}/v2/models", server.base)).json;
    assert_eq!(list["models"][0]["versions"], json!(["1", "2"]));
    let meta = get(&format!("{}/v2/models/iris/versions/1", server.base)).json;
    assert_eq!(meta["versions"], json!(["1", "2"]));
    let ready = get(&format!("{}/v2/models/iris/versions/2/ready", server.base));
    assert_eq!(ready.status, 200);

    // Metrics carry the real version.
    let metrics = get(&format!("{}/metrics", server.base)).text;
    for version in ["1", "2"] {
        let line = format!(
            "wafer_inference_request_success_total{{model=\"iris\",version=\"{version}\"}}"
        );
        assert!(metrics.contains(&line), "no {line} in\n{metrics}");
    }
}

/// Answers seen by the load threads: when each was sent and answered, the status, and the
/// outputs.
type Seen = Arc<Mutex<Vec<(Instant, Instant, u16, Value)>>>;

#[test]
fn models_swap_under_load_without_a_failed_request() {
    let repo = repository("swap");
    let model = repo.join("iris/model.onnx");
    let (a, b) = (
        "models/iris/model.onnx",
        "models/zoo/scaler_logreg/model.onnx",
    );
    place(a, &model);
    let server = serve(&repo, &["--watch", "--watch-interval-ms", "100"]);
    let infer = format!("{}/v2/models/iris/infer", server.base);
    let body = iris_request(5);
    let outputs_now = || {
        let answer = post(&infer, body.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json["outputs"].clone()
    };
    let answer_a = outputs_now();

    // Bounded load: four clients for as long as the swaps take (at most ten minutes).
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (seen, stop, infer, body) = (
                Arc::clone(&seen),
                Arc::clone(&stop),
                infer.clone(),
                body.clone(),
            );
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(600);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let sent = Instant::now();
                    let answer = post(&infer, body.as_bytes());
                    let outputs = answer.json["outputs"].clone();
                    let entry = (sent, Instant::now(), answer.status, outputs);
                    seen.lock().expect("lock").push(entry);
                }
            })
        })
        .collect();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        // A swap builds and compiles a component: seconds, more on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(180);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Five swaps, B A B A B, through --watch.
    let mut answer_b = None;
    for (i, source) in [b, a, b, a, b].into_iter().enumerate() {
        place(source, &model);
        if source == b && answer_b.is_none() {
            wait_for("the first swap", &|| outputs_now() != answer_a);
            answer_b = Some(outputs_now());
        }
        let want = if source == a {
            answer_a.clone()
        } else {
            answer_b.clone().expect("learned")
        };
        wait_for(&format!("swap {}", i + 1), &|| outputs_now() == want);
    }
    let answer_b = answer_b.expect("learned");
    assert_ne!(answer_a, answer_b);

    // A corrupt model is refused; B keeps serving.
    std::fs::write(&model, b"\x08\x07not an onnx model").expect("writing garbage");
    wait_for("the refusal", &|| {
        let index = admin(&server, "GET", "/v2/repository/index").json;
        index[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("update refused"))
    });
    let index = admin(&server, "GET", "/v2/repository/index").json;
    assert_eq!(index[0]["state"], "READY", "{index}");
    assert_eq!(outputs_now(), answer_b, "the old version serves");
    let ready = get(&format!("{}/v2/models/iris/ready", server.base));
    assert_eq!(ready.status, 200);
    place(a, &model);
    wait_for("the repair", &|| outputs_now() == answer_a);

    // Unload and load again, through the API.
    let unload_started = Instant::now();
    assert_eq!(
        admin(&server, "POST", "/v2/repository/models/iris/unload").status,
        200
    );
    let gone = post(&infer, body.as_bytes());
    assert_eq!(gone.status, 503, "{}", gone.text);
    let loaded = admin(&server, "POST", "/v2/repository/models/iris/load");
    assert_eq!(loaded.status, 200, "{}", loaded.text);
    let unload_ended = Instant::now();
    assert_eq!(outputs_now(), answer_a);
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a load client");
    }
    let seen = seen.lock().expect("lock");
    let (mut from_a, mut from_b) = (0, 0);
    for (sent, answered, status, outputs) in seen.iter() {
        let in_unload = *answered >= unload_started && *sent <= unload_ended;
        if *status != 200 {
            assert!(in_unload, "status {status} outside the unload window");
            assert_eq!(*status, 503);
            continue;
        }
        if *outputs == answer_a {
            from_a += 1;
        } else if *outputs == answer_b {
            from_b += 1;
        } else {
            panic!("an answer from neither version: {outputs}");
        }
    }
    eprintln!(
        "{} requests under load: {from_a} answered by A, {from_b} by B",
        seen.len()
    );
    assert!(from_a > 0 && from_b > 0, "the load saw both versions");
}

/// A repository holding the hostile component as `hostile` and iris.
fn hostile_repository(test: &str) -> PathBuf {
    let repo = repository(test);
    std::fs::create_dir_all(repo.join("hostile")).expect("creating the folder");
    std::fs::copy(hostile_wasm(), repo.join("hostile/model.wasm")).expect("copying");
    place("models/iris/model.onnx", &repo.join("iris/model.onnx"));
    repo
}

/// A request to the hostile model: behaviour `mode`, `arg` its argument.
fn hostile(mode: u32, arg: u32) -> String {
    json!({"inputs": [{"name": "X", "shape": [1, 2], "datatype": "FP32", "data": [mode, arg]}]})
        .to_string()
}

/// The value of the samples of `name` whose labels include `labels`, summed.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn overload_answers_503_at_once_and_health_stays_responsive() {
    let repo = hostile_repository("overload");
    let server = serve(
        &repo,
        &[
            "--model-concurrency",
            "2",
            "--queue-depth",
            "2",
            "--queue-timeout-ms",
            "300",
            "--max-body",
            "4K",
            "--max-header-bytes",
            "2K",
        ],
    );
    let infer = format!("{}/v2/models/hostile/infer", server.base);
    // Ten times the limit, each request holding its slot for 1.5 s.
    let slow = hostile(6, 1500);
    let started = Instant::now();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (infer, slow) = (infer.clone(), slow.clone());
            std::thread::spawn(move || {
                let (answer, headers) = request(
                    "POST",
                    &infer,
                    &[("content-type", "application/json")],
                    slow.as_bytes(),
                );
                (answer, headers, started.elapsed())
            })
        })
        .collect();
    // Health answers at once while the model is saturated.
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        let asked = Instant::now();
        assert_eq!(get(&format!("{}/v2/health/ready", server.base)).status, 200);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "health was slow"
        );
        let other = post(
            &format!("{}/v2/models/iris/infer", server.base),
            iris_request(1).as_bytes(),
        );
        assert_eq!(other.status, 200, "another model still serves");
    }
    let (mut admitted, mut refused) = (0, 0);
    for r in requests {
        let (answer, headers, elapsed) = r.join().expect("a client");
        match answer.status {
            200 => admitted += 1,
            503 => {
                refused += 1;
                assert!(
                    answer.json["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("overloaded"))
                );
                assert!(
                    headers
                        .iter()
                        .any(|(n, v)| n.eq_ignore_ascii_case("retry-after") && v == "1"),
                    "{headers:?}"
                );
                assert!(
                    elapsed < Duration::from_millis(1200),
                    "a refusal took {elapsed:?}: not within the wait deadline"
                );
            }
            other => panic!("status {other}: {}", answer.text),
        }
    }
    assert_eq!((admitted, refused), (2, 18), "the limit admits two at once");
    let metrics = get(&format!("{}/metrics", server.base)).text;
    let queue_full = metric(
        &metrics,
        "wafer_refused_requests_total",
        &[("reason", "queue_full")],
    );
    let timed_out = metric(
        &metrics,
        "wafer_refused_requests_total",
        &[("reason", "queue_timeout")],
    );
    assert_eq!(queue_full + timed_out, 18.0, "{metrics}");
    assert_eq!(
        timed_out, 2.0,
        "the two queued requests waited out the deadline"
    );

    // Limits on bodies and heads answer their own statuses, counted.
    let big = post(&infer, &vec![b' '; 8 << 10]);
    assert_eq!(big.status, 413, "{}", big.text);
    assert!(big.json["error"].is_string());
    let long = "x".repeat(4 << 10);
    let (heads, _) = request(
        "GET",
        &format!("{}/v2/health/live", server.base),
        &[("x-long", &long)],
        b"",
    );
    assert_eq!(heads.status, 431, "{}", heads.text);
    assert!(heads.json["error"].is_string());
    let metrics = get(&format!("{}/metrics", server.base)).text;
    for reason in ["body_too_large", "headers_too_large"] {
        let n = metric(
            &metrics,
            "wafer_refused_requests_total",
            &[("reason", reason)],
        );
        assert_eq!(n, 1.0, "{reason}");
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let repo = hostile_repository("shutdown");
    let mut server = serve(&repo, &["--drain-timeout", "20"]);
    let infer = format!("{}/v2/models/hostile/infer", server.base);
    let slow = std::thread::spawn({
        let infer = infer.clone();
        move || post(&infer, hostile(6, 2000).as_bytes())
    });
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    let port = server.base.rsplit(':').next().expect("a port").to_owned();
    let refused = std::net::TcpStream::connect(format!("127.0.0.1:{port}"));
    assert!(
        refused.is_err(),
        "a new connection was accepted while draining"
    );
    let answer = slow.join().expect("the slow client");
    assert_eq!(
        answer.status, 200,
        "the request in flight finished: {}",
        answer.text
    );
    assert_eq!(answer.json["outputs"][0]["data"], json!([6.0, 2000.0]));
    // Well before the drain timeout: the drain ends when the last connection closes.
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("the server exits once drained");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn hostile_guests_fail_alone_with_their_reasons() {
    let repo = hostile_repository("hostile");
    let server = serve(
        &repo,
        &["--request-timeout-ms", "1000", "--max-memory", "128M"],
    );
    let infer = format!("{}/v2/models/hostile/infer", server.base);
    let iris = format!("{}/v2/models/iris/infer", server.base);
    let good = iris_request(3);
    // Warm up: the level RSS returns to is taken after both models have answered.
    for _ in 0..20 {
        assert_eq!(post(&infer, hostile(0, 0).as_bytes()).status, 200);
        assert_eq!(post(&iris, good.as_bytes()).status, 200);
    }
    let before = server.rss_kib();
    let cases = [
        (1, "timeout", 504),
        (2, "memory_limit", 500),
        (3, "trap", 500),
        (4, "stack_overflow", 500),
        (5, "bad_output", 500),
    ];
    // The RSS is read after good requests, which leave the pool slots in their steady use.
    let settled_rss = || {
        for _ in 0..40 {
            assert_eq!(post(&iris, good.as_bytes()).status, 200);
        }
        // Read once the server is idle: since instances are dropped off the request's path, a
        // read at once saw 13 MB more in one of 5 runs of the suite, gone 50 ms later (what
        // held it was not found; a leak would stay).
        std::thread::sleep(Duration::from_millis(200));
        server.rss_kib()
    };
    const ROUNDS: usize = 8;
    let mut after_rounds = Vec::new();
    for round in 0..ROUNDS {
        for (mode, reason, status) in cases {
            let asked = Instant::now();
            let answer = post(&infer, hostile(mode, 0).as_bytes());
            assert_eq!(answer.status, status, "{reason}: {}", answer.text);
            assert!(
                answer.json["error"].is_string(),
                "{reason}: {}",
                answer.text
            );
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "{reason} took {:?}",
                asked.elapsed()
            );
            let next = post(&iris, good.as_bytes());
            assert_eq!(
                next.status, 200,
                "after {reason} (round {round}): {}",
                next.text
            );
        }
        after_rounds.push(settled_rss());
    }
    let metrics = get(&format!("{}/metrics", server.base)).text;
    for (_, reason, _) in cases {
        let n = metric(
            &metrics,
            "wafer_guest_failures_total",
            &[("model", "hostile"), ("reason", reason)],
        );
        assert_eq!(n, ROUNDS as f64, "{reason} counted\n{metrics}");
    }
    let after = after_rounds[ROUNDS - 1];
    eprintln!("RSS before the hostile rounds {before} KiB, after each round {after_rounds:?} KiB");
    // The first rounds' instances touch pool slots and stacks the good ones had not; after
    // that the level holds (12 rounds measured: 83.9, 86.7, 87.1 ... 88.8 MiB).
    assert!(
        after <= after_rounds[1] + 4 * 1024,
        "RSS grew round after round: {after_rounds:?} KiB"
    );
    assert!(
        after <= before + before / 10 + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn tritonclient_manages_the_repository() {
    let python = repo_root().join("tools/.venv-client/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tools/test.sh`, which creates it",
        python.display()
    );
    let repo = repository("tritonclient");
    place("models/iris/model.onnx", &repo.join("iris/model.onnx"));
    let server = serve(&repo, &[]);
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tools/tritonclient_repository.py"))
        .args([server.base.as_str(), "iris", TOKEN])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "tritonclient failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    assert!(
        seen["without_token"]
            .as_str()
            .is_some_and(|e| e.contains("admin token")),
        "{seen}"
    );
    let entry = json!([{"name": "iris", "version": "1", "state": "READY", "reason": ""}]);
    assert_eq!(seen["index"], entry);
    assert_eq!(seen["ready_after_unload"], false);
    assert_eq!(seen["ready_after_load"], true);
    assert_eq!(seen["index_after"], entry);
}
