//! Traffic beyond a model itself, as its `wafer.toml` declares it
//! ([`Routing`](crate::serving::repo::Routing)): a canary that answers a share of its
//! requests, and a shadow that every answered request is mirrored to, off the request path,
//! with the two answers compared.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wafer_scoring::{Tensor, TensorData};

use crate::monitoring::Metrics;
use crate::runtime::LoadedModel;
use crate::serving::repo::Canary;

/// What a shadow is asked, as its primary was.
pub enum Mirrored {
    /// v2 input tensors and the outputs asked for.
    Tensors(Vec<Tensor>, Vec<String>),
    /// Raw records (a JSON array).
    Records(String),
}

/// Whether this request goes to the canary: by the sticky key's hash when there is one (so a
/// key always reaches the same model), else every `1/share`-th request of `count`.
pub fn to_canary(canary: &Canary, key: Option<&str>, count: &AtomicU64) -> bool {
    let share = canary.percent / 100.0;
    match key {
        Some(key) => (fnv1a(key.as_bytes()) % 10_000) as f64 / 10_000.0 < share,
        None => crate::monitoring::log::even_share(count, share),
    }
}

/// FNV-1a, 64 bits: a hash that is the same in every process, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The sticky key of raw records: the field of the first record, as text.
pub fn record_key(records: &str, field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(records).ok()?;
    match value.get(0)?.get(field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The sticky key of v2 inputs: the first element of the BYTES input named `field`.
pub fn tensor_key(inputs: &[Tensor], field: &str) -> Option<String> {
    match inputs.iter().find(|t| t.name() == field)?.data() {
        TensorData::String(v) => v.first().cloned(),
        _ => None,
    }
}

/// How a shadow's answer compares with its primary's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same labels (or, for a model without label outputs, floats within 1e-6).
    Agree,
    /// Not.
    Disagree,
    /// The shadow failed.
    Error,
}

impl Verdict {
    /// `agree`, `disagree` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Disagree => "disagree",
            Verdict::Error => "error",
        }
    }
}

/// Floats of a tensor, if it holds floats.
fn floats(data: &TensorData) -> Option<Vec<f64>> {
    match data {
        TensorData::F32(v) => Some(v.iter().map(|x| f64::from(*x)).collect()),
        TensorData::F64(v) => Some(v.clone()),
        _ => None,
    }
}

/// Compares two answers: labels (every non-float output) must be equal; without labels, every
/// float within 1e-6. Also the largest float difference per output, for the log.
pub fn compare(primary: &[Tensor], shadow: &[Tensor]) -> (Verdict, Vec<(String, f64)>) {
    let mut diffs = Vec::new();
    let mut labels_agree = true;
    let mut any_label = false;
    let mut floats_agree = true;
    for p in primary {
        let Some(s) = shadow.iter().find(|s| s.name() == p.name()) else {
            return (Verdict::Disagree, diffs);
        };
        match (floats(p.data()), floats(s.data())) {
            (Some(a), Some(b)) => {
                let diff = if a.len() == b.len() {
                    a.iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max)
                } else {
                    f64::INFINITY
                };
                floats_agree &= diff <= 1e-6;
                diffs.push((p.name().to_owned(), diff));
            }
            _ => {
                any_label = true;
                labels_agree &= p.shape() == s.shape() && p.data() == s.data();
            }
        }
    }
    let agree = if any_label {
        labels_agree
    } else {
        floats_agree
    };
    (
        if agree {
            Verdict::Agree
        } else {
            Verdict::Disagree
        },
        diffs,
    )
}

/// Runs the shadow on what the primary was asked, off the request path, compares the answers
/// and counts the verdict; a disagreement is logged with its differences.
pub fn mirror(
    primary: String,
    shadow: Arc<LoadedModel>,
    asked: Mirrored,
    answered: Vec<Tensor>,
    metrics: Arc<Metrics>,
    permits: Arc<tokio::sync::Semaphore>,
) {
    tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        let (result, _) = match asked {
            Mirrored::Tensors(inputs, outputs) => shadow.predict(inputs, &outputs).await,
            Mirrored::Records(records) => shadow.predict_records(records, &[]).await,
        };
        let verdict = match &result {
            Ok(outputs) => {
                let (verdict, diffs) = compare(&answered, outputs);
                if verdict == Verdict::Disagree {
                    tracing::info!(
                        target: "wafer::shadow",
                        model = primary,
                        shadow = shadow.name(),
                        max_abs_diff = ?diffs,
                        "the shadow disagrees"
                    );
                }
                verdict
            }
            Err(e) => {
                tracing::debug!(target: "wafer::shadow", model = primary, shadow = shadow.name(), error = %e, "the shadow failed");
                Verdict::Error
            }
        };
        metrics.record_shadow(&primary, shadow.name(), verdict.as_str());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_shares_are_even_and_keys_sticky() {
        let canary = Canary {
            model: "c".into(),
            percent: 10.0,
            sticky: None,
        };
        let count = AtomicU64::new(0);
        let picked = (0..2000)
            .filter(|_| to_canary(&canary, None, &count))
            .count();
        assert_eq!(picked, 200);
        let keyed = (0..2000)
            .filter(|i| to_canary(&canary, Some(&format!("u{i}")), &count))
            .count();
        assert!((150..=250).contains(&keyed), "{keyed}");
        let first = to_canary(&canary, Some("u42"), &count);
        assert!((0..50).all(|_| to_canary(&canary, Some("u42"), &count) == first));
    }

    #[test]
    fn record_keys_come_from_the_first_record() {
        assert_eq!(
            record_key(r#"[{"user_id": "u7"}, {"user_id": "u8"}]"#, "user_id"),
            Some("u7".into())
        );
        assert_eq!(record_key(r#"[{"n": 3}]"#, "n"), Some("3".into()));
        assert_eq!(record_key(r#"[[1, 2]]"#, "n"), None);
    }
}
