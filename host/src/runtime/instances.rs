//! Where a model's fresh instances come from.
//!
//! Every call runs in an instance that has run nothing before it. What this module decides is
//! when that instance is made, and when the used one is dropped. While the server has cores to
//! spare (no other call running, and no more client connections open than half the machine's
//! cores), a task of its own, off the request's path, makes the model's next instance, which
//! waits for the next call, and then drops the used one (the pool slot's reset): neither sits
//! between a request and its answer. At one connection that took ~25 µs off wafer's p50 on
//! iris, and dropping after the answer ~12 µs more (BENCHMARKS.md, "Instances made ahead"). A
//! busy server makes none ahead and drops in place: there every core is serving, the work would
//! only move, and the extra task cost ~5% of the requests per second at 2 to 32 connections
//! when measured.
//!
//! Bounds: instances alive at once (calls', those made ahead, those not yet dropped) never
//! exceed the engine's pool, because each holds a permit of [`Slots`]; a call waits for a
//! permit rather than fail on a full pool. At most [`Slots::ahead`] instances wait made ahead,
//! one per model at most, so a repository of many models does not fill the pool with them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::{Engine, Store};

use crate::bindings::{Scoring, ScoringPre};
use crate::runtime::HostState;
use crate::runtime::nn::NativeGraph;
use crate::store::FeatureStore;

/// The runtime-wide bounds every model's instances share.
pub struct Slots {
    /// One permit per instance alive: the engine's pool holds this many.
    alive: Arc<Semaphore>,
    /// Places left for instances made ahead.
    ahead: AtomicUsize,
    /// Whether calls' instances are retired off the request's path: only with places ahead
    /// (`wafer serve --no-make-ahead` leaves none, and then nothing is done off the path).
    off_path: bool,
    /// Calls running, of every model.
    calls: AtomicUsize,
    /// Client connections open, as the server counts them ([`Slots::open_connection`]).
    connections: AtomicUsize,
    /// The machine's cores.
    cores: usize,
}

impl Slots {
    /// Bounds for a pool of `calls + ahead` instances, `ahead` of which may wait made ahead.
    pub fn new(calls: usize, ahead: usize) -> Arc<Slots> {
        Arc::new(Slots {
            alive: Arc::new(Semaphore::new(calls + ahead)),
            ahead: AtomicUsize::new(ahead),
            off_path: ahead > 0,
            calls: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            cores: crate::cores(),
        })
    }

    /// How many instances a pool for `calls` at once must hold, with those made ahead.
    pub fn pool_size(calls: usize) -> usize {
        calls + Slots::ahead(calls)
    }

    /// How many instances may wait made ahead beside `calls` at once: a quarter, at most 16.
    pub fn ahead(calls: usize) -> usize {
        (calls / 4).min(16)
    }

    /// Counts a client connection as open until the guard is dropped: more connections
    /// than half the machine's cores make the server busy, and it makes no instance ahead.
    pub fn open_connection(self: &Arc<Self>) -> OpenConnection {
        self.connections.fetch_add(1, Ordering::AcqRel);
        OpenConnection(Arc::clone(self))
    }

    /// Whether every core is likely serving: another call runs, or more connections are open
    /// than half of `cores`.
    fn busy(&self, cores: usize) -> bool {
        self.calls.load(Ordering::Acquire) > 0
            || self.connections.load(Ordering::Acquire) > cores.div_ceil(2)
    }

    /// Takes a place for an instance made ahead, if one is left.
    fn reserve(self: &Arc<Self>) -> Option<AheadPlace> {
        self.ahead
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|_| AheadPlace(Arc::clone(self)))
    }
}

/// A client connection, counted open until dropped.
pub struct OpenConnection(Arc<Slots>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call running, counted in [`Slots::calls`] until dropped.
struct Call(Arc<Slots>);

impl Call {
    fn new(slots: &Arc<Slots>) -> Call {
        slots.calls.fetch_add(1, Ordering::AcqRel);
        Call(Arc::clone(slots))
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place among those for instances made ahead, given back when dropped.
struct AheadPlace(Arc<Slots>);

impl Drop for AheadPlace {
    fn drop(&mut self) {
        self.0.ahead.fetch_add(1, Ordering::AcqRel);
    }
}

/// A fresh store and instance, and the permit that counts it as alive.
pub struct Fresh {
    /// The store, with the deadline disarmed; dropped before the permit (fields drop in order).
    pub store: Store<HostState>,
    /// The component's instance in `store`.
    pub instance: Scoring,
    /// Counts the call it serves, from [`Instances::take`] to [`Instances::retire`].
    call: Option<Call>,
    _alive: OwnedSemaphorePermit,
}

/// A model's instance made ahead of its next call.
#[expect(
    clippy::large_enum_variant,
    reason = "one per model, and boxing would allocate on every call"
)]
enum Ahead {
    /// None: the next call makes its own.
    Empty,
    /// One is being made; calls meanwhile make their own, and retirements make none.
    Making,
    /// One waits, holding its place.
    Ready(Fresh, AheadPlace),
}

/// What a model's instances are made from, and the one made ahead of its next call.
pub struct Instances {
    recipe: Recipe,
    slots: Arc<Slots>,
    ahead: Mutex<Ahead>,
}

/// What [`Instances::new`] makes instances from.
pub struct Recipe {
    /// The engine the component was compiled for.
    pub engine: Engine,
    /// The component, linked.
    pub pre: ScoringPre<HostState>,
    /// The feature store its lookups read, if any.
    pub features: Option<Arc<FeatureStore>>,
    /// The graph behind `wasi:nn`, for the wasi-nn flavour.
    pub graph: Option<NativeGraph>,
    /// Its environment variables.
    pub environment: Vec<(String, String)>,
    /// Its linear memory's cap, in bytes.
    pub max_memory: usize,
}

impl Instances {
    /// A model's instances, made from `recipe` under the runtime's `slots`.
    pub fn new(recipe: Recipe, slots: Arc<Slots>) -> Instances {
        Instances {
            recipe,
            slots,
            ahead: Mutex::new(Ahead::Empty),
        }
    }

    /// The graph the model's instances load behind `wasi:nn`, for the wasi-nn flavour.
    pub fn graph(&self) -> Option<&NativeGraph> {
        self.recipe.graph.as_ref()
    }

    /// A new store and instance, once a slot of the pool is free. The deadline is disarmed:
    /// the caller arms it around its call.
    pub async fn instantiate(&self) -> anyhow::Result<Fresh> {
        let alive = Arc::clone(&self.slots.alive)
            .acquire_owned()
            .await
            .map_err(|_| anyhow::anyhow!("the instance pool is closed"))?;
        self.instantiate_in(alive).await
    }

    /// A new store and instance in the pool slot `alive` counts.
    async fn instantiate_in(&self, alive: OwnedSemaphorePermit) -> anyhow::Result<Fresh> {
        let Recipe {
            engine,
            pre,
            features,
            graph,
            environment,
            max_memory,
        } = &self.recipe;
        let state =
            HostState::for_instance(features.as_ref(), graph.as_ref(), environment, *max_memory);
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(u64::MAX / 2);
        store.epoch_deadline_trap();
        let instance = pre.instantiate_async(&mut store).await?;
        Ok(Fresh {
            store,
            instance,
            call: None,
            _alive: alive,
        })
    }

    /// A fresh instance for one call: the one made ahead (then `true`), or a new one.
    pub async fn take(&self) -> anyhow::Result<(Fresh, bool)> {
        let ready = {
            let mut ahead = self.lock();
            match std::mem::replace(&mut *ahead, Ahead::Empty) {
                Ahead::Ready(fresh, _place) => Some(fresh),
                other => {
                    *ahead = other;
                    None
                }
            }
        };
        let made_ahead = ready.is_some();
        let mut fresh = match ready {
            Some(fresh) => fresh,
            None => self.instantiate().await?,
        };
        fresh.call = Some(Call::new(&self.slots));
        Ok((fresh, made_ahead))
    }

    /// Retires `used`, the instance a call ran in. While the server has cores to spare, a task
    /// of its own makes the model's next instance and then drops `used`, off the request's
    /// path; a busy server drops it in place.
    pub fn retire(self: &Arc<Self>, mut used: Fresh) {
        // The call is over: it no longer makes the server busy.
        drop(used.call.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.slots.off_path || self.slots.busy(self.slots.cores) {
            return;
        }
        let instances = Arc::clone(self);
        runtime.spawn(async move {
            // Made first, so that the next request, which may come before the drop (the pool
            // slot's reset, ~10 µs) is done, finds its instance.
            instances.make_ahead().await;
            drop(used);
        });
    }

    /// Makes the next instance ahead, unless one waits or is being made, or no place is left.
    async fn make_ahead(&self) {
        let (place, alive) = {
            let mut ahead = self.lock();
            if !matches!(*ahead, Ahead::Empty) {
                return;
            }
            // Never ahead of a call that waits for a slot of the pool.
            let Some((place, alive)) = self
                .slots
                .reserve()
                .zip(Arc::clone(&self.slots.alive).try_acquire_owned().ok())
            else {
                return;
            };
            *ahead = Ahead::Making;
            (place, alive)
        };
        let made = self.instantiate_in(alive).await;
        let mut ahead = self.lock();
        match made {
            Ok(fresh) => *ahead = Ahead::Ready(fresh, place),
            Err(e) => {
                // The next call instantiates for itself, and answers with the reason.
                tracing::debug!("making an instance ahead: {e:#}");
                *ahead = Ahead::Empty;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ahead> {
        self.ahead.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn the_pool_holds_calls_and_those_made_ahead() {
        assert_eq!(Slots::ahead(1), 0);
        assert_eq!(Slots::pool_size(1), 1);
        assert_eq!(Slots::ahead(64), 16);
        assert_eq!(Slots::pool_size(64), 80);
        assert_eq!(Slots::ahead(1000), 16);
    }

    #[test]
    fn places_ahead_are_bounded_and_given_back() {
        let slots = Slots::new(8, 2);
        let first = slots.reserve().expect("a place");
        let second = slots.reserve().expect("a second place");
        assert!(slots.reserve().is_none(), "only two places");
        drop(first);
        let third = slots.reserve().expect("the place given back");
        assert!(slots.reserve().is_none());
        drop((second, third));
        assert_eq!(slots.ahead.load(std::sync::atomic::Ordering::Acquire), 2);
        assert_eq!(slots.alive.available_permits(), 10);
    }

    #[test]
    fn open_connections_and_running_calls_make_the_server_busy() {
        let slots = Slots::new(8, 2);
        assert!(!slots.busy(2));
        let one = slots.open_connection();
        assert!(!slots.busy(2), "one connection on two cores");
        let two = slots.open_connection();
        assert!(slots.busy(2), "two connections on two cores");
        assert!(!slots.busy(4), "two connections on four cores");
        drop((one, two));
        assert!(!slots.busy(2));
        let call = super::Call::new(&slots);
        assert!(slots.busy(2), "a call runs");
        drop(call);
        assert!(!slots.busy(2));
    }
}
