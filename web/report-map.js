// The report's map explorer: every image on the t-SNE and UMAP maps, thumbnails on hover, a legend, search by
// file name, a clicked image's nearest neighbours (from the run's k-NN graph) and the images `embdeck place`
// added, as their own layer. Needs web/map-core.js and web/map-view.js; every name is set as text, never HTML.
(function () {
  "use strict";
  const M = window.EmbdeckMap, root = document.getElementById("embdeck-explorer");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const base = root.dataset.base, fmt = (x, d) => Number(x).toFixed(d);
  const make = (tag, className, text) => {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const started = performance.now();

  function buttons(holder, items, onPick) {
    holder.replaceChildren(...items.map((item) => {
      const b = make("button", "mapbtn", item.text);
      b.type = "button";
      b.dataset.key = item.key;
      b.addEventListener("click", () => { onPick(item.key); mark(holder, item.key); });
      return b;
    }));
    mark(holder, items[0].key);
  }
  const mark = (holder, key) => holder.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.key === key));

  function legend(spec) {
    const box = $("map-legend");
    if (spec.kind === "gradient") {
      const bar = make("div", "gradient");
      bar.style.background = `linear-gradient(to right, ${spec.palette.join(", ")})`;
      const ends = make("div", "ends");
      ends.append(make("span", "", fmt(spec.low, 3)), make("span", "", "≥ " + fmt(spec.high, 3) + " (max " + fmt(spec.max, 3) + ")"));
      box.replaceChildren(make("div", "hint", spec.note), bar, ends);
      return;
    }
    const rows = spec.items.map((item) => {
      const row = make("div", "item"), swatch = make("span", "swatch");
      swatch.style.background = item.colour;
      row.append(swatch, make("span", "name", item.text), make("span", "count", item.count.toLocaleString("en-US")));
      return row;
    });
    box.replaceChildren(...(spec.note ? [make("div", "hint", spec.note)] : []), ...rows);
  }

  function describe(source, i) {
    if (source === state.placed) return "new image · placed by embdeck place";
    const d = state.data, parts = [];
    if (d.labels) parts.push(d.label(i));
    if (d.clusters) parts.push("cluster " + d.cluster(i));
    parts.push("outlier score " + fmt(d.outlier.score[i], 3));
    return parts.join(" · ");
  }

  function showTip(hit, x, y) {
    const tip = $("map-tip");
    if (!hit) { tip.hidden = true; return; }
    const source = hit.layer === "placed" ? state.placed : state.data;
    tip.querySelector(".name").textContent = source.name(hit.index);
    tip.querySelector(".info").textContent = describe(source, hit.index);
    tip.dataset.index = hit.layer + ":" + hit.index;
    M.showTile(tip.querySelector(".tile"), source, hit.index, 2 * source.tileSide);
    const box = $("map-canvas"), flip = x > box.clientWidth - 300;
    tip.style.left = (flip ? x - 290 : x + 16) + "px";
    tip.style.top = Math.min(y + 16, box.clientHeight - 40) + "px";
    tip.hidden = false;
  }

  async function select(hit) {
    const panel = $("map-selected");
    if (!hit) return;
    const source = hit.layer === "placed" ? state.placed : state.data, i = hit.index;
    const head = make("div", "head"), tile = make("div", "tile big");
    head.append(tile, make("div", "name", source.name(i)), make("div", "info", describe(source, i)));
    M.showTile(tile, source, i, 3 * source.tileSide);
    const list = make("ol", "neighbours");
    panel.replaceChildren(head, make("div", "hint", "Nearest in the collection (cosine similarity, from the run's neighbour graph):"), list);
    panel.dataset.selected = hit.layer + ":" + i;
    state.view.marks.neighbours = [];
    state.view.mark("selected", hit);
    const found = await source.neighbours(i);
    if (panel.dataset.selected !== hit.layer + ":" + i) return;  // another image was picked meanwhile
    state.view.mark("neighbours", found.map((n) => n.index));
    list.replaceChildren(...found.map((n) => {
      const row = make("li", "neighbour"), small = make("div", "tile");
      row.append(small, make("span", "name", state.data.name(n.index)), make("span", "sim", fmt(n.similarity, 3)));
      row.addEventListener("click", () => select({ layer: "map", index: n.index }));
      M.showTile(small, state.data, n.index, state.data.tileSide);
      return row;
    }));
  }

  function search(text) {
    const limit = 50, found = state.data.search(text, 2000), box = $("map-search-results");
    state.view.mark("found", found);
    if (!text.trim()) { box.replaceChildren(); return; }
    const head = make("div", "hint", found.length === 0 ? "no file name contains that"
      : found.length.toLocaleString("en-US") + (found.length === 2000 ? "+" : "") + " matching file names (ringed in red)" + (found.length > limit ? "; the first " + limit + " listed" : ""));
    const rows = found.slice(0, limit).map((i) => {
      const row = make("div", "result", state.data.name(i));
      row.dataset.index = String(i);
      row.addEventListener("click", () => select({ layer: "map", index: i }));
      return row;
    });
    box.replaceChildren(head, ...rows);
  }

  const state = {};
  M.load(base).then(async (data) => {
    state.data = data;
    state.view = new M.View($("map-canvas"), data, { onHover: showTip, onClick: select });
    buttons($("map-switch"), Object.values(data.maps).map((m) => ({ key: m.key, text: m.title })), (key) => state.view.setMap(key));
    buttons($("map-colour"), data.modes(), (key) => legend(state.view.setColour(key)));
    legend(state.view.colours.legend);
    $("map-search").addEventListener("input", (e) => search(e.target.value));
    $("map-reset").addEventListener("click", () => state.view.reset());
    $("map-status").textContent = data.count.toLocaleString("en-US") + " images, every one drawn; opened in "
      + Math.round(performance.now() - started) + " ms. Wheel to zoom, drag to pan.";
    if (root.dataset.placed) {
      state.placed = await M.loadPlaced(base);
      state.view.setPlaced(state.placed);
      const toggle = $("placed-toggle");
      toggle.hidden = false;
      toggle.querySelector("input").addEventListener("change", (e) => state.view.setShowPlaced(e.target.checked));
    }
    root.dataset.ready = "1";
    performance.mark("embdeck-map-ready");
  }).catch((error) => {
    $("map-status").textContent = "The map could not load: " + error.message;
  });
})();
