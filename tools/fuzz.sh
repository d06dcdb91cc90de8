#!/usr/bin/env bash
# The long run of the property-based fuzz targets (crates/protocol/src/fuzz.rs: the v2 JSON and
# binary decoders, stream lines, rows; crates/features/src/fuzz.rs: records through a fitted
# spec, CSV cells, timestamps). CI runs each target's default 256 cases; this runs
# PROPTEST_CASES of them (default 200000). A failure prints the minimal input that fails.
#   bash tools/fuzz.sh [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-200000}"
echo "fuzzing with $PROPTEST_CASES cases per target"
time cargo test --release -p wafer-protocol -p wafer-features fuzz
