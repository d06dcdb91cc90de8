#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: adds the wasm targets, installs the pinned
# wasmtime-cli when missing (the `wasmtime serve` compatibility test runs it), then tests.
set -euo pipefail
cd "$(dirname "$0")/.."

WASMTIME_VERSION=48.0.8
rustup target add wasm32-wasip2 wasm32-unknown-unknown
if ! command -v wasmtime >/dev/null 2>&1 || ! wasmtime --version | grep -q " $WASMTIME_VERSION"; then
  # Only the features the tests use; about 5 minutes on 2 cores.
  cargo install --locked wasmtime-cli --version "$WASMTIME_VERSION" --no-default-features \
    --features run,serve,wizer,cranelift,parallel-compilation,pooling-allocator,cache,config,component-model,component-model-async,logging
fi
cargo test --workspace --release "$@"
