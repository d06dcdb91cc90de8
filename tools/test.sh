#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: adds the wasm targets, installs promtool, the pinned
# tritonclient in tools/.venv-client and pandas in tools/.venv-batch, the ONNX node tests' cases
# and the browser build (with wasm-bindgen-cli, Chromium and the npm packages it is tested with),
# then tests. `wasmtime serve` (wasmtime-cli 48.0.8's command) is the workspace's
# tools/wasmtime-serve, built by `cargo test --workspace` with the host's wasmtime crates.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-unknown-unknown
# The real Python tritonclient[http] that tests/all/tritonclient.rs drives (pinned, from PyPI).
if ! cmp -s tools/requirements-client.txt tools/.venv-client/requirements.txt 2>/dev/null; then
  python3 -m venv tools/.venv-client
  tools/.venv-client/bin/pip install --quiet -r tools/requirements-client.txt
  cp tools/requirements-client.txt tools/.venv-client/requirements.txt
fi
# pandas and pyarrow (tools/.venv-batch, pinned): tests/all/batch.rs writes Parquet inputs and
# reads wafer's Parquet output as pandas does.
if ! cmp -s tools/requirements-batch.txt tools/.venv-batch/requirements.txt 2>/dev/null; then
  python3 -m venv tools/.venv-batch
  tools/.venv-batch/bin/pip install --quiet -r tools/requirements-batch.txt
  cp tools/requirements-batch.txt tools/.venv-batch/requirements.txt
fi
# The ONNX backend node tests, generated from the pinned onnx wheel (tools/.venv-nodes) into
# target/node-tests; tests/all/node_tests.rs runs them all, natively and in wasm (~20 s).
index=target/node-tests/index.json
if [ ! -f "$index" ] || [ tools/node_tests.py -nt "$index" ] || [ tools/requirements-nodes.txt -nt "$index" ]; then
  python3 tools/node_tests.py target/node-tests
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
