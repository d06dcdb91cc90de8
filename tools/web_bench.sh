#!/usr/bin/env bash
# wafer-web against onnxruntime-web (npm, pinned in web/package-lock.json) in one run, in the
# same headless Chromium: the wasm each page needs (raw and gzipped) and the median latency of
# 1,000 one-row predictions on iris, digits and a random forest from models/zoo.
set -euo pipefail
cd "$(dirname "$0")/.."

. tools/venv.sh
browser
bash tools/web.sh --package-only >/dev/null
cargo build --release -p wafer
OUT=target/web-bench
rm -rf "$OUT" && mkdir -p "$OUT/models/zoo" "$OUT/onnx" "$OUT/ort" "$OUT/bench"
cp -r target/web/pkg "$OUT/pkg"
cp -r target/web/pkg-lite "$OUT/pkg-lite"
cp web/bench/bench.html web/bench/bench.js "$OUT/bench/"
ORT=web/node_modules/onnxruntime-web/dist
cp "$ORT/ort.wasm.min.js" "$ORT/ort-wasm-simd-threaded.wasm" "$ORT/ort-wasm-simd-threaded.mjs" "$OUT/ort/"
for model in models/iris models/digits models/zoo/random_forest_classifier; do
  name=$(basename "$model")
  case $model in models/zoo/*) bundle="$OUT/models/zoo/$name.wafer" ;; *) bundle="$OUT/models/$name.wafer" ;; esac
  target/release/wafer build --web "$model" -o "$bundle" >/dev/null
  cp "$model/model.onnx" "$OUT/onnx/$name.onnx"
done

target/release/wafer web "$OUT" --addr 127.0.0.1:0 > "$OUT/server.log" &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 100); do grep -q http "$OUT/server.log" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$OUT/server.log")/bench/bench.html
results=$(node web/bench/drive.mjs "$url")

size() { printf '%s %s' "$(stat -c %s "$1")" "$(gzip -9 -c "$1" | wc -c)"; }
read -r full_raw full_gz <<<"$(size "$OUT/pkg/wafer_web_bg.wasm")"
read -r lite_raw lite_gz <<<"$(size "$OUT/pkg-lite/wafer_web_lite_bg.wasm")"
read -r ort_raw ort_gz <<<"$(size "$OUT/ort/ort-wasm-simd-threaded.wasm")"
python3 - "$results" "$lite_raw" "$lite_gz" "$full_raw" "$full_gz" "$ort_raw" "$ort_gz" <<'PY'
import json, sys
results = json.loads(sys.argv[1])
lr, lg, fr, fg, orr, og = map(int, sys.argv[2:8])
mb = lambda b: f"{b / 1e6:.2f} MB"
print(f"{'wasm':<32}{'raw':>10}{'gzip':>10}{'gzip / ort':>12}")
print(f"{'wafer_web_lite_bg.wasm (lite)':<32}{mb(lr):>10}{mb(lg):>10}{lg / og:>12.2f}")
print(f"{'wafer_web_bg.wasm (full)':<32}{mb(fr):>10}{mb(fg):>10}{fg / og:>12.2f}")
print(f"{'ort-wasm-simd-threaded.wasm':<32}{mb(orr):>10}{mb(og):>10}{1:>12.2f}")
print()
if isinstance(results, dict):
    sys.exit(f"the benchmark page failed: {results['error']}")
print(f"{'model':<28}{'lite run':>10}{'full run':>10}{'ort run':>10}{'lite/ort':>10}{'full/ort':>10}{'lite infer':>12}")
for r in results:
    lite, full, infer, ort = r["lite_ms"], r["full_ms"], r["lite_infer_ms"], r.get("ort_ms")
    if ort is None:
        print(f"{r['model']:<28}{lite:>10.4f}{full:>10.4f}  onnxruntime-web failed: {r.get('ort_error')}")
    else:
        print(f"{r['model']:<28}{lite:>10.4f}{full:>10.4f}{ort:>10.4f}{lite / ort:>10.2f}{full / ort:>10.2f}{infer:>12.4f}")
print("(ms per prediction: 1,000 one-row predictions after 50 warm-up runs, the median of 20 blocks of 50;")
print(" run: typed arrays in and out; infer: a v2 JSON request object; a ratio < 1 is faster than onnxruntime-web)")
PY
