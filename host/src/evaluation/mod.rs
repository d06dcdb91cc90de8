//! Evaluation: how a model's inputs and outputs change, over files and over the prediction
//! log. [`profile`] keeps a model's reference (a sample of its training data and of its
//! outputs, and each column's summary) beside it, and reads current data as the same
//! columns; [`drift`] tests every column with `wafer-evaluation`'s tests, as Evidently would; [`report`] renders the result as one
//! self-contained HTML file; [`compare`] scores the same rows with two models and compares them;
//! [`skew`] recomputes logged requests offline and compares them with what was served.

pub mod compare;
pub mod drift;
pub mod profile;
pub mod report;
pub mod skew;
