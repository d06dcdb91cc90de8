#!/usr/bin/env bash
# Runs every ONNX backend node test (generated from the pinned onnx wheel by tools/node_tests.py)
# natively and in the wasm guest, and rewrites tests/node_tests.tsv with the results (BLESS=1),
# from which SUPPORTED.md counts them. CI runs a fixed sample of the same (tools/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 tools/node_tests.py target/node-tests-full
WAFER_NODE_TESTS="$PWD/target/node-tests-full" BLESS=1 \
  cargo test --release -p wafer --test all -- node_tests --nocapture
BLESS=1 cargo test --release -p wafer --test all -- supported
