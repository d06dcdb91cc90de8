// The demo page: one model at a time, predicted in the page as you type or draw.
//
// Models come as the bundles `wafer build --web` writes (models/<name>.wafer); the credit
// model's looked-up fields come from models/credit.users.csv, read once into a plain object.
// A bundle marked `lite` runs on the lite build (pkg-lite/: no tract, a tenth of the size),
// any other on the full one (pkg/); each build is fetched once, when a model first needs it.
// After that, nothing is fetched: every prediction runs here.

const $ = (id) => document.getElementById(id);
const CLASS_NAMES = {
  iris: ["setosa", "versicolor", "virginica"],
  digits: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
  credit: ["repays", "defaults"],
};

const builds = {};

/// The module of the lite or the full build, fetched and initialized once.
function build(lite) {
  const key = lite ? "lite" : "full";
  builds[key] ??= (async () => {
    const module = await import(lite ? "./pkg-lite/wafer_web_lite.js" : "./pkg/wafer_web.js");
    await module.default();
    return module;
  })();
  return builds[key];
}

/// Fetches a bundle (or takes its bytes) and loads it on the build it needs, with its own
/// features.toml or `features` instead.
async function load(source, features) {
  const bytes = source instanceof Uint8Array ? source : new Uint8Array(await (await fetch(source)).arrayBuffer());
  const { Model } = await build(bundleParts(bytes).lite);
  return Model.fromBundle(bytes, features);
}

/// The header of a bundle: name, features.toml, and whether the lite build runs it (see
/// crates/protocol/src/bundle.rs).
function bundleParts(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + headerLength)));
  return { name: header.name, features: header.features ?? "", lite: header.lite === true };
}

/// A CSV of a key column and numbers (no quoting) as `{key: {column: value}}`.
function csvStore(text) {
  const [head, ...lines] = text.trim().split(/\r?\n/);
  const columns = head.split(",");
  const store = {};
  for (const line of lines) {
    const cells = line.split(",");
    const row = {};
    columns.slice(1).forEach((c, i) => { row[c] = cells[i + 1] === "" ? null : Number(cells[i + 1]); });
    store[cells[0]] = row;
  }
  return store;
}

const state = { name: null, model: null, bytes: {}, stores: {} };

async function select(name) {
  state.name = name;
  $("status").textContent = "loading…";
  for (const form of ["iris", "digits", "credit"]) $(`form-${form}`).hidden = form !== name;
  if (!state.bytes[name]) {
    state.bytes[name] = new Uint8Array(await (await fetch(`models/${name}.wafer`)).arrayBuffer());
  }
  if (name === "credit" && !state.stores.users) {
    state.stores.users = csvStore(await (await fetch("models/credit.users.csv")).text());
  }
  state.model = await load(state.bytes[name]);
  $("features").value = bundleParts(state.bytes[name]).features;
  $("request").value = JSON.stringify(exampleRequest(name));
  $("status").textContent = `${state.model.name}: ${describe(state.model.metadata())} (${state.model.build} build)`;
  predict();
}

function describe(metadata) {
  const shape = (t) => `${t.name} ${t.datatype}[${t.shape.join(",")}]`;
  return `${metadata.inputs.map(shape).join(", ")} → ${metadata.outputs.map(shape).join(", ")}`;
}

function exampleRequest(name) {
  if (name === "iris") return { inputs: [{ name: "X", shape: [1, 4], datatype: "FP32", data: irisRow() }] };
  if (name === "digits") return { inputs: [{ name: "X", shape: [1, 64], datatype: "FP32", data: pixels }] };
  return { inputs: [{ name: "age", shape: [1], datatype: "FP32", data: [41] }] };
}

const irisRow = () => ["sepal_length", "sepal_width", "petal_length", "petal_width"].map((id) => Number($(id).value));

function creditRecord() {
  const record = {};
  for (const id of ["age", "income", "debt"]) {
    const v = $(id).value.trim();
    if (v !== "") record[id] = Number(v);
  }
  for (const id of ["country", "merchant", "user_id"]) {
    const v = $(id).value.trim();
    if (v !== "") record[id] = v;
  }
  const day = $("signup").value;
  if (day) record.signup = Math.floor(Date.parse(`${day}T12:00:00Z`) / 1000);
  return record;
}

/// Runs `call` on the current model and shows its outputs, its in-page latency, or its error.
function show(call) {
  const started = performance.now();
  try {
    const response = call(state.model);
    const ms = performance.now() - started;
    $("error").textContent = "";
    render(response, ms);
    return response;
  } catch (e) {
    fail(e.message);
    return null;
  }
}

/// Shows an error in place of the prediction.
function fail(message) {
  $("error").textContent = message;
  $("label").textContent = "";
  $("bars").textContent = "";
  $("latency").textContent = "";
}

function render(response, ms) {
  const out = (name) => response.outputs.find((o) => o.name === name);
  const label = out("label") ?? response.outputs[0];
  const names = CLASS_NAMES[state.name] ?? [];
  const first = label.data[0];
  $("label").textContent = `prediction: ${names[first] ?? first}`;
  const bars = $("bars");
  bars.textContent = "";
  const probabilities = out("probabilities");
  if (probabilities) {
    const classes = probabilities.shape[1];
    const row = probabilities.data.slice(0, classes);
    const top = row.indexOf(Math.max(...row));
    row.forEach((p, i) => {
      const bar = document.createElement("div");
      bar.className = i === top ? "bar top" : "bar";
      bar.innerHTML = `<span class="name"></span><div style="width:${(p * 20).toFixed(2)}rem"></div><span>${(p * 100).toFixed(1)}%</span>`;
      bar.querySelector(".name").textContent = names[i] ?? String(i);
      bars.appendChild(bar);
    });
  }
  $("latency").textContent = `${ms.toFixed(3)} ms in this page`;
}

function predict() {
  if (!state.model) return null;
  if (state.name === "iris") return show((m) => m.infer(exampleRequest("iris")));
  if (state.name === "digits") return show((m) => m.infer(exampleRequest("digits")));
  return show((m) => m.predictRecords([creditRecord()], { stores: state.stores }));
}

// The 8×8 grid: ink is 0..16, as scikit-learn's digits.
const pixels = new Array(64).fill(0);
function buildGrid() {
  const grid = $("grid");
  let drawing = false;
  let erasing = false;
  const paint = (i) => {
    pixels[i] = erasing ? 0 : Math.min(16, pixels[i] + 8);
    grid.children[i].style.background = `rgb(${255 - pixels[i] * 15},${255 - pixels[i] * 15},${255 - pixels[i] * 15})`;
    predict();
  };
  for (let i = 0; i < 64; i++) {
    const cell = document.createElement("div");
    cell.dataset.index = i;
    cell.addEventListener("pointerdown", (e) => { drawing = true; erasing = e.shiftKey; paint(i); });
    cell.addEventListener("pointerenter", () => { if (drawing) paint(i); });
    grid.appendChild(cell);
  }
  window.addEventListener("pointerup", () => { drawing = false; });
  $("clear").addEventListener("click", () => {
    pixels.fill(0);
    for (const cell of grid.children) cell.style.background = "";
    predict();
  });
}

async function main() {
  buildGrid();
  for (const input of document.querySelectorAll("#form-iris input, #form-credit input")) {
    input.addEventListener("input", predict);
  }
  $("model").addEventListener("change", (e) => select(e.target.value));
  $("apply-features").addEventListener("click", async () => {
    try {
      state.model = await load(state.bytes[state.name], $("features").value);
      $("error").textContent = "";
      predict();
    } catch (e) {
      fail(e.message);
    }
  });
  $("run-request").addEventListener("click", () => {
    let request;
    try {
      request = JSON.parse($("request").value);
    } catch (e) {
      fail(`malformed JSON: ${e.message}`);
      return;
    }
    show((m) => m.infer(request));
  });
  await select($("model").value);
}

// For tests and the console: the API, and the page's own steps.
window.wafer = { build, load };
window.demo = { select, predict, state, ready: main() };
