//! `wafer serve`: the KServe v2 REST API over hyper, one fresh instance per request; Triton's
//! repository extension behind a bearer token; per-model admission; limits on heads and
//! bodies; and a drain on SIGTERM.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wafer_protocol::{self as protocol, ProtocolError, Route, ndjson};

use crate::monitoring::drift::{Board as DriftBoard, State as DriftState, Status as DriftStatus};
use crate::monitoring::log::{PredictionLog, Record as LogRecord};
use crate::monitoring::{Format, Invocation, Metrics, Outcome};
use crate::runtime::{GuestFailure, LoadedModel, Measured};
use crate::serving::admission::{Admission, Limits, Refusal, Slot};
use crate::serving::lanes::Lanes;
use crate::serving::registry::Registry;
use crate::serving::repo::{self, Loader, Routing};
use crate::serving::traffic::{self, Mirrored};

/// The response header naming a logged request's id: its v2 `id`, or one made up.
pub const REQUEST_ID_HEADER: &str = "x-wafer-request-id";

/// The response header naming the model that answered (a canary, or the model asked).
pub const MODEL_HEADER: &str = "x-wafer-model";

/// The largest request body accepted by default, in bytes.
pub const MAX_BODY: usize = 64 << 20;

/// The content type of a streamed inference: one record, row or v2 request per line in, one
/// answer per line out.
const NDJSON: &str = ndjson::CONTENT_TYPE;

/// Answers a streamed request holds before it stops reading more lines (the client is slowed
/// down, not buffered without limit).
const STREAM_ANSWERS: usize = 16;

/// A response body: whole, or a stream of answers.
type Body = Either<Full<Bytes>, ChannelBody>;

/// A streamed response: each message of the channel is sent as it comes.
pub struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|bytes| bytes.map(|b| Ok(Frame::data(b))))
    }
}

/// How `wafer serve` starts.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How the server answers.
    pub options: ServerOptions,
    /// Exit with an error, before listening, when any model cannot be loaded (for CI
    /// pipelines). Otherwise that model answers 503 and the others serve.
    pub exit_on_error: bool,
    /// Poll the repository this often and reload the models whose folders change.
    pub watch: Option<Duration>,
    /// The prediction log, if on.
    pub log: Option<crate::monitoring::log::Options>,
    /// How often online drift tests the log, and over how many rows; `None` for never.
    pub drift: Option<DriftOptions>,
}

/// Loads every model of the repository `repo` (in parallel, each failing alone), then serves
/// them until SIGTERM or ctrl-c, and drains.
pub async fn serve(loader: Arc<Loader>, repo: PathBuf, config: ServeConfig) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::open(repo, loader, Arc::clone(&metrics)).await);
    if config.exit_on_error && !registry.all_ready() {
        let index = registry.index();
        anyhow::bail!("some models could not be loaded: {index}");
    }
    if let Some(interval) = config.watch {
        tokio::spawn(Arc::clone(&registry).watch(interval));
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    let mut server = Server::new(Arc::clone(&registry), Arc::clone(&metrics), config.options);
    if let Some(log) = &config.log {
        server = server.with_log(PredictionLog::open(log)?);
        if let Some(drift) = config.drift {
            let options = crate::monitoring::drift::Options {
                log: log.path.clone(),
                interval: drift.interval,
                window: drift.window,
                min_rows: drift.min_rows,
            };
            server =
                server.with_drift(crate::monitoring::drift::spawn(registry, metrics, options)?);
        }
    }
    Arc::new(server).run(listener, shutdown_signal()).await
}

/// SIGTERM (what Kubernetes sends) or ctrl-c.
async fn shutdown_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// How often online drift runs, and over what.
#[derive(Clone, Debug)]
pub struct DriftOptions {
    /// How often every model is tested.
    pub interval: Duration,
    /// The newest logged rows tested, per model.
    pub window: usize,
    /// Fewer logged rows than this are not tested.
    pub min_rows: usize,
}

/// How the server answers, beyond its models.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Instances running at once, across all models.
    pub max_instances: usize,
    /// Triton's strict readiness: `/v2/health/ready` is false while any model is unavailable.
    /// Relaxed, it is true once the server listens.
    pub strict_readiness: bool,
    /// Per-model concurrency, queue and wait deadline.
    pub admission: Limits,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// How long requests in flight may take to finish after SIGTERM.
    pub drain_timeout: Duration,
    /// The bearer token of the repository API; without one, the API is off (404).
    pub admin_token: Option<String>,
    /// Threads that serve connections ([`lanes`](crate::serving::lanes)); one per core by
    /// default (`wafer serve` picks with [`crate::serving::lane_count`]).
    pub lanes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_instances: 64,
            strict_readiness: true,
            admission: Limits {
                concurrency: 64,
                queue: 256,
                wait: Duration::from_secs(5),
            },
            max_body: MAX_BODY,
            max_header_bytes: 16 << 10,
            drain_timeout: Duration::from_secs(30),
            admin_token: None,
            lanes: crate::cores(),
        }
    }
}

/// The models served, the bounds on what runs, and the state of a shutdown.
pub struct Server {
    registry: Arc<Registry>,
    permits: Arc<Semaphore>,
    admission: Admission,
    metrics: Arc<Metrics>,
    options: ServerOptions,
    /// Set on SIGTERM: readiness turns false while requests drain.
    draining: AtomicBool,
    /// The prediction log, if on.
    log: Option<PredictionLog>,
    /// Online drift's latest results, when the log is on.
    drift: Option<Arc<DriftBoard>>,
    /// Request ids made up for requests without one.
    request_ids: std::sync::atomic::AtomicU64,
    /// Requests without a sticky key that canaries have seen, for an even split.
    canary_count: std::sync::atomic::AtomicU64,
}

impl Server {
    /// A server for the models of `registry`.
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>, options: ServerOptions) -> Server {
        Server {
            registry,
            permits: Arc::new(Semaphore::new(options.max_instances)),
            admission: Admission::new(options.admission),
            metrics,
            options,
            draining: AtomicBool::new(false),
            log: None,
            drift: None,
            request_ids: std::sync::atomic::AtomicU64::new(0),
            canary_count: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The model that answers a request to `primary`: its canary for the canary's share (by
    /// the sticky key `key` finds, when there is one), or `primary`. A canary that cannot
    /// serve leaves the request to the primary.
    fn pick(
        &self,
        primary: Arc<LoadedModel>,
        routing: &Routing,
        key: impl FnOnce(&str) -> Option<String>,
    ) -> Arc<LoadedModel> {
        let Some(canary) = &routing.canary else {
            return primary;
        };
        let key = canary.sticky.as_deref().and_then(key);
        if !traffic::to_canary(canary, key.as_deref(), &self.canary_count) {
            return primary;
        }
        self.registry
            .resolve(&canary.model, None)
            .unwrap_or(primary)
    }

    /// Mirrors an answered request to `routing`'s shadow, if it has one.
    fn shadow(
        &self,
        primary: &str,
        routing: &Routing,
        asked: impl FnOnce() -> Mirrored,
        answered: &[wafer_scoring::Tensor],
    ) {
        let Some(shadow) = &routing.shadow else {
            return;
        };
        match self.registry.resolve(shadow, None) {
            Ok(model) => traffic::mirror(
                primary.to_owned(),
                model,
                asked(),
                answered.to_vec(),
                Arc::clone(&self.metrics),
                Arc::clone(&self.permits),
            ),
            Err(_) => self.metrics.record_shadow(primary, shadow, "error"),
        }
    }

    /// Logs sampled invocations to `log`.
    pub fn with_log(mut self, log: PredictionLog) -> Server {
        self.log = Some(log);
        self
    }

    /// Answers `/drift` from `board`.
    pub fn with_drift(mut self, board: Arc<DriftBoard>) -> Server {
        self.drift = Some(board);
        self
    }

    /// Whether this invocation is sampled for the prediction log.
    fn logs(&self) -> bool {
        self.log.as_ref().is_some_and(PredictionLog::wants)
    }

    /// A request id for a request that brought none: unique in this process.
    fn new_request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!("{:x}-{n}", crate::monitoring::log::now_ms())
    }

    /// Hands a sampled invocation to the prediction log.
    fn log_invocation(
        &self,
        model: &LoadedModel,
        logged: Logged,
        outcome: Outcome,
        latency_us: u64,
    ) {
        let Some(log) = &self.log else {
            return;
        };
        let queued = log.record(LogRecord {
            time_ms: crate::monitoring::log::now_ms(),
            model: model.name().to_owned(),
            version: model.version().to_string(),
            request_id: logged.request_id,
            input: logged.input,
            output: logged.output,
            latency_us,
            outcome: outcome.as_str().to_owned(),
        });
        if !queued {
            self.metrics.record_log_dropped();
        }
    }

    /// Whether `/v2/health/ready` answers true.
    fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && (!self.options.strict_readiness || self.registry.all_ready())
    }

    /// The version of `name` a request asks for.
    fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ProtocolError> {
        self.registry.resolve(name, version)
    }

    /// Serves connections on `listener` until `shutdown` completes. Then readiness turns
    /// false, the listener closes (new connections are refused), every connection finishes
    /// the request it is answering and closes, and this returns once they have, or after the
    /// drain timeout.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        // The line tests and scripts wait for; it carries the real port when binding to :0.
        println!("wafer listening on http://{addr}");
        tracing::info!(%addr, models = ?self.registry.models().keys().collect::<Vec<_>>(), ready = self.ready(), "serving");
        let lanes = Lanes::new(self.options.lanes).context("starting the connection lanes")?;
        let (drain, draining) = tokio::sync::watch::channel(false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin or die.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // The socket moves to its lane's runtime, whose reactor then drives it.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot hand a connection to a lane");
                    continue;
                }
            };
            let server = Arc::clone(&self);
            let draining = draining.clone();
            lanes.dispatch(move || match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => Box::pin(server.connection(stream, peer, draining)),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot register a connection");
                    Box::pin(std::future::ready(()))
                }
            });
        }
        self.draining.store(true, Ordering::Relaxed);
        drop(listener);
        // Only the connections' receivers are left to wait for.
        drop(draining);
        let open = drain.receiver_count();
        tracing::info!(
            connections = open,
            timeout_ms = self.options.drain_timeout.as_millis() as u64,
            "shutting down: draining"
        );
        let _ = drain.send(true);
        let drained = tokio::time::timeout(self.options.drain_timeout, drain.closed()).await;
        match drained {
            Ok(()) => tracing::info!("drained; exiting"),
            Err(_) => tracing::warn!(
                connections = drain.receiver_count(),
                "drain timeout: closing the connections still open"
            ),
        }
        // What the drained requests queued for the prediction log is committed before exit.
        if let Some(log) = &self.log
            && !log.flush(Duration::from_secs(10))
        {
            tracing::warn!("the prediction log could not commit every record before exit");
        }
        Ok(())
    }

    /// Serves one connection; when `draining` turns true, finishes the request in flight and
    /// closes. Dropping `draining` tells the drain this connection is done.
    async fn connection(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        mut draining: tokio::sync::watch::Receiver<bool>,
    ) {
        let _open = self.registry.runtime().slots().open_connection();
        let server = Arc::clone(&self);
        let service = service_fn(move |req: Request<Incoming>| {
            let server = Arc::clone(&server);
            async move {
                if let Err(e) = server.check_head(&req) {
                    // Read what the client sent before answering and closing: a close with
                    // unread bytes resets the connection, and the client may never see the 431.
                    let body = Limited::new(req.into_body(), server.options.max_body);
                    let _ = tokio::time::timeout(Duration::from_secs(2), body.collect()).await;
                    return Ok::<_, Infallible>(server.refuse(e, "", "headers_too_large"));
                }
                if is_ndjson(&req) {
                    return Ok(server.stream(req));
                }
                Ok(server.handle(req, peer).await.map(Either::Left))
            }
        });
        // hyper's own limit on a request head is above ours, so that ours answers first, with
        // a JSON error that the metrics count.
        let buffer = (self.options.max_header_bytes * 4).max(64 << 10);
        let conn = http1::Builder::new()
            .keep_alive(true)
            .max_buf_size(buffer)
            .max_headers(1024)
            .serve_connection(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let mut closing = *draining.borrow();
        if closing {
            conn.as_mut().graceful_shutdown();
        }
        let result = loop {
            if closing {
                break conn.as_mut().await;
            }
            tokio::select! {
                result = conn.as_mut() => break result,
                _ = draining.changed() => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection closed with an error");
        }
    }

    /// Refuses a request whose head is over the limit.
    fn check_head(&self, req: &Request<Incoming>) -> Result<(), ProtocolError> {
        let limit = self.options.max_header_bytes;
        let head = req.uri().to_string().len()
            + req
                .headers()
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if head > limit {
            return Err(ProtocolError::HeadersTooLarge { limit });
        }
        Ok(())
    }

    /// The answer of a request a limit refused, counted under `reason`.
    fn refuse(&self, e: ProtocolError, model: &str, reason: &str) -> Response<Body> {
        self.metrics.record_refused(model, reason);
        error_response(&e).map(Either::Left)
    }

    /// The bearer token check of the management routes: 404 when they are off, 401 without
    /// the right token.
    fn authorize(&self, req: &Request<Incoming>, route: &Route) -> Result<(), ProtocolError> {
        let Some(token) = &self.options.admin_token else {
            return Err(ProtocolError::RouteNotFound {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            });
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
            tracing::warn!(?route, "management request without the admin token");
            return Err(ProtocolError::Unauthorized);
        }
        Ok(())
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let mut call = Call::default();
        let result = self.respond(req, &mut call).await;
        let mut header_length = None;
        let mut headers = Vec::new();
        let (status, body, content_type) = match result {
            Ok(Reply::Json(body)) => (200, body, "application/json"),
            Ok(Reply::JsonStatus(status, body)) => (status, body, "application/json"),
            Ok(Reply::Metrics(format, body)) => (200, body.into_bytes(), format.content_type()),
            Ok(Reply::Infer(r)) => {
                header_length = r.header_length;
                let content_type = match header_length {
                    Some(_) => "application/octet-stream",
                    None => "application/json",
                };
                (200, r.body, content_type)
            }
            Err(e) => {
                headers = e.headers();
                if let Some(reason) = refusal_reason(&e, call.refusal) {
                    self.metrics
                        .record_refused(call.model_name.as_deref().unwrap_or(""), reason);
                }
                (e.status(), e.body(), "application/json")
            }
        };
        tracing::debug!(
            %peer, %method, %path, status, micros = started.elapsed().as_micros() as u64,
            "request"
        );
        let request_id = call.log.as_ref().map(|l| l.request_id.clone());
        if let Some(model) = call.model.clone() {
            let reason = (status != 200)
                .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .flatten()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            if let Some(logged) = &mut call.log
                && status == 200
                && logged.output.is_none()
            {
                logged.output = Some(String::from_utf8_lossy(&body).into_owned());
            }
            self.record(&model, status, reason, &mut call, started, body.len());
        }
        let mut response = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", content_type);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        if let Some(n) = header_length {
            response = response.header(protocol::binary::HEADER_LENGTH, n);
        }
        if let Some(id) = request_id {
            response = response.header(REQUEST_ID_HEADER, id);
        }
        if let Some(model) = &call.model {
            response = response.header(MODEL_HEADER, model.name());
        }
        if call.measured.instance_predictions > 0 {
            let m = call.measured;
            response = response
                .header(
                    protocol::INSTANCE_PREDICTIONS_HEADER,
                    m.instance_predictions,
                )
                .header(protocol::INSTANCE_MODEL_PARSES_HEADER, m.model_parses)
                .header(protocol::BATCH_SIZE_HEADER, m.batch_size);
        }
        response
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
    }

    /// Records one invocation of `model` that ended with `status`.
    fn record(
        &self,
        model: &LoadedModel,
        status: u16,
        reason: Option<String>,
        call: &mut Call,
        started: Instant,
        response_bytes: usize,
    ) {
        let m = call.measured;
        let outcome = match status {
            200 => Outcome::Ok,
            _ if m.failure == Some(GuestFailure::Timeout) => Outcome::Timeout,
            400..=499 => Outcome::ClientError,
            _ => Outcome::GuestError,
        };
        self.metrics.record(&Invocation {
            model: model.name().to_owned(),
            version: model.version().to_string(),
            instantiate_us: m.instantiate.as_micros() as u64,
            made_ahead: m.made_ahead,
            guest_us: m.guest.as_micros() as u64,
            total_us: started.elapsed().as_micros() as u64,
            memory_bytes: m.memory_bytes,
            request_bytes: call.request_bytes,
            response_bytes: response_bytes as u64,
            outcome,
            reason,
            cold: m.cold,
            cache: model.cache(),
            lookups: m.lookups,
            lookup_misses: m.lookup_misses,
            backend: model.backend(),
            guest_failure: m.failure.map(GuestFailure::as_str),
            batch_size: m.batch_size,
            batch_first: m.batch_first,
        });
        if let Some(logged) = call.log.take() {
            let latency = started.elapsed().as_micros() as u64;
            self.log_invocation(model, logged, outcome, latency);
        }
    }

    /// A slot of `model` and one of the instance pool, or 503 when the model is overloaded.
    async fn admit(
        &self,
        model: &str,
        call: &mut Call,
    ) -> Result<(Slot, tokio::sync::SemaphorePermit<'_>), ProtocolError> {
        let slot = self.admission.admit(model).await.map_err(|(e, refusal)| {
            call.refusal = Some(refusal);
            e
        })?;
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ProtocolError::Internal("server is shutting down".into()))?;
        Ok((slot, permit))
    }

    /// Answers a streamed inference (`application/x-ndjson`) line by line, as the lines arrive.
    /// Each line is one invocation in the metrics.
    fn stream(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let model = match protocol::route(req.method().as_str(), req.uri().path()) {
            Ok(Route::Infer { model, version }) => self.model(&model, version.as_deref()),
            Ok(_) => Err(ProtocolError::InvalidRequest(format!(
                "only .../infer takes {NDJSON}"
            ))),
            Err(e) => Err(e),
        };
        let model = match model {
            Ok(model) => model,
            Err(e) => return error_response(&e).map(Either::Left),
        };
        let (answers, body) = tokio::sync::mpsc::channel(STREAM_ANSWERS);
        tokio::spawn(async move {
            let mut request = req.into_body();
            let mut lines = ndjson::Lines::default();
            let mut ended = false;
            while !ended {
                match request.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            lines.push(&data);
                        }
                    }
                    // The request ended, or the client went away: answer what is left.
                    Some(Err(_)) | None => ended = true,
                }
                while let Some((number, line)) = lines.next_line() {
                    if !self.answer(&model, number, line, &answers).await {
                        return; // The client stopped reading: stop the work.
                    }
                }
                if let Some(refusal) = lines.overlong() {
                    let _ = answers.send(Bytes::from(refusal)).await;
                    return;
                }
            }
            if let Some((number, line)) = lines.rest() {
                self.answer(&model, number, line, &answers).await;
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", NDJSON)
            .body(Either::Right(ChannelBody(body)))
            .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
    }

    /// Answers one streamed line; false once the client has stopped reading. A line the
    /// model's admission refuses is answered with the overload error.
    async fn answer(
        &self,
        model: &Arc<LoadedModel>,
        number: u64,
        line: &[u8],
        answers: &tokio::sync::mpsc::Sender<Bytes>,
    ) -> bool {
        let started = Instant::now();
        let mut call = Call {
            model: Some(Arc::clone(model)),
            request_bytes: line.len() as u64,
            ..Call::default()
        };
        let answer = match self.admit(model.name(), &mut call).await {
            Ok(_admitted) => crate::serving::stream::answer_line(model, number, line).await,
            Err(e) => {
                if let Some(reason) = refusal_reason(&e, call.refusal) {
                    self.metrics.record_refused(model.name(), reason);
                }
                let bytes = ndjson::answer(number, Err(&e));
                return answers.send(Bytes::from(bytes)).await.is_ok();
            }
        };
        let Some(answer) = answer else {
            return !answers.is_closed();
        };
        call.measured = answer.measured;
        let (status, reason) = match &answer.error {
            None => (200, None),
            Some(e) => (e.status(), Some(e.to_string())),
        };
        if self.logs() {
            call.log = Some(Logged {
                request_id: self.new_request_id(),
                input: String::from_utf8_lossy(line).trim_end().to_owned(),
                output: answer
                    .error
                    .is_none()
                    .then(|| String::from_utf8_lossy(&answer.bytes).trim_end().to_owned()),
            });
        }
        self.record(
            model,
            status,
            reason,
            &mut call,
            started,
            answer.bytes.len(),
        );
        answers.send(Bytes::from(answer.bytes)).await.is_ok()
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
        call: &mut Call,
    ) -> Result<Reply, ProtocolError> {
        let route = protocol::route(req.method().as_str(), req.uri().path())?;
        call.model_name = route.model().map(str::to_owned);
        if route.is_management() {
            self.authorize(&req, &route)?;
        }
        // Read the whole body before answering anything, so that a client still sending it
        // never sees the connection closed under it.
        let header_length = protocol::binary::header_length(
            req.headers()
                .get(protocol::binary::HEADER_LENGTH)
                .map(|v| v.as_bytes()),
        )?;
        let accept = req
            .headers()
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match route {
            Route::Infer { .. } | Route::V1Predict { .. } => {
                read_body(req, self.options.max_body).await?
            }
            _ => Bytes::new(),
        };
        let json = |v: serde_json::Value| Ok(Reply::Json(protocol::to_json(&v)));
        let model = match &route {
            Route::ModelMetadata { model, version }
            | Route::ModelReady { model, version }
            | Route::ModelStats { model, version }
            | Route::ModelDrift { model, version }
            | Route::Infer { model, version } => {
                match self.model(model, version.as_deref()) {
                    Ok(m) => Some(m),
                    // Ready answers "no" for an unavailable model, with the reason, rather
                    // than failing.
                    Err(e @ ProtocolError::ModelUnavailable { .. })
                        if matches!(route, Route::ModelReady { .. }) =>
                    {
                        let body = serde_json::json!({
                            "name": model, "ready": false, "error": e.to_string()
                        });
                        return Ok(Reply::JsonStatus(e.status(), protocol::to_json(&body)));
                    }
                    Err(e) => return Err(e),
                }
            }
            Route::V1Predict { model } => Some(self.model(model, None)?),
            _ => None,
        };
        match (route, model) {
            (Route::Live, _) => json(serde_json::json!({ "live": true })),
            (Route::Ready, _) => {
                let ready = self.ready();
                let body = protocol::to_json(&serde_json::json!({ "ready": ready }));
                Ok(Reply::JsonStatus(if ready { 200 } else { 503 }, body))
            }
            (Route::ServerMetadata, _) => {
                let mut metadata = protocol::server_metadata();
                if self.options.admin_token.is_some() {
                    metadata.extensions.push("model_repository".to_owned());
                }
                Ok(Reply::Json(protocol::to_json(&metadata)))
            }
            (Route::ModelList, _) => json(self.registry.list()),
            (Route::Metrics, _) => {
                let format = Format::negotiate(accept.as_deref());
                Ok(Reply::Metrics(format, self.metrics.encode(format)))
            }
            (Route::RepositoryIndex, _) => json(self.registry.index()),
            (Route::RepositoryLoad { model }, _) => {
                if !repo::valid_name(&model) {
                    return Err(ProtocolError::InvalidRequest(format!(
                        "\"{model}\" is not a valid model name"
                    )));
                }
                match self.registry.load(&model).await {
                    Ok(()) => json(serde_json::json!({})),
                    Err(reason) => Err(ProtocolError::InvalidRequest(format!(
                        "failed to load \"{model}\": {reason}"
                    ))),
                }
            }
            (Route::RepositoryUnload { model }, _) => {
                self.registry.unload(&model).await?;
                json(serde_json::json!({}))
            }
            (Route::ModelMetadata { model, .. }, Some(m)) => {
                let mut metadata = protocol::model_metadata(m.metadata());
                metadata.versions = self.versions(&model);
                Ok(Reply::Json(protocol::to_json(&metadata)))
            }
            (Route::ModelReady { .. }, Some(m)) => {
                json(serde_json::json!({ "name": m.name(), "ready": true }))
            }
            (Route::ModelStats { .. }, Some(m)) => {
                let stats = self.metrics.stats(m.name());
                json(serde_json::json!({
                    "name": m.name(),
                    "version": m.version().to_string(),
                    "compiled_cache": m.cache().as_str(),
                    "stats": stats,
                }))
            }
            (Route::ModelDrift { .. }, Some(m)) => {
                let unavailable = |reason: String| ProtocolError::DriftUnavailable {
                    model: m.name().to_owned(),
                    reason,
                };
                let board = self.drift.as_ref().ok_or_else(|| {
                    unavailable("the prediction log, which online drift reads, is off".into())
                })?;
                let version = m.version().to_string();
                match board.get(m.name()) {
                    Some(status) if status.version != version => Err(unavailable(format!(
                        "only the newest version, {}, is watched",
                        status.version
                    ))),
                    Some(DriftStatus {
                        state: DriftState::Unavailable,
                        reason,
                        ..
                    }) => Err(unavailable(reason.unwrap_or_default())),
                    Some(status) => json(serde_json::to_value(status).map_err(|e| {
                        ProtocolError::Internal(format!("encoding the drift result: {e}"))
                    })?),
                    // Not checked yet: the first test runs as the server starts.
                    None => json(serde_json::json!({
                        "model": m.name(),
                        "version": version,
                        "state": "waiting",
                        "rows": 0,
                    })),
                }
            }
            (Route::V1Predict { .. }, Some(primary)) => {
                // A body that cannot be read counts against the model asked.
                call.model = Some(Arc::clone(&primary));
                call.request_bytes = body.len() as u64;
                let instances = protocol::v1_instances(&body)?;
                let routing = self.registry.routing(primary.name());
                let name = primary.name().to_owned();
                let m = self.pick(primary, &routing, |f| traffic::record_key(&instances, f));
                call.model = Some(Arc::clone(&m));
                if self.logs() {
                    call.log = Some(Logged {
                        request_id: self.new_request_id(),
                        input: instances.clone(),
                        output: None,
                    });
                }
                let _admitted = self.admit(m.name(), call).await?;
                let mirrored = routing.shadow.is_some().then(|| instances.clone());
                let (outputs, measured) = m.predict_records(instances, &[]).await;
                call.measured = measured;
                let outputs = outputs?;
                if let Some(records) = mirrored {
                    self.shadow(&name, &routing, || Mirrored::Records(records), &outputs);
                }
                Ok(Reply::Json(protocol::encode_v1_response(&outputs)))
            }
            (Route::Infer { version, .. }, Some(primary)) => {
                // A body that cannot be read counts against the model asked.
                call.model = Some(Arc::clone(&primary));
                call.request_bytes = body.len() as u64;
                let request = protocol::decode_infer_request(&body, header_length)?;
                let routing = self.registry.routing(primary.name());
                let name = primary.name().to_owned();
                // A request for a given version gets that version, never a canary.
                let m = match version {
                    None => self.pick(primary, &routing, |f| {
                        traffic::tensor_key(&request.inputs, f)
                    }),
                    Some(_) => primary,
                };
                call.model = Some(Arc::clone(&m));
                if self.logs() {
                    call.log = Some(Logged {
                        request_id: request.id.clone().unwrap_or_else(|| self.new_request_id()),
                        // A JSON request as it came; binary tensor data as JSON.
                        input: match header_length {
                            None => String::from_utf8_lossy(&body).into_owned(),
                            Some(_) => format!(
                                "{{\"inputs\":{}}}",
                                protocol::tensors_to_json(request.inputs.clone())
                            ),
                        },
                        output: None,
                    });
                }
                let _admitted = self.admit(m.name(), call).await?;
                let mirrored = routing
                    .shadow
                    .is_some()
                    .then(|| (request.inputs.clone(), request.outputs.clone()));
                let (outputs, measured) = m.predict(request.inputs, &request.outputs).await;
                call.measured = measured;
                let outputs = outputs?;
                if let Some((inputs, asked)) = mirrored {
                    self.shadow(
                        &name,
                        &routing,
                        || Mirrored::Tensors(inputs, asked),
                        &outputs,
                    );
                }
                let binary_out = request.binary.all || !request.binary.names.is_empty();
                if let Some(logged) = call.log.as_mut().filter(|_| binary_out) {
                    logged.output = Some(protocol::tensors_to_json(outputs.clone()).to_string());
                }
                Ok(Reply::Infer(protocol::encode_infer_response(
                    m.name(),
                    Some(&m.version().to_string()),
                    request.id,
                    outputs,
                    &request.binary,
                )))
            }
            (route, None) => Err(ProtocolError::Internal(format!(
                "route {route:?} has no model"
            ))),
        }
    }

    /// The ready versions of `model`, as strings.
    fn versions(&self, model: &str) -> Vec<String> {
        self.registry
            .models()
            .get(model)
            .map(|m| m.ready_versions().iter().map(u64::to_string).collect())
            .unwrap_or_default()
    }
}

/// A successful answer's body.
enum Reply {
    Json(Vec<u8>),
    /// JSON under another status than 200: readiness that says no.
    JsonStatus(u16, Vec<u8>),
    /// `/metrics`, in the format the client asked for.
    Metrics(Format, String),
    /// An inference response: JSON, or JSON and binary tensor data.
    Infer(protocol::EncodedResponse),
}

/// What a request touched, for its metrics record.
#[derive(Default)]
struct Call {
    /// What the prediction log keeps of it, when it is sampled.
    log: Option<Logged>,
    /// The model the route names, resolved or not.
    model_name: Option<String>,
    /// The model version that ran it.
    model: Option<Arc<LoadedModel>>,
    request_bytes: u64,
    measured: Measured,
    /// Why admission refused it, if it did.
    refusal: Option<Refusal>,
}

/// A sampled invocation, as the prediction log keeps it.
#[derive(Default)]
struct Logged {
    request_id: String,
    input: String,
    output: Option<String>,
}

/// The metrics label of a request a limit refused, if `e` is one.
fn refusal_reason(e: &ProtocolError, refusal: Option<Refusal>) -> Option<&'static str> {
    match e {
        ProtocolError::PayloadTooLarge { .. } => Some("body_too_large"),
        ProtocolError::HeadersTooLarge { .. } => Some("headers_too_large"),
        ProtocolError::Overloaded { .. } => refusal.map(Refusal::as_str),
        _ => None,
    }
}

/// The response of an error: its status, headers and `{"error"}` body.
fn error_response(e: &ProtocolError) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/json");
    for (name, value) in e.headers() {
        response = response.header(name, value);
    }
    // The connection of a refused head or body is not reused: the client must not send its
    // next request on it.
    if matches!(
        e,
        ProtocolError::HeadersTooLarge { .. } | ProtocolError::PayloadTooLarge { .. }
    ) {
        response = response.header("connection", "close");
    }
    response
        .body(Full::new(Bytes::from(e.body())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether a request streams newline-delimited JSON.
fn is_ndjson(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(NDJSON))
}

/// Reads a request body of at most `limit` bytes.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ProtocolError> {
    let too_large = ProtocolError::PayloadTooLarge { limit };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let collected = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large.clone()
            } else {
                ProtocolError::InvalidRequest(format!("cannot read body: {e}"))
            }
        })?;
    Ok(collected.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
    }
}
