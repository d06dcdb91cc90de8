//! Evaluation: how a model's inputs and outputs change, over files and, later, over the
//! prediction log. [`drift`] reads two data sets and tests every column with
//! `wafer-evaluation`'s tests, as Evidently would.

pub mod drift;
