//! `wafer skew`: training-serving skew. Each logged request of a model is recomputed offline,
//! natively (the model folder's `features.toml` transform and ONNX scoring, no wasm), and its
//! outputs compared with what the server answered: the share of requests that differ and the
//! largest difference of each output. Zero is what a deployment whose serving path matches its
//! offline path shows.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;
use wafer_protocol::{self as protocol, Pipeline};

use crate::store::FeatureStore;

/// Two answers differ when a value differs by more than this.
pub const TOLERANCE: f64 = 1e-6;

/// One output's differences.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutputSkew {
    /// Requests whose value of this output differed.
    pub differing: usize,
    /// The largest absolute difference (labels that differ count as infinite: see `differing`).
    pub max_abs_diff: f64,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct Skew {
    /// Logged requests recomputed.
    pub requests: usize,
    /// Of those, requests whose outputs differ in any value.
    pub differing: usize,
    /// `differing / requests`.
    pub share: f64,
    /// Per output.
    pub outputs: BTreeMap<String, OutputSkew>,
    /// Logged requests that could not be recomputed (the offline path refused them), with the
    /// first reason.
    pub failed: usize,
    /// The first failure's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
}

/// Recomputes the successful logged requests of `model` (from `since_ms` on) with the model
/// folder `dir`, its lookups read from `features`.
pub fn run(
    dir: &Path,
    log: &Path,
    model: &str,
    since_ms: u64,
    features: Option<&Arc<FeatureStore>>,
) -> anyhow::Result<Skew> {
    let pipeline = super::native_pipeline(dir, model)?;
    let conn = crate::monitoring::log::open_read_only(log)?;
    let mut query = conn.prepare(
        "SELECT input, output FROM predictions
         WHERE model = ?1 AND outcome = 'ok' AND output IS NOT NULL AND time_ms >= ?2 ORDER BY id",
    )?;
    let rows = query.query_map(params![model, since_ms as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut skew = Skew {
        requests: 0,
        differing: 0,
        share: 0.0,
        outputs: BTreeMap::new(),
        failed: 0,
        first_failure: None,
    };
    let mut snapshot = features.map(FeatureStore::snapshot);
    let mut fetch = |store: &str, key: &str| match &mut snapshot {
        Some(s) => s.get(store, key).map_err(|e| format!("{e:#}")),
        None => Ok(None),
    };
    for row in rows {
        let (input, served) = row?;
        let offline = match recompute(&pipeline, &input, &mut fetch) {
            Ok(offline) => offline,
            Err(e) => {
                skew.failed += 1;
                skew.first_failure.get_or_insert(e);
                continue;
            }
        };
        let served: Value = serde_json::from_str(&served).context("a logged output")?;
        skew.requests += 1;
        let mut differs = false;
        let served = outputs_of(&served);
        for (name, values) in outputs_of(&offline) {
            let entry = skew.outputs.entry(name.clone()).or_default();
            let (diff, same) = compare(&values, served.get(&name).map_or(&[][..], Vec::as_slice));
            entry.max_abs_diff = entry.max_abs_diff.max(diff);
            if !same {
                entry.differing += 1;
                differs = true;
            }
        }
        skew.differing += usize::from(differs);
    }
    skew.share = skew.differing as f64 / skew.requests.max(1) as f64;
    Ok(skew)
}

/// The offline answer to a logged input, encoded as the server encodes it: a v2 response for
/// a v2 request, `{"predictions": ...}` for raw records.
fn recompute(
    pipeline: &Pipeline,
    input: &str,
    fetch: &mut protocol::Fetch<'_>,
) -> Result<Value, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    if input.trim_start().starts_with('[') {
        let outputs = pipeline
            .predict_records(input, &[], fetch)
            .map_err(|e| text(&e))?;
        return serde_json::from_slice(&protocol::encode_v1_response(&outputs))
            .map_err(|e| text(&e));
    }
    let request = protocol::decode_infer_request(input.as_bytes(), None).map_err(|e| text(&e))?;
    let outputs = pipeline
        .predict(request.inputs, &request.outputs, fetch)
        .map_err(|e| text(&e))?;
    Ok(serde_json::json!({ "outputs": protocol::tensors_to_json(outputs) }))
}

/// Each output's values, flattened: from a v2 response's `outputs`, or from `predictions`
/// (one object per row, an output's value a number, a label or a list).
fn outputs_of(answer: &Value) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut flatten = |name: &str, v: &Value| {
        let values = out.entry(name.to_owned()).or_default();
        match v {
            Value::Array(items) => values.extend(items.iter().cloned()),
            other => values.push(other.clone()),
        }
    };
    if let Some(outputs) = answer.get("outputs").and_then(Value::as_array) {
        for o in outputs {
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                flatten(name, &o["data"]);
            }
        }
    } else if let Some(rows) = answer.get("predictions").and_then(Value::as_array) {
        for row in rows {
            match row.as_object() {
                Some(fields) => fields.iter().for_each(|(k, v)| flatten(k, v)),
                None => flatten("predictions", row),
            }
        }
    }
    out
}

/// The largest absolute difference between two value lists, and whether they are the same
/// (numbers within [`TOLERANCE`], anything else equal).
fn compare(a: &[Value], b: &[Value]) -> (f64, bool) {
    if a.len() != b.len() {
        return (f64::INFINITY, false);
    }
    let mut max = 0.0f64;
    let mut same = true;
    for (x, y) in a.iter().zip(b) {
        match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                let d = (x - y).abs();
                max = max.max(d);
                same &= d <= TOLERANCE;
            }
            _ => same &= x == y,
        }
    }
    (max, same)
}

impl Skew {
    /// The terminal summary.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} logged requests recomputed offline: {} differ ({:.2}%)\n",
            self.requests,
            self.differing,
            self.share * 100.0
        );
        for (name, o) in &self.outputs {
            out.push_str(&format!(
                "  {name}: {} differ, max |served - offline| {:.3e}\n",
                o.differing, o.max_abs_diff
            ));
        }
        if self.failed > 0 {
            out.push_str(&format!(
                "{} logged requests could not be recomputed: {}\n",
                self.failed,
                self.first_failure.as_deref().unwrap_or("")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_compare_by_output() {
        let v2 = serde_json::json!({"outputs": [
            {"name": "label", "data": [1, 0]}, {"name": "p", "data": [0.25, 0.75]}]});
        let v1 = serde_json::json!({"predictions": [
            {"label": 1, "p": [0.25]}, {"label": 0, "p": [0.75]}]});
        assert_eq!(outputs_of(&v2), outputs_of(&v1));
        assert!(compare(&[0.25.into(), 1.into()], &[0.250_000_1.into(), 1.into()]).1);
        let (diff, same) = compare(&[0.25.into()], &[0.26.into()]);
        assert!(!same && (diff - 0.01).abs() < 1e-12);
        assert_eq!(compare(&["a".into()], &["b".into()]), (0.0, false));
        assert_eq!(compare(&[1.into()], &[]), (f64::INFINITY, false));
    }
}
