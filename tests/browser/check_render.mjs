// Load the built deck and the report in headless Chromium from a local server; fail on console errors,
// failed requests, images that did not load, or a title slide without the run's image count. On the deck's map
// slide and the report's map, observe hovers, map switches and colourings with a real mouse (map_checks.mjs).
// Usage: node check_render.mjs <deck url> <report url> <expected image count> <screenshot folder> [quick|full|slides] [probe]
// quick: no screenshot of every slide, only the map checks (the pytest-level check); slides: every slide measured
// and screenshotted, no map or report (a hand-made deck); probe: a text to search the report's map for (its
// results are recorded as shown). Each slide's text, overflowing elements and images are recorded for
// deck_judge.py to judge.
import { chromium } from "playwright-chromium";
import { mkdirSync } from "node:fs";
import { checkMap, checkReportExtras } from "./map_checks.mjs";

const [deckUrl, reportUrl, expectedCount, shots, mode, probe] = process.argv.slice(2);
const quick = mode === "quick", slidesOnly = mode === "slides";
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

const deckMap = { canvas: ".embdeck-map .canvas", tip: ".embdeck-map .tip", mapButtons: ".embdeck-map .controls .group:nth-of-type(1)",
                  modeButtons: ".embdeck-map .controls .group:nth-of-type(2)", legend: ".embdeck-map .legend" };
const reportMap = { canvas: "#map-canvas", tip: "#map-tip", mapButtons: "#map-switch", modeButtons: "#map-colour", legend: "#map-legend" };
const result = { slides: 0, headings: {}, problems, map: {}, texts: {}, overflow: {}, images: {} };

// In the page: slide n's rendered text, the elements whose box leaves the slide (by how many slide px: the
// outermost of each overflowing branch only) and each image's own and shown width, in slide px.
function measureSlide(n) {
  const slide = document.querySelector(`.slidev-page-${n}`), layout = slide.querySelector(".slidev-layout") || slide;
  const box = slide.getBoundingClientRect(), scale = box.width / (slide.offsetWidth || box.width);
  const over = [], overflowing = new Set();
  for (const el of layout.querySelectorAll("*")) {
    const r = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (!r.width || !r.height || style.visibility === "hidden" || style.position === "fixed") continue;
    const past = Math.max(box.left - r.left, r.right - box.right, box.top - r.top, r.bottom - box.bottom) / scale;
    if (past <= 0.5) continue;
    overflowing.add(el);
    if (overflowing.has(el.parentElement)) continue;
    over.push({ what: el.tagName.toLowerCase(), text: (el.innerText || el.getAttribute("alt") || "").trim().slice(0, 80), past });
  }
  const images = [...layout.querySelectorAll("img")].map((i) => ({
    src: new URL(i.currentSrc || i.src).pathname, natural: i.naturalWidth, shown: i.getBoundingClientRect().width / scale }));
  return { text: layout.innerText, over, images };
}

// The deck: every slide, a screenshot of each (quick: only find the map slide).
await page.goto(`${deckUrl}#/1`, { waitUntil: "networkidle" });
const title = await page.innerText("body");
if (!slidesOnly && !title.includes(`${Number(expectedCount).toLocaleString("en-US")} images`)) {
  problems.push(`title slide does not show the image count ${expectedCount}`);
}
for (let n = 1; n <= 500; n++) {
  await page.goto(`${deckUrl}#/${n}`, { waitUntil: "networkidle" });
  await page.waitForTimeout(quick ? 150 : 500);
  if (!(await page.$(`.slidev-page-${n}`))) break;  // past the last slide
  result.slides = n;
  const hasMap = await page.$(`.slidev-page-${n} .embdeck-map`);
  if (quick && !hasMap) continue;
  await page.evaluate(() => Promise.all([...document.images].map((i) => i.decode().catch(() => null))));
  await imagesLoaded(`slide ${n}`);
  result.headings[n] = (await page.locator(`.slidev-page-${n} h1`).first().innerText().catch(() => "")).trim();
  if (!quick) {
    const measured = await page.evaluate(measureSlide, n);
    result.texts[n] = measured.text;
    result.overflow[n] = measured.over;
    result.images[n] = measured.images;
  }
  if (hasMap) {
    result.mapSlide = n;
    const ui = Object.fromEntries(Object.entries(deckMap).map(([k, v]) => [k, `.slidev-page-${n} ${v}`]));
    await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.ready === "1", ui.canvas, { timeout: 60000 });
    await page.screenshot({ path: `${shots}/slide-${String(n).padStart(2, "0")}.png` });
    try {
      result.map.deck = await checkMap(page, ui, shots, "deck");
      const first = result.map.deck.hovers[0];
      if (first) await page.mouse.move(first.page.x, first.page.y);
      await page.screenshot({ path: `${shots}/slide-${String(n).padStart(2, "0")}-hover.png` });
      await page.mouse.move(1, 1);
    } catch (error) {
      problems.push(`the deck's map (slide ${n}): ${error.message.split("\n")[0]}`);
    }
  } else {
    await page.screenshot({ path: `${shots}/slide-${String(n).padStart(2, "0")}.png` });
  }
}
if (result.slides < 2) problems.push(`the deck has ${result.slides} slide(s)`);
if (slidesOnly) {
  await browser.close();
  console.log(JSON.stringify(result, null, 1));
  process.exit(0);
}
if (!result.mapSlide) problems.push("no slide of the deck holds the interactive map");

// The report, full page, then its map.
await page.setViewportSize({ width: 1280, height: 900 });
await page.goto(reportUrl, { waitUntil: "networkidle" });
await page.evaluate(() => Promise.all([...document.images].map((i) => i.decode().catch(() => null))));
await imagesLoaded("report");
if (await page.$("#map-canvas")) {
  try {
    result.map.report = await checkMap(page, reportMap, shots, "report");
    result.map.reportExtras = await checkReportExtras(page, result.map.report, shots, probe);
    await page.locator("#map-canvas").scrollIntoViewIfNeeded();
    const hovered = await page.evaluate((i) => document.querySelector("#map-canvas").embdeckView.pagePosition(i),
                                        result.map.report.hovers[0].index);
    await page.mouse.move(hovered.x, hovered.y);
    await page.locator("#embdeck-explorer").screenshot({ path: `${shots}/report-map.png` });
  } catch (error) {
    problems.push(`the report's map: ${error.message.split("\n")[0]}`);
  }
} else {
  problems.push("the report has no interactive map");
}
await page.mouse.move(1, 1);
if (!quick) await page.screenshot({ path: `${shots}/report.png`, fullPage: true });
await browser.close();

console.log(JSON.stringify(result, null, 1));
process.exit(problems.length ? 1 : 0);
