#!/usr/bin/env bash
# The wasi-nn flavour's benchmarks, in one run: criterion's in-process predict (native tract,
# the guest, the wasi-nn flavour; in the release profile, the code `wafer serve` runs), the
# wasi-nn flavour against native tract taking turns (`paired`), then
# tools/bench_nn.py (HTTP, component sizes, RSS of a 100 MB model with 64 requests in flight).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
rustup target add wasm32-wasip2
. tools/venv.sh
venv tools/.venv-nodes tools/requirements-nodes.txt  # onnx and numpy, for the 100 MB model
cargo build --profile guest --target wasm32-wasip2 -p wafer-guest -p wafer-guest-lookup
cargo build --profile guest --target wasm32-wasip2 -p wafer-guest-nn -p wafer-guest-nn-lookup
cargo build --release -p wafer --bin wafer
target=${CARGO_TARGET_DIR:-target}
tools/.venv-nodes/bin/python tools/big_model.py "$target/bench-nn/models"
cargo bench --profile release -p wafer --bench inference -- 'predict/(iris|digits|digits_wide)/(native|guest|wasi-nn|wasi-nn/refused)$'
# The same ratio with the two sides taking turns block by block (a median of rounds).
cargo bench --profile release -p wafer --bench inference -- paired
python3 tools/bench_nn.py
