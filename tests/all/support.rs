//! Shared helpers: building the guest, starting servers, fixtures, HTTP.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// The generic guest components (plain, and with the key-value import for models with
/// lookups) and the hostile test component, built once per test run with the guest profile;
/// returns the plain one.
pub fn guest_wasm() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--profile",
                "guest",
                "--target",
                "wasm32-wasip2",
                "-p",
                "wafer-guest",
                "-p",
                "wafer-guest-lookup",
                "-p",
                "wafer-hostile",
            ])
            .current_dir(repo_root())
            .status()
            .expect("running cargo to build the guest");
        assert!(status.success(), "building the guest component failed");
        target_dir().join("wasm32-wasip2/guest/wafer_guest.wasm")
    })
}

/// The wasi-nn flavour's guest components, built once per test run by their own cargo
/// invocation (so that the tract guests' features do not reach them), beside the plain guest.
pub fn nn_guests() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        guest_wasm();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--profile", "guest", "--target", "wasm32-wasip2"])
            .args(["-p", "wafer-guest-nn", "-p", "wafer-guest-nn-lookup"])
            .current_dir(repo_root())
            .status()
            .expect("running cargo to build the wasi-nn guests");
        assert!(status.success(), "building the wasi-nn guests failed");
    });
}

/// The hostile test component (`tests/hostile`): it loops, grows memory, traps, overflows its
/// stack, answers garbage or sleeps, as its first input value says.
pub fn hostile_wasm() -> PathBuf {
    guest_wasm();
    target_dir().join("wasm32-wasip2/guest/wafer_hostile.wasm")
}

/// Where the tests' `wafer` writes components.
pub fn build_dir() -> PathBuf {
    target_dir().join("wafer-test")
}

/// The tests' `$XDG_CACHE_HOME`: their compiled cache and compiled functions, away from the
/// user's.
pub fn xdg_cache_home() -> PathBuf {
    target_dir().join("wafer-test-xdg")
}

/// The `wafer` binary, pointed at the freshly built guest.
pub fn wafer() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wafer"));
    cmd.env("WAFER_GUEST", guest_wasm())
        .env("WAFER_LOG", "warn")
        .env("XDG_CACHE_HOME", xdg_cache_home())
        .current_dir(repo_root());
    cmd
}

/// A model's committed test set and reference outputs.
pub struct Fixture {
    /// The model's input name.
    pub input: String,
    /// The held-back rows.
    pub rows: Vec<Vec<f64>>,
    /// scikit-learn's labels.
    pub sklearn_labels: Vec<i64>,
    /// onnxruntime's labels.
    pub ort_labels: Vec<i64>,
    /// onnxruntime's probabilities.
    pub ort_probabilities: Vec<Vec<f64>>,
}

/// Reads `models/<name>/test_inputs.json` and `expected.json`.
pub fn fixture(name: &str) -> Fixture {
    let dir = repo_root().join("models").join(name);
    let read = |file: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(file)).expect("fixture file");
        serde_json::from_str(&text).expect("fixture JSON")
    };
    let inputs = read("test_inputs.json");
    let expected = read("expected.json");
    let ints = |v: &Value| -> Vec<i64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_i64().expect("int"))
            .collect()
    };
    let matrix = |v: &Value| -> Vec<Vec<f64>> {
        v.as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("f64"))
                    .collect()
            })
            .collect()
    };
    Fixture {
        input: inputs["input"].as_str().expect("input name").to_owned(),
        rows: matrix(&inputs["data"]),
        sklearn_labels: ints(&expected["sklearn"]["label"]),
        ort_labels: ints(&expected["onnxruntime"]["label"]),
        ort_probabilities: matrix(&expected["onnxruntime"]["probabilities"]),
    }
}

/// A v2 inference request for `rows` of FP32 features.
pub fn infer_request(input: &str, rows: &[Vec<f64>]) -> Value {
    let width = rows.first().map_or(0, Vec::len);
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    serde_json::json!({
        "inputs": [{ "name": input, "shape": [rows.len(), width], "datatype": "FP32", "data": data }]
    })
}

/// Labels and probabilities of a KServe v1 response: `{"predictions": [{"label", "probabilities"}]}`.
pub fn v1_labels_and_probabilities(response: &Value) -> (Vec<i64>, Vec<Vec<f64>>) {
    let predictions = response["predictions"].as_array().expect("predictions");
    let labels = predictions
        .iter()
        .map(|p| p["label"].as_i64().expect("label"))
        .collect();
    let probabilities = predictions
        .iter()
        .map(|p| {
            p["probabilities"]
                .as_array()
                .expect("probabilities")
                .iter()
                .map(|x| x.as_f64().expect("f64"))
                .collect()
        })
        .collect();
    (labels, probabilities)
}

/// Labels and probabilities from a v2 response.
pub fn labels_and_probabilities(response: &Value) -> (Vec<i64>, Vec<Vec<f64>>) {
    let outputs = response["outputs"].as_array().expect("outputs");
    let find = |name: &str| {
        outputs
            .iter()
            .find(|o| o["name"] == name)
            .expect("output present")
    };
    let label = find("label");
    let proba = find("probabilities");
    let labels = label["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_i64().expect("int"))
        .collect();
    let width = proba["shape"][1].as_u64().expect("width") as usize;
    let flat: Vec<f64> = proba["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_f64().expect("f64"))
        .collect();
    (labels, flat.chunks(width).map(<[f64]>::to_vec).collect())
}

/// Asserts labels equal and probabilities within `tol` absolute.
pub fn assert_matches(
    model: &str,
    got: &(Vec<i64>, Vec<Vec<f64>>),
    labels: &[i64],
    probs: &[Vec<f64>],
    tol: f64,
) {
    assert_eq!(got.0, labels, "{model}: labels differ");
    assert_eq!(got.1.len(), probs.len(), "{model}: row count differs");
    for (row, (g, e)) in got.1.iter().zip(probs).enumerate() {
        assert_eq!(g.len(), e.len(), "{model} row {row}: class count differs");
        for (c, (a, b)) in g.iter().zip(e).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "{model} row {row} class {c}: {a} vs {b} (tol {tol})"
            );
        }
    }
}

/// An HTTP answer.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub json: Value,
    /// The body as text.
    pub text: String,
    /// The instance-predictions header, if present.
    pub instance_predictions: Option<String>,
    /// The instance-model-parses header, if present.
    pub model_parses: Option<String>,
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<Answer> {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e).context("HTTP transport error"),
    };
    let status = response.status();
    let header = |name: &str| response.header(name).map(str::to_owned);
    let instance_predictions = header("x-wafer-instance-predictions");
    let model_parses = header("x-wafer-instance-model-parses");
    let text = response.into_string()?;
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        json,
        text,
        instance_predictions,
        model_parses,
    })
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        // No idle connections kept: the tests start a hundred servers on ports the kernel
        // picks, and a port freed by one is sometimes given to the next; a kept connection to
        // the stopped server then meets EOF, and ureq does not retry a POST.
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .max_idle_connections(0)
            .build()
    })
}

/// `GET url`.
pub fn get(url: &str) -> Answer {
    answer(agent().get(url).call()).expect("GET")
}

/// `method url` with `headers` and a raw body; the answer's headers too.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Answer, Vec<(String, String)>) {
    try_request(method, url, headers, body).expect("HTTP request")
}

/// [`request`], with a transport error returned rather than a panic.
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(Answer, Vec<(String, String)>)> {
    let mut request = agent().request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = request.send_bytes(body);
    let response_headers = match &result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r
            .headers_names()
            .into_iter()
            .filter_map(|n| Some((n.clone(), r.header(&n)?.to_owned())))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok((answer(result)?, response_headers))
}

/// `POST url` with a raw body.
pub fn post(url: &str, body: &[u8]) -> Answer {
    answer(
        agent()
            .post(url)
            .set("content-type", "application/json")
            .send_bytes(body),
    )
    .expect("POST")
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` and waits until a line of its `stream` holds `http://127.0.0.1:PORT`.
    pub fn start(mut cmd: Command, from_stderr: bool) -> anyhow::Result<Server> {
        cmd.stdin(Stdio::piped());
        if from_stderr {
            cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().context("starting the server")?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        if !from_stderr {
            // Keep the server's log lines for the test, and echo them for its output.
            let stderr = child.stderr.take().context("stderr")?;
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    if let Ok(mut logs) = logs.lock() {
                        logs.push(line);
                    }
                }
            });
        }
        let stream: Box<dyn std::io::Read + Send> = if from_stderr {
            Box::new(child.stderr.take().context("stderr")?)
        } else {
            Box::new(child.stdout.take().context("stdout")?)
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stream).lines().map_while(Result::ok);
            if let Some(base) = lines.by_ref().find_map(|line| listening_url(&line)) {
                let _ = tx.send(base);
            }
            // Keep draining so the server never blocks on a full pipe.
            lines.for_each(drop);
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        let base = loop {
            if let Ok(base) = rx.recv_timeout(Duration::from_millis(200)) {
                break base;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the server exited before listening: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the server did not listen within 300 s");
            }
        };
        Ok(Server { child, base, logs })
    }

    /// The server's stderr lines, once `done` holds for them or after 10 s (empty when its
    /// URL came from stderr). Lines arrive through a pipe, a little after the server wrote them.
    pub fn logs_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
            if done(&logs) || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits up to `timeout` for the server to exit, and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident set, in KiB (Linux's `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `http://127.0.0.1:PORT` from a server's "listening" line.
fn listening_url(line: &str) -> Option<String> {
    const PREFIX: &str = "http://127.0.0.1:";
    let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!port.is_empty()).then(|| format!("{PREFIX}{port}"))
}

/// Starts `wafer serve models` on a free port, building components into `build_dir`, with
/// `extra` arguments. It exits when dropped, or when the test process does (its stdin closes).
pub fn start_wafer(build_dir: &Path, extra: &[&str]) -> Server {
    start_wafer_on("models", build_dir, extra)
}

/// Starts `wafer serve REPO` like [`start_wafer`], once [`prebuild`] has built and compiled
/// its models: the server then starts warm, and its start-up wait is only a safety net.
pub fn start_wafer_on(repo: &str, build_dir: &Path, extra: &[&str]) -> Server {
    prebuild_with(Path::new(repo), build_dir, extra.contains(&"--no-snapshot"));
    Server::start(serve_command(Path::new(repo), build_dir, extra), false)
        .expect("wafer serve starts")
}

/// Builds and compiles every model of `repo` into `build_dir` and the tests' compiled cache,
/// in parallel, with `wafer compile`. It waits as long as that takes: there is no deadline.
/// Concurrent calls for one build folder build it once.
pub fn prebuild(repo: &Path, build_dir: &Path) {
    prebuild_with(repo, build_dir, false);
}

/// [`prebuild`], with components that snapshot only the model bytes when `no_snapshot`.
fn prebuild_with(repo: &Path, build_dir: &Path, no_snapshot: bool) {
    static BUILT: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (repo.to_owned(), build_dir.to_owned());
    if built.contains(&key) {
        return;
    }
    let mut cmd = wafer();
    cmd.arg("compile")
        .arg(repo)
        .arg("--build-dir")
        .arg(build_dir);
    if no_snapshot {
        cmd.arg("--no-snapshot");
    }
    let out = cmd.output().expect("wafer compile runs");
    assert!(
        out.status.success(),
        "wafer compile {}: {}",
        repo.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(key);
}

/// `wafer serve REPO` on a free port with `extra` arguments, building components into
/// `build_dir`. Unless `extra` names a `--db`, it reads the feature store
/// `build_dir/features.db`, loaded with `models/credit/users.csv`.
pub fn serve_command(repo: &Path, build_dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = wafer();
    cmd.arg("serve")
        .arg(repo)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--exit-on-stdin-close",
            "--build-dir",
        ])
        .arg(build_dir)
        .args(extra);
    // The prediction log is off unless a test asks for it: servers sharing a database would
    // only slow each other down.
    if !extra.iter().any(|a| a.starts_with("--log-")) {
        cmd.args(["--log-sample", "0"]);
    }
    if !extra.contains(&"--db") {
        let db = build_dir.join("features.db");
        load_credit_users(&db);
        cmd.arg("--db").arg(db);
    }
    cmd
}

/// Fills the `users` store of `db` with `models/credit/users.csv`, keyed by `user_id`.
pub fn load_credit_users(db: &Path) {
    load_store(db, "users", Path::new("models/credit/users.csv"), "user_id");
}

/// Replaces `store` of the feature database `db` with a CSV file, by `wafer features load`.
pub fn load_store(db: &Path, store: &str, data: &Path, key: &str) {
    // Tests starting servers at once share a database: the first load creates it (and turns on
    // WAL, which takes an exclusive lock), so loads from this process go one at a time.
    static LOADING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOADING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = wafer()
        .args(["features", "load", "--store", store, "--key", key, "--db"])
        .arg(db)
        .arg(data)
        .output()
        .expect("wafer features load runs");
    assert!(
        out.status.success(),
        "wafer features load {}: {}",
        data.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `wafer serve` on the example models for the whole test run.
pub fn wafer_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start_wafer(&build_dir(), &[]))
}

/// Builds `models/<name>` into a component with `wafer build` and returns its path.
pub fn built_component(name: &str) -> PathBuf {
    let out = build_dir().join(format!("{name}.wasm"));
    let status = wafer()
        .args(["build", &format!("models/{name}"), "-o"])
        .arg(&out)
        .status()
        .expect("wafer build runs");
    assert!(status.success(), "wafer build models/{name} failed");
    out
}
