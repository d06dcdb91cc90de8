//! Serving: the model repository on disk ([`repo`]) and the models loaded from it, swapped
//! while serving ([`registry`]); `wafer serve`'s KServe v2 HTTP API ([`server`]) with per-model
//! admission ([`admission`]), its connections served on one thread per core ([`lanes`]);
//! newline-delimited JSON streams ([`stream`]); the browser page ([`web`]); shadow and canary
//! traffic ([`traffic`]).

pub mod admission;
pub mod lanes;
pub mod registry;
pub mod repo;
pub mod server;
pub mod stream;
pub mod traffic;
pub mod web;

pub use server::{DriftOptions, ServeConfig, Server, ServerOptions, serve};
