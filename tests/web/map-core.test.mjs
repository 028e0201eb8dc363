// web/map-core.js and web/map-view.js where they live, under Node's own test runner (node --test tests/web/):
// files written by pipeline/pictures/map_data.py (through tests/web/make_points.py) are decoded by the real MapData and
// compared with the values Python wrote; the view's hit-testing is checked against a brute-force search.
// The browser tests (test_interactive.py, check-render) keep the real mouse.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PYTHON = process.env.EMBDECK_PYTHON || join(ROOT, ".venv", "bin", "python");

/** A fresh context with the two scripts loaded; a <script> element appended to the head runs the file it names. */
function load() {
  const context = vm.createContext({ atob, console, performance });
  context.document = {
    head: { appendChild: (element) => vm.runInContext(readFileSync(element.src, "utf8"), context, { filename: element.src }) },
    createElement: () => ({ remove() {} }),
  };
  context.globalThis = context;
  for (const name of ["map-core.js", "map-view.js"]) {
    vm.runInContext(readFileSync(join(ROOT, "web", name), "utf8"), context, { filename: name });
  }
  return context.EmbdeckMap;
}

const folder = mkdtempSync(join(tmpdir(), "embdeck-web-"));
const expected = JSON.parse(execFileSync(PYTHON, [join(ROOT, "tests", "web", "make_points.py"), folder],
                                         { cwd: ROOT, env: { ...process.env, PYTHONPATH: ROOT } }));
const EmbdeckMap = load();
const plain = (value) => JSON.parse(JSON.stringify(value));  // out of the script's realm, for deepEqual
const data = await EmbdeckMap.load(folder + "/");

test("positions decode to what the run computed, within one step of the 16-bit grid", () => {
  assert.equal(data.count, expected.count);
  assert.deepEqual(plain(Object.keys(data.maps)), ["tsne", "umap"]);
  for (const [key, want] of Object.entries(expected.maps)) {
    const xy = data.maps[key].xy;
    assert.equal(xy.length, 2 * want.length);
    const step = [0, 1].map((axis) => (Math.max(...want.map((p) => p[axis])) - Math.min(...want.map((p) => p[axis]))) / 65535);
    want.forEach(([x, y], i) => {
      assert.ok(Math.abs(xy[2 * i] - x) <= step[0], `${key} x of ${i}: ${xy[2 * i]} vs ${x}`);
      assert.ok(Math.abs(xy[2 * i + 1] - y) <= step[1], `${key} y of ${i}: ${xy[2 * i + 1]} vs ${y}`);
    });
  }
});

test("names, labels, clusters and outlier scores decode per point", () => {
  assert.deepEqual(Array.from({ length: data.count }, (_, i) => data.name(i)), expected.names);
  assert.deepEqual(Array.from({ length: data.count }, (_, i) => data.label(i)), expected.labels);
  assert.deepEqual(Array.from({ length: data.count }, (_, i) => data.cluster(i)), expected.clusters);
  expected.outlier.forEach((score, i) => assert.ok(Math.abs(data.outlier.score[i] - score) < 1e-6, `score ${i}`));
  assert.deepEqual(plain(data.search("IMAGE 1", 3).map((i) => data.name(i))),
                   expected.names.filter((name) => name.includes("image 1")).slice(0, 3));
});

test("a label colouring gives each of 12 classes its own colour and counts its points", () => {
  const colours = data.colouring("label");
  const items = colours.legend.items;
  assert.equal(items.length, 12);
  assert.equal(new Set(items.map((item) => item.colour)).size, 12, "12 classes, 12 colours");
  const counts = Object.fromEntries(items.map((item) => [item.text, item.count]));
  for (const label of new Set(expected.labels)) {
    assert.equal(counts[label], expected.labels.filter((l) => l === label).length, label);
  }
  expected.labels.forEach((label, i) => assert.equal(colours.palette[colours.index[i]],
                                                     items.find((item) => item.text === label).colour));
});

test("neighbours come back from their block, nearest first, the missing one left out", async () => {
  for (const [point, want] of Object.entries(expected.neighbours)) {
    const got = await data.neighbours(Number(point));
    assert.deepEqual(plain(got.map((n) => n.index)), want.map(([index]) => index), `point ${point}`);
    got.forEach((n, j) => assert.ok(Math.abs(n.similarity - want[j][1]) <= 0.5e-4 + 1e-7, `point ${point}`));
  }
});

/** A view without a DOM: the hit-test grid and the searches over it, on the screen positions given. */
function viewOf(screen, width, height, count) {
  const view = Object.create(EmbdeckMap.View.prototype);
  Object.assign(view, { width, height, screen: Float32Array.from(screen), data: { count }, zoom: 1, placed: null,
                        showPlaced: true });
  view.index();
  return view;
}

test("the point under the pointer is the nearest within the radius, as a brute-force search finds it", () => {
  let seed = 11;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const width = 400, height = 300, count = 2000;
  const screen = Array.from({ length: 2 * count }, (_, i) => (i % 2 ? height : width) * random());
  const view = viewOf(screen, width, height, count);
  for (let probe = 0; probe < 300; probe++) {
    const x = width * random(), y = height * random(), radius = 2 + 10 * random();
    let best = -1, bestD = radius * radius;
    for (let i = 0; i < count; i++) {
      const d = (screen[2 * i] - x) ** 2 + (screen[2 * i + 1] - y) ** 2;
      if (d <= bestD) { best = i; bestD = d; }
    }
    const found = view.nearest(x, y, radius);
    if (best < 0) assert.equal(found, -1);
    else assert.equal((screen[2 * found] - x) ** 2 + (screen[2 * found + 1] - y) ** 2, bestD, `probe ${probe}`);
  }
});

test("a point drawn off the canvas is never hit, and an empty spot hits nothing", () => {
  const view = viewOf([10, 10, -50, 10, 200, 150], 300, 200, 3);
  assert.equal(view.nearest(-50, 10, 20), -1, "off the canvas");
  assert.equal(view.nearest(12, 11, 5), 0);
  assert.equal(view.nearest(100, 100, 5), -1);
  assert.deepEqual(plain(view.hitAt(201, 151)), { layer: "map", index: 2 });
  assert.equal(view.hitAt(120, 80), null);
});
