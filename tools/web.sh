#!/usr/bin/env bash
# Builds the browser packages into target/web (pkg/: the wafer-web crate, with tract; pkg-lite/:
# the same source without it, as the wafer-web-lite crate, through wasm-bindgen), the demo page,
# and a web bundle per bundled and zoo model, then serves the page
# with `wafer web` and prints its URL. `--package-only` stops after the package and the page
# (what tests/all/browser.rs needs; it writes its own bundles).
#
# Installs what it needs when missing: the wasm32-unknown-unknown target and wasm-bindgen-cli at
# the crate's exact version. (The page needs nothing else; the tests and tools/web_bench.sh
# install Chromium and the npm packages that drive it.)
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/web
rustup target add wasm32-unknown-unknown >/dev/null
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION\b"; then
  # Its lockfile names webpki-roots 1.0.11, which the registry no longer serves; then the
  # newest compatible dependencies are taken (the CLI itself is still the exact version).
  cargo install --locked wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" ||
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# Two cargo invocations: in one, wafer-web's features would bring tract into the lite build.
cargo build --profile web --target wasm32-unknown-unknown -p wafer-web
cargo build --profile web --target wasm32-unknown-unknown -p wafer-web-lite
mkdir -p "$OUT/models/zoo"
for build in wafer_web:pkg wafer_web_lite:pkg-lite; do
  crate=${build%%:*} dir=$OUT/${build#*:}
  wasm=$TARGET/wasm32-unknown-unknown/web/$crate.wasm
  if [ ! -f "$dir/${crate}_bg.wasm" ] || [ "$wasm" -nt "$dir/${crate}_bg.wasm" ]; then
    # No wasm-opt pass: Debian's binaryen (108) breaks wasm-bindgen's externref table, and a
    # current one (132, from npm) made the gzipped file larger (BENCHMARKS.md, browser).
    wasm-bindgen --target web --out-dir "$dir" "$wasm"
  fi
  raw=$(stat -c %s "$dir/${crate}_bg.wasm")
  gz=$(gzip -9 -c "$dir/${crate}_bg.wasm" | wc -c)
  echo "${crate}_bg.wasm: $raw bytes, $gz gzipped"
done
cp web/index.html web/demo.js "$OUT/"
[ "${1:-}" = "--package-only" ] && exit 0

cargo build --release -p wafer
for model in models/iris models/digits models/credit; do
  "$TARGET/release/wafer" build --web "$model" -o "$OUT/models/$(basename "$model").wafer"
done
cp models/credit/users.csv "$OUT/models/credit.users.csv"
for model in models/zoo/*/; do
  "$TARGET/release/wafer" build --web "$model" -o "$OUT/models/zoo/$(basename "$model").wafer" >/dev/null
done
exec "$TARGET/release/wafer" web "$OUT" "$@"
