//! Serving: the model repository on disk ([`repo`]) and the models loaded from it, swapped
//! while serving ([`registry`]); `wafer serve`'s KServe v2 HTTP API ([`server`]) with per-model
//! admission ([`admission`]); newline-delimited JSON streams ([`stream`]); and the browser page
//! ([`web`]); shadow and canary traffic ([`traffic`]).

pub mod admission;
pub mod registry;
pub mod repo;
pub mod server;
pub mod stream;
pub mod traffic;
pub mod web;

pub use server::{DriftOptions, ServeConfig, Server, ServerOptions, serve};

/// Tokio workers for `wafer serve`: two per core. While the server has cores to spare, a
/// worker that answered a call goes on to retire its instance (`runtime::instances`), and the
/// next request is picked up by another worker meanwhile. By hand on 2 cores (iris, one
/// connection, BENCHMARKS.md "Instances made ahead"): p50 94-103 µs with 4 workers against
/// 126-129 µs with 2; under load, requests/s within the runs' spread.
pub fn worker_threads() -> usize {
    2 * crate::cores()
}
