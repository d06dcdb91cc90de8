//! Admission: how many requests each model runs at once, how many may wait for a slot, and for
//! how long. Past those bounds a request is refused at once with 503 and `Retry-After`, rather
//! than queued without bound: an overloaded server stays responsive and its latency bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wafer_protocol::ProtocolError;

/// The bounds, the same for every model.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests one model runs at once.
    pub concurrency: usize,
    /// Requests that may wait for a slot of one model; more are refused at once.
    pub queue: usize,
    /// How long a request waits for a slot before it is refused.
    pub wait: Duration,
}

/// Why a request was not admitted: the label metrics count it under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot busy and the queue full.
    QueueFull,
    /// It waited its whole deadline.
    WaitedTooLong,
}

impl Refusal {
    /// `queue_full` or `queue_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::QueueFull => "queue_full",
            Refusal::WaitedTooLong => "queue_timeout",
        }
    }
}

/// One model's slots and waiting requests.
struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Admission for every model, by name.
pub struct Admission {
    limits: Limits,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
}

/// A slot of a model, held while its request runs.
pub type Slot = OwnedSemaphorePermit;

impl Admission {
    /// Admission under `limits`.
    pub fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn gate(&self, model: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let gate = gates.entry(model.to_owned()).or_insert_with(|| {
            Arc::new(Gate {
                slots: Arc::new(Semaphore::new(self.limits.concurrency)),
                waiting: AtomicUsize::new(0),
            })
        });
        Arc::clone(gate)
    }

    /// A slot of `model`: at once when one is free, after waiting when the queue has room,
    /// or an overload error (503, `Retry-After`) and the reason.
    pub async fn admit(&self, model: &str) -> Result<Slot, (ProtocolError, Refusal)> {
        let gate = self.gate(model);
        if let Ok(slot) = Arc::clone(&gate.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let overloaded = |refusal: Refusal| {
            let why = match refusal {
                Refusal::QueueFull => format!(
                    "{} requests running and {} waiting",
                    self.limits.concurrency, self.limits.queue
                ),
                Refusal::WaitedTooLong => {
                    format!("no slot free within {} ms", self.limits.wait.as_millis())
                }
            };
            let error = ProtocolError::Overloaded {
                model: model.to_owned(),
                why,
                retry_after_secs: self.limits.wait.as_secs().max(1),
            };
            (error, refusal)
        };
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= self.limits.queue {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(overloaded(Refusal::QueueFull));
        }
        let waited =
            tokio::time::timeout(self.limits.wait, Arc::clone(&gate.slots).acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(overloaded(Refusal::WaitedTooLong)),
        }
    }
}

/// A size in bytes, as the limits' flags take it: a number, optionally followed by K, M or G
/// (powers of 1024, with an optional `i` and `B`).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = text[digits.len()..].to_ascii_uppercase();
    let shift = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("unknown unit in \"{text}\" (use K, M or G)")),
    };
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size"))?;
    n.checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("\"{text}\" is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_then_queues_then_refuses() {
        let admission = Admission::new(Limits {
            concurrency: 2,
            queue: 1,
            wait: Duration::from_millis(50),
        });
        let a = admission.admit("m").await.unwrap();
        let _b = admission.admit("m").await.unwrap();
        // Other models have their own slots.
        let _other = admission.admit("n").await.unwrap();
        // The third waits; a fourth, with the queue full, is refused at once.
        let admission = Arc::new(admission);
        let waiting = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit("m").await.map(drop).map_err(|e| e.1) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let refused = admission.admit("m").await.map(drop).unwrap_err();
        assert_eq!(refused.1, Refusal::QueueFull);
        assert_eq!(refused.0.status(), 503);
        assert_eq!(refused.0.headers(), [("retry-after", "1".to_owned())]);
        // A slot freed within the deadline admits the waiting one.
        drop(a);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        // Nothing frees: the next waits out its deadline.
        let _c = admission.admit("m").await.unwrap();
        let timed_out = admission.admit("m").await.map(drop).unwrap_err();
        assert_eq!(timed_out.1, Refusal::WaitedTooLong);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16K"), Ok(16 << 10));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
    }
}
