//! The model this instance serves, and its counters.
//!
//! Wasm instances are single-threaded; the statics below are set once by the build-time
//! initializer (and captured in the snapshot) or on first use.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wafer_features::{Record, Spec, Value};
use wafer_scoring::{Model, ScoringError, Tensor, TensorData};

use crate::bindings::wafer::inference::types::InstanceStats;

/// The model's name and ONNX bytes, kept when the snapshot holds an unparsed model.
static SOURCE: OnceLock<(String, Vec<u8>)> = OnceLock::new();
/// The parsed model.
static MODEL: OnceLock<Result<Model, ScoringError>> = OnceLock::new();
/// The model's feature spec, if it has one.
static SPEC: OnceLock<Spec> = OnceLock::new();
static PREDICTIONS: AtomicU64 = AtomicU64::new(0);
static PARSES: AtomicU64 = AtomicU64::new(0);

/// Loads the model once, at build time. With `parse`, the parsed model is kept; without it,
/// only the bytes, and each instance parses them on first use.
pub(crate) fn initialize(
    name: String,
    onnx: Vec<u8>,
    features: Option<String>,
    parse: bool,
) -> Result<(), ScoringError> {
    if MODEL.get().is_some() || SOURCE.get().is_some() {
        return Err(ScoringError::Load(
            "this component already holds a model".into(),
        ));
    }
    if let Some(text) = features {
        let spec = Spec::parse(&text).map_err(|e| ScoringError::Load(e.to_string()))?;
        check_spec(&spec, &Model::load(&name, &onnx)?)?;
        crate::lookup::check(&spec)?;
        let _ = SPEC.set(spec);
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

/// Checks that a spec is fitted and fills model inputs of the right datatypes.
fn check_spec(spec: &Spec, model: &Model) -> Result<(), ScoringError> {
    let bad = |why: String| Err(ScoringError::Load(format!("features.toml: {why}")));
    if !spec.is_fitted() {
        return bad("statistics are missing: run `wafer features fit` first".into());
    }
    for output in &spec.outputs {
        let Some(input) = model
            .metadata()
            .inputs
            .iter()
            .find(|i| i.name == output.name)
        else {
            return bad(format!(
                "output \"{}\" is not an input of the model",
                output.name
            ));
        };
        if input.datatype.v2_name() != output.datatype {
            return bad(format!(
                "output \"{}\" is {}, the model's input is {}",
                output.name, output.datatype, input.datatype
            ));
        }
    }
    Ok(())
}

/// Runs the model and counts the prediction. With a feature spec, inputs named after the raw
/// fields (one tensor per field, `[N]` or `[N, 1]`) go through the spec first.
pub(crate) fn predict(
    inputs: Vec<Tensor>,
    outputs: &[String],
) -> Result<Vec<Tensor>, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    let model = model()?;
    let Some(spec) = SPEC.get() else {
        return model.predict(inputs, outputs);
    };
    let is_model_input = |n: &str| model.metadata().inputs.iter().any(|i| i.name == n);
    if inputs.iter().any(|t| is_model_input(t.name())) {
        return model.predict(inputs, outputs);
    }
    let mut records = records_of_columns(spec, &inputs)?;
    crate::lookup::fill(spec, &mut records)?;
    let tensors = spec.transform(&records).map_err(record_error)?;
    model.predict(tensors, outputs)
}

/// Runs the model on a JSON array of records (through the spec) or of rows of numbers.
pub(crate) fn predict_records(json: &str, outputs: &[String]) -> Result<Vec<Tensor>, ScoringError> {
    PREDICTIONS.fetch_add(1, Ordering::Relaxed);
    let model = model()?;
    let value = wafer_protocol::parse_json(json.as_bytes())
        .map_err(|e| ScoringError::Record(e.to_string()))?;
    let serde_json::Value::Array(items) = value else {
        return Err(ScoringError::Record(
            "instances: expected a JSON array".into(),
        ));
    };
    if items.iter().all(serde_json::Value::is_object) {
        let Some(spec) = SPEC.get() else {
            return Err(ScoringError::Record(
                "this model has no features.toml, so it takes rows of numbers, not records".into(),
            ));
        };
        let mut records: Vec<Record> = items
            .iter()
            .filter_map(serde_json::Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect()
            })
            .collect();
        crate::lookup::fill(spec, &mut records)?;
        let tensors = spec.transform(&records).map_err(record_error)?;
        return model.predict(tensors, outputs);
    }
    let input = model
        .metadata()
        .inputs
        .first()
        .ok_or_else(|| ScoringError::Record("the model declares no input".into()))?;
    let tensor = wafer_protocol::decode_rows(json.as_bytes(), input)
        .map_err(|e| ScoringError::Record(e.to_string()))?;
    model.predict(vec![tensor], outputs)
}

fn record_error(e: wafer_features::FeatureError) -> ScoringError {
    ScoringError::Record(e.to_string())
}

/// Records from one tensor per raw field, as MLServer's pandas codec sends them.
fn records_of_columns(spec: &Spec, inputs: &[Tensor]) -> Result<Vec<Record>, ScoringError> {
    let bad = |why: String| Err(ScoringError::Record(why));
    let Some(first) = inputs.first() else {
        return bad("no inputs".into());
    };
    let rows = first.shape().first().copied().unwrap_or(0);
    let mut records: Vec<Record> = vec![Record::new(); rows];
    for t in inputs {
        if spec.field(t.name()).is_none() {
            return bad(format!(
                "input \"{}\" is neither a model input nor a field of its features.toml",
                t.name()
            ));
        }
        let column_shape = matches!(t.shape(), [n] | [n, 1] if *n == rows);
        if !column_shape {
            return bad(format!(
                "input \"{}\": a field is one value per row, shape [{rows}] or [{rows},1]",
                t.name()
            ));
        }
        let values: Vec<Value> = match t.data() {
            TensorData::F32(v) => v.iter().map(|&x| number(f64::from(x))).collect(),
            TensorData::F64(v) => v.iter().map(|&x| number(x)).collect(),
            TensorData::F16(v) => v.iter().map(|&x| number(x.to_f64())).collect(),
            TensorData::I64(v) => v.iter().map(|&x| Value::Number(x as f64)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::I16(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::I8(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U64(v) => v.iter().map(|&x| Value::Number(x as f64)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U16(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::U8(v) => v.iter().map(|&x| Value::Number(f64::from(x))).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
            TensorData::String(v) => v.iter().map(|x| Value::Text(x.clone())).collect(),
        };
        for (record, value) in records.iter_mut().zip(values) {
            record.insert(t.name().to_owned(), value);
        }
    }
    Ok(records)
}

fn number(x: f64) -> Value {
    if x.is_nan() {
        Value::Missing
    } else {
        Value::Number(x)
    }
}

/// This instance's counters.
pub(crate) fn stats() -> InstanceStats {
    InstanceStats {
        predictions: PREDICTIONS.load(Ordering::Relaxed),
        model_parses: PARSES.load(Ordering::Relaxed),
    }
}
