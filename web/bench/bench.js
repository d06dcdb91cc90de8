// wafer-web and onnxruntime-web on the same models in the same page: 1,000 one-row
// predictions each, after a warm-up, timed in 20 blocks of 50 (a page's clock ticks in 0.1 ms
// steps, coarser than one prediction); the latency is the median block's time over 50. Run by
// tools/web_bench.sh.
import init, { Model } from "../pkg/wafer_web.js";

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

async function timed(run) {
  for (let i = 0; i < WARMUP; i++) await run(i);
  const times = [];
  for (let b = 0; b < BLOCKS; b++) {
    const t = performance.now();
    for (let i = 0; i < PER_BLOCK; i++) await run(i);
    times.push((performance.now() - t) / PER_BLOCK);
  }
  return median(times);
}

async function main() {
  await init();
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = "../ort/";
  const results = [];
  for (const m of MODELS) {
    const row = Float32Array.from({ length: m.width }, (_, i) => (i % 7) + 0.5);
    const wafer = Model.fromBundle(await bytes(`../models/${m.zoo ? "zoo/" : ""}${m.name}.wafer`));
    const request = { inputs: [{ name: "X", shape: [1, m.width], datatype: "FP32", data: Array.from(row) }] };
    const feeds = { X: { data: row, shape: [1, m.width] } };
    const result = {
      model: m.name,
      // Typed arrays in and out, as onnxruntime-web's `run` takes them.
      wafer_ms: await timed(() => wafer.run(feeds)),
      // A v2 request object in and a v2 response object out, through JSON.
      wafer_infer_ms: await timed(() => wafer.infer(request)),
    };
    try {
      const session = await ort.InferenceSession.create(await bytes(`../onnx/${m.name}.onnx`), { executionProviders: ["wasm"] });
      const ortFeeds = { [session.inputNames[0]]: new ort.Tensor("float32", row, [1, m.width]) };
      result.ort_ms = await timed(() => session.run(ortFeeds));
    } catch (e) {
      result.ort_error = String(e.message ?? e);
    }
    results.push(result);
  }
  return results;
}

window.bench = main().catch((e) => ({ error: String(e.message ?? e) }));
