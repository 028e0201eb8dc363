// Load the built deck and the report in headless Chromium from a local server; fail on console errors,
// failed requests, images that did not load, or a title slide without the run's image count.
// Usage: node check_render.mjs <deck url> <report url> <expected image count> <screenshot folder>
import { chromium } from "playwright-chromium";
import { mkdirSync } from "node:fs";

const [deckUrl, reportUrl, expectedCount, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const problems = [];
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
page.on("console", (msg) => { if (msg.type() === "error") problems.push(`console error on ${page.url()}: ${msg.text()}`); });
page.on("pageerror", (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
page.on("requestfailed", (req) => problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`));
page.on("response", (res) => { if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`); });

async function imagesLoaded(label) {
  const broken = await page.$$eval("img", (imgs) => imgs.filter((i) => i.complete && i.naturalWidth === 0).map((i) => i.src));
  for (const src of broken) problems.push(`image did not load on ${label}: ${src}`);
}

// The deck: every slide, a screenshot of each.
await page.goto(`${deckUrl}#/1`, { waitUntil: "networkidle" });
const title = await page.innerText("body");
if (!title.includes(`${Number(expectedCount).toLocaleString("en-US")} images`)) {
  problems.push(`title slide does not show the image count ${expectedCount}`);
}
const headings = {};
let total = 0;
for (let n = 1; n <= 500; n++) {
  await page.goto(`${deckUrl}#/${n}`, { waitUntil: "networkidle" });
  await page.waitForTimeout(500);
  if (!(await page.$(`.slidev-page-${n}`))) break;  // past the last slide
  total = n;
  await page.evaluate(() => Promise.all([...document.images].map((i) => i.decode().catch(() => null))));
  await imagesLoaded(`slide ${n}`);
  const heading = (await page.locator(`.slidev-page-${n} h1`).first().innerText().catch(() => "")).trim();
  headings[n] = heading;
  await page.screenshot({ path: `${shots}/slide-${String(n).padStart(2, "0")}.png` });
}

if (total < 2) problems.push(`the deck has ${total} slide(s)`);

// The report, full page.
await page.setViewportSize({ width: 1280, height: 900 });
await page.goto(reportUrl, { waitUntil: "networkidle" });
await page.evaluate(() => Promise.all([...document.images].map((i) => i.decode().catch(() => null))));
await imagesLoaded("report");
const canvas = await page.$("#map");
if (canvas) {
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
}
await page.screenshot({ path: `${shots}/report.png`, fullPage: true });
await browser.close();

console.log(JSON.stringify({ slides: total, headings, problems }, null, 1));
process.exit(problems.length ? 1 : 0);
