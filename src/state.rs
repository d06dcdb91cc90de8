//! The model this instance serves, and its counters.
//!
//! Wasm instances are single-threaded; the statics below are set once by the build-time
//! initializer (and captured in the snapshot) or on first use.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wafer_scoring::{Model, ScoringError, Tensor};

use crate::bindings::wafer::inference::types::InstanceStats;

/// The model's name and ONNX bytes, kept when the snapshot holds an unparsed model.
static SOURCE: OnceLock<(String, Vec<u8>)> = OnceLock::new();
/// The parsed model.
static MODEL: OnceLock<Result<Model, ScoringError>> = OnceLock::new();
static PREDICTIONS: AtomicU64 = AtomicU64::new(0);
static PARSES: AtomicU64 = AtomicU64::new(0);

/// Loads the model once, at build time. With `parse`, the parsed model is kept; without it,
/// only the bytes, and each instance parses them on first use.
pub(crate) fn initialize(name: String, onnx: Vec<u8>, parse: bool) -> Result<(), ScoringError> {
    if MODEL.get().is_some() || SOURCE.get().is_some() {
        return Err(ScoringError::Load(
            "this component already holds a model".into(),
        ));
    }
    if parse {
        let model = Model::load(&name, &onnx)?;
        let _ = MODEL.set(Ok(model));
    } else {
        // Fail the build, not the first request, on a model that does not load.
        Model::load(&name, &onnx)?;
        let _ = SOURCE.set((name, onnx));
    }
    // Parses at build time are not the instance's: the snapshot starts from zero.
    PARSES.store(0, Ordering::Relaxed);
    Ok(())
}

/// The model, parsing it first if the snapshot holds only its bytes.
pub(crate) fn model() -> Result<&'static Model, ScoringError> {
    MODEL
        .get_or_init(|| match SOURCE.get() {
            Some((name, onnx)) => {
                PARSES.fetch_add(1, Ordering::Relaxed);
                Model::load(name, onnx)
            }
            None => Err(ScoringError::Load(
                "this component holds no model; build it with `wafer build`".into(),
            )),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs the model and counts the prediction.
pub(crate) fn predict(
    inputs: Vec<Tensor>,
    outputs: &[String],
) -> Result<Vec<Tensor>, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    model()?.predict(inputs, outputs)
}

/// This instance's counters.
pub(crate) fn stats() -> InstanceStats {
    InstanceStats {
        predictions: PREDICTIONS.load(Ordering::Relaxed),
        model_parses: PARSES.load(Ordering::Relaxed),
    }
}
