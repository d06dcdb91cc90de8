//! wafer-host: the library behind the `wafer` binary.
//!
//! It builds model components (Wizer snapshots of the generic guest holding a model), runs
//! them on wasmtime with a fresh instance per invocation, caches compiled components, serves
//! the KServe v2 REST API and records per-invocation metrics. It is not the guest: scoring
//! itself happens inside the component (`wafer-guest`, on `wafer-scoring`).

pub mod batch;
pub mod bindings;
pub mod build;
pub mod cache;
pub mod convert;
pub mod metrics;
pub mod offline;
pub mod repo;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod stream;
pub mod web;
