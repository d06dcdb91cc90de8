//! Serving: the model repository on disk ([`repo`]) and the models loaded from it, swapped
//! while serving ([`registry`]); `wafer serve`'s KServe v2 HTTP API ([`server`]) with per-model
//! admission ([`admission`]); newline-delimited JSON streams ([`stream`]); and the browser page
//! ([`web`]); shadow and canary traffic ([`traffic`]).

use std::path::Path;

pub mod admission;
pub mod registry;
pub mod repo;
pub mod server;
pub mod stream;
pub mod traffic;
pub mod web;

pub use server::{DriftOptions, ServeConfig, Server, ServerOptions, serve};

/// Tokio workers for `wafer serve` on `repo`: two per core, or one per core when a model of
/// the repository batches. By hand on 2 cores (iris, BENCHMARKS.md "Instances made ahead"):
/// - two per core: while the server has cores to spare, a worker that answered a call goes on
///   to retire its instance (`runtime::instances`), and another picks up the next request.
///   At one connection, p50 94-103 µs with 4 workers against 124-130 µs with 2; under load,
///   requests/s as high or higher.
/// - one per core when batching: a model's batches run one at a time on one worker
///   (`runtime::batching`), and more workers than cores take CPU time from it. At 32
///   connections, 35,000-36,400 req/s with 2 workers against 32,700-33,000 with 4.
pub fn worker_threads(repo: &Path) -> usize {
    let batches = std::fs::read_dir(repo)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| matches!(repo::batching(&entry.path()), Ok(Some(_))));
    match batches {
        true => crate::cores(),
        false => 2 * crate::cores(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_repository_that_batches_runs_one_worker_per_core() {
        let dir = std::env::temp_dir().join(format!("wafer-workers-{}", std::process::id()));
        let model = dir.join("iris");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("model.onnx"), b"").unwrap();
        assert_eq!(super::worker_threads(&dir), 2 * crate::cores());
        std::fs::write(model.join("wafer.toml"), "[dynamic_batching]\n").unwrap();
        assert_eq!(super::worker_threads(&dir), crate::cores());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
