// Opens web/bench/bench.html in Debian's headless Chromium and prints its results as JSON.
//   node web/bench/drive.mjs <page URL>
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  await page.goto(process.argv[2]);
  const results = await page.evaluate(() => window.bench);
  process.stdout.write(JSON.stringify(results));
} finally {
  await browser.close();
}
