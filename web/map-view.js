// A canvas view of one map with every point: drawing, zoom and pan, and which point is under the pointer.
// Shared by the report and the deck (after web/map-core.js). Two stacked canvases: the points (redrawn only
// when the map, the colouring or the view changes) and an overlay (hover, selection, search hits, placed images).
(function (root) {
  "use strict";
  const CELL = 8;  // CSS pixels per cell of the hit-test grid

  class View {
    /** container: an empty, sized element; options: {onHover(hit, x, y), onClick(hit)}; a hit is {layer, index}. */
    constructor(container, data, options) {
      this.data = data;
      this.options = options || {};
      this.mapKey = Object.keys(data.maps)[0];
      this.colours = data.colouring(data.modes()[0].key);
      this.zoom = 1;
      this.centre = null;
      this.marks = { hover: null, selected: null, neighbours: [], found: [] };
      this.placed = null;
      this.showPlaced = true;
      container.classList.add("embdeck-map-view");
      Object.assign(container.style, { position: "relative" });
      this.base = document.createElement("canvas");
      this.overlay = document.createElement("canvas");
      for (const canvas of [this.base, this.overlay]) {
        Object.assign(canvas.style, { position: "absolute", left: "0", top: "0", width: "100%", height: "100%" });
        container.appendChild(canvas);
      }
      this.base.className = "embdeck-points";
      this.overlay.className = "embdeck-overlay";
      this.overlay.style.cursor = "crosshair";
      this.container = container;
      container.embdeckView = this;  // for the browser checks: where a point is drawn, what colour it has
      this.listen();
      new ResizeObserver(() => this.resize()).observe(container);
      this.resize();
    }

    /** Layout size in CSS pixels (before any CSS transform: Slidev scales whole slides), and the backing
     * store at the pixels actually shown, so points stay sharp on a scaled slide and a dense screen. */
    resize() {
      const width = this.container.clientWidth, height = this.container.clientHeight;
      if (!width || !height) return;
      const shown = this.container.getBoundingClientRect(), ratio = (window.devicePixelRatio || 1) * Math.max(1, shown.width / width);
      this.width = width;
      this.height = height;
      for (const canvas of [this.base, this.overlay]) {
        canvas.width = Math.round(width * ratio);
        canvas.height = Math.round(height * ratio);
        canvas.getContext("2d").setTransform(ratio, 0, 0, ratio, 0, 0);
      }
      this.draw();
    }

    /** A viewport position (a mouse event's) in the view's CSS pixels, undoing any CSS scaling. */
    toLocal(clientX, clientY) {
      const box = this.overlay.getBoundingClientRect(), scale = this.width / box.width;
      return [(clientX - box.left) * scale, (clientY - box.top) * scale];
    }

    /** Where point i is drawn, in viewport pixels (what a real mouse is moved to). */
    pagePosition(i) {
      const box = this.overlay.getBoundingClientRect(), scale = box.width / this.width, p = this.position(i);
      return { x: box.left + p.x * scale, y: box.top + p.y * scale };
    }

    setMap(key) { this.mapKey = key; this.zoom = 1; this.centre = null; this.draw(); }
    setColour(mode) { this.colours = this.data.colouring(mode); this.draw(); return this.colours.legend; }
    reset() { this.zoom = 1; this.centre = null; this.draw(); }

    /** Scale and centre that fit the whole map, aspect kept, with a margin. */
    fit() {
      const xy = this.data.maps[this.mapKey].xy;
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (let i = 0; i < xy.length; i += 2) {
        x0 = Math.min(x0, xy[i]); x1 = Math.max(x1, xy[i]); y0 = Math.min(y0, xy[i + 1]); y1 = Math.max(y1, xy[i + 1]);
      }
      const pad = 14, scale = Math.min((this.width - 2 * pad) / (x1 - x0 || 1), (this.height - 2 * pad) / (y1 - y0 || 1));
      return { scale, centre: [(x0 + x1) / 2, (y0 + y1) / 2] };
    }

    /** Map coordinates -> CSS pixels in the canvas. */
    toScreen(x, y) {
      const k = this.scale * this.zoom;
      return [this.width / 2 + (x - this.centre[0]) * k, this.height / 2 - (y - this.centre[1]) * k];
    }

    position(i) {
      const xy = this.data.maps[this.mapKey].xy, [x, y] = this.toScreen(xy[2 * i], xy[2 * i + 1]);
      return { x, y };
    }

    colourOf(i) { return this.colours.palette[this.colours.index[i]]; }

    pointSize() {
      const base = Math.sqrt((this.width * this.height) / Math.max(this.data.count, 1)) / 3;
      return Math.min(6, Math.max(2, base) * Math.sqrt(Math.min(this.zoom, 9)));
    }

    draw() {
      if (!this.width) return;
      const started = performance.now(), fitted = this.fit();
      this.scale = fitted.scale;
      if (!this.centre) this.centre = fitted.centre;
      const n = this.data.count, xy = this.data.maps[this.mapKey].xy, screen = (this.screen = new Float32Array(2 * n));
      const k = this.scale * this.zoom, w2 = this.width / 2, h2 = this.height / 2;
      for (let i = 0; i < n; i++) {
        screen[2 * i] = w2 + (xy[2 * i] - this.centre[0]) * k;
        screen[2 * i + 1] = h2 - (xy[2 * i + 1] - this.centre[1]) * k;
      }
      this.index();
      const ctx = this.base.getContext("2d"), size = this.pointSize(), half = size / 2, { palette, index } = this.colours;
      ctx.clearRect(0, 0, this.width, this.height);
      const groups = palette.map(() => []);  // one fill colour at a time; later entries on top (high outlier scores)
      for (let i = 0; i < n; i++) groups[index[i]].push(i);
      groups.forEach((members, c) => {
        ctx.fillStyle = palette[c];
        for (const i of members) ctx.fillRect(screen[2 * i] - half, screen[2 * i + 1] - half, size, size);
      });
      this.drawnMs = performance.now() - started;
      this.drawOverlay();
      this.container.dataset.ready = "1";
      this.container.dispatchEvent(new CustomEvent("embdeck-drawn", { detail: { ms: this.drawnMs } }));
    }

    /** A grid of CSS-pixel cells listing the points in each (linked lists in typed arrays). */
    index() {
      const columns = Math.ceil(this.width / CELL) + 1, rows = Math.ceil(this.height / CELL) + 1, n = this.data.count;
      const head = new Int32Array(columns * rows).fill(-1), next = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const cx = Math.floor(this.screen[2 * i] / CELL), cy = Math.floor(this.screen[2 * i + 1] / CELL);
        if (cx < 0 || cy < 0 || cx >= columns || cy >= rows) { next[i] = -2; continue; }
        next[i] = head[cy * columns + cx];
        head[cy * columns + cx] = i;
      }
      this.grid = { columns, rows, head, next };
    }

    /** The nearest point within `radius` CSS pixels of (x, y), or -1. */
    nearest(x, y, radius) {
      const g = this.grid, reach = Math.ceil(radius / CELL), cx = Math.floor(x / CELL), cy = Math.floor(y / CELL);
      let best = -1, bestD = radius * radius;
      for (let gy = Math.max(0, cy - reach); gy <= Math.min(g.rows - 1, cy + reach); gy++) {
        for (let gx = Math.max(0, cx - reach); gx <= Math.min(g.columns - 1, cx + reach); gx++) {
          for (let i = g.head[gy * g.columns + gx]; i >= 0; i = g.next[i]) {
            const d = (this.screen[2 * i] - x) ** 2 + (this.screen[2 * i + 1] - y) ** 2;
            if (d <= bestD) { best = i; bestD = d; }
          }
        }
      }
      return best;
    }

    /** The placed (new) image or the point under (x, y); placed images win, they are drawn on top. */
    hitAt(x, y) {
      const radius = Math.max(6, this.pointSize() * 1.5);
      if (this.placed && this.showPlaced) {
        let best = -1, bestD = (radius + 3) ** 2;
        this.placedScreen().forEach(([px, py], i) => {
          const d = (px - x) ** 2 + (py - y) ** 2;
          if (d <= bestD) { best = i; bestD = d; }
        });
        if (best >= 0) return { layer: "placed", index: best };
      }
      const i = this.nearest(x, y, radius);
      return i >= 0 ? { layer: "map", index: i } : null;
    }

    /** The placed images on this map, in CSS pixels: none on a map without a network (umap-learn's). */
    placedScreen() {
      const xy = this.placed.maps[this.mapKey];
      if (!xy) return [];
      return Array.from({ length: this.placed.count }, (_, i) => this.toScreen(xy[2 * i], xy[2 * i + 1]));
    }

    setPlaced(placed) { this.placed = placed; this.drawOverlay(); }
    setShowPlaced(on) { this.showPlaced = on; this.drawOverlay(); }
    mark(kind, value) { this.marks[kind] = value; this.drawOverlay(); }

    drawOverlay() {
      if (!this.screen) return;
      const ctx = this.overlay.getContext("2d"), s = this.screen, size = this.pointSize();
      ctx.clearRect(0, 0, this.width, this.height);
      const ring = (x, y, r, colour, width) => {
        ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.stroke();
      };
      for (const i of this.marks.found) ring(s[2 * i], s[2 * i + 1], size + 4, "#d62728", 1.5);
      const selected = this.marks.selected;
      if (selected) {
        const [sx, sy] = selected.layer === "placed" ? this.placedScreen()[selected.index] : [s[2 * selected.index], s[2 * selected.index + 1]];
        ctx.strokeStyle = "rgba(0,0,0,0.45)"; ctx.lineWidth = 1;
        for (const j of this.marks.neighbours) { ctx.beginPath(); ctx.moveTo(sx, sy); ctx.lineTo(s[2 * j], s[2 * j + 1]); ctx.stroke(); }
        for (const j of this.marks.neighbours) ring(s[2 * j], s[2 * j + 1], size + 3, "#111", 1.5);
        ring(sx, sy, size + 6, "#111", 2.5);
      }
      if (this.placed && this.showPlaced) {
        ctx.fillStyle = "#fff"; ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
        for (const [x, y] of this.placedScreen()) {
          ctx.beginPath();
          for (let p = 0; p < 10; p++) {  // a five-pointed star
            const r = p % 2 ? 3.5 : 8, a = -Math.PI / 2 + (p * Math.PI) / 5;
            ctx[p ? "lineTo" : "moveTo"](x + r * Math.cos(a), y + r * Math.sin(a));
          }
          ctx.closePath(); ctx.fill(); ctx.stroke();
        }
      }
      const hover = this.marks.hover;
      if (hover && hover.layer === "map") ring(s[2 * hover.index], s[2 * hover.index + 1], size + 3, "#000", 2);
    }

    listen() {
      const o = this.overlay, local = (e) => this.toLocal(e.clientX, e.clientY);
      let drag = null;
      o.addEventListener("mousedown", (e) => { drag = { start: local(e), centre: this.centre.slice(), moved: false }; });
      window.addEventListener("mouseup", () => { setTimeout(() => { drag = null; }, 0); });
      o.addEventListener("mousemove", (e) => {
        const [x, y] = local(e);
        if (drag && e.buttons === 1) {
          const dx = x - drag.start[0], dy = y - drag.start[1];
          if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
          if (drag.moved) {
            const k = this.scale * this.zoom;
            this.centre = [drag.centre[0] - dx / k, drag.centre[1] + dy / k];
            this.draw();
            return;
          }
        }
        const hit = this.hitAt(x, y);
        this.mark("hover", hit);
        if (this.options.onHover) this.options.onHover(hit, x, y);
      });
      o.addEventListener("mouseleave", () => { this.mark("hover", null); if (this.options.onHover) this.options.onHover(null, 0, 0); });
      o.addEventListener("click", (e) => {
        if (drag && drag.moved) return;
        const hit = this.hitAt(...local(e));
        if (this.options.onClick) this.options.onClick(hit);
      });
      o.addEventListener("wheel", (e) => {
        e.preventDefault();
        const [x, y] = local(e), k = this.scale * this.zoom;
        const mx = this.centre[0] + (x - this.width / 2) / k, my = this.centre[1] - (y - this.height / 2) / k;
        this.zoom = Math.min(400, Math.max(1, this.zoom * Math.exp(-e.deltaY * 0.0015)));
        const k2 = this.scale * this.zoom;  // keep the map point under the pointer where it is
        this.centre = [mx - (x - this.width / 2) / k2, my + (y - this.height / 2) / k2];
        this.draw();
      }, { passive: false });
    }
  }

  root.EmbdeckMap = Object.assign(root.EmbdeckMap || {}, { View });
})(typeof window !== "undefined" ? window : globalThis);
