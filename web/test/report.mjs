// Opens a `wafer drift --html` report in Debian's headless Chromium with the network off, for
// tests/all/drift.rs.
//
//   node web/test/report.mjs <report.html>
//
// Every request other than the file itself is refused and recorded. It prints one JSON object:
// per column section, its name, verdict, score and the chart's bars; the summary; the requests
// refused; and any page error.
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [file] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const result = { columns: [], summary: "", refused: [], pageErrors: [] };
try {
  const context = await browser.newContext({ offline: true });
  const page = await context.newPage();
  const url = pathToFileURL(file).href;
  await page.route("**/*", (route) => {
    if (route.request().url() === url) return route.continue();
    result.refused.push(route.request().url());
    return route.abort();
  });
  page.on("pageerror", (e) => result.pageErrors.push(e.message));
  await page.goto(url);
  result.summary = await page.textContent(".summary");
  result.columns = await page.$$eval("section.column", (sections) => sections.map((s) => {
    const svg = s.querySelector("svg");
    const box = svg?.getBoundingClientRect();
    return {
      name: s.dataset.column,
      verdict: s.querySelector(".verdict")?.textContent ?? null,
      score: s.querySelector(".score")?.textContent ?? null,
      bars: svg ? svg.querySelectorAll("rect").length : 0,
      drawn: box ? box.width > 0 && box.height > 0 : false,
    };
  }));
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
