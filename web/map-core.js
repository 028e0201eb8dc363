// The interactive map's data: loading, decoding, names, thumbnails, neighbours and colourings.
// Shared by the report (web/report-map.js) and the deck's component (slides/components/EmbeddingMap.vue); the
// files it reads are written by pipeline/pictures/map_data.py. A classic script, not a module: a report opened from
// disk (file://) may run scripts but may neither fetch files nor import modules, so every data file is a
// script that calls EmbdeckMap.receive(name, payload).
(function (root) {
  "use strict";
  const TYPES = { u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, i2: Int16Array, f4: Float32Array };
  const received = {};
  const waiting = {};

  function receive(name, payload) {
    received[name] = payload;
    (waiting[name] || []).forEach((w) => w.resolve(payload));
    delete waiting[name];
  }

  /** Load base + name + ".js" once; resolves with what it hands to receive(). */
  function loadScript(base, name) {
    if (received[name]) return Promise.resolve(received[name]);
    return new Promise((resolve, reject) => {
      const first = !waiting[name];
      (waiting[name] = waiting[name] || []).push({ resolve, reject });
      if (!first) return;
      const element = document.createElement("script");
      element.src = base + name + ".js";
      element.onerror = () => {
        (waiting[name] || []).forEach((w) => w.reject(new Error("could not load " + element.src)));
        delete waiting[name];
        element.remove();
      };
      document.head.appendChild(element);
    });
  }

  function decode(typed) {
    const text = atob(typed.data);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new TYPES[typed.type](bytes.buffer);
  }

  const pad = (n, width) => String(n).padStart(width, "0");
  const images = {};  // sheet url -> Promise<HTMLImageElement>, each sheet fetched once, when first needed

  function sheet(url) {
    if (!images[url]) {
      images[url] = new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve(img);
        img.onerror = () => reject(new Error("could not load " + url));
        img.src = url;
      });
    }
    return images[url];
  }

  function tileAt(prefix, i, side, sheetSide) {
    const per = sheetSide * sheetSide, cell = i % per;
    return { url: prefix + pad(Math.floor(i / per), 4) + ".webp", x: (cell % sheetSide) * side,
             y: Math.floor(cell / sheetSide) * side, side, sheetPx: sheetSide * side };
  }

  /** The data of a run's map, decoded, with what the views ask of it. */
  class MapData {
    constructor(payload, base) {
      this.base = base;
      this.count = payload.count;
      this.tileSide = payload.tile;
      this.sheetSide = payload.sheetSide;
      this.palettes = payload.palettes;
      this.maps = {};
      for (const m of payload.maps) {
        const q = decode(m.xy), [x0, y0, x1, y1] = m.bounds, xy = new Float32Array(q.length);
        for (let i = 0; i < q.length; i += 2) {
          xy[i] = x0 + (q[i] / 65535) * (x1 - x0);
          xy[i + 1] = y0 + (q[i + 1] / 65535) * (y1 - y0);
        }
        this.maps[m.key] = { key: m.key, title: m.title, xy };
      }
      this.labels = payload.labels ? { names: payload.labels.names, of: decode(payload.labels.of) } : null;
      this.clusters = payload.clusters ? { k: payload.clusters.k, sizes: payload.clusters.sizes, of: decode(payload.clusters.of) } : null;
      const o = payload.outlier;
      this.outlier = { k: o.k, min: o.min, p99: o.p99, max: o.max, score: decode(o.score) };
      this.folders = payload.names.folders;
      this.folderOf = decode(payload.names.folder);
      this.bases = payload.names.base;
      this.neighbourInfo = payload.neighbours;
    }

    name(i) {
      const folder = this.folders[this.folderOf[i]];
      return folder ? folder + "/" + this.bases[i] : this.bases[i];
    }

    label(i) { return this.labels ? this.labels.names[this.labels.of[i]] : ""; }
    cluster(i) { return this.clusters ? this.clusters.of[i] : -1; }

    /** Where point i's thumbnail is: its sheet and its offset there, in sheet pixels. */
    tile(i) { return tileAt(this.base + "tiles-", i, this.tileSide, this.sheetSide); }

    /** i's nearest neighbours from the run's graph: [{index, similarity}], nearest first. */
    async neighbours(i) {
      const info = this.neighbourInfo;
      if (!info) return [];
      const name = "nbrs-" + pad(Math.floor(i / info.block), 3);
      const block = await loadScript(this.base, name);
      if (!block.decoded) block.decoded = { idx: decode(block.idx), sim: decode(block.sim) };
      const { idx, sim } = block.decoded, row = (i - block.start) * block.k, missing = 2 ** (8 * idx.BYTES_PER_ELEMENT) - 1;
      const found = [];
      for (let j = 0; j < block.k; j++) {
        if (idx[row + j] !== missing) found.push({ index: idx[row + j], similarity: sim[row + j] / 10000 });
      }
      return found;
    }

    /** Indices whose file name contains the text (case-insensitive), at most `limit`. */
    search(text, limit) {
      const wanted = text.trim().toLowerCase(), found = [];
      if (!wanted) return found;
      for (let i = 0; i < this.count && found.length < limit; i++) {
        if (this.name(i).toLowerCase().includes(wanted)) found.push(i);
      }
      return found;
    }

    /** Colours for a mode: a palette, each point's entry in it (drawn in that order) and the legend. */
    colouring(mode) {
      const n = this.count, index = new Uint8Array(n);
      if (mode === "label" && this.labels) {
        const palette = this.palettes.label, counts = new Array(this.labels.names.length).fill(0);
        for (let i = 0; i < n; i++) { index[i] = this.labels.of[i] % palette.length; counts[this.labels.of[i]]++; }
        const items = this.labels.names.map((name, j) => ({ colour: palette[j % palette.length], text: name, count: counts[j] }));
        return { mode, palette, index, legend: { kind: "classes", items } };
      }
      if (mode === "cluster" && this.clusters) {
        const palette = this.palettes.cluster;
        for (let i = 0; i < n; i++) index[i] = this.clusters.of[i] % palette.length;
        const bySize = this.clusters.sizes.map((size, c) => [size, c]).filter(([size]) => size > 0).sort((a, b) => b[0] - a[0]);
        const items = bySize.slice(0, 12).map(([size, c]) => ({ colour: palette[c % palette.length], text: "cluster " + c, count: size }));
        const note = bySize.length > 12 ? bySize.length + " clusters (k-means); the 12 largest shown" + (bySize.length > palette.length ? ", colours repeat" : "") : bySize.length + " clusters (k-means)";
        return { mode, palette, index, legend: { kind: "classes", items, note } };
      }
      const palette = this.palettes.outlier, o = this.outlier, span = Math.max(o.p99 - o.min, 1e-12);
      for (let i = 0; i < n; i++) index[i] = Math.round(Math.min(1, Math.max(0, (o.score[i] - o.min) / span)) * (palette.length - 1));
      return { mode: "outlier", palette, index,
               legend: { kind: "gradient", palette, low: o.min, high: o.p99, max: o.max,
                         note: "outlier score: mean cosine distance to the " + o.k + " nearest neighbours" } };
    }

    modes() {
      return [["label", "label", !!this.labels], ["cluster", "cluster", !!this.clusters], ["outlier", "outlier score", true]]
        .filter((m) => m[2]).map(([key, text]) => ({ key, text }));
    }
  }

  /** The images `embdeck place` put on the maps (placed.js, written with the report): the same questions. */
  class PlacedData {
    constructor(payload, base) {
      this.base = base;
      this.count = payload.count;
      this.names = payload.names;
      this.tileSide = payload.tile;
      this.sheetSide = payload.sheetSide;
      this.near = payload.neighbours;
      this.maps = {};
      for (const [key, xy] of Object.entries(payload.maps)) this.maps[key] = Float32Array.from(xy);
    }

    name(i) { return this.names[i]; }
    label() { return "new image"; }
    tile(i) { return tileAt(this.base + "placed-tiles-", i, this.tileSide, this.sheetSide); }
    neighbours(i) { return Promise.resolve(this.near[i].map(([index, similarity]) => ({ index, similarity }))); }
  }

  async function loadPlaced(base) {
    return new PlacedData(await loadScript(base, "placed"), base);
  }

  /** Show point i's thumbnail in `element` at `px` pixels a side, once its sheet has loaded. */
  function showTile(element, data, i, px) {
    const t = data.tile(i), scale = px / t.side;
    element.dataset.tile = String(i);
    delete element.dataset.tileShown;
    Object.assign(element.style, { width: px + "px", height: px + "px", backgroundImage: "none" });
    return sheet(t.url).then(() => {
      if (element.dataset.tile !== String(i)) return;  // the pointer has moved on
      Object.assign(element.style, { backgroundImage: `url("${t.url}")`, backgroundSize: `${t.sheetPx * scale}px`,
                                     backgroundPosition: `-${t.x * scale}px -${t.y * scale}px` });
      element.dataset.tileShown = String(i);
    });
  }

  async function load(base) {
    return new MapData(await loadScript(base, "points"), base);
  }

  root.EmbdeckMap = Object.assign(root.EmbdeckMap || {}, { receive, loadScript, decode, load, loadPlaced, showTile, sheet, MapData, PlacedData });
})(typeof window !== "undefined" ? window : globalThis);
