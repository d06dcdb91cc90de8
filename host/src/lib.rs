//! wafer-host: the library behind the `wafer` binary.
//!
//! It builds model components (Wizer snapshots of the generic guest holding a model), runs
//! them on wasmtime with a fresh instance per invocation, caches compiled components, serves
//! the KServe v2 REST API and records per-invocation metrics. It is not the guest: scoring
//! itself happens inside the component (`wafer-guest`, on `wafer-scoring`).
//!
//! One module per capability:
//! - [`runtime`]: wasmtime: the engine, instances, the compiled cache, building components;
//! - [`serving`]: the model repository and `wafer serve`'s HTTP API, streams, the web page;
//! - [`store`]: the online feature database and the feature pipeline over files;
//! - [`batch`]: `wafer batch`, files scored in committed chunks;
//! - [`evaluation`]: drift between data sets (`wafer drift`), as Evidently computes it;
//! - [`monitoring`]: per-invocation metrics, Prometheus and the stats endpoint.

pub mod batch;
pub mod bindings;
pub mod evaluation;
pub mod monitoring;
pub mod runtime;
pub mod serving;
pub mod store;

/// The machine's cores as the process may use them; 1 when that cannot be told.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
