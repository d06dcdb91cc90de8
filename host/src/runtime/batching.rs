//! Dynamic batching: concurrent requests to one model version become one call in one fresh
//! instance, and each request gets back exactly its own rows.
//!
//! A request that can join a batch (`Batcher::signature`) either joins the open batch of its
//! signature, while that has room, or opens one and leads it. The leader waits up to
//! `max_queue_delay` for company (less when the batch fills), then for one of the model's
//! executors (by default half the cores): while every executor is busy, the open batch keeps
//! filling, so batches grow with the load and cost no delay without it. (Without a queue delay,
//! a request that finds no open batch and a free executor leads a batch in its own task: it
//! yields to the scheduler while that brings company, so that requests that arrived together
//! run together, then runs at once; a batch with company runs in a spawned task, and a batch
//! whose leader is cancelled while gathering is handed to one, so that a client going away
//! never strands or fails the requests that joined it.) Then
//! one fresh instance scores the whole batch, in one of two ways ([`Join`]):
//!
//! - `requests` (the default): the instance runs each request in turn (the guest's
//!   `predict-many`), each exactly as it would run alone, each with its own result. The batch
//!   shares the instance, the call into it and the executor; the answers are bit for bit those
//!   of the requests alone, and a request the model refuses fails alone.
//! - `rows`: the rows of every member are concatenated along the first dimension, scored by one
//!   model call, and split back. Fewer, larger model calls; but a kernel may sum in another
//!   order at another batch size (tract's matrix products and reductions do), so a float may
//!   differ from the lone answer in its last bits. A request that does not look well-formed to
//!   the host runs alone, and when a batch fails as a whole (a member the guest refuses, a
//!   trap) or its outputs cannot be split by rows, every member runs again alone, so each gets
//!   its own answer or its own error.
//!
//! In both, a batch whose instance fails (a trap, the deadline) runs each member again alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::value::RawValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use wafer_protocol::ProtocolError;
use wafer_scoring as scoring;

use super::{Call, LoadedModel, Measured};

/// How a model batches, from the `[dynamic_batching]` table of its folder's `wafer.toml`.
/// Without that table, a model does not batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most rows one model call takes (the sum of its requests' first dimensions). A
    /// request with more rows runs alone.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others before the batch runs.
    pub max_queue_delay: Duration,
    /// How a batch is scored.
    pub join: Join,
    /// How many batches of the model run at once. While they all run, the next batch fills.
    pub executors: usize,
}

/// How one instance scores a batch: `join = "requests"` or `"rows"` in `[dynamic_batching]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Join {
    /// Each request in turn, as alone: the same answers bit for bit.
    #[default]
    Requests,
    /// All rows in one model call, split back: floats may differ in their last bits.
    Rows,
}

impl BatchConfig {
    /// The default `max_batch_size`.
    pub const MAX_BATCH_SIZE: usize = 64;
    /// The default `max_queue_delay_us`: none; batches form from what queues while the
    /// model's executors are busy.
    pub const MAX_QUEUE_DELAY_US: u64 = 0;

    /// The default `executors`: half the cores, at least one. Fewer executors than cores is
    /// what lets batches form: with one per core, one is almost always free, since the cores
    /// also parse and answer the requests.
    pub fn default_executors() -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cores / 2).max(1)
    }

    /// The keys of the table.
    const KEYS: [&str; 4] = ["max_batch_size", "max_queue_delay_us", "join", "executors"];

    /// Reads `[dynamic_batching]`: `max_batch_size` (1 to 65,536), `max_queue_delay_us` (0
    /// to 1,000,000), `join` (`"requests"` or `"rows"`) and `executors` (1 to 1,024), each
    /// optional.
    pub fn parse(table: &toml::Table) -> anyhow::Result<BatchConfig> {
        if let Some(key) = table.keys().find(|k| !Self::KEYS.contains(&k.as_str())) {
            bail!(
                "dynamic_batching: unknown key \"{key}\" (expected {})",
                Self::KEYS.join(", ")
            );
        }
        let int = |key: &str, default: u64, max: u64, min: u64| -> anyhow::Result<u64> {
            match table.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| (min..=max).contains(n))
                    .with_context(|| {
                        format!("dynamic_batching.{key} must be an integer from {min} to {max}")
                    }),
            }
        };
        Ok(BatchConfig {
            max_batch_size: int("max_batch_size", Self::MAX_BATCH_SIZE as u64, 1 << 16, 1)?
                as usize,
            max_queue_delay: Duration::from_micros(int(
                "max_queue_delay_us",
                Self::MAX_QUEUE_DELAY_US,
                1_000_000,
                0,
            )?),
            executors: int("executors", Self::default_executors() as u64, 1024, 1)? as usize,
            join: match table.get("join") {
                None => Join::Requests,
                Some(v) if v.as_str() == Some("requests") => Join::Requests,
                Some(v) if v.as_str() == Some("rows") => Join::Rows,
                Some(_) => bail!("dynamic_batching.join must be \"requests\" or \"rows\""),
            },
        })
    }
}

/// Whether every input and output of `metadata` has its rows along a dynamic first
/// dimension: what batching by rows needs. The reason when not.
pub fn row_wise(metadata: &scoring::ModelMetadata) -> Result<(), String> {
    let all = metadata.inputs.iter().map(|t| ("input", t));
    let all = all.chain(metadata.outputs.iter().map(|t| ("output", t)));
    for (kind, t) in all {
        if !matches!(t.shape.first(), Some(scoring::Dim::Dynamic(_))) {
            return Err(format!(
                "{kind} \"{}\" has shape {}: its first dimension is not the batch",
                t.name,
                t.shape_string()
            ));
        }
    }
    Ok(())
}

/// What a request asks of the model, and where its answer goes.
struct Member {
    call: Call,
    /// The outputs it asked for; empty for all of them.
    outputs: Vec<String>,
    /// Its rows: the first dimension of its inputs, or its number of records.
    rows: usize,
    reply: oneshot::Sender<Answer>,
}

type Answer = (Result<Vec<scoring::Tensor>, ProtocolError>, Measured);

/// What requests must share to be scored in one call: the same inputs, element types and
/// row shapes; or records of the same kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Signature {
    /// Anything: requests joined as requests need share nothing.
    Any,
    /// Tensors, by name: element type and every dimension but the first.
    Tensors(Vec<(String, scoring::DataType, Vec<usize>)>),
    /// A JSON array of records (`true`: objects) or of rows (`false`: arrays).
    Records(bool),
}

/// A batch still taking members.
struct Open {
    id: u64,
    rows: usize,
    members: Vec<Member>,
    /// Wakes the leader early when the batch is full.
    full: Arc<Notify>,
}

/// The batching of one model version.
pub struct Batcher {
    config: BatchConfig,
    /// The batches taking members, one per signature.
    open: Mutex<HashMap<Signature, Open>>,
    /// Batches closed (full) before their leader woke: by id.
    closed: Mutex<HashMap<u64, Vec<Member>>>,
    /// Model calls that may run at once.
    executors: Arc<Semaphore>,
    ids: AtomicU64,
}

impl Batcher {
    /// Batching under `config`.
    pub fn new(config: BatchConfig) -> Batcher {
        Batcher {
            executors: Arc::new(Semaphore::new(config.executors)),
            config,
            open: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            ids: AtomicU64::new(0),
        }
    }

    /// The signature and rows of a request that may join a batch; `None` for one that runs
    /// alone: one the host can already see is malformed (so that its error is its own), or
    /// larger than a batch.
    pub(super) fn signature(
        &self,
        model: &LoadedModel,
        call: &Call,
        outputs: &[String],
    ) -> Option<(Signature, usize)> {
        if self.config.join == Join::Requests {
            let rows = rows(call).unwrap_or(1);
            return (rows <= self.config.max_batch_size).then_some((Signature::Any, rows));
        }
        let metadata = model.metadata();
        let mut asked: Vec<&String> = outputs.iter().collect();
        asked.sort();
        asked.dedup();
        if asked.len() != outputs.len()
            || !outputs
                .iter()
                .all(|o| metadata.outputs.iter().any(|m| &m.name == o))
        {
            return None;
        }
        let (signature, rows) = match call {
            Call::Tensors(inputs) => {
                let rows = *inputs.first()?.shape().first()?;
                let mut parts = Vec::with_capacity(inputs.len());
                for t in inputs {
                    let (&first, rest) = t.shape().split_first()?;
                    if first != rows {
                        return None;
                    }
                    match metadata.inputs.iter().find(|m| m.name == t.name()) {
                        Some(info) if info.check(t).is_err() => return None,
                        Some(_) => {}
                        // A raw field: the guest's feature spec checks it.
                        None if model.features_toml().is_some() => {}
                        None => return None,
                    }
                    parts.push((t.name().to_owned(), t.datatype(), rest.to_vec()));
                }
                parts.sort_by(|a, b| a.0.cmp(&b.0));
                if parts.windows(2).any(|w| w[0].0 == w[1].0) {
                    return None;
                }
                (Signature::Tensors(parts), rows)
            }
            Call::Records(records) => {
                let rows: Vec<&RawValue> = serde_json::from_str(records).ok()?;
                let objects = rows.first()?.get().starts_with('{');
                let opening = if objects { '{' } else { '[' };
                if !rows.iter().all(|r| r.get().starts_with(opening)) {
                    return None;
                }
                (Signature::Records(objects), rows.len())
            }
        };
        (rows >= 1 && rows <= self.config.max_batch_size).then_some((signature, rows))
    }

    /// Scores `call` in a batch of its signature, and answers it.
    pub(super) async fn submit(
        self: &Arc<Self>,
        model: &Arc<LoadedModel>,
        signature: Signature,
        rows: usize,
        call: Call,
        outputs: &[String],
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let member = Member {
            call,
            outputs: outputs.to_vec(),
            rows,
            reply,
        };
        if let Some(executor) = self.idle(&signature) {
            // A free executor and no batch open: this request leads a batch in its own task,
            // with no leader to hand it to and back. Should a batch have opened meanwhile,
            // the request joined it instead, and that batch's leader takes an executor.
            if let Some((id, _)) = self.join(signature.clone(), member) {
                self.lead_here(model, &signature, id, rows, executor).await;
            }
        } else if let Some((id, full)) = self.join(signature.clone(), member) {
            let batcher = Arc::clone(self);
            let model = Arc::clone(model);
            tokio::spawn(async move { batcher.lead(model, signature, id, full).await });
        }
        answer.await.unwrap_or_else(|_| {
            let e = ProtocolError::Internal("the batch this request was in failed".into());
            (Err(e), Measured::default())
        })
    }

    /// Lets the requests already on their way join open batch `id`: yields to the scheduler
    /// while a pass of it brought company, so that requests that arrived together are scored
    /// together. Alone, this costs one pass; a timer would cost its whole delay.
    async fn gather(&self, signature: &Signature, id: u64, mut rows: usize) {
        loop {
            tokio::task::yield_now().await;
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.get(signature) {
                Some(batch) if batch.id == id && batch.rows > rows => rows = batch.rows,
                _ => return,
            }
        }
    }

    /// An executor, when batches do not wait for company, no batch of `signature` is open
    /// and an executor is free.
    fn idle(&self, signature: &Signature) -> Option<OwnedSemaphorePermit> {
        if !self.config.max_queue_delay.is_zero() {
            return None;
        }
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.contains_key(signature) {
            return None;
        }
        Arc::clone(&self.executors).try_acquire_owned().ok()
    }

    /// Puts `member` in the open batch of `signature`; when it opens a batch, the batch's id
    /// and what wakes its leader.
    fn join(&self, signature: Signature, member: Member) -> Option<(u64, Arc<Notify>)> {
        let max = self.config.max_batch_size;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(batch) = open.get_mut(&signature) {
            if batch.rows + member.rows <= max {
                batch.rows += member.rows;
                batch.members.push(member);
                if batch.rows == max {
                    self.close(&mut open, &signature);
                }
                return None;
            }
            // No room: that batch runs as it is, and this request opens the next.
            self.close(&mut open, &signature);
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let full = Arc::new(Notify::new());
        let rows = member.rows;
        open.insert(
            signature.clone(),
            Open {
                id,
                rows,
                members: vec![member],
                full: Arc::clone(&full),
            },
        );
        if rows == max {
            self.close(&mut open, &signature);
        }
        Some((id, full))
    }

    /// Takes the open batch of `signature` out of the open ones and wakes its leader.
    fn close(&self, open: &mut HashMap<Signature, Open>, signature: &Signature) {
        if let Some(batch) = open.remove(signature) {
            batch.full.notify_one();
            let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            closed.insert(batch.id, batch.members);
        }
    }

    /// Leads batch `id`: waits for company and an executor, then scores it.
    async fn lead(
        &self,
        model: Arc<LoadedModel>,
        signature: Signature,
        id: u64,
        full: Arc<Notify>,
    ) {
        if !self.config.max_queue_delay.is_zero() {
            let _ = tokio::time::timeout(self.config.max_queue_delay, full.notified()).await;
        }
        let Ok(_executor) = self.executors.acquire().await else {
            return;
        };
        if let Some(members) = self.take(&signature, id) {
            run(&model, self.config.join, members).await;
        }
    }

    /// Leads batch `id`, which the request of `rows` rows opened holding `executor`, from the
    /// request's own task: gathers the company already on its way, then scores the batch.
    async fn lead_here(
        self: &Arc<Self>,
        model: &Arc<LoadedModel>,
        signature: &Signature,
        id: u64,
        rows: usize,
        executor: OwnedSemaphorePermit,
    ) {
        // Should this request be cancelled (its client gone) while it gathers, the batch,
        // which others may have joined, is led by a task of its own.
        let mut orphan = Orphan {
            batcher: self,
            model,
            signature,
            id: Some(id),
        };
        self.gather(signature, id, rows).await;
        orphan.id = None;
        let Some(members) = self.take(signature, id) else {
            return;
        };
        if members.len() == 1 {
            // Alone: cancelling it cancels no one else's call.
            run(model, self.config.join, members).await;
        } else {
            // With company: the batch runs in a task of its own, which no client going away
            // cancels.
            let model = Arc::clone(model);
            let join = self.config.join;
            tokio::spawn(async move {
                run(&model, join, members).await;
                drop(executor);
            });
        }
    }

    /// The members of batch `id`, open or closed, taken out of the batcher.
    fn take(&self, signature: &Signature, id: u64) -> Option<Vec<Member>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.get(signature).is_some_and(|b| b.id == id) {
            return open.remove(signature).map(|b| b.members);
        }
        drop(open);
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        closed.remove(&id)
    }
}

/// The batch a request leads while it gathers company: if the request is cancelled then, the
/// batch is handed to a spawned leader, so that the requests that joined it are answered.
struct Orphan<'a> {
    batcher: &'a Arc<Batcher>,
    model: &'a Arc<LoadedModel>,
    signature: &'a Signature,
    /// The batch, until its leader takes it.
    id: Option<u64>,
}

impl Drop for Orphan<'_> {
    fn drop(&mut self) {
        let (Some(id), Ok(runtime)) = (self.id, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let batcher = Arc::clone(self.batcher);
        let model = Arc::clone(self.model);
        let signature = self.signature.clone();
        runtime.spawn(async move {
            batcher
                .lead(model, signature, id, Arc::new(Notify::new()))
                .await
        });
    }
}

/// The rows of a request, when it says: the first dimension of its first tensor, or the
/// number of its records.
fn rows(call: &Call) -> Option<usize> {
    match call {
        Call::Tensors(inputs) => inputs.first()?.shape().first().copied(),
        Call::Records(records) => serde_json::from_str::<Vec<&RawValue>>(records)
            .ok()
            .map(|r| r.len()),
    }
}

/// Scores `members` in one instance, or each alone when the batch cannot answer them all.
async fn run(model: &Arc<LoadedModel>, join: Join, mut members: Vec<Member>) {
    if members.len() == 1 {
        let member = members.remove(0);
        let answer = model.call(member.call, &member.outputs).await;
        let _ = member.reply.send(with_batch(answer, 1, true));
        return;
    }
    match join {
        Join::Requests => each_in_turn(model, members).await,
        Join::Rows => concatenated(model, members).await,
    }
}

/// Scores `members` one after the other in one instance, each with its own result.
async fn each_in_turn(model: &Arc<LoadedModel>, members: Vec<Member>) {
    let calls: Vec<(Call, Vec<String>)> = members
        .iter()
        .map(|m| (m.call.clone(), m.outputs.clone()))
        .collect();
    let (results, measured) = model.call_many(&calls).await;
    let Ok(results) = results else {
        return alone(model, members).await;
    };
    let size = members.len() as u64;
    for (i, (member, result)) in members.into_iter().zip(results).enumerate() {
        let _ = member
            .reply
            .send(with_batch((result, share(measured, i)), size, i == 0));
    }
}

/// What member `i` of a batch reports of its measurements: the cold start and the lookups are
/// counted once, on the first.
fn share(mut measured: Measured, i: usize) -> Measured {
    if i > 0 {
        measured.cold = false;
        measured.lookups = 0;
        measured.lookup_misses = 0;
    }
    measured
}

/// Scores the rows of `members` in one model call and splits the outputs back.
async fn concatenated(model: &Arc<LoadedModel>, members: Vec<Member>) {
    let rows: Vec<usize> = members.iter().map(|m| m.rows).collect();
    let asked = union(&members);
    let Some(call) = concatenate(&members) else {
        return alone(model, members).await;
    };
    let (result, measured) = model.call(call, &asked).await;
    let Some(mut split) = result.ok().and_then(|outputs| split(outputs, &rows)) else {
        return alone(model, members).await;
    };
    let size = members.len() as u64;
    for (i, member) in members.into_iter().enumerate() {
        let mine = std::mem::take(&mut split[i]);
        let outputs = match member.outputs.is_empty() {
            true => mine,
            false => member
                .outputs
                .iter()
                .filter_map(|name| mine.iter().find(|t| t.name() == name).cloned())
                .collect(),
        };
        let _ = member
            .reply
            .send(with_batch((Ok(outputs), share(measured, i)), size, i == 0));
    }
}

/// Runs each member alone, in its own fresh instance, all at once.
async fn alone(model: &Arc<LoadedModel>, members: Vec<Member>) {
    let mut calls = tokio::task::JoinSet::new();
    for member in members {
        let model = Arc::clone(model);
        calls.spawn(async move {
            let answer = model.call(member.call, &member.outputs).await;
            let _ = member.reply.send(with_batch(answer, 1, true));
        });
    }
    while calls.join_next().await.is_some() {}
}

fn with_batch(answer: Answer, size: u64, first: bool) -> Answer {
    let (result, mut measured) = answer;
    measured.batch_size = size;
    measured.batch_first = first;
    (result, measured)
}

/// The outputs a batch asks for: all of them when any member asks for all, else every name
/// some member asks for.
fn union(members: &[Member]) -> Vec<String> {
    if members.iter().any(|m| m.outputs.is_empty()) {
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for name in members.iter().flat_map(|m| &m.outputs) {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// The members' rows as one call. Their own calls stay, for running alone if the batch fails.
fn concatenate(members: &[Member]) -> Option<Call> {
    match &members.first()?.call {
        Call::Tensors(first) => {
            let names: Vec<String> = first.iter().map(|t| t.name().to_owned()).collect();
            let mut columns: Vec<Vec<scoring::Tensor>> = vec![Vec::new(); names.len()];
            for member in members {
                let Call::Tensors(inputs) = &member.call else {
                    return None;
                };
                for (column, name) in columns.iter_mut().zip(&names) {
                    column.push(inputs.iter().find(|t| t.name() == name)?.clone());
                }
            }
            let inputs = columns
                .into_iter()
                .map(scoring::Tensor::concat_rows)
                .collect::<Option<Vec<_>>>()?;
            Some(Call::Tensors(inputs))
        }
        Call::Records(_) => {
            let mut joined = String::from("[");
            for member in members {
                let Call::Records(records) = &member.call else {
                    return None;
                };
                let inner = records.trim().strip_prefix('[')?.strip_suffix(']')?.trim();
                if joined.len() > 1 {
                    joined.push(',');
                }
                joined.push_str(inner);
            }
            joined.push(']');
            Some(Call::Records(joined))
        }
    }
}

/// Each output cut into the members' rows: per member, every output's part.
fn split(outputs: Vec<scoring::Tensor>, rows: &[usize]) -> Option<Vec<Vec<scoring::Tensor>>> {
    let mut per_member: Vec<Vec<scoring::Tensor>> = vec![Vec::new(); rows.len()];
    for output in outputs {
        for (member, part) in per_member.iter_mut().zip(output.split_rows(rows)?) {
            member.push(part);
        }
    }
    Some(per_member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> anyhow::Result<BatchConfig> {
        BatchConfig::parse(&text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn the_table_sets_limits_and_refuses_what_it_does_not_know() {
        assert_eq!(
            config("").unwrap(),
            BatchConfig {
                max_batch_size: BatchConfig::MAX_BATCH_SIZE,
                max_queue_delay: Duration::ZERO,
                join: Join::Requests,
                executors: BatchConfig::default_executors(),
            }
        );
        let c =
            config("max_batch_size = 8\nmax_queue_delay_us = 250\njoin = \"rows\"\nexecutors = 3")
                .unwrap();
        assert_eq!(c.executors, 3);
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.max_queue_delay, Duration::from_micros(250));
        assert_eq!(c.join, Join::Rows);
        for bad in [
            "max_batch_size = 0",
            "max_batch_size = -1",
            "max_batch_size = \"8\"",
            "max_queue_delay_us = 2000000",
            "preferred_batch_size = 4",
            "join = \"columns\"",
            "executors = 0",
        ] {
            assert!(config(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn only_rows_along_a_dynamic_first_dimension_batch() {
        let info = |name: &str, shape: Vec<scoring::Dim>| scoring::TensorInfo {
            name: name.to_owned(),
            datatype: scoring::DataType::F32,
            shape,
            class_labels: vec![],
        };
        let n = || scoring::Dim::Dynamic("N".to_owned());
        let mut metadata = scoring::ModelMetadata {
            name: "m".to_owned(),
            platform: "onnx".to_owned(),
            inputs: vec![info("x", vec![n(), scoring::Dim::Fixed(4)])],
            outputs: vec![info("y", vec![n()])],
        };
        assert_eq!(row_wise(&metadata), Ok(()));
        metadata
            .outputs
            .push(info("total", vec![scoring::Dim::Fixed(1)]));
        let reason = row_wise(&metadata).unwrap_err();
        assert!(reason.contains("output \"total\""), "{reason}");
        metadata.outputs.pop();
        metadata.outputs.push(info("scalar", vec![]));
        assert!(row_wise(&metadata).is_err());
    }

    #[test]
    fn records_join_into_one_array() {
        let member = |records: &str| {
            let (reply, _) = oneshot::channel();
            Member {
                call: Call::Records(records.to_owned()),
                outputs: vec![],
                rows: 0,
                reply,
            }
        };
        let members = vec![
            member("[{\"a\": 1}]"),
            member(" [ {\"a\": 2}, {\"a\": 3} ] "),
        ];
        let Some(Call::Records(joined)) = concatenate(&members) else {
            panic!("not joined");
        };
        let rows: Vec<serde_json::Value> = serde_json::from_str(&joined).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2]["a"], 3);
    }

    #[test]
    fn a_member_asking_all_outputs_asks_all_of_the_batch() {
        let member = |outputs: &[&str]| {
            let (reply, _) = oneshot::channel();
            Member {
                call: Call::Records(String::new()),
                outputs: outputs.iter().map(|s| (*s).to_owned()).collect(),
                rows: 1,
                reply,
            }
        };
        assert_eq!(
            union(&[member(&["b"]), member(&["a", "b"])]),
            vec!["b".to_owned(), "a".to_owned()]
        );
        assert!(union(&[member(&["b"]), member(&[])]).is_empty());
    }
}
