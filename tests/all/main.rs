//! End-to-end tests: the real `wafer` binary, the real guest component on wasmtime, real HTTP
//! on 127.0.0.1, and the real `wasmtime serve`. Expected numbers come from the committed
//! scikit-learn and onnxruntime fixtures under `models/`.

mod bad_input;
mod batch;
mod batching;
mod browser;
mod cli;
mod cold_start;
mod compare;
mod credit;
mod drift;
mod features;
mod metrics;
mod node_tests;
mod operations;
mod prediction_log;
mod serve;
mod skew;
mod spin;
mod streaming;
mod support;
mod supported;
mod traffic;
mod tritonclient;
mod unavailable;
mod wasi_nn;
mod wasmtime_serve;
mod zoo;
