//! Evaluation: how a model's inputs and outputs change, over files and, later, over the
//! prediction log. [`drift`] reads two data sets and tests every column with
//! `wafer-evaluation`'s tests, as Evidently would; [`report`] renders the result as one
//! self-contained HTML file; [`compare`] scores the same rows with two models and compares them;
//! [`skew`] recomputes logged requests offline and compares them with what was served.

pub mod compare;
pub mod drift;
pub mod report;
pub mod skew;
