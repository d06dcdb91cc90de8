//! `wasmtime-serve`: wasmtime-cli 48.0.8's `serve` command and nothing else.
//!
//! `wasmtime serve ARGS` and `wasmtime-serve serve ARGS` run the same code: the command is
//! wasmtime-cli's own `ServeCommand`, taken from the `wasmtime-cli` crate at the exact version.
//! The compatibility tests (`tests/all/wasmtime_serve.rs`) run it; built in this workspace it
//! reuses the wasmtime crates the host compiles, where `cargo install wasmtime-cli` built them
//! all a second time (about 10 minutes on 2 cores). It is not part of wafer.

use clap::Parser;

/// The CLI: `wasmtime-serve serve [OPTIONS] COMPONENT`, as `wasmtime serve`.
#[derive(Parser)]
#[command(name = "wasmtime-serve", version = WASMTIME_VERSION)]
enum Cli {
    /// Serves requests from a wasi-http proxy component (wasmtime-cli's `serve`).
    Serve(wasmtime_cli::commands::ServeCommand),
}

/// The wasmtime-cli release whose command this is.
const WASMTIME_VERSION: &str = "48.0.8 (wasmtime-cli's serve command)";

fn main() -> std::process::ExitCode {
    let Cli::Serve(command) = Cli::parse();
    match command.execute() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // As `wasmtime` reports a failed command.
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}
