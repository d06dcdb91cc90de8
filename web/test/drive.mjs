// Drives the demo page in Debian's headless Chromium, for tests/all/browser.rs.
//
//   node web/test/drive.mjs <page URL> <job.json>
//
// The job names the bundles to load and the predictions to run through the page's own module
// (`window.wafer`); then the page is used as a person would: pick a model, type, draw, edit
// features.toml, send a raw request. It prints one JSON object: each case's outputs or error,
// what the page showed at each step, which build ran each bundle, and every request the page
// made, by phase.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, jobPath] = process.argv.slice(2);
const job = JSON.parse(readFileSync(jobPath, "utf8"));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const result = { cases: [], builds: {}, ui: {}, requests: [], pageErrors: [] };
let phase = "load";
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  page.on("request", (r) => result.requests.push({ phase, url: r.url() }));
  page.on("pageerror", (e) => result.pageErrors.push(e.message));
  await page.goto(url);
  await page.evaluate(() => window.demo.ready);

  // Numbers: every bundle loaded first, then every prediction with the network unused.
  result.builds = await page.evaluate(async (bundles) => {
    window.loaded = {};
    for (const b of bundles) window.loaded[b] = await window.wafer.load(b);
    return Object.fromEntries(bundles.map((b) => [b, window.loaded[b].build]));
  }, job.bundles);
  phase = "predict";
  result.cases = await page.evaluate((cases) => cases.map((c) => {
    try {
      const model = window.loaded[c.bundle];
      if (c.call === "run") {
        // Typed arrays in and out; outputs as v2 JSON outputs, for the same comparison.
        const feeds = {};
        for (const t of c.input.inputs) feeds[t.name] = { data: Float32Array.from(t.data), shape: t.shape };
        const outputs = Object.entries(model.run(feeds)).map(([name, t]) => ({
          name, datatype: t.datatype, shape: t.shape, data: Array.from(t.data, Number),
          typed: t.data.constructor.name,
        }));
        return { id: c.id, outputs };
      }
      const response = c.call === "infer" ? model.infer(c.input) : model.predictRecords(c.input, c.options);
      return { id: c.id, outputs: response.outputs };
    } catch (e) {
      return { id: c.id, error: `${e.constructor.name}: ${e.message}` };
    }
  }), job.cases);

  // The page, as a person uses it.
  const seen = async () => ({
    label: (await page.textContent("#label")).trim(),
    error: (await page.textContent("#error")).trim(),
    latency: (await page.textContent("#latency")).trim(),
    bars: await page.locator("#bars .bar").count(),
  });
  const choose = async (name) => {
    phase = "load";
    await page.selectOption("#model", name);
    await page.waitForFunction((n) => document.getElementById("status").textContent.startsWith(`${n}:`), name);
    phase = "ui";
  };
  await choose("iris");
  await page.fill("#petal_length", "5.2");
  await page.fill("#petal_width", "2.3");
  result.ui.iris_typed = await seen();
  await page.click("#advanced summary");
  await page.fill("#request", JSON.stringify({ inputs: [{ name: "X", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }));
  await page.click("#run-request");
  result.ui.wrong_shape = await seen();
  await page.fill("#request", JSON.stringify({ inputs: [{ name: "X", shape: [1, 4], datatype: "FP32", data: [5.1, 3.5, 1.4, 0.2] }] }));
  await page.click("#run-request");
  result.ui.after_wrong_shape = await seen();

  await choose("digits");
  for (const cell of [3, 4, 11, 12, 19, 20, 27, 28, 35, 36, 43, 44, 51, 52]) {
    await page.click(`#grid div:nth-child(${cell + 1})`);
  }
  result.ui.digits_drawn = await seen();

  await choose("credit");
  result.ui.credit_form = await seen();
  await page.fill("#age", "");
  result.ui.missing_required = await seen();
  await page.fill("#age", "41");
  result.ui.after_missing_required = await seen();
  const spec = await page.inputValue("#features");
  // Without its unknown bucket, the country one-hot is a column short of the model's input.
  await page.fill("#features", spec.replace('unknown = "bucket"', 'unknown = "error"'));
  await page.click("#apply-features");
  result.ui.spec_too_narrow = await seen();
  // With one more known country instead, it fits, and an unknown one is an error.
  await page.fill("#features", spec.replace('unknown = "bucket"', 'unknown = "error"')
    .replace('"PT", "unknown"]', '"PT", "unknown", "ZZ"]'));
  await page.click("#apply-features");
  result.ui.spec_unknown_error = await seen();
  await page.fill("#country", "XX");
  result.ui.unknown_category = await seen();
  await page.fill("#country", "FR");
  result.ui.after_unknown_category = await seen();
  await page.fill("#features", "[[feature]\nname = ");
  await page.click("#apply-features");
  result.ui.malformed_spec = await seen();
  await page.fill("#age", "42");
  result.ui.after_malformed_spec = await seen();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
