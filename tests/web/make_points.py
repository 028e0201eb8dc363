"""Write, through pipeline/pictures/map_data.py, the data files a map view loads (points.js and one neighbour block) for a
small seeded set, and print what they must decode to, as JSON: the Node tests (tests/web/*.test.mjs) decode the
files with web/map-core.js and compare. Usage: python tests/web/make_points.py FOLDER"""

import json
import sys
from pathlib import Path

import numpy as np

from pipeline.pictures import map_data

folder = Path(sys.argv[1])
rng = np.random.default_rng(7)
n, k = 300, 4
tsne = rng.normal(size=(n, 2)) * 30.0
umap = rng.uniform(-5, 5, size=(n, 2))
labels = [f"class {i % 12}" for i in range(n)]
paths = [f"{labels[i]}/image {i}.png" if i % 5 else f"loose {i}.png" for i in range(n)]
clusters = rng.integers(0, 7, size=n)
outlier = rng.uniform(0.05, 0.9, size=n).astype(np.float32)
idx = np.array([rng.choice(np.delete(np.arange(n), i), size=k, replace=False) for i in range(n)])
idx[3, -1] = -1  # a neighbour the graph did not find
similarity = np.sort(rng.uniform(0.2, 1.0, size=(n, k)), axis=1)[:, ::-1].astype(np.float32)
order = map_data.map_order(tsne)
blocks = map_data.neighbour_blocks(order, idx, similarity, k)
neighbours = {"k": k, "block": map_data.NEIGHBOUR_BLOCK, "files": len(blocks)}
payload = map_data.points_payload(order, {"tsne": ("t-SNE", tsne), "umap": ("UMAP", umap)}, paths, labels, clusters,
                                  outlier, 10, map_data.palettes(12), 48, 2, neighbours)
map_data.write_script(folder / "points.js", "points", payload)
for number, block in enumerate(blocks):
    map_data.write_script(folder / f"nbrs-{number:03d}.js", "nbrs-%03d" % number, block)
position = np.empty(n, np.int64)
position[order] = np.arange(n)
expected = {
    "count": n,
    "maps": {"tsne": tsne[order].tolist(), "umap": umap[order].tolist()},
    "names": [paths[i] for i in order],
    "labels": [labels[i] for i in order],
    "clusters": clusters[order].tolist(),
    "outlier": outlier[order].astype(float).tolist(),
    "neighbours": {str(int(position[i])): [[int(position[j]), float(s)] for j, s in zip(idx[i], similarity[i]) if j >= 0]
                   for i in (0, 3, n - 1)},
}
json.dump(expected, sys.stdout)
