//! Where connections are served: threads each running a current-thread tokio runtime (a
//! lane; two per core by default, [`crate::serving::lane_count`]). A connection stays on the
//! lane that took it, with every task its requests spawn (the instance made ahead and the used
//! one dropped, a batch's leader), so a request and the work that follows it run one after the
//! other on one thread, with no wake-up of another.
//!
//! Why: on tokio's multi-thread runtime, each request woke a second worker (the connection's
//! task notified while it ran is rescheduled, and a parked worker is woken to steal it), and
//! the instance made ahead then ran on one core while the next request arrived on the other.
//! At one connection that cost a third of wafer's p50 (BENCHMARKS.md, "Lanes"). A new
//! connection goes to the lane with the fewest open, so under load every core serves.
//!
//! The price: a lane does not steal another's work. A long call (a large model) delays the
//! other requests of its lane while another lane may idle; with two lanes per core the kernel
//! then runs another lane on that core.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// A connection's work: serving it until it closes.
pub type Connection = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What makes a connection's work, on the lane that runs it (where its socket must be
/// registered).
type Job = Box<dyn FnOnce() -> Connection + Send>;

/// The lanes connections are served on. Dropping it lets each lane's thread finish once the
/// connections it holds have closed.
pub struct Lanes {
    lanes: Vec<Lane>,
}

struct Lane {
    jobs: mpsc::UnboundedSender<Job>,
    /// Connections open on this lane.
    open: Arc<AtomicUsize>,
}

impl Lanes {
    /// `count` lanes (at least one), each on a thread of its own.
    pub fn new(count: usize) -> std::io::Result<Lanes> {
        let lanes = (0..count.max(1))
            .map(|i| {
                let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                std::thread::Builder::new()
                    .name(format!("wafer-lane-{i}"))
                    .spawn(move || {
                        runtime.block_on(async move {
                            let mut open = tokio::task::JoinSet::new();
                            loop {
                                tokio::select! {
                                    job = queue.recv() => match job {
                                        Some(job) => { open.spawn(job()); }
                                        None => break,
                                    },
                                    // Reaps finished connections, so the set does not grow.
                                    Some(_) = open.join_next(), if !open.is_empty() => {}
                                }
                            }
                            // No more connections will come: serve those open to their end.
                            while open.join_next().await.is_some() {}
                        });
                    })?;
                Ok(Lane {
                    jobs,
                    open: Arc::new(AtomicUsize::new(0)),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Lanes { lanes })
    }

    /// Runs `job` on the lane with the fewest open connections; the lane counts it open until
    /// the future `job` makes completes.
    pub fn dispatch(&self, job: impl FnOnce() -> Connection + Send + 'static) {
        let lane = self
            .lanes
            .iter()
            .min_by_key(|lane| lane.open.load(Ordering::Acquire))
            .expect("at least one lane");
        lane.open.fetch_add(1, Ordering::AcqRel);
        let open = Arc::clone(&lane.open);
        let counted: Job = Box::new(move || {
            let connection = job();
            Box::pin(async move {
                let _open = Open(open);
                connection.await;
            })
        });
        if let Err(mpsc::error::SendError(_)) = lane.jobs.send(counted) {
            // The lane's thread is gone: the connection is dropped, and closes. (Tasks that
            // panic are caught by the lane's runtime, so this takes a panic in the lane itself.)
            lane.open.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("a connection lane has stopped; dropping a connection");
        }
    }
}

/// Counts a connection open on its lane until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::Lanes;
    use std::sync::mpsc;

    #[test]
    fn connections_go_to_the_least_loaded_lane_and_stay_on_its_thread() {
        let lanes = Lanes::new(2).unwrap();
        let (tx, rx) = mpsc::channel();
        let (release, released) = tokio::sync::watch::channel(false);
        for _ in 0..4 {
            let tx = tx.clone();
            let mut released = released.clone();
            lanes.dispatch(move || {
                Box::pin(async move {
                    let before = std::thread::current().id();
                    let _ = released.wait_for(|r| *r).await;
                    tokio::task::yield_now().await;
                    let after = std::thread::current().id();
                    tx.send((before, after)).unwrap();
                })
            });
        }
        // Two open on each lane, every one still waiting.
        assert_eq!(
            lanes
                .lanes
                .iter()
                .map(|l| l.open.load(std::sync::atomic::Ordering::Acquire))
                .collect::<Vec<_>>(),
            [2, 2]
        );
        release.send(true).unwrap();
        let threads: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
        assert!(threads.iter().all(|(before, after)| before == after));
        let distinct: std::collections::HashSet<_> = threads.iter().map(|(t, _)| *t).collect();
        assert_eq!(distinct.len(), 2, "both lanes served");
    }
}
