//! `wafer serve`: the KServe v2 REST API over hyper, one fresh instance per request.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

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

use crate::monitoring::{Invocation, Metrics, Outcome};
use crate::runtime::{LoadedModel, Measured};
use crate::serving::repo::{Loader, ModelSource};

/// The largest request body accepted, in bytes.
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
}

/// Loads every model of `sources` (in parallel, each failing alone), then serves them until
/// ctrl-c.
pub async fn serve(
    loader: Arc<Loader>,
    sources: Vec<ModelSource>,
    config: ServeConfig,
) -> anyhow::Result<()> {
    let mut models = Vec::new();
    for (name, loaded) in loader.load_all(sources).await {
        let state = match loaded {
            Ok(model) => ModelState::Ready(Box::new(model)),
            Err(e) => {
                let reason = format!("{e:#}");
                if config.exit_on_error {
                    anyhow::bail!("model \"{name}\" could not be loaded: {reason}");
                }
                tracing::error!(
                    model = name,
                    reason,
                    "model unavailable; serving the others"
                );
                ModelState::Unavailable(reason)
            }
        };
        models.push((name, state));
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    Arc::new(Server::new(models, config.options))
        .run(listener)
        .await
}

/// A model of the repository: loaded, or unavailable with the reason its build or load failed.
/// An unavailable model answers 503 naming that reason; the others serve.
pub enum ModelState {
    /// Compiled and ready to instantiate.
    Ready(Box<LoadedModel>),
    /// Could not be built or loaded.
    Unavailable(String),
}

/// How the server answers, beyond its models.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// Instances running at once, across all models.
    pub max_instances: usize,
    /// Triton's strict readiness: `/v2/health/ready` is false while any model is unavailable.
    /// Relaxed, it is true once the server listens.
    pub strict_readiness: bool,
}

/// The models served and the bound on concurrent instances.
pub struct Server {
    models: BTreeMap<String, ModelState>,
    permits: Semaphore,
    metrics: Metrics,
    strict_readiness: bool,
}

impl Server {
    /// A server for `models`, by name.
    pub fn new(models: Vec<(String, ModelState)>, options: ServerOptions) -> Server {
        let models: BTreeMap<String, ModelState> = models.into_iter().collect();
        let metrics = Metrics::new();
        for (name, state) in &models {
            let cache = match state {
                ModelState::Ready(m) => Some(m.cache()),
                ModelState::Unavailable(_) => None,
            };
            metrics.record_load(name, protocol::MODEL_VERSION, cache);
        }
        Server {
            models,
            permits: Semaphore::new(options.max_instances),
            metrics,
            strict_readiness: options.strict_readiness,
        }
    }

    /// Whether `/v2/health/ready` answers true.
    fn ready(&self) -> bool {
        !self.strict_readiness
            || self
                .models
                .values()
                .all(|m| matches!(m, ModelState::Ready(_)))
    }

    /// The loaded model `name`: 404 when the repository has no such model, 503 with the reason
    /// when it could not be loaded.
    fn model(&self, name: &str) -> Result<&LoadedModel, ProtocolError> {
        match self.models.get(name) {
            Some(ModelState::Ready(m)) => Ok(m),
            Some(ModelState::Unavailable(reason)) => Err(ProtocolError::ModelUnavailable {
                model: name.to_owned(),
                reason: reason.clone(),
            }),
            None => Err(ProtocolError::ModelNotFound(name.to_owned())),
        }
    }

    /// Serves connections on `listener` until the process ends or ctrl-c.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        // The line tests and scripts wait for; it carries the real port when binding to :0.
        println!("wafer listening on http://{addr}");
        tracing::info!(%addr, models = ?self.models.keys().collect::<Vec<_>>(), ready = self.ready(), "serving");
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("shutting down");
                    return Ok(());
                }
            };
            let server = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let server = Arc::clone(&server);
                    async move {
                        if is_ndjson(&req) {
                            return Ok::<_, Infallible>(server.stream(req));
                        }
                        Ok(server.handle(req, peer).await.map(Either::Left))
                    }
                });
                if let Err(e) = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection closed with an error");
                }
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let mut call = Call::default();
        let result = self.respond(req, &mut call).await;
        let mut header_length = None;
        let (status, body, content_type) = match result {
            Ok(Reply::Json(body)) => (200, body, "application/json"),
            Ok(Reply::JsonStatus(status, body)) => (status, body, "application/json"),
            Ok(Reply::Text(body)) => (200, body.into_bytes(), "text/plain; version=0.0.4"),
            Ok(Reply::Infer(r)) => {
                header_length = r.header_length;
                let content_type = match header_length {
                    Some(_) => "application/octet-stream",
                    None => "application/json",
                };
                (200, r.body, content_type)
            }
            Err(e) => (e.status(), e.body(), "application/json"),
        };
        tracing::debug!(
            %peer, %method, %path, status, micros = started.elapsed().as_micros() as u64,
            "request"
        );
        if let Some(model) = call.model {
            let reason = (status != 200)
                .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
                .flatten()
                .and_then(|v| v["error"].as_str().map(str::to_owned));
            self.record(model, status, reason, &call, started, body.len());
        }
        let mut response = Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", content_type);
        if let Some(n) = header_length {
            response = response.header(protocol::binary::HEADER_LENGTH, n);
        }
        if call.measured.instance_predictions > 0 {
            let m = call.measured;
            response = response
                .header(
                    protocol::INSTANCE_PREDICTIONS_HEADER,
                    m.instance_predictions,
                )
                .header(protocol::INSTANCE_MODEL_PARSES_HEADER, m.model_parses);
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
        call: &Call<'_>,
        started: Instant,
        response_bytes: usize,
    ) {
        let m = call.measured;
        let outcome = match status {
            200 => Outcome::Ok,
            _ if m.timed_out => Outcome::Timeout,
            400..=499 => Outcome::ClientError,
            _ => Outcome::GuestError,
        };
        self.metrics.record(&Invocation {
            model: model.name().to_owned(),
            version: protocol::MODEL_VERSION.to_owned(),
            instantiate_us: m.instantiate_us,
            guest_us: m.guest_us,
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
        });
    }

    /// Answers a streamed inference (`application/x-ndjson`) line by line, as the lines arrive.
    /// Each line is one invocation in the metrics.
    fn stream(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let error = |e: ProtocolError| {
            Response::builder()
                .status(StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST))
                .header("content-type", "application/json")
                .body(Either::Left(Full::new(Bytes::from(e.body()))))
                .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
        };
        let name = match protocol::route(req.method().as_str(), req.uri().path()) {
            Ok(Route::Infer { model, version }) => {
                let found = self
                    .model(&model)
                    .and_then(|m| protocol::check_version(m.name(), version.as_deref()));
                if let Err(e) = found {
                    return error(e);
                }
                model
            }
            Ok(_) => {
                return error(ProtocolError::InvalidRequest(format!(
                    "only .../infer takes {NDJSON}"
                )));
            }
            Err(e) => return error(e),
        };
        let (answers, body) = tokio::sync::mpsc::channel(STREAM_ANSWERS);
        tokio::spawn(async move {
            let Ok(model) = self.model(&name) else {
                return;
            };
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
                    if !self.answer(model, number, line, &answers).await {
                        return; // The client stopped reading: stop the work.
                    }
                }
                if let Some(refusal) = lines.overlong() {
                    let _ = answers.send(Bytes::from(refusal)).await;
                    return;
                }
            }
            if let Some((number, line)) = lines.rest() {
                self.answer(model, number, line, &answers).await;
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", NDJSON)
            .body(Either::Right(ChannelBody(body)))
            .unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
    }

    /// Answers one streamed line; false once the client has stopped reading.
    async fn answer(
        &self,
        model: &LoadedModel,
        number: u64,
        line: &[u8],
        answers: &tokio::sync::mpsc::Sender<Bytes>,
    ) -> bool {
        let started = Instant::now();
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let Some(answer) = crate::serving::stream::answer_line(model, number, line).await else {
            return !answers.is_closed();
        };
        let call = Call {
            model: Some(model),
            request_bytes: line.len() as u64,
            measured: answer.measured,
        };
        let (status, reason) = match &answer.error {
            None => (200, None),
            Some(e) => (e.status(), Some(e.to_string())),
        };
        self.record(model, status, reason, &call, started, answer.bytes.len());
        answers.send(Bytes::from(answer.bytes)).await.is_ok()
    }

    async fn respond<'a>(
        &'a self,
        req: Request<Incoming>,
        call: &mut Call<'a>,
    ) -> Result<Reply, ProtocolError> {
        let route = protocol::route(req.method().as_str(), req.uri().path())?;
        // Read the whole body before answering anything, so that a client still sending it
        // never sees the connection closed under it.
        let header_length = protocol::binary::header_length(
            req.headers()
                .get(protocol::binary::HEADER_LENGTH)
                .map(|v| v.as_bytes()),
        )?;
        let body = match route {
            Route::Infer { .. } | Route::V1Predict { .. } => read_body(req).await?,
            _ => Bytes::new(),
        };
        let json = |v: serde_json::Value| Ok(Reply::Json(protocol::to_json(&v)));
        let model = match route.model().map(|name| (name, self.model(name))) {
            // Ready answers "no" for an unavailable model, with the reason, rather than failing.
            Some((name, Err(e @ ProtocolError::ModelUnavailable { .. })))
                if matches!(route, Route::ModelReady { .. }) =>
            {
                let body =
                    serde_json::json!({ "name": name, "ready": false, "error": e.to_string() });
                return Ok(Reply::JsonStatus(e.status(), protocol::to_json(&body)));
            }
            Some((_, found)) => Some(found?),
            None => None,
        };
        match (route, model) {
            (Route::Live, _) => json(serde_json::json!({ "live": true })),
            (Route::Ready, _) => {
                let ready = self.ready();
                let body = protocol::to_json(&serde_json::json!({ "ready": ready }));
                Ok(Reply::JsonStatus(if ready { 200 } else { 503 }, body))
            }
            (Route::ServerMetadata, _) => {
                Ok(Reply::Json(protocol::to_json(&protocol::server_metadata())))
            }
            (Route::ModelList, _) => json(protocol::model_list(self.models.iter().map(
                |(name, state)| match state {
                    ModelState::Ready(_) => (name.as_str(), None),
                    ModelState::Unavailable(reason) => (name.as_str(), Some(reason.as_str())),
                },
            ))),
            (Route::Metrics, _) => Ok(Reply::Text(self.metrics.encode())),
            (Route::ModelMetadata { version, .. }, Some(m)) => {
                protocol::check_version(m.name(), version.as_deref())?;
                Ok(Reply::Json(protocol::to_json(&protocol::model_metadata(
                    m.metadata(),
                ))))
            }
            (Route::ModelReady { version, .. }, Some(m)) => {
                protocol::check_version(m.name(), version.as_deref())?;
                json(serde_json::json!({ "name": m.name(), "ready": true }))
            }
            (Route::ModelStats { version, .. }, Some(m)) => {
                protocol::check_version(m.name(), version.as_deref())?;
                let stats = self.metrics.stats(m.name());
                json(serde_json::json!({
                    "name": m.name(),
                    "version": protocol::MODEL_VERSION,
                    "compiled_cache": m.cache().as_str(),
                    "stats": stats,
                }))
            }
            (Route::V1Predict { .. }, Some(m)) => {
                call.model = Some(m);
                call.request_bytes = body.len() as u64;
                let instances = protocol::v1_instances(&body)?;
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ProtocolError::Internal("server is shutting down".into()))?;
                let (outputs, measured) = m.predict_records(instances, &[]).await;
                call.measured = measured;
                Ok(Reply::Json(protocol::encode_v1_response(&outputs?)))
            }
            (Route::Infer { version, .. }, Some(m)) => {
                call.model = Some(m);
                call.request_bytes = body.len() as u64;
                protocol::check_version(m.name(), version.as_deref())?;
                let request = protocol::decode_infer_request(&body, header_length)?;
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ProtocolError::Internal("server is shutting down".into()))?;
                let (outputs, measured) = m.predict(request.inputs, &request.outputs).await;
                call.measured = measured;
                Ok(Reply::Infer(protocol::encode_infer_response(
                    m.name(),
                    Some(protocol::MODEL_VERSION),
                    request.id,
                    outputs?,
                    &request.binary,
                )))
            }
            (route, None) => Err(ProtocolError::Internal(format!(
                "route {route:?} has no model"
            ))),
        }
    }
}

/// A successful answer's body.
enum Reply {
    Json(Vec<u8>),
    /// JSON under another status than 200: readiness that says no.
    JsonStatus(u16, Vec<u8>),
    Text(String),
    /// An inference response: JSON, or JSON and binary tensor data.
    Infer(protocol::EncodedResponse),
}

/// What an inference request touched, for its metrics record.
#[derive(Default)]
struct Call<'a> {
    model: Option<&'a LoadedModel>,
    request_bytes: u64,
    measured: Measured,
}

/// Whether a request streams newline-delimited JSON.
fn is_ndjson(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(NDJSON))
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ProtocolError> {
    let collected = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ProtocolError::PayloadTooLarge { limit: MAX_BODY }
            } else {
                ProtocolError::InvalidRequest(format!("cannot read body: {e}"))
            }
        })?;
    Ok(collected.to_bytes())
}
