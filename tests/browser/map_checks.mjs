// The interactive map, checked with a real mouse (Playwright's page.mouse sends real pointer events to the
// canvas): for a few points drawn apart from the others, on each map and each colouring, the pixel under the
// point has the point's colour, and hovering it shows a file name and a thumbnail, screenshotted. Whether that
// name and image are the right ones is judged in check_render.py against the pipeline's own arrays; this file
// only observes. In the report, also: search by file name, and a clicked image's neighbour list.
const HOVER_TIMEOUT = 15000;

// In the page: up to `count` points drawn at least `apart` CSS px from every other point and 24 px inside the
// canvas, spread over the set (a golden-ratio walk), with their positions and the colour under them. The walk
// runs 4 x n steps, which reaches nearly every point: a small canvas (the deck's) may hold only a handful of
// isolated points, and a walk cut short at a fixed count (600 once) missed them on some maps.
function isolated({ selector, count, apart }) {
  const view = document.querySelector(selector).embdeckView, s = view.screen, n = view.data.count, picks = [];
  for (let c = 0; c < 4 * n && picks.length < count; c++) {
    const i = Math.floor(((c * 0.6180339887) % 1) * n), x = s[2 * i], y = s[2 * i + 1];
    if (x < 24 || y < 24 || x > view.width - 24 || y > view.height - 24 || picks.includes(i)) continue;
    let alone = true;
    for (let j = 0; j < n && alone; j++) if (j !== i && (s[2 * j] - x) ** 2 + (s[2 * j + 1] - y) ** 2 < apart * apart) alone = false;
    if (alone) picks.push(i);
  }
  const canvas = view.base, ratio = canvas.width / view.width, ctx = canvas.getContext("2d");
  const rgb = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  return picks.map((i) => {
    // The 3x3 canvas pixels around the point's centre; the one nearest its colour (a point is at least 2 px
    // wide, so one of them is wholly inside it; around an isolated point the others are white or blended).
    const p = view.position(i), page = view.pagePosition(i), colour = view.colourOf(i), want = rgb(colour);
    const px = ctx.getImageData(Math.floor(p.x * ratio) - 1, Math.floor(p.y * ratio) - 1, 3, 3).data;
    let pixel = null, best = Infinity;
    for (let k = 0; k < 9; k++) {
      const got = [px[4 * k], px[4 * k + 1], px[4 * k + 2]], d = Math.max(...got.map((v, c) => Math.abs(v - want[c])));
      if (d < best) { best = d; pixel = got; }
    }
    return { index: i, local: p, page, pixel, colour, map: view.mapKey, mode: view.colours.mode, name: view.data.name(i) };
  });
}

async function hover(page, point, tipSelector, shots, tag) {
  await page.mouse.move(point.page.x, point.page.y, { steps: 2 });
  const tip = page.locator(tipSelector);
  await page.waitForFunction(({ sel, i }) => {
    const t = document.querySelector(sel);
    return t && !t.hidden && t.querySelector(".tile")?.dataset.tileShown === String(i);
  }, { sel: tipSelector, i: point.index }, { timeout: HOVER_TIMEOUT });
  const name = (await tip.locator(".name").innerText()).trim();
  const shot = `${shots}/${tag}-${point.map}-${point.index}.png`;
  await tip.locator(".tile").screenshot({ path: shot });
  return { ...point, shownName: name, tilePng: shot };
}

async function pick(page, selector, key) {
  await page.click(`${selector} button[data-key="${key}"]`);
  await page.waitForTimeout(150);
}

/** Hover and colour checks on one map view; `ui` names its selectors. */
export async function checkMap(page, ui, shots, tag) {
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.ready === "1", ui.canvas, { timeout: 60000 });
  await page.locator(ui.canvas).scrollIntoViewIfNeeded();
  const info = await page.evaluate((sel) => {
    const v = document.querySelector(sel).embdeckView;
    return { count: v.data.count, maps: Object.keys(v.data.maps), modes: v.data.modes().map((m) => m.key) };
  }, ui.canvas);
  const observed = { count: info.count, maps: info.maps, modes: info.modes, hovers: [], colours: [], legends: {} };
  let before = null;
  for (const map of info.maps) {
    await pick(page, ui.mapButtons, map);
    const points = await page.evaluate(isolated, { selector: ui.canvas, count: 3, apart: 6 });
    for (const point of points) observed.hovers.push(await hover(page, point, ui.tip, shots, tag));
    const positions = await page.evaluate((sel) => Array.from(document.querySelector(sel).embdeckView.screen.slice(0, 400)), ui.canvas);
    if (before) observed.positionsMoved = positions.filter((v, i) => Math.abs(v - before[i]) > 1).length / positions.length;
    before = positions;
  }
  await pick(page, ui.mapButtons, info.maps[0]);
  for (const mode of info.modes) {
    await pick(page, ui.modeButtons, mode);
    observed.colours.push(...await page.evaluate(isolated, { selector: ui.canvas, count: 3, apart: 6 }));
    observed.legends[mode] = (await page.locator(ui.legend).innerText()).trim();
  }
  await pick(page, ui.modeButtons, info.modes[0]);
  await page.mouse.move(1, 1);
  return observed;
}

/** The report's search and neighbour list: search a hovered point's name, click the hit, read the list; then
 * click a point on the canvas with the mouse and read its list. */
export async function checkReportExtras(page, observed, shots, probe) {
  let probed = null;
  if (probe) {
    await page.fill("#map-search", probe);
    await page.waitForSelector("#map-search-results .hint");
    probed = { query: probe, texts: await page.$$eval("#map-search-results .result", (rows) => rows.map((r) => r.textContent)) };
  }
  const target = observed.hovers[0];
  await page.fill("#map-search", target.shownName);
  await page.waitForSelector("#map-search-results .result");
  const results = await page.$$eval("#map-search-results .result", (rows) => rows.map((r) => ({ index: Number(r.dataset.index), text: r.textContent })));
  await page.click(`#map-search-results .result[data-index="${target.index}"]`);
  const listed = async (index) => {
    await page.waitForFunction((i) => document.querySelector("#map-selected")?.dataset.selected === "map:" + i
      && document.querySelectorAll("#map-selected .neighbour").length > 0, index, { timeout: HOVER_TIMEOUT });
    return page.$$eval("#map-selected .neighbour", (rows) => rows.map((r) => ({
      name: r.querySelector(".name").textContent, similarity: Number(r.querySelector(".sim").textContent) })));
  };
  const searched = { query: target.shownName, results, index: target.index, neighbours: await listed(target.index) };
  await page.fill("#map-search", "");
  await page.locator("#map-canvas").scrollIntoViewIfNeeded();
  const other = observed.hovers[1] || target;
  const point = await page.evaluate(([sel, i]) => document.querySelector(sel).embdeckView.pagePosition(i), ["#map-canvas", other.index]);
  await page.mouse.click(point.x, point.y);
  const clicked = { index: other.index, neighbours: await listed(other.index) };
  await page.locator("#map-side").screenshot({ path: `${shots}/report-neighbours.png` });
  const placed = await page.evaluate(() => {
    const v = document.querySelector("#map-canvas").embdeckView;
    if (!v.placed) return null;
    const box = v.overlay.getBoundingClientRect(), scale = box.width / v.width;
    return { count: v.placed.count, names: Array.from({ length: v.placed.count }, (_, i) => v.placed.name(i)),
             page: v.placedScreen().map(([x, y]) => ({ x: box.left + x * scale, y: box.top + y * scale })) };
  });
  if (placed && placed.count) {
    await page.mouse.move(placed.page[0].x, placed.page[0].y, { steps: 2 });
    await page.waitForFunction(() => !document.querySelector("#map-tip").hidden, null, { timeout: HOVER_TIMEOUT });
    placed.hoveredName = (await page.locator("#map-tip .name").innerText()).trim();
    placed.hoveredInfo = (await page.locator("#map-tip .info").innerText()).trim();
  }
  return { searched, clicked, placed, probed };
}
