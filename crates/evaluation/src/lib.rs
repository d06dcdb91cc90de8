//! wafer-evaluation: the statistics of the evaluation layer, computed as Evidently computes
//! them, so that a drift verdict from wafer and one from Evidently's `DataDriftPreset` agree.
//!
//! - [`drift`]: per-column drift tests (two-sample Kolmogorov-Smirnov, chi-square, Z-test for
//!   two categories, Wasserstein distance normed by the reference's deviation, Jensen-Shannon
//!   distance, PSI), Evidently's default choice of test, and the dataset drift share;
//! - [`profile`]: a reference profile's seeded sample and per-column summaries;
//! - [`special`]: the distribution functions they need (chi-square and normal tails, the exact
//!   two-sample KS distribution).
//!
//! It is pure Rust: no I/O, no async, no wasm runtime. It builds for native, `wasm32-wasip2`
//! and `wasm32-unknown-unknown`. Reading logs and files, and rendering reports, is the host's.

pub mod drift;
#[cfg(test)]
mod evidently_tests;
pub mod profile;
pub mod special;

pub use drift::{
    ColumnDrift, DatasetDrift, DriftError, Method, Sample, column_drift, dataset_drift,
};
