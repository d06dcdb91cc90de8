//! `wafer`: turns ONNX models into WebAssembly inference components and serves them.
//!
//! Subcommands: `serve` (the KServe v2 REST API over a model repository), `build` (one
//! self-contained component per model), `compile` (fill the compiled-component cache),
//! `predict` (one prediction from a file or stdin) and `features` (the feature pipeline over
//! files, and loading the online feature store).
//! Every prediction runs in a fresh instance of the model's component on wasmtime.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use wafer_protocol::{self as protocol, ProtocolError};

use wafer_host::batch;
use wafer_host::runtime::build::{self, Backend, BuildOptions, Builder};
use wafer_host::runtime::cache::{CompiledCache, FunctionCache};
use wafer_host::runtime::{GuestCode, LoadedModel, PoolLimits, Runtime};
use wafer_host::serving::admission::{self, Limits};
use wafer_host::serving::repo::{self, Loader};
use wafer_host::serving::{self as serve, stream};
use wafer_host::store::offline;
use wafer_host::store::{self, FeatureStore};

/// Serverless WebAssembly inference: ONNX models as per-request WASI components.
#[derive(Parser, Debug)]
#[command(name = "wafer", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve every model of a repository over the KServe v2 REST API, until SIGTERM or
    /// ctrl-c; then readiness turns false, new connections are refused, the requests in
    /// flight finish (within --drain-timeout) and it exits 0.
    Serve(ServeArgs),
    /// Compile components into the compiled cache ahead of time, so `serve` starts warm.
    Compile {
        /// Model folders (built first when stale), repositories of them, or built `.wasm`
        /// components. Models are built and compiled in parallel, each failing alone.
        #[arg(required = true)]
        models: Vec<PathBuf>,
        /// Instances alive at once; the engine settings must match `serve`'s to share entries.
        #[arg(long, default_value_t = PoolLimits::default().max_instances)]
        max_instances: u32,
        #[command(flatten)]
        components: ComponentArgs,
    },
    /// Build a model folder into a self-contained component, or with `--web` into the one-file
    /// bundle that the browser build loads.
    Build {
        /// Folder holding model.onnx.
        model_dir: PathBuf,
        /// Output path [default: target/wafer/<name>.wasm, or target/web/models/<name>.wafer].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Write the web bundle (model.onnx and features.toml in one file) instead.
        #[arg(long)]
        web: bool,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Serve the demo page and the browser build (made by `tools/web.sh`) on a local address.
    Web {
        /// The folder `tools/web.sh` fills: index.html, pkg/ and models/.
        #[arg(default_value = "target/web")]
        dir: PathBuf,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
    },
    /// The feature pipeline (`features.toml`) over files: the code the server runs.
    Features {
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Score a file into another (CSV, JSON Lines or Parquet, by extension), in parallel
    /// chunks committed as they finish: `--resume` continues a killed job without losing or
    /// repeating a row. Exits 0 when every row was scored, 3 when some were rejected (see
    /// `--rejects`), 2 when the input does not fit the model, 1 on any other error.
    Batch(BatchArgs),
    /// Write a model's reference profile beside it (`MODEL/reference/`): a seeded, bounded
    /// sample of its training data's raw fields and of the model's outputs on them, and each
    /// column's count, missing share, and quantiles or category frequencies. `wafer drift
    /// MODEL` and `wafer serve`'s online drift test against it.
    Profile(ProfileArgs),
    /// Test every column of current data against a reference for drift, as Evidently's
    /// DataDriftPreset does by default (KS or chi-square up to 1,000 reference rows,
    /// Wasserstein or Jensen-Shannon beyond; the dataset drifts when half its columns do).
    /// The reference is a model's profile (`wafer drift MODEL --current ...`: fields and
    /// outputs) or a file (`--reference`). Files are .csv, .jsonl or .parquet. Prints a
    /// table, or JSON with --json.
    Drift(DriftArgs),
    /// Score the same rows with two models (folders or built .wasm) and compare them: label
    /// agreement and a confusion table, the difference of every float output, and with
    /// --labels each model's accuracy, log-loss and ROC AUC (or RMSE, MAE and R²). With
    /// --max-disagreement it is a gate: exit 4 when the models disagree on more rows.
    Compare(CompareArgs),
    /// Training-serving skew: recompute a model's logged requests offline (its features.toml
    /// and ONNX, natively) and compare with what was served: the share that differ and the
    /// largest difference per output.
    Skew(SkewArgs),
    /// The prediction log that `wafer serve` writes.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Run one prediction and print the v2 response.
    Predict {
        /// A model folder, or a component built by `wafer build`.
        model: PathBuf,
        /// A v2 inference request or a JSON array of rows; `-` reads stdin.
        #[arg(
            short,
            long,
            required_unless_present = "stream",
            conflicts_with = "stream"
        )]
        input: Option<PathBuf>,
        /// Read newline-delimited JSON on stdin (records, rows or v2 requests) and answer each
        /// line on stdout as it arrives, flushed; a bad line answers `{"line": n, "error": ...}`.
        #[arg(long)]
        stream: bool,
        #[command(flatten)]
        components: ComponentArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args, Debug)]
struct BatchArgs {
    /// A model folder, or a component built by `wafer build`.
    model: PathBuf,
    /// The rows to score: .csv (with a header), .jsonl (records or rows of numbers), .parquet.
    #[arg(short, long)]
    input: PathBuf,
    /// The predictions: .csv, .jsonl or .parquet; the row's number (or id) then every output,
    /// a column per class for probabilities. Written whole at the end.
    #[arg(short, long)]
    output: PathBuf,
    /// Where the rows that could not be scored go, with their reasons (.csv or .jsonl).
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// For a model without features.toml: the columns that fill its input, in order
    /// [default: every column but the id column].
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// The column that names each row in the output [default: the row's number, from 0].
    #[arg(long)]
    id_column: Option<String>,
    /// Workers, each with its own instance of the model [default: the cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Rows per chunk: scored in one call and committed at once.
    #[arg(long, default_value_t = 16384)]
    chunk: usize,
    /// Continue an interrupted job from its last committed chunk.
    #[arg(long)]
    resume: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    components: ComponentArgs,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Args, Debug)]
struct SkewArgs {
    /// The model folder whose offline path is the reference (model.onnx and features.toml).
    model_dir: PathBuf,
    /// The model's name in the log [default: the folder's name].
    #[arg(long)]
    model: Option<String>,
    /// Only requests from this time on: RFC 3339, or seconds since the Unix epoch.
    #[arg(long)]
    since: Option<String>,
    /// The prediction log.
    #[arg(long, default_value = wafer_host::monitoring::log::DEFAULT_DB)]
    log_db: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

/// A `--since` value: RFC 3339, or seconds since the epoch; as ms since the epoch.
fn parse_since(text: &str) -> anyhow::Result<u64> {
    text.parse::<f64>()
        .ok()
        .or_else(|| wafer_features::time::parse_rfc3339(text))
        .map(|secs| (secs * 1000.0) as u64)
        .with_context(|| format!("--since {text}: expected RFC 3339 or seconds since the epoch"))
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Write logged predictions to a file (.jsonl, or .csv or .parquet with inputs and
    /// outputs as JSON text), oldest first.
    Export {
        /// Only this model's predictions [default: every model's].
        #[arg(long)]
        model: Option<String>,
        /// Only predictions from this time on: RFC 3339, or seconds since the Unix epoch.
        #[arg(long)]
        since: Option<String>,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// The prediction log.
        #[arg(long, default_value = wafer_host::monitoring::log::DEFAULT_DB)]
        log_db: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct CompareArgs {
    /// Model A: a model folder or a built component.
    a: PathBuf,
    /// Model B.
    b: PathBuf,
    /// The rows to score: .csv, .jsonl or .parquet.
    #[arg(long)]
    data: PathBuf,
    /// The column holding the true label (or target); it is not given to the models.
    #[arg(long)]
    labels: Option<String>,
    /// The largest share of rows (0 to 1) on which the models may disagree; more exits 4.
    #[arg(long)]
    max_disagreement: Option<f64>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    components: ComponentArgs,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Args, Debug)]
struct ProfileArgs {
    /// The model folder (model.onnx, and features.toml if it has one).
    model_dir: PathBuf,
    /// The training data: .csv, .jsonl or .parquet; raw records for a model with a
    /// features.toml, else one column per input feature, in order.
    #[arg(long)]
    data: PathBuf,
    /// Rows to sample at most.
    #[arg(long, default_value_t = wafer_host::evaluation::profile::DEFAULT_SAMPLE)]
    sample: usize,
    /// The sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(clap::Args, Debug)]
struct DriftArgs {
    /// A model folder whose reference profile (see `wafer profile`) is the reference.
    #[arg(required_unless_present = "reference")]
    model_dir: Option<PathBuf>,
    /// A file to use as the reference instead of a model's profile.
    #[arg(long, conflicts_with = "model_dir", requires = "current")]
    reference: Option<PathBuf>,
    /// The data to test: a file, or, with a model, `log` (its newest 1,000 logged rows),
    /// `log:N` (the newest N rows) or `log:DURATION` (the last 30m, 6h, 7d...).
    #[arg(long)]
    current: Option<String>,
    /// The prediction log that `--current log` reads.
    #[arg(long, default_value = wafer_host::monitoring::log::DEFAULT_DB)]
    log_db: PathBuf,
    /// The model's name in the log [default: the folder's name].
    #[arg(long)]
    model: Option<String>,
    /// Only this version's logged requests [default: every version's].
    #[arg(long)]
    version: Option<String>,
    /// The columns to test [default: every column of the reference].
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// A test for a column instead of the default, as COLUMN=METHOD (ks, chisquare, z,
    /// wasserstein, jensenshannon, psi); repeatable.
    #[arg(long = "method", value_parser = parse_column_method)]
    methods: Vec<(String, wafer_evaluation::Method)>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (charts inline, no network needed).
    #[arg(long)]
    html: Option<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
}

/// A window of the log: `N` rows, or a duration (`90s`, `30m`, `6h`, `7d`) back from now.
fn parse_window(text: &str) -> anyhow::Result<(Option<usize>, Option<u64>)> {
    if let Ok(rows) = text.parse::<usize>() {
        anyhow::ensure!(rows > 0, "log:0 holds no row");
        return Ok((Some(rows), None));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => f64::NAN,
    };
    let span = number.parse::<f64>().map(|n| n * seconds * 1000.0);
    match span {
        Ok(ms) if ms.is_finite() && ms > 0.0 => Ok((
            None,
            Some(wafer_host::monitoring::log::now_ms().saturating_sub(ms as u64)),
        )),
        _ => anyhow::bail!("log:{text}: expected a row count or a duration such as 30m, 6h, 7d"),
    }
}

/// `COLUMN=METHOD`.
fn parse_column_method(text: &str) -> Result<(String, wafer_evaluation::Method), String> {
    let (column, method) = text
        .split_once('=')
        .ok_or_else(|| format!("\"{text}\": expected COLUMN=METHOD"))?;
    let method = wafer_evaluation::Method::from_name(method.trim()).ok_or_else(|| {
        let names: Vec<&str> = wafer_evaluation::Method::ALL
            .iter()
            .map(|m| m.name())
            .collect();
        format!("unknown method \"{method}\" (one of {})", names.join(", "))
    })?;
    Ok((column.trim().to_owned(), method))
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Folder whose subfolders each hold a model: model.onnx (or a built model.wasm), or
    /// numbered version folders holding one.
    #[arg(default_value = "models")]
    model_repo: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Instances alive at once, across all models; sizes the instance pool.
    #[arg(long, default_value_t = PoolLimits::default().max_instances)]
    max_instances: u32,
    /// Create every call's instance, and drop it, on the request's path: never ahead of it,
    /// nor after its answer, while the server is idle.
    #[arg(long)]
    no_make_ahead: bool,
    /// Threads serving connections, each with the connections it took and their requests
    /// [default: two per core, one per core when a model batches].
    #[arg(long)]
    lanes: Option<usize>,
    /// Longest a model may run for one request, in milliseconds; then the request fails
    /// with 504 and the instance is dropped.
    #[arg(long, default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Largest linear memory of one instance (bytes, or with K, M, G: `256M`); a guest that
    /// needs more fails with 500, counted as memory_limit.
    #[arg(long, value_parser = admission::parse_size, default_value = "1G")]
    max_memory: usize,
    /// Requests one model runs at once [default: --max-instances].
    #[arg(long)]
    model_concurrency: Option<usize>,
    /// Requests that may wait for a busy model; more answer 503 with Retry-After at once.
    #[arg(long, default_value_t = 256)]
    queue_depth: usize,
    /// How long a request waits for a busy model before it answers 503 with Retry-After,
    /// in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    queue_timeout_ms: u64,
    /// Largest request body (bytes, or with K, M, G); larger answers 413.
    #[arg(long, value_parser = admission::parse_size, default_value = "64M")]
    max_body: usize,
    /// Largest request head, the request line and headers (bytes, or with K, M, G); larger
    /// answers 431.
    #[arg(long, value_parser = admission::parse_size, default_value = "16K")]
    max_header_bytes: usize,
    /// How long requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Reload a model when its folder changes on disk (polled; a change is loaded once it
    /// has been still for one interval). New folders load, removed ones unload.
    #[arg(long)]
    watch: bool,
    /// How often --watch polls, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    watch_interval_ms: u64,
    /// The prediction log: each sampled invocation's model, version, request id, inputs,
    /// outputs, latency and outcome, written off the request path.
    #[arg(long, default_value = wafer_host::monitoring::log::DEFAULT_DB)]
    log_db: PathBuf,
    /// The share of invocations logged, from 0 (the log off) to 1.
    #[arg(long, default_value_t = 1.0)]
    log_sample: f64,
    /// Log records that may wait for the writer; past it they are dropped and counted
    /// (wafer_prediction_log_dropped_total), never waited for.
    #[arg(long, default_value_t = 10_000)]
    log_queue: usize,
    /// Logged rows older than this many hours are deleted.
    #[arg(long, default_value_t = 168.0)]
    log_max_age_hours: f64,
    /// At most this many logged rows are kept, the newest.
    #[arg(long, default_value_t = 1_000_000)]
    log_max_rows: u64,
    /// How often, in milliseconds, online drift tests each model's newest logged rows against
    /// its reference profile (`wafer profile`); 0 turns it off. It needs the prediction log.
    #[arg(long, default_value_t = 60_000)]
    drift_interval_ms: u64,
    /// The newest logged rows each online drift test reads, per model.
    #[arg(long, default_value_t = 1_000)]
    drift_window: usize,
    /// Online drift waits until a model has logged this many rows.
    #[arg(long, default_value_t = 100)]
    drift_min_rows: usize,
    /// A file holding the bearer token of the repository API (/v2/repository/...). Without
    /// it, that API is off and answers 404.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Exit when stdin closes: lets a supervising process stop the server by exiting.
    #[arg(long)]
    exit_on_stdin_close: bool,
    /// Exit with an error before listening when any model cannot be built or loaded;
    /// otherwise that model answers 503 with the reason and the others serve.
    #[arg(long)]
    exit_on_error: bool,
    /// Triton's strict readiness: /v2/health/ready is false while any model is
    /// unavailable. `--strict-readiness false` makes it true once the server listens.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    strict_readiness: bool,
    #[command(flatten)]
    components: ComponentArgs,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Subcommand, Debug)]
enum FeaturesCommand {
    /// Learn the spec's statistics (means, ranges, quantiles, vocabularies, imputation values)
    /// from a CSV file and write them into the spec.
    Fit {
        /// The features.toml to fit.
        spec: PathBuf,
        /// Training data: CSV with a header row naming the fields.
        #[arg(long)]
        data: PathBuf,
        /// Where the fitted spec goes [default: over SPEC].
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Fill the looked-up fields that records lack from this feature database.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Write the model-ready columns of a CSV file, for training in Python.
    Transform {
        /// A fitted features.toml.
        spec: PathBuf,
        /// Raw records: CSV with a header row naming the fields.
        #[arg(long)]
        data: PathBuf,
        /// The CSV file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Fill the looked-up fields that records lack from this feature database.
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Replace a store of the online feature database with the rows of a CSV file, in one
    /// transaction: a server reading it sees the old rows or the new, never half.
    Load {
        /// The store's name, as `lookup = { store = ... }` gives it.
        #[arg(long)]
        store: String,
        /// CSV with a header row: the key column and one column per looked-up field.
        data: PathBuf,
        /// The column holding the entity key.
        #[arg(long)]
        key: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args, Debug)]
struct DbArgs {
    /// The online feature database (SQLite) that `lookup` fields read [default: .wafer/features.db].
    #[arg(long)]
    db: Option<PathBuf>,
}

impl DbArgs {
    fn path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from(store::DEFAULT_DB))
    }

    /// The database, opened (and created) when a model looks fields up or it was named.
    fn open_if(&self, needed: bool) -> anyhow::Result<Option<Arc<FeatureStore>>> {
        if !needed && self.db.is_none() {
            return Ok(None);
        }
        Ok(Some(FeatureStore::open(&self.path())?))
    }
}

/// Where model components are built, the compiled cache, and the guest they are built from.
#[derive(clap::Args, Debug)]
struct ComponentArgs {
    /// Where built components go.
    #[arg(long, default_value = "target/wafer")]
    build_dir: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
    #[command(flatten)]
    guest: GuestArgs,
}

#[derive(clap::Args, Clone, Debug, Default)]
struct CacheArgs {
    /// The compiled-component cache [default: $XDG_CACHE_HOME/wafer or ~/.cache/wafer].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile every component at start instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// How models' components are compiled: `shared` compiles a guest's code once for all the
    /// models built from it (each call then pays a few µs more), `per-model` each component
    /// whole; `auto` shares it from 8 models on. With a compiled cache only.
    #[arg(long, value_enum, default_value_t)]
    guest_code: GuestCode,
}

impl CacheArgs {
    fn cache(&self) -> Option<CompiledCache> {
        (!self.no_cache).then(|| {
            CompiledCache::new(
                self.cache_dir
                    .clone()
                    .unwrap_or_else(CompiledCache::default_dir),
            )
        })
    }

    /// Where Cranelift's compiled functions are kept.
    fn functions(&self) -> Arc<FunctionCache> {
        FunctionCache::with(self.cache().as_ref())
    }
}

#[derive(clap::Args, Debug)]
struct GuestArgs {
    /// The generic guest component [default: $WAFER_GUEST, or cargo's wasm32-wasip2/guest output].
    #[arg(long)]
    guest: Option<PathBuf>,
    /// The guest for models whose features look fields up [default: $WAFER_GUEST_LOOKUP, or
    /// wafer_guest_lookup.wasm beside the generic guest].
    #[arg(long)]
    lookup_guest: Option<PathBuf>,
    /// Keep only the model bytes in the snapshot; every instance parses the model itself.
    #[arg(long)]
    no_snapshot: bool,
    /// What runs the model: tract inside the component (`guest`, self-contained), or the
    /// host's native backend behind `wasi:nn` (`wasi-nn`; the component keeps the features
    /// and the v2 codec, and runs under `wafer serve`).
    #[arg(long, value_enum, default_value_t = Backend::Guest)]
    backend: Backend,
    /// With `--backend wasi-nn`: serve every model from one compiled guest, which reads its
    /// model's name, metadata and features.toml from its environment, instead of building a
    /// component per model. For repositories of many models: a model then costs its graph,
    /// with nothing to build or compile; each request reads the description again.
    #[arg(long)]
    shared_guest: bool,
}

impl GuestArgs {
    /// A builder whose compiled functions are kept as `cache` says.
    fn builder(&self, cache: &CacheArgs) -> anyhow::Result<Builder> {
        let guest = build::find_guest(self.guest.clone())?;
        Builder::new(&BuildOptions {
            guest,
            lookup_guest: self.lookup_guest.clone(),
            snapshot: !self.no_snapshot,
            backend: self.backend,
            shared: self.shared_guest,
            functions: cache.functions(),
            cache: cache.cache(),
        })
    }
}

/// Exit code for input the model cannot take.
const EXIT_BAD_INPUT: u8 = 2;

/// Exit code of a batch job that scored every row but the rejected ones.
const EXIT_SOME_REJECTED: u8 = 3;

/// Exit code of `wafer compare` past `--max-disagreement`.
const EXIT_GATE: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // Connections are served on `wafer serve`'s lanes (`serving::lanes`), not on this runtime's
    // workers; `TOKIO_WORKER_THREADS` sets how many it has (one per core by default).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Don't wait for blocking reads still pending (stdin, under --exit-on-stdin-close).
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<batch::SomeRejected>().is_some() {
                return ExitCode::from(EXIT_SOME_REJECTED);
            }
            if e.downcast_ref::<wafer_host::evaluation::compare::GateFailed>()
                .is_some()
            {
                return ExitCode::from(EXIT_GATE);
            }
            let bad_input = e
                .downcast_ref::<ProtocolError>()
                .is_some_and(|p| p.status() < 500)
                || e.downcast_ref::<wafer_features::FeatureError>()
                    .is_some_and(|f| !matches!(f, wafer_features::FeatureError::Lookup { .. }))
                || e.downcast_ref::<store::BadData>().is_some();
            if bad_input {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAFER_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Batch(args) => batch(args).await,
        Command::Profile(args) => profile(args),
        Command::Drift(args) => drift(args),
        Command::Compare(args) => compare(args).await,
        Command::Skew(args) => {
            let source = repo::source(&args.model_dir)?;
            let model = args.model.clone().unwrap_or_else(|| source.name.clone());
            let since = args.since.as_deref().map(parse_since).transpose()?;
            let needed = !source.lookup_stores()?.is_empty();
            let features = args.db.open_if(needed)?;
            let skew = wafer_host::evaluation::skew::run(
                &source.dir,
                &args.log_db,
                &model,
                since.unwrap_or(0),
                features.as_ref(),
            )?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&skew)?);
            } else {
                print!("{}", skew.table());
            }
            Ok(())
        }
        Command::Log {
            command:
                LogCommand::Export {
                    model,
                    since,
                    output,
                    log_db,
                },
        } => {
            let since_ms = since.as_deref().map(parse_since).transpose()?;
            let n =
                wafer_host::monitoring::log::export(&log_db, model.as_deref(), since_ms, &output)?;
            eprintln!("{n} predictions → {}", output.display());
            Ok(())
        }
        Command::Features { command } => match command {
            FeaturesCommand::Fit {
                spec,
                data,
                output,
                db,
            } => {
                let db = db.map(|p| FeatureStore::open_existing(&p)).transpose()?;
                offline::fit(&spec, &data, output.as_deref(), db.as_ref())
            }
            FeaturesCommand::Transform {
                spec,
                data,
                output,
                db,
            } => {
                let db = db.map(|p| FeatureStore::open_existing(&p)).transpose()?;
                offline::transform(&spec, &data, &output, db.as_ref())
            }
            FeaturesCommand::Load {
                store,
                data,
                key,
                db,
            } => {
                let path = db.path();
                let db = FeatureStore::open(&path)?;
                let rows = store::load_csv(&db, &store, &data, &key)?;
                eprintln!(
                    "loaded {rows} rows of {} into store \"{store}\" of {}",
                    data.display(),
                    path.display()
                );
                Ok(())
            }
        },
        Command::Serve(args) => serve(args).await,
        Command::Compile {
            models,
            max_instances,
            components:
                ComponentArgs {
                    build_dir,
                    cache,
                    guest,
                },
        } => {
            let limits = PoolLimits {
                max_instances,
                ..PoolLimits::default()
            };
            let (components, folders): (Vec<PathBuf>, Vec<PathBuf>) =
                models.into_iter().partition(|m| m.is_file());
            // A model folder, or a repository of them.
            let mut sources = Vec::new();
            for folder in &folders {
                if repo::is_model_folder(folder) {
                    sources.extend(repo::versions(folder)?);
                } else {
                    sources.extend(repo::scan(folder)?);
                }
            }
            let share_code = cache.guest_code.shared(components.len() + sources.len());
            let runtime = Runtime::new(
                limits,
                Some(cache.cache().context("--no-cache leaves nothing to fill")?),
            )?
            .sharing_guest_code(share_code);
            for component in components {
                let outcome = runtime.precompile_file(&component)?;
                println!(
                    "{}: compiled cache {}",
                    component.display(),
                    outcome.as_str()
                );
            }
            if folders.is_empty() {
                return Ok(());
            }
            let loader = Arc::new(Loader {
                builder: guest.builder(&cache)?,
                runtime,
                build_dir,
            });
            let total = sources.len();
            let mut failed = 0;
            for (source, outcome) in loader.precompile_all(sources).await {
                match outcome {
                    Ok(outcome) => {
                        println!(
                            "{}: compiled cache {}",
                            source.dir.display(),
                            outcome.as_str()
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {}: {e:#}", source.name);
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {total} models could not be built or compiled");
            }
            Ok(())
        }
        Command::Build {
            model_dir,
            output,
            web: true,
            ..
        } => {
            let source = repo::source(&model_dir)?;
            let output = output.unwrap_or_else(|| {
                Path::new("target/web/models").join(format!("{}.wafer", source.name))
            });
            let bundle = wafer_host::serving::web::bundle(&source)?;
            if let Some(dir) = output.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&output, bundle)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}: web bundle → {}", source.name, output.display());
            Ok(())
        }
        Command::Web { dir, addr } => {
            wafer_host::serving::web::serve_dir(dir.clone(), addr, |bound| {
                println!("serving {} at http://{bound}/", dir.display());
            })
            .await
        }
        Command::Build {
            model_dir,
            output,
            guest,
            web: false,
        } => {
            anyhow::ensure!(
                !guest.shared_guest,
                "--shared-guest serves models without building them; `wafer build` builds one"
            );
            let builder = guest.builder(&CacheArgs::default())?;
            let source = repo::source(&model_dir)?;
            let output = output
                .unwrap_or_else(|| Path::new("target/wafer").join(format!("{}.wasm", source.name)));
            let built = builder
                .build_if_stale(&source.name, &source.dir, &output)
                .await?;
            let state = if built { "built" } else { "up to date" };
            println!("{}: {state} → {}", source.name, output.display());
            Ok(())
        }
        Command::Predict {
            model,
            input,
            stream,
            components:
                ComponentArgs {
                    build_dir,
                    cache,
                    guest,
                },
            db,
        } => {
            let body = match &input {
                Some(input) => read_input(input)?,
                None => Vec::new(),
            };
            let runtime = Runtime::new(PoolLimits::default(), cache.cache())?;
            let model = Arc::new(
                repo::open(
                    &model,
                    runtime,
                    || guest.builder(&cache),
                    build_dir,
                    db.db.as_deref(),
                )
                .await?,
            );
            if stream {
                let stdin = tokio::io::BufReader::new(tokio::io::stdin());
                let summary = stream::predict_lines(&model, stdin, tokio::io::stdout()).await?;
                tracing::info!(
                    scored = summary.scored,
                    rejected = summary.rejected,
                    "stream ended"
                );
                return Ok(());
            }
            let response = predict(&model, &body).await?;
            println!("{}", String::from_utf8_lossy(&response));
            Ok(())
        }
    }
}

/// Opens a model for work over files (`batch`, `compare`): a chunk's deadline per call.
async fn open_for_files(
    path: &Path,
    components: &ComponentArgs,
    db: Option<&Path>,
) -> anyhow::Result<LoadedModel> {
    let limits = PoolLimits {
        timeout: batch::CHUNK_TIMEOUT,
        ..PoolLimits::default()
    };
    let runtime = Runtime::new(limits, components.cache.cache())?;
    let build_dir = components.build_dir.clone();
    repo::open(
        path,
        runtime,
        || components.guest.builder(&components.cache),
        build_dir,
        db,
    )
    .await
}

async fn batch(args: BatchArgs) -> anyhow::Result<()> {
    let model = open_for_files(&args.model, &args.components, args.db.db.as_deref()).await?;
    let workers = args.workers.unwrap_or_else(wafer_host::cores);
    let options = batch::Options {
        input: args.input,
        output: args.output,
        rejects: args.rejects,
        columns: args.columns,
        id_column: args.id_column,
        workers,
        chunk: args.chunk,
        resume: args.resume,
        progress: !args.quiet,
    };
    let started = std::time::Instant::now();
    let summary = batch::run(Arc::new(model), &options).await?;
    let secs = started.elapsed().as_secs_f64();
    let rows = summary.scored + summary.rejected;
    eprintln!(
        "{} rows scored, {} rejected{} in {secs:.1} s ({:.0} rows/s) → {}{}",
        summary.scored,
        summary.rejected,
        if summary.resumed_chunks > 0 {
            format!(
                " (resumed after {} of {} chunks)",
                summary.resumed_chunks, summary.chunks
            )
        } else {
            String::new()
        },
        rows as f64 / secs.max(1e-9),
        options.output.display(),
        match &options.rejects {
            Some(path) if summary.rejected > 0 => format!(", rejects → {}", path.display()),
            _ => String::new(),
        }
    );
    if summary.rejected > 0 {
        return Err(batch::SomeRejected {
            rejected: summary.rejected,
            rows: summary.scored + summary.rejected,
        }
        .into());
    }
    Ok(())
}

/// One prediction from a v2 request, or from a JSON array of raw records (through the model's
/// features.toml) or of rows of numbers for its first input.
async fn predict(model: &Arc<LoadedModel>, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let input = if protocol::parse_json(body)?.is_array() {
        stream::Input::Records(String::from_utf8_lossy(body).into_owned())
    } else {
        stream::Input::Request(body)
    };
    stream::respond(model, input).await.0
}

async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    use wafer_host::evaluation::compare;
    if let Some(x) = args.max_disagreement {
        anyhow::ensure!(
            (0.0..=1.0).contains(&x),
            "--max-disagreement is a share, from 0 to 1"
        );
    }
    let mut models = Vec::new();
    for path in [&args.a, &args.b] {
        let model = open_for_files(path, &args.components, args.db.db.as_deref()).await?;
        models.push(Arc::new(model));
    }
    let (b, a) = (models.pop(), models.pop());
    let (Some(a), Some(b)) = (a, b) else {
        anyhow::bail!("two models are needed");
    };
    let work_dir = args
        .components
        .build_dir
        .join(format!(".compare-{}", std::process::id()));
    let result = compare::run(
        a,
        b,
        &compare::Options {
            data: args.data,
            labels: args.labels,
            work_dir: work_dir.clone(),
        },
    )
    .await;
    let _ = std::fs::remove_dir_all(&work_dir);
    let comparison = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison)?);
    } else {
        print!("{}", comparison.table());
    }
    if let Some(limit) = args.max_disagreement
        && comparison.disagreement() > limit
    {
        return Err(compare::GateFailed {
            share: comparison.disagreement() * 100.0,
            limit: limit * 100.0,
        }
        .into());
    }
    Ok(())
}

fn profile(args: ProfileArgs) -> anyhow::Result<()> {
    use wafer_host::evaluation::profile;
    let source = repo::source(&args.model_dir)?;
    let features = args.db.open_if(!source.lookup_stores()?.is_empty())?;
    let reference = profile::profile(
        &args.model_dir,
        &args.data,
        args.sample,
        args.seed,
        features.as_ref(),
    )?;
    let out = reference.write(&source.dir)?;
    let p = &reference.profile;
    println!(
        "{}: {} of {} rows sampled ({} refused by the model), {} columns",
        out.display(),
        p.sample_rows,
        p.rows,
        p.rejected,
        p.columns.len()
    );
    for s in &p.skipped {
        println!("  not tested: {} ({})", s.name, s.reason);
    }
    Ok(())
}

fn drift(args: DriftArgs) -> anyhow::Result<()> {
    use wafer_host::evaluation::drift::{self, Current};
    use wafer_host::evaluation::report;
    let (report, reference_name, current_name) = match (&args.model_dir, &args.reference) {
        (_, Some(reference)) => {
            let current = args
                .current
                .clone()
                .context("--reference needs --current")?;
            let report = drift::run(&drift::Options {
                reference: reference.clone(),
                current: PathBuf::from(&current),
                columns: args.columns.clone(),
                methods: args.methods.clone(),
            })?;
            (report, reference.display().to_string(), current)
        }
        (Some(dir), None) => {
            let source = repo::source(dir)?;
            let text = args.current.clone().unwrap_or_else(|| "log".into());
            let current = match text.strip_prefix("log") {
                Some(window) if !Path::new(&text).is_file() => {
                    let (rows, since) = match window.strip_prefix(':') {
                        Some(w) => parse_window(w)?,
                        None if window.is_empty() => (None, None),
                        None => anyhow::bail!(
                            "--current {text}: expected a file, log, log:N or log:DURATION"
                        ),
                    };
                    Current::Log {
                        db: args.log_db.clone(),
                        model: args.model.clone().unwrap_or_else(|| source.name.clone()),
                        version: args.version.clone(),
                        since_ms: since.unwrap_or(0),
                        rows: rows.unwrap_or(if since.is_some() { usize::MAX } else { 1000 }),
                    }
                }
                _ => Current::File(PathBuf::from(&text)),
            };
            let features = args.db.open_if(!source.lookup_stores()?.is_empty())?;
            let report = drift::against_profile(
                &source.dir,
                &current,
                args.columns.as_deref(),
                &args.methods,
                features.as_ref(),
            )?;
            let current_name = match &current {
                Current::File(p) => p.display().to_string(),
                Current::Log { db, .. } => format!("{} ({text})", db.display()),
            };
            let reference_name = format!("{}/reference", dir.display());
            (report, reference_name, current_name)
        }
        (None, None) => anyhow::bail!("give a model folder, or --reference and --current"),
    };
    if let Some(path) = &args.html {
        let html = report::html(&report, &reference_name, &current_name);
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let limits = PoolLimits {
        max_instances: args.max_instances,
        max_memory_bytes: args.max_memory,
        timeout: Duration::from_millis(args.request_timeout_ms),
        make_ahead: !args.no_make_ahead,
    };
    let admin_token = match &args.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading the admin token {}", path.display()))?;
            let token = token.trim().to_owned();
            anyhow::ensure!(
                !token.is_empty(),
                "the admin token file {} is empty",
                path.display()
            );
            Some(token)
        }
        None => None,
    };
    let drain_timeout = Duration::try_from_secs_f64(args.drain_timeout)
        .context("--drain-timeout must be a number of seconds")?;
    // (store, model) for every store a model reads. A model whose spec cannot be read names
    // no store here; its build fails with the reason.
    let sources = repo::scan(&args.model_repo)?;
    let wanted: Vec<(String, String)> = sources
        .iter()
        .flat_map(|s| {
            let stores = s.lookup_stores().unwrap_or_default();
            stores.into_iter().map(|store| (store, s.name.clone()))
        })
        .collect();
    let share_code = args.components.cache.guest_code.shared(sources.len());
    let mut runtime =
        Runtime::new(limits, args.components.cache.cache())?.sharing_guest_code(share_code);
    if let Some(db) = args.db.open_if(!wanted.is_empty())? {
        db.report(&wanted)?;
        runtime = runtime.with_features(db);
    }
    let loader = Arc::new(Loader {
        builder: args.components.guest.builder(&args.components.cache)?,
        runtime,
        build_dir: args.components.build_dir,
    });
    if args.exit_on_stdin_close {
        tokio::spawn(exit_when_stdin_closes());
    }
    let max_instances = args.max_instances as usize;
    let config = serve::ServeConfig {
        addr: args.addr,
        options: serve::ServerOptions {
            max_instances,
            strict_readiness: args.strict_readiness,
            admission: Limits {
                concurrency: args.model_concurrency.unwrap_or(max_instances).max(1),
                queue: args.queue_depth,
                wait: Duration::from_millis(args.queue_timeout_ms),
            },
            max_body: args.max_body,
            max_header_bytes: args.max_header_bytes,
            drain_timeout,
            admin_token,
            lanes: args
                .lanes
                .unwrap_or_else(|| wafer_host::serving::lane_count(&args.model_repo))
                .max(1),
        },
        exit_on_error: args.exit_on_error,
        watch: args
            .watch
            .then(|| Duration::from_millis(args.watch_interval_ms.max(10))),
        log: (args.log_sample > 0.0).then(|| wafer_host::monitoring::log::Options {
            path: args.log_db.clone(),
            sample: args.log_sample,
            queue: args.log_queue,
            max_age: Duration::from_secs_f64(args.log_max_age_hours.max(0.0) * 3600.0),
            max_rows: args.log_max_rows,
        }),
        drift: (args.drift_interval_ms > 0).then(|| serve::DriftOptions {
            interval: Duration::from_millis(args.drift_interval_ms),
            window: args.drift_window.max(1),
            min_rows: args.drift_min_rows.max(1),
        }),
    };
    serve::serve(loader, args.model_repo, config).await
}

async fn exit_when_stdin_closes() {
    use tokio::io::AsyncReadExt as _;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
    tracing::info!("stdin closed; exiting");
    std::process::exit(0);
}

fn read_input(input: &Path) -> anyhow::Result<Vec<u8>> {
    if input == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(input).with_context(|| format!("reading {}", input.display()))
    }
}
