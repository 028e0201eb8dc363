// The report's map in headless Chromium, timed (bench/report.py serves the folder and reads the JSON printed):
// open time, cold (a fresh browser context each time: nothing cached), from navigation start to the map
// drawn with every point; then hovers with a real mouse over seeded points, each timed in the page from the
// mousemove event to the frame that shows its tooltip (file name), and to its thumbnail (lazily fetched).
// Usage: node bench/report_page.mjs URL OPENS HOVERS
import { chromium } from "playwright-chromium";

const [url, opens, hovers] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu"] });
const result = { opens: [], hovers: [], errors: [] };

async function open() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => result.errors.push(e.message));
  const started = Date.now();
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.getElementById("embdeck-explorer")?.dataset.ready === "1",
                             null, { timeout: 120000, polling: 10 });
  const wall = Date.now() - started;
  const inPage = await page.evaluate(() => performance.getEntriesByName("embdeck-map-ready")[0].startTime);
  return { context, page, wall, inPage };
}

let last = null;
for (let n = 0; n < opens; n++) {
  if (last) await last.context.close();
  last = await open();
  result.opens.push({ ready_ms: Math.round(last.inPage), wall_ms: last.wall });
}
const page = last.page;
result.points = await page.evaluate(() => document.querySelector("#map-canvas").embdeckView.data.count);
await page.locator("#map-canvas").scrollIntoViewIfNeeded();
// In the page: the time from each mousemove to the next animation frame after the view's own handler ran (the
// frame that paints the tooltip), and to the thumbnail shown.
await page.evaluate(() => {
  window.__hover = [];
  window.addEventListener("mousemove", (e) => {
    const tip = document.getElementById("map-tip"), at = e.timeStamp, record = { at };
    window.__hover.push(record);
    requestAnimationFrame(() => {
      record.frame = performance.now() - at;
      record.shown = !tip.hidden;
      record.name = tip.querySelector(".name").textContent;
      record.index = tip.dataset.index;
    });
  });
});
const picks = await page.evaluate((count) => {
  const v = document.querySelector("#map-canvas").embdeckView, n = v.data.count, out = [];
  for (let c = 0; out.length < count && c < 50 * count; c++) {
    const i = Math.floor(((c * 0.6180339887 + 0.5) % 1) * n), p = v.position(i);
    if (p.x > 10 && p.y > 10 && p.x < v.width - 10 && p.y < v.height - 10) out.push({ i, page: v.pagePosition(i) });
  }
  return out;
}, hovers);
for (const { i, page: at } of picks) {
  await page.mouse.move(1, 1);
  await page.waitForTimeout(30);
  const started = Date.now();
  await page.mouse.move(at.x, at.y);
  await page.waitForFunction(() => {
    const r = window.__hover[window.__hover.length - 1];
    return r && r.frame !== undefined;
  }, null, { polling: "raf", timeout: 10000 });
  const record = await page.evaluate(() => window.__hover[window.__hover.length - 1]);
  await page.waitForFunction(() => document.querySelector("#map-tip .tile")?.dataset.tileShown !== undefined,
                             null, { polling: 5, timeout: 30000 });
  result.hovers.push({ point: i, frame_ms: record.frame, shown: record.shown, name: record.name, hit: record.index,
                       thumbnail_ms: Date.now() - started });
}
await browser.close();
console.log(JSON.stringify(result));
