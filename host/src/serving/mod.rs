//! Serving: the model repository on disk ([`repo`]), `wafer serve`'s KServe v2 HTTP API
//! ([`server`]), newline-delimited JSON streams ([`stream`]) and the browser page ([`web`]).

pub mod repo;
pub mod server;
pub mod stream;
pub mod web;

pub use server::{ModelState, ServeConfig, Server, ServerOptions, serve};
