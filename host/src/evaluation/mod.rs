//! Evaluation: how a model's inputs and outputs change, over files and over the prediction
//! log. [`profile`] keeps a model's reference (a sample of its training data and of its
//! outputs, and each column's summary) beside it, and reads current data as the same
//! columns; [`drift`] tests every column with `wafer-evaluation`'s tests, as Evidently would;
//! [`report`] renders the result as one self-contained HTML file; [`compare`] scores the same
//! rows with two models and compares them; [`skew`] recomputes logged requests offline and
//! compares them with what was served.

pub mod compare;
pub mod drift;
pub mod profile;
pub mod report;
pub mod skew;

use std::path::Path;

use anyhow::Context as _;
use wafer_protocol::Pipeline;

/// Loads the model folder `dir` (its `model.onnx`, and `features.toml` if any) natively, as
/// the offline path runs it.
fn native_pipeline(dir: &Path, name: &str) -> anyhow::Result<Pipeline> {
    let onnx_path = dir.join("model.onnx");
    let onnx =
        std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let spec_path = dir.join("features.toml");
    let spec = spec_path
        .is_file()
        .then(|| std::fs::read_to_string(&spec_path))
        .transpose()
        .with_context(|| format!("reading {}", spec_path.display()))?;
    Pipeline::load(name, &onnx, spec.as_deref())
        .with_context(|| format!("loading {} natively", dir.display()))
}
