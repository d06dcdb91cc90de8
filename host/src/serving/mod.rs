//! Serving: the model repository on disk ([`repo`]) and the models loaded from it, swapped
//! while serving ([`registry`]); `wafer serve`'s KServe v2 HTTP API ([`server`]) with per-model
//! admission ([`admission`]), its connections served on threads of their own ([`lanes`]);
//! newline-delimited JSON streams ([`stream`]); the browser page ([`web`]); shadow and canary
//! traffic ([`traffic`]).

use std::path::Path;

pub mod admission;
pub mod lanes;
pub mod registry;
pub mod repo;
pub mod server;
pub mod stream;
pub mod traffic;
pub mod web;

pub use server::{DriftOptions, ServeConfig, Server, ServerOptions, serve};

/// How many lanes (threads serving connections, [`lanes`]) `wafer serve` runs on `repo`: two
/// per core, or one per core when a model of the repository batches. By hand on 2 cores, iris,
/// wrk, three alternating rounds (BENCHMARKS.md, "Lanes"):
/// - two per core: at 8 and 128 connections 21,000-23,000 req/s against 19,000-21,000 with
///   one per core: when one lane's connections are idle, the kernel runs another lane on its
///   core. At one connection it makes no difference (one lane serves it).
/// - one per core when batching: a batch runs on its leader's lane, and more lanes than cores
///   take CPU time from it. At 8 and 32 connections 28,000-30,000 and 49,000 req/s with 2
///   lanes against 21,000 and 40,000-43,000 with 4.
pub fn lane_count(repo: &Path) -> usize {
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
    fn a_repository_that_batches_runs_one_lane_per_core() {
        let dir = std::env::temp_dir().join(format!("wafer-lanes-{}", std::process::id()));
        let model = dir.join("iris");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("model.onnx"), b"").unwrap();
        assert_eq!(super::lane_count(&dir), 2 * crate::cores());
        std::fs::write(model.join("wafer.toml"), "[dynamic_batching]\n").unwrap();
        assert_eq!(super::lane_count(&dir), crate::cores());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
