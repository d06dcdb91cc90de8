//! wafer-scoring: typed tensors and ONNX models run by tract.
//!
//! This crate loads an ONNX model from bytes, optimizes it once and runs it on named,
//! typed tensors, checking every input against the model's declared names, datatypes and
//! shapes first. It is pure Rust and does no I/O, so the same code runs natively, inside the
//! `wasm32-wasip2` guest component and in the browser (`wasm32-unknown-unknown`).
//!
//! It is not a protocol layer: the KServe v2 codec lives in `wafer-protocol`.

#[cfg(feature = "ml")]
mod convert;
mod error;
#[cfg(feature = "lite")]
mod lite;
#[cfg(feature = "ml")]
mod ml;
mod model;
#[cfg(feature = "tract")]
mod onnx;
#[cfg(feature = "tract")]
mod ops;
#[cfg(feature = "ml")]
mod pb;
mod tensor;
mod wit;

pub use error::ScoringError;
#[cfg(feature = "ml")]
pub use ml::operators;
pub use model::{Dim, Model, ModelMetadata, Runner, TensorInfo};
pub use tensor::{DataType, Tensor, TensorData, f16};
