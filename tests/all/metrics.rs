//! Per-invocation metrics: Prometheus counters and histograms that count exactly, the JSON
//! stats, and one structured log event per invocation.

use serde_json::Value;

use crate::support::{
    Server, build_dir, fixture, get, infer_request, post, repo_root, request, target_dir, wafer,
    wafer_server,
};

#[test]
fn metrics_count_every_invocation_and_log_it() {
    let cache = target_dir().join("wafer-test-metrics-cache");
    let mut cmd = wafer();
    cmd.env("WAFER_LOG", "warn,wafer::invocation=info")
        .args([
            "--log-format",
            "json",
            "serve",
            "models",
            "--addr",
            "127.0.0.1:0",
        ])
        .arg("--exit-on-stdin-close")
        .arg("--build-dir")
        .arg(build_dir())
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--db")
        .arg(build_dir().join("features.db"));
    let server = Server::start(cmd, false).expect("wafer serve starts");
    let infer = format!("{}/v2/models/iris/infer", server.base);

    let fx = fixture("iris");
    let good = infer_request(&fx.input, &fx.rows[..3]).to_string();
    let (ok, bad) = (7, 3);
    for _ in 0..ok {
        assert_eq!(post(&infer, good.as_bytes()).status, 200);
    }
    for _ in 0..bad {
        assert_eq!(post(&infer, b"{\"inputs\": [").status, 400);
    }

    let text = get(&format!("{}/metrics", server.base)).text;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses as the Prometheus text format");
    let value = |name: &str, outcome: Option<&str>| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && s.labels.get("model") == Some("iris"))
            .filter(|s| outcome.is_none_or(|o| s.labels.get("outcome") == Some(o)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                other => panic!("{name}: unexpected {other:?}"),
            })
            .sum()
    };
    assert_eq!(
        value("wafer_inference_request_success_total", None),
        f64::from(ok)
    );
    assert_eq!(
        value(
            "wafer_inference_request_failure_total",
            Some("client_error")
        ),
        f64::from(bad)
    );
    assert_eq!(value("wafer_requests_total", Some("ok")), f64::from(ok));
    for histogram in [
        "wafer_request_duration_seconds",
        "wafer_instantiate_seconds",
        "wafer_guest_seconds",
    ] {
        assert_eq!(
            value(histogram, None),
            f64::from(ok + bad),
            "{histogram} counts every request"
        );
    }
    assert_eq!(
        value("wafer_cold_starts_total", None),
        1.0,
        "only the first instance is cold"
    );
    assert!(value("wafer_inference_compute_infer_duration_us_total", None) > 0.0);

    let stats = get(&format!("{}/v2/models/iris/stats", server.base)).json;
    assert_eq!(stats["stats"]["success"], ok);
    assert_eq!(stats["stats"]["failure"]["client_error"], bad);
    assert!(stats["stats"]["max_memory_bytes"].as_u64().unwrap_or(0) > 0);

    // One JSON log event per invocation, carrying every field.
    let invocations = |lines: &[String]| -> Vec<Value> {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["fields"]["message"] == "invocation")
            .collect()
    };
    let events = invocations(&server.logs_until(|l| invocations(l).len() >= (ok + bad) as usize));
    assert_eq!(events.len(), (ok + bad) as usize, "{events:#?}");
    for e in &events {
        let f = &e["fields"];
        for field in [
            "model",
            "version",
            "instantiate_us",
            "guest_us",
            "total_us",
            "memory_bytes",
            "request_bytes",
            "response_bytes",
            "outcome",
            "cold",
            "compiled_cache",
        ] {
            assert!(!f[field].is_null(), "field {field} missing in {e}");
        }
        assert_eq!(f["model"], "iris");
    }
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["fields"]["outcome"] == "client_error")
        .collect();
    assert_eq!(failures.len(), bad as usize);
    assert!(failures.iter().all(|e| {
        e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("malformed JSON"))
    }));
    let successes = events.iter().filter(|e| e["fields"]["outcome"] == "ok");
    assert!(
        successes
            .clone()
            .all(|e| e["fields"]["memory_bytes"].as_u64().unwrap_or(0) > 0)
    );
    assert_eq!(successes.filter(|e| e["fields"]["cold"] == true).count(), 1);
}

#[test]
fn a_guest_past_its_deadline_is_interrupted_and_counted_as_a_timeout() {
    let server = crate::support::start_wafer(&build_dir(), &["--request-timeout-ms", "1"]);
    // A thousand rows through the 6 MB MLP take far longer than one epoch tick (10 ms).
    let fx = fixture("digits_wide");
    let rows: Vec<Vec<f64>> = (0..1000)
        .map(|i| fx.rows[i % fx.rows.len()].clone())
        .collect();
    let body = infer_request(&fx.input, &rows).to_string();
    let answer = post(
        &format!("{}/v2/models/digits_wide/infer", server.base),
        body.as_bytes(),
    );
    assert_eq!(answer.status, 504, "{}", answer.text);
    assert!(
        answer.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{}",
        answer.text
    );
    let stats = get(&format!("{}/v2/models/digits_wide/stats", server.base)).json;
    assert_eq!(stats["stats"]["failure"]["timeout"], 1);
    assert_eq!(get(&format!("{}/v2/health/live", server.base)).status, 200);
}

#[test]
fn promtool_reads_metrics_as_typed() {
    let server = wafer_server();
    let fx = fixture("iris");
    let infer = format!("{}/v2/models/iris/infer", server.base);
    let good = infer_request(&fx.input, &fx.rows[..2]).to_string();
    assert_eq!(post(&infer, good.as_bytes()).status, 200);
    assert_eq!(post(&infer, b"[").status, 400);
    let url = format!("{}/metrics", server.base);
    let content_type = |headers: &[(String, String)]| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };

    // What a scraper that asks for nothing in particular gets: the text format, typed.
    let (text, headers) = request("GET", &url, &[], b"");
    assert_eq!(
        content_type(&headers),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(!text.text.contains("# EOF"));
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; tools/test.sh installs it)");
    std::io::Write::write_all(
        &mut promtool.stdin.take().expect("stdin"),
        text.text.as_bytes(),
    )
    .expect("writing to promtool");
    let out = promtool.wait_with_output().expect("promtool finishes");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // The one name kept for Triton compatibility (nv_inference_compute_infer_duration_us).
    let expected = "wafer_inference_compute_infer_duration_us_total metric names should not contain abbreviated units";
    let problems: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty() && l.trim() != expected)
        .collect();
    assert!(problems.is_empty(), "promtool check metrics:\n{said}");
    assert!(
        said.contains(expected),
        "promtool should name the Triton unit, and only it:\n{said}"
    );
    assert!(text.text.contains("# TYPE wafer_requests_total counter"));

    // Prometheus's own scrape header gets OpenMetrics.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (open, headers) = request("GET", &url, &[("accept", prometheus)], b"");
    assert!(
        content_type(&headers).starts_with("application/openmetrics-text; version=1.0.0"),
        "{headers:?}"
    );
    assert!(open.text.ends_with("# EOF\n"));
    assert!(open.text.contains("# TYPE wafer_requests counter"));
}

#[test]
fn the_shipped_alerting_rules_check_and_name_real_metrics() {
    let rules = repo_root().join("deploy/prometheus/wafer-rules.yml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool runs (Debian's prometheus package; tools/test.sh installs it)");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every metric a rule reads is one the server exports, once it has something to count:
    // a family without samples is not written, so every kind of event is recorded once.
    use wafer_host::monitoring::{Format, Invocation, Metrics, Outcome};
    use wafer_host::runtime::cache::CacheOutcome;
    let metrics = Metrics::new();
    metrics.record_load("m", "1", Some(CacheOutcome::Hit));
    metrics.record(&Invocation {
        model: "m".into(),
        version: "1".into(),
        instantiate_us: 1,
        made_ahead: false,
        guest_us: 1,
        total_us: 1,
        memory_bytes: 1,
        request_bytes: 1,
        response_bytes: 1,
        outcome: Outcome::GuestError,
        reason: Some("trapped".into()),
        cold: true,
        cache: CacheOutcome::Hit,
        lookups: 1,
        lookup_misses: 1,
        backend: "guest",
        guest_failure: Some("trap"),
        batch_size: 1,
        batch_first: true,
    });
    metrics.record_refused("m", "queue_full");
    metrics.record_log_dropped();
    let drift = wafer_host::evaluation::drift::Report {
        reference_rows: 1,
        current_rows: 1,
        columns: Vec::new(),
        untested: Vec::new(),
        share: 0.0,
        drifted: false,
    };
    metrics.record_drift("m", "1", Some(&drift));
    let text = metrics.encode(Format::Text);
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let yaml = std::fs::read_to_string(&rules).expect("the rules");
    let mut named = 0;
    for word in yaml.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !word.starts_with("wafer_") || word.chars().any(|c| c.is_ascii_uppercase()) {
            continue;
        }
        let family = word.strip_suffix("_bucket").unwrap_or(word);
        assert!(
            exported.contains(&family),
            "a rule reads {word}, which /metrics does not export"
        );
        named += 1;
    }
    assert!(named >= 7, "the rules name {named} metrics");
}
