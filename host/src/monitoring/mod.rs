//! Per-invocation metrics: one record per request, fed to Prometheus families, to the
//! per-model JSON aggregates of `/v2/models/{m}/stats`, and to one structured log event; and
//! the prediction log ([`log`]), each sampled invocation's inputs and outputs in SQLite; and
//! online drift ([`drift`]), the log's newest rows tested against each model's reference.

pub mod drift;
pub mod log;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::evaluation::drift as drift_report;
use crate::runtime::cache::CacheOutcome;

/// How an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 200.
    Ok,
    /// The request was at fault (4xx).
    ClientError,
    /// The model or its instance failed (5xx).
    GuestError,
    /// The guest ran past the request timeout.
    Timeout,
}

impl Outcome {
    /// `ok`, `client_error`, `guest_error` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client_error",
            Outcome::GuestError => "guest_error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// What one invocation measured.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The model.
    pub model: String,
    /// Its version.
    pub version: String,
    /// Getting the store and instance, µs (near zero when made ahead).
    pub instantiate_us: u64,
    /// The instance was made ahead of the call, off the request's path.
    pub made_ahead: bool,
    /// Inside the guest's `predict`, µs.
    pub guest_us: u64,
    /// The whole request, body read to response encoded, µs.
    pub total_us: u64,
    /// The instance's largest linear memory, bytes.
    pub memory_bytes: u64,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    /// The first instance since the model was loaded.
    pub cold: bool,
    /// Whether the model's compiled code came from the cache.
    pub cache: CacheOutcome,
    /// Keys looked up in the feature store.
    pub lookups: u64,
    /// Of those, keys the store did not hold (their fields took the defaults).
    pub lookup_misses: u64,
    /// What ran the model: `guest` (tract inside the component) or `wasi-nn` (the host's
    /// native backend).
    pub backend: &'static str,
    /// How the guest failed, when it trapped, ran out of time or memory, or answered
    /// garbage: `timeout`, `memory_limit`, `stack_overflow`, `trap` or `bad_output`.
    pub guest_failure: Option<&'static str>,
    /// Requests the model call served: 1 alone, more under dynamic batching (0: no call).
    pub batch_size: u64,
    /// The first request of its model call, which counts the call in `wafer_batch_size`.
    pub batch_first: bool,
}

/// The exposition format `/metrics` answers in, negotiated on `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`application/openmetrics-text`), what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`), for every other client.
    Text,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics when it accepts it with a quality
    /// at least that of `text/plain` (and of `*/*`), else the plain text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let (mut open_metrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open_metrics = open_metrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if open_metrics > 0.0 && open_metrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites OpenMetrics text (what `prometheus-client` writes) as the Prometheus text format
/// 0.0.4: a counter family is named with its `_total` suffix, as its samples are, `UNIT` lines
/// and the closing `# EOF` go, and `info` and `unknown` become `gauge` and `untyped`.
fn to_text_format(open_metrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in open_metrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let tail = match tail {
                    "info" => "gauge",
                    "unknown" => "untyped",
                    other => other,
                };
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    model: String,
    version: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    model: String,
    version: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    model: String,
    version: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    model: String,
    shadow: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    model: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    model: String,
    version: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    model: String,
    version: String,
    column: String,
    method: String,
}

/// The drift series one model exports now, to remove when they change.
#[derive(Default)]
struct DriftSeries {
    model: Option<ModelLabels>,
    columns: Vec<DriftLabels>,
}

type Histograms = Family<ModelLabels, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 10 µs to ~84 s.
    Histogram::new(exponential_buckets(1e-5, 2.0, 24))
}

/// Microseconds as the seconds Prometheus's base unit asks for.
fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn batch_sizes() -> Histogram {
    // 1 to 65,536 requests.
    Histogram::new(exponential_buckets(1.0, 2.0, 17))
}

fn bytes() -> Histogram {
    // 64 KiB to 4 GiB.
    Histogram::new(exponential_buckets(65536.0, 2.0, 17))
}

/// Aggregates for `/v2/models/{m}/stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelStats {
    /// Invocations answered 200.
    pub success: u64,
    /// Invocations that failed, by outcome.
    pub failure: BTreeMap<&'static str, u64>,
    /// Instances that were the first after a load.
    pub cold_starts: u64,
    /// Sum of instantiate µs.
    pub instantiate_us: u64,
    /// Sum of guest µs.
    pub guest_us: u64,
    /// Sum of total µs.
    pub total_us: u64,
    /// Largest instance memory seen, bytes.
    pub max_memory_bytes: u64,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: u64,
    /// Keys looked up in the feature store.
    pub lookups: u64,
    /// Of those, keys the store did not hold.
    pub lookup_misses: u64,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    backend: Family<BackendLabels, Counter>,
    made_ahead: Family<ModelLabels, Counter>,
    success: Family<ModelLabels, Counter>,
    failure: Family<OutcomeLabels, Counter>,
    compute_infer_us: Family<ModelLabels, Counter>,
    instantiate_us: Histograms,
    guest_us: Histograms,
    total_us: Histograms,
    memory_bytes: Histograms,
    batch_size: Histograms,
    request_bytes: Family<ModelLabels, Counter>,
    response_bytes: Family<ModelLabels, Counter>,
    cold_starts: Family<ModelLabels, Counter>,
    compiled_cache: Family<ResultLabels, Counter>,
    model_ready: Family<ModelLabels, Gauge>,
    lookups: Family<ResultLabels, Counter>,
    guest_failures: Family<ReasonLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    log_dropped: Counter,
    shadow: Family<ShadowLabels, Counter>,
    feature_drift: Family<DriftLabels, Gauge<f64, AtomicU64>>,
    dataset_drift_share: Family<ModelLabels, Gauge<f64, AtomicU64>>,
    drift_detected: Family<ModelLabels, Gauge>,
    drift_series: Mutex<BTreeMap<String, DriftSeries>>,
    stats: Mutex<BTreeMap<String, ModelStats>>,
    /// The series every invocation counts, by model, resolved once per model version and
    /// backend: no label sets built and hashed per request.
    served: RwLock<HashMap<String, Vec<Arc<Served>>>>,
}

/// The series of one model version and backend that every invocation counts (handles to the
/// families' own series: a model's series are never removed).
struct Served {
    version: String,
    backend: &'static str,
    backend_invocations: Counter,
    compute_infer_us: Counter,
    instantiate_us: Histogram,
    guest_us: Histogram,
    total_us: Histogram,
    memory_bytes: Histogram,
    request_bytes: Counter,
    response_bytes: Counter,
    /// Made on the first call they count, as the families would: `requests{outcome="ok"}`
    /// and `success` on the first success, `batch_size` on the first batch.
    ok: OnceLock<Counter>,
    success: OnceLock<Counter>,
    batch_size: OnceLock<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every family under the `wafer_` prefix.
    pub fn new() -> Metrics {
        let histograms = |f: fn() -> Histogram| Histograms::new_with_constructor(f);
        let mut m = Metrics {
            registry: Registry::with_prefix("wafer"),
            requests: Family::default(),
            backend: Family::default(),
            made_ahead: Family::default(),
            success: Family::default(),
            failure: Family::default(),
            compute_infer_us: Family::default(),
            instantiate_us: histograms(seconds),
            guest_us: histograms(seconds),
            total_us: histograms(seconds),
            memory_bytes: histograms(bytes),
            batch_size: histograms(batch_sizes),
            request_bytes: Family::default(),
            response_bytes: Family::default(),
            cold_starts: Family::default(),
            compiled_cache: Family::default(),
            model_ready: Family::default(),
            lookups: Family::default(),
            guest_failures: Family::default(),
            refused: Family::default(),
            log_dropped: Counter::default(),
            shadow: Family::default(),
            feature_drift: Family::default(),
            dataset_drift_share: Family::default(),
            drift_detected: Family::default(),
            drift_series: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
            served: RwLock::new(HashMap::new()),
        };
        let r = &mut m.registry;
        r.register(
            "requests",
            "Inference requests by outcome",
            m.requests.clone(),
        );
        r.register(
            "backend_invocations",
            "Inference requests by what ran the model: guest (tract in the component) or wasi-nn \
             (the host's native backend)",
            m.backend.clone(),
        );
        r.register(
            "instances_made_ahead",
            "Model calls whose fresh instance was made ahead of them, off the request's path",
            m.made_ahead.clone(),
        );
        r.register(
            "inference_request_success",
            "Successful inference requests (Triton's nv_inference_request_success)",
            m.success.clone(),
        );
        r.register(
            "inference_request_failure",
            "Failed inference requests by outcome (Triton's nv_inference_request_failure)",
            m.failure.clone(),
        );
        r.register(
            "inference_compute_infer_duration_us",
            "Cumulative µs inside the model (Triton's nv_inference_compute_infer_duration_us)",
            m.compute_infer_us.clone(),
        );
        r.register(
            "instantiate_seconds",
            "Getting the call's fresh instance (near zero when one was made ahead)",
            m.instantiate_us.clone(),
        );
        r.register(
            "guest_seconds",
            "Time inside the guest's predict",
            m.guest_us.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Whole request, body read to response encoded",
            m.total_us.clone(),
        );
        r.register(
            "instance_memory_bytes",
            "Instance linear-memory high-water mark, bytes",
            m.memory_bytes.clone(),
        );
        r.register(
            "batch_size",
            "Requests per model call: 1 alone, more when dynamic batching joins them",
            m.batch_size.clone(),
        );
        r.register(
            "request_bytes",
            "Request body bytes",
            m.request_bytes.clone(),
        );
        r.register(
            "response_bytes",
            "Response body bytes",
            m.response_bytes.clone(),
        );
        r.register(
            "cold_starts",
            "First instances after a model load",
            m.cold_starts.clone(),
        );
        r.register(
            "compiled_cache",
            "Model loads by compiled-cache result (hit, miss, replaced)",
            m.compiled_cache.clone(),
        );
        r.register(
            "model_ready",
            "1 while the model is loaded and serving, 0 when it could not be loaded",
            m.model_ready.clone(),
        );
        r.register(
            "feature_lookups",
            "Keys looked up in the feature store, by result (hit, miss: the default applied)",
            m.lookups.clone(),
        );
        r.register(
            "guest_failures",
            "Invocations whose guest failed, by reason (timeout, memory_limit, stack_overflow, trap, bad_output)",
            m.guest_failures.clone(),
        );
        r.register(
            "refused_requests",
            "Requests refused by a limit before reaching a model, by reason (queue_full, queue_timeout, body_too_large, headers_too_large)",
            m.refused.clone(),
        );
        r.register(
            "prediction_log_dropped",
            "Prediction log records dropped because the writer's queue was full",
            m.log_dropped.clone(),
        );
        r.register(
            "shadow",
            "Requests mirrored to a shadow model, by how its answer compared (agree, disagree, error)",
            m.shadow.clone(),
        );
        r.register(
            "feature_drift",
            "Each column's drift score against the reference: a p-value (ks, chisquare, z) or a distance (wasserstein, jensenshannon, psi), by method",
            m.feature_drift.clone(),
        );
        r.register(
            "dataset_drift_share",
            "The share of a model's columns that drifted in its latest online drift test",
            m.dataset_drift_share.clone(),
        );
        r.register(
            "drift_detected",
            "1 when at least half a model's columns drifted in its latest online drift test",
            m.drift_detected.clone(),
        );
        m
    }

    /// Sets `model`'s drift gauges to its latest test, or removes them when it was not
    /// tested (too few logged rows, no reference).
    pub fn record_drift(&self, model: &str, version: &str, report: Option<&drift_report::Report>) {
        let mut series = self.drift_series.lock().unwrap_or_else(|e| e.into_inner());
        let old = series.remove(model).unwrap_or_default();
        let mut new = DriftSeries::default();
        if let Some(report) = report {
            let labels = ModelLabels {
                model: model.to_owned(),
                version: version.to_owned(),
            };
            self.dataset_drift_share
                .get_or_create(&labels)
                .set(report.share);
            self.drift_detected
                .get_or_create(&labels)
                .set(i64::from(report.drifted));
            for c in &report.columns {
                let column = DriftLabels {
                    model: model.to_owned(),
                    version: version.to_owned(),
                    column: c.column.clone(),
                    method: c.method.to_owned(),
                };
                self.feature_drift.get_or_create(&column).set(c.score);
                new.columns.push(column);
            }
            new.model = Some(labels);
        }
        for column in old.columns.iter().filter(|c| !new.columns.contains(c)) {
            self.feature_drift.remove(column);
        }
        if let Some(labels) = old.model.filter(|l| new.model.as_ref() != Some(l)) {
            self.dataset_drift_share.remove(&labels);
            self.drift_detected.remove(&labels);
        }
        series.insert(model.to_owned(), new);
    }

    /// Removes the drift gauges of every model `keep` refuses (no longer served).
    pub fn retain_drift(&self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = {
            let series = self.drift_series.lock().unwrap_or_else(|e| e.into_inner());
            series.keys().filter(|m| !keep(m)).cloned().collect()
        };
        for model in gone {
            self.record_drift(&model, "", None);
            let mut series = self.drift_series.lock().unwrap_or_else(|e| e.into_inner());
            series.remove(&model);
        }
    }

    /// Counts one mirrored request's verdict.
    pub fn record_shadow(&self, model: &str, shadow: &str, result: &str) {
        let labels = ShadowLabels {
            model: model.to_owned(),
            shadow: shadow.to_owned(),
            result: result.to_owned(),
        };
        self.shadow.get_or_create(&labels).inc();
    }

    /// Counts a prediction log record dropped for a full queue.
    pub fn record_log_dropped(&self) {
        self.log_dropped.inc();
    }

    /// Records a request a limit refused; `model` is empty when none was routed to yet.
    pub fn record_refused(&self, model: &str, reason: &str) {
        let labels = RefusalLabels {
            model: model.to_owned(),
            reason: reason.to_owned(),
        };
        self.refused.get_or_create(&labels).inc();
        tracing::warn!(model, reason, "request refused");
    }

    /// Records a model load: whether its compiled code came from the cache, or, for `None`,
    /// that it could not be loaded.
    pub fn record_load(&self, model: &str, version: &str, cache: Option<CacheOutcome>) {
        let labels = ModelLabels {
            model: model.to_owned(),
            version: version.to_owned(),
        };
        self.model_ready
            .get_or_create(&labels)
            .set(i64::from(cache.is_some()));
        if let Some(cache) = cache {
            let labels = ResultLabels {
                model: model.to_owned(),
                version: version.to_owned(),
                result: cache.as_str().to_owned(),
            };
            self.compiled_cache.get_or_create(&labels).inc();
        }
    }

    /// The series every invocation of `inv`'s model version and backend counts, made on its
    /// first.
    fn served(&self, inv: &Invocation) -> Arc<Served> {
        let find = |all: &HashMap<String, Vec<Arc<Served>>>| {
            all.get(&inv.model)?
                .iter()
                .find(|s| s.version == inv.version && s.backend == inv.backend)
                .cloned()
        };
        if let Some(served) = find(&self.served.read().unwrap_or_else(|e| e.into_inner())) {
            return served;
        }
        let mut all = self.served.write().unwrap_or_else(|e| e.into_inner());
        if let Some(served) = find(&all) {
            return served;
        }
        let labels = ModelLabels {
            model: inv.model.clone(),
            version: inv.version.clone(),
        };
        let backend = BackendLabels {
            model: inv.model.clone(),
            version: inv.version.clone(),
            backend: inv.backend.to_owned(),
        };
        let served = Arc::new(Served {
            version: inv.version.clone(),
            backend: inv.backend,
            backend_invocations: self.backend.get_or_create(&backend).clone(),
            compute_infer_us: self.compute_infer_us.get_or_create(&labels).clone(),
            instantiate_us: self.instantiate_us.get_or_create(&labels).clone(),
            guest_us: self.guest_us.get_or_create(&labels).clone(),
            total_us: self.total_us.get_or_create(&labels).clone(),
            memory_bytes: self.memory_bytes.get_or_create(&labels).clone(),
            request_bytes: self.request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.response_bytes.get_or_create(&labels).clone(),
            ok: OnceLock::new(),
            success: OnceLock::new(),
            batch_size: OnceLock::new(),
        });
        all.entry(inv.model.clone())
            .or_default()
            .push(Arc::clone(&served));
        served
    }

    /// Records one invocation everywhere: Prometheus, the JSON aggregates and the log.
    pub fn record(&self, inv: &Invocation) {
        // Built only where a series is made: the common path counts on handles resolved once.
        let labels = || ModelLabels {
            model: inv.model.clone(),
            version: inv.version.clone(),
        };
        let s = self.served(inv);
        s.backend_invocations.inc();
        s.compute_infer_us.inc_by(inv.guest_us);
        s.instantiate_us.observe(secs(inv.instantiate_us));
        s.guest_us.observe(secs(inv.guest_us));
        s.total_us.observe(secs(inv.total_us));
        s.memory_bytes.observe(inv.memory_bytes as f64);
        if inv.batch_first && inv.batch_size > 0 {
            s.batch_size
                .get_or_init(|| self.batch_size.get_or_create(&labels()).clone())
                .observe(inv.batch_size as f64);
        }
        s.request_bytes.inc_by(inv.request_bytes);
        s.response_bytes.inc_by(inv.response_bytes);
        if inv.outcome == Outcome::Ok {
            let outcome = || OutcomeLabels {
                model: inv.model.clone(),
                version: inv.version.clone(),
                outcome: Outcome::Ok.as_str().to_owned(),
            };
            s.ok.get_or_init(|| self.requests.get_or_create(&outcome()).clone())
                .inc();
            s.success
                .get_or_init(|| self.success.get_or_create(&labels()).clone())
                .inc();
        } else {
            let outcome = OutcomeLabels {
                model: inv.model.clone(),
                version: inv.version.clone(),
                outcome: inv.outcome.as_str().to_owned(),
            };
            self.requests.get_or_create(&outcome).inc();
            self.failure.get_or_create(&outcome).inc();
        }
        if inv.made_ahead && inv.batch_first {
            self.made_ahead.get_or_create(&labels()).inc();
        }
        if inv.cold {
            self.cold_starts.get_or_create(&labels()).inc();
        }
        if let Some(reason) = inv.guest_failure {
            let labels = ReasonLabels {
                model: inv.model.clone(),
                version: inv.version.clone(),
                reason: reason.to_owned(),
            };
            self.guest_failures.get_or_create(&labels).inc();
        }
        for (result, n) in [
            ("hit", inv.lookups.saturating_sub(inv.lookup_misses)),
            ("miss", inv.lookup_misses),
        ] {
            if n > 0 {
                let labels = ResultLabels {
                    model: inv.model.clone(),
                    version: inv.version.clone(),
                    result: result.to_owned(),
                };
                self.lookups.get_or_create(&labels).inc_by(n);
            }
        }
        if let Ok(mut stats) = self.stats.lock() {
            if !stats.contains_key(&inv.model) {
                stats.insert(inv.model.clone(), ModelStats::default());
            }
            if let Some(s) = stats.get_mut(&inv.model) {
                if inv.outcome == Outcome::Ok {
                    s.success += 1;
                } else {
                    *s.failure.entry(inv.outcome.as_str()).or_default() += 1;
                }
                s.cold_starts += u64::from(inv.cold);
                s.instantiate_us += inv.instantiate_us;
                s.guest_us += inv.guest_us;
                s.total_us += inv.total_us;
                s.max_memory_bytes = s.max_memory_bytes.max(inv.memory_bytes);
                s.request_bytes += inv.request_bytes;
                s.response_bytes += inv.response_bytes;
                s.lookups += inv.lookups;
                s.lookup_misses += inv.lookup_misses;
            }
        }
        tracing::info!(
            target: "wafer::invocation",
            model = %inv.model,
            version = %inv.version,
            instantiate_us = inv.instantiate_us,
            made_ahead = inv.made_ahead,
            guest_us = inv.guest_us,
            total_us = inv.total_us,
            memory_bytes = inv.memory_bytes,
            request_bytes = inv.request_bytes,
            response_bytes = inv.response_bytes,
            outcome = inv.outcome.as_str(),
            reason = inv.reason.as_deref().unwrap_or(""),
            cold = inv.cold,
            compiled_cache = inv.cache.as_str(),
            lookups = inv.lookups,
            lookup_misses = inv.lookup_misses,
            guest_failure = inv.guest_failure.unwrap_or(""),
            batch_size = inv.batch_size,
            "invocation"
        );
    }

    /// The aggregates of one model.
    pub fn stats(&self, model: &str) -> ModelStats {
        self.stats
            .lock()
            .map(|s| s.get(model).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Everything, in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        match format {
            Format::OpenMetrics => out,
            Format::Text => to_text_format(&out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_as_prometheus_asks() {
        // Prometheus 2.x's scrape header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0.2, text/plain")),
            Format::Text
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Text
        );
    }

    #[test]
    fn invocations_count_in_one_series_per_model_version() {
        let invocation = |version: &str, outcome: Outcome, batch_size: u64| Invocation {
            model: "m".into(),
            version: version.into(),
            instantiate_us: 3,
            made_ahead: false,
            guest_us: 20,
            total_us: 100,
            memory_bytes: 1 << 20,
            request_bytes: 50,
            response_bytes: 70,
            outcome,
            reason: None,
            cold: false,
            cache: CacheOutcome::Hit,
            lookups: 0,
            lookup_misses: 0,
            backend: "guest",
            guest_failure: None,
            batch_size,
            batch_first: true,
        };
        let metrics = Metrics::new();
        metrics.record(&invocation("1", Outcome::Ok, 0));
        let text = metrics.encode(Format::Text);
        assert!(!text.contains("wafer_batch_size_count"), "{text}");
        metrics.record(&invocation("1", Outcome::Ok, 4));
        metrics.record(&invocation("1", Outcome::ClientError, 1));
        metrics.record(&invocation("2", Outcome::Ok, 1));
        metrics.record(&invocation("3", Outcome::GuestError, 0));
        let text = metrics.encode(Format::Text);
        // A version that never succeeded has no success series.
        assert!(!text.contains("version=\"3\",outcome=\"ok\""), "{text}");
        assert!(
            !text.contains("wafer_inference_request_success_total{model=\"m\",version=\"3\"}"),
            "{text}"
        );
        for line in [
            "wafer_requests_total{model=\"m\",version=\"1\",outcome=\"ok\"} 2",
            "wafer_requests_total{model=\"m\",version=\"1\",outcome=\"client_error\"} 1",
            "wafer_requests_total{model=\"m\",version=\"2\",outcome=\"ok\"} 1",
            "wafer_backend_invocations_total{model=\"m\",version=\"1\",backend=\"guest\"} 3",
            "wafer_request_bytes_total{model=\"m\",version=\"1\"} 150",
            "wafer_request_duration_seconds_count{model=\"m\",version=\"1\"} 3",
            "wafer_batch_size_count{model=\"m\",version=\"1\"} 2",
            "wafer_batch_size_sum{model=\"m\",version=\"1\"} 5.0",
            "wafer_batch_size_count{model=\"m\",version=\"2\"} 1",
            "wafer_inference_request_success_total{model=\"m\",version=\"1\"} 2",
            "wafer_inference_request_failure_total{model=\"m\",version=\"1\",outcome=\"client_error\"} 1",
            "wafer_requests_total{model=\"m\",version=\"3\",outcome=\"guest_error\"} 1",
            "wafer_backend_invocations_total{model=\"m\",version=\"3\",backend=\"guest\"} 1",
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
        assert_eq!(metrics.stats("m").success, 3);
    }

    #[test]
    fn drift_gauges_follow_the_latest_test() {
        use crate::evaluation::drift::{ColumnReport, Histogram, Report};
        let column = |name: &str, drifted: bool| ColumnReport {
            column: name.to_owned(),
            kind: "num",
            method: "ks",
            score: if drifted { 0.001 } else { 0.5 },
            threshold: 0.05,
            drifted,
            missing: [0.0, 0.0],
            histogram: Histogram {
                labels: Vec::new(),
                reference: Vec::new(),
                current: Vec::new(),
            },
        };
        let report = |columns: Vec<ColumnReport>| Report {
            reference_rows: 10,
            current_rows: 10,
            share: columns.iter().filter(|c| c.drifted).count() as f64 / columns.len() as f64,
            drifted: columns.iter().all(|c| c.drifted),
            columns,
            untested: Vec::new(),
        };
        let metrics = Metrics::new();
        metrics.record_drift(
            "m",
            "1",
            Some(&report(vec![column("a", true), column("b", false)])),
        );
        let text = metrics.encode(Format::Text);
        assert!(
            text.contains(
                "wafer_feature_drift{model=\"m\",version=\"1\",column=\"b\",method=\"ks\"} 0.5"
            ),
            "{text}"
        );
        assert!(
            text.contains("wafer_dataset_drift_share{model=\"m\",version=\"1\"} 0.5"),
            "{text}"
        );
        assert!(
            text.contains("wafer_drift_detected{model=\"m\",version=\"1\"} 0"),
            "{text}"
        );
        // A column no longer tested, and a new version, leave no stale series.
        metrics.record_drift("m", "2", Some(&report(vec![column("a", true)])));
        let text = metrics.encode(Format::Text);
        assert!(!text.contains("column=\"b\""), "{text}");
        assert!(!text.contains("version=\"1\""), "{text}");
        assert!(
            text.contains("wafer_drift_detected{model=\"m\",version=\"2\"} 1"),
            "{text}"
        );
        // A model no longer tested, or gone, exports nothing.
        metrics.retain_drift(|model| model != "m");
        let text = metrics.encode(Format::Text);
        assert!(!text.contains("model=\"m\""), "{text}");
    }

    #[test]
    fn text_format_names_counters_with_total() {
        let open = "# HELP wafer_requests Inference requests.\n# TYPE wafer_requests counter\nwafer_requests_total{model=\"m\"} 1\n# HELP wafer_up Up.\n# TYPE wafer_up gauge\n# UNIT wafer_up x\nwafer_up 1\n# EOF\n";
        assert_eq!(
            to_text_format(open),
            "# HELP wafer_requests_total Inference requests.\n# TYPE wafer_requests_total counter\nwafer_requests_total{model=\"m\"} 1\n# HELP wafer_up Up.\n# TYPE wafer_up gauge\nwafer_up 1\n"
        );
    }
}
