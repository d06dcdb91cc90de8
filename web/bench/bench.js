// wafer-web and onnxruntime-web on the same models in the same page: 1,000 one-row
// predictions each, after a warm-up, timed in 20 blocks of 50 (a page's clock ticks in 0.1 ms
// steps, coarser than one prediction); the latency is the median block's time over 50. The
// blocks of the runtimes take turns (lite, full, JSON, onnxruntime-web, then again), so that a
// slow spell of the machine falls on all of them alike. Run by tools/web_bench.sh. Both wafer
// builds run each model: the lite one (no tract), which the demo page loads for these three,
// and the full one.
import initFull, { Model as Full } from "../pkg/wafer_web.js";
import initLite, { Model as Lite } from "../pkg-lite/wafer_web_lite.js";

const BLOCKS = 20;
const PER_BLOCK = 50;
const WARMUP = 50;
const MODELS = [
  { name: "iris", width: 4 },
  { name: "digits", width: 64 },
  { name: "random_forest_classifier", zoo: true, width: 30 },
];

const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/// The median ms per call of each of `runs` ({key: call}), their blocks interleaved.
async function timed(runs) {
  const keys = Object.keys(runs);
  for (const key of keys) for (let i = 0; i < WARMUP; i++) await runs[key]();
  const times = Object.fromEntries(keys.map((k) => [k, []]));
  for (let b = 0; b < BLOCKS; b++) {
    for (const key of keys) {
      const t = performance.now();
      for (let i = 0; i < PER_BLOCK; i++) await runs[key]();
      times[key].push((performance.now() - t) / PER_BLOCK);
    }
  }
  return Object.fromEntries(keys.map((k) => [k, median(times[k])]));
}

async function main() {
  await initFull();
  await initLite();
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "../ort/";
  const results = [];
  for (const m of MODELS) {
    const row = Float32Array.from({ length: m.width }, (_, i) => (i % 7) + 0.5);
    const bundle = await bytes(`../models/${m.zoo ? "zoo/" : ""}${m.name}.wafer`);
    const lite = Lite.fromBundle(bundle);
    const full = Full.fromBundle(bundle);
    const request = { inputs: [{ name: "X", shape: [1, m.width], datatype: "FP32", data: Array.from(row) }] };
    const feeds = { X: { data: row, shape: [1, m.width] } };
    const runs = {
      // Typed arrays in and out, as onnxruntime-web's `run` takes them.
      lite_ms: () => lite.run(feeds),
      full_ms: () => full.run(feeds),
      // A v2 request object in and a v2 response object out, through JSON.
      lite_infer_ms: () => lite.infer(request),
    };
    const result = { model: m.name };
    try {
      const session = await ort.InferenceSession.create(await bytes(`../onnx/${m.name}.onnx`), { executionProviders: ["wasm"] });
      const ortFeeds = { [session.inputNames[0]]: new ort.Tensor("float32", row, [1, m.width]) };
      runs.ort_ms = () => session.run(ortFeeds);
    } catch (e) {
      result.ort_error = String(e.message ?? e);
    }
    Object.assign(result, await timed(runs));
    results.push(result);
  }
  return results;
}

window.bench = main().catch((e) => ({ error: String(e.message ?? e) }));
