//! The model this instance serves, and its counters.
//!
//! Wasm instances are single-threaded; the statics below are set once by the build-time
//! initializer (and captured in the snapshot) or on first use.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wafer_features::Table;
use wafer_protocol::{Batch, Pipeline};
use wafer_scoring::{ScoringError, Tensor};

use crate::bindings::wafer::inference::types::InstanceStats;

/// The model's name, ONNX bytes and feature spec, kept when the snapshot holds an unparsed
/// model.
#[cfg(not(feature = "nn"))]
static SOURCE: OnceLock<(String, Vec<u8>, Option<String>)> = OnceLock::new();
/// The parsed model and spec.
static PIPELINE: OnceLock<Result<Pipeline, ScoringError>> = OnceLock::new();
static PREDICTIONS: AtomicU64 = AtomicU64::new(0);
static PARSES: AtomicU64 = AtomicU64::new(0);

/// Loads the model once, at build time. With `parse`, the parsed model is kept; without it,
/// only the bytes, and each instance parses them on first use.
#[cfg(not(feature = "nn"))]
pub(crate) fn initialize(
    name: String,
    onnx: Vec<u8>,
    features: Option<String>,
    parse: bool,
) -> Result<(), ScoringError> {
    if PIPELINE.get().is_some() || SOURCE.get().is_some() {
        return Err(ScoringError::Load(
            "this component already holds a model".into(),
        ));
    }
    // Fail the build, not the first request, on a model or spec that does not load.
    let pipeline = Pipeline::load(&name, &onnx, features.as_deref())?;
    if let Some(spec) = pipeline.spec() {
        crate::lookup::check(spec)?;
    }
    if parse {
        let _ = PIPELINE.set(Ok(pipeline));
    } else {
        let _ = SOURCE.set((name, onnx, features));
    }
    // Parses at build time are not the instance's: the snapshot starts from zero.
    PARSES.store(0, Ordering::Relaxed);
    Ok(())
}

/// Holds, at build time, a model whose graph the host runs behind `wasi:nn` under the name
/// `graph`, described by `metadata`, with its feature spec.
#[cfg(feature = "nn")]
pub(crate) fn initialize_graph(
    graph: String,
    metadata: wafer_scoring::ModelMetadata,
    features: Option<String>,
) -> Result<(), ScoringError> {
    if PIPELINE.get().is_some() {
        return Err(ScoringError::Load(
            "this component already holds a model".into(),
        ));
    }
    let spec = features
        .map(|text| wafer_features::Spec::parse(&text))
        .transpose()
        .map_err(|e| ScoringError::Load(e.to_string()))?;
    let _ = PIPELINE.set(Ok(graph_pipeline(graph, metadata, spec)?));
    Ok(())
}

/// The pipeline of a model whose graph the host runs behind `wasi:nn` under the name `graph`.
#[cfg(feature = "nn")]
fn graph_pipeline(
    graph: String,
    metadata: wafer_scoring::ModelMetadata,
    spec: Option<wafer_features::Spec>,
) -> Result<Pipeline, ScoringError> {
    crate::nn::check(&metadata)?;
    let runner = std::sync::Arc::new(crate::nn::Graph::new(graph, &metadata));
    let model = wafer_scoring::Model::with_runner(metadata, runner);
    let pipeline = Pipeline::with_spec(model, spec)?;
    if let Some(spec) = pipeline.spec() {
        crate::lookup::check(spec)?;
    }
    Ok(pipeline)
}

/// The model and spec, parsing them first if the snapshot holds only their bytes.
pub(crate) fn pipeline() -> Result<&'static Pipeline, ScoringError> {
    PIPELINE
        .get_or_init(parse_source)
        .as_ref()
        .map_err(Clone::clone)
}

/// Parses the model whose bytes the snapshot kept.
#[cfg(not(feature = "nn"))]
fn parse_source() -> Result<Pipeline, ScoringError> {
    match SOURCE.get() {
        Some((name, onnx, features)) => {
            PARSES.fetch_add(1, Ordering::Relaxed);
            Pipeline::load(name, onnx, features.as_deref())
        }
        None => Err(not_built()),
    }
}

/// The wasi-nn guest keeps no ONNX bytes. Without `wizer-initialize-graph`, it serves the
/// model its environment describes ([`wafer_protocol::shared_guest`]): one compiled guest then
/// serves every model (`wafer serve --shared-guest`), and each instance reads the description.
#[cfg(feature = "nn")]
fn parse_source() -> Result<Pipeline, ScoringError> {
    use wafer_protocol::shared_guest::{FEATURES_VAR, METADATA_VAR, MODEL_VAR};
    let Ok(graph) = std::env::var(MODEL_VAR) else {
        return Err(not_built());
    };
    PARSES.fetch_add(1, Ordering::Relaxed);
    let metadata = std::env::var(METADATA_VAR)
        .map_err(|e| ScoringError::Load(format!("{METADATA_VAR}: {e}")))?;
    let metadata = wafer_protocol::shared_guest::parse_metadata(&metadata)?;
    let spec = match std::env::var(FEATURES_VAR) {
        Ok(text) => Some(wafer_protocol::shared_guest::parse_features(&text)?),
        Err(_) => None,
    };
    graph_pipeline(graph, metadata, spec)
}

fn not_built() -> ScoringError {
    ScoringError::Load("this component holds no model; build it with `wafer build`".into())
}

/// Runs the model and counts the prediction; see [`Pipeline::predict`].
pub(crate) fn predict(
    inputs: Vec<Tensor>,
    outputs: &[String],
) -> Result<Vec<Tensor>, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    pipeline()?.predict(inputs, outputs, &mut crate::lookup::fetch())
}

/// Runs the model on a JSON array of records or rows; see [`Pipeline::predict_records`].
pub(crate) fn predict_records(json: &str, outputs: &[String]) -> Result<Vec<Tensor>, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    pipeline()?.predict_records(json, outputs, &mut crate::lookup::fetch())
}

/// Runs the model on a batch, setting bad rows aside; see [`Pipeline::predict_table`].
pub(crate) fn predict_batch(records: Table, outputs: &[String]) -> Result<Batch, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    pipeline()?.predict_table(records, outputs, &mut crate::lookup::fetch())
}

/// Runs `f`, whatever predictions it makes, as one prediction of this instance.
pub(crate) fn as_one_prediction<T>(f: impl FnOnce() -> T) -> T {
    let before = PREDICTIONS.load(Ordering::Relaxed);
    let result = f();
    PREDICTIONS.store(before + 1, Ordering::Relaxed);
    result
}

/// This instance's counters.
pub(crate) fn stats() -> InstanceStats {
    InstanceStats {
        predictions: PREDICTIONS.load(Ordering::Relaxed),
        model_parses: PARSES.load(Ordering::Relaxed),
    }
}
