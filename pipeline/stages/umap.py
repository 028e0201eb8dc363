"""Stage ``umap``: umap-learn's 2-D map of the global embeddings, seeded.

Inputs: ``ingest`` (labels), ``extract`` (embeddings). Params: ``umap``. Outputs: ``coords`` (N, 2) and
the ``map``. A seeded UMAP runs single-threaded, which is what makes it reproducible. ``n_neighbors`` larger
than the set allows is lowered to N - 1, and the run record says so.
"""

from __future__ import annotations

import time

import numpy as np

from ..artifacts import StageError
from ..manifest import manifest_labels, read_manifest
from ..stage import Stage, StageContext


def valid_neighbours(requested: int, n: int) -> tuple[int, str]:
    if n < 3:
        raise StageError(f"UMAP needs at least 3 images, got {n}")
    if requested >= n:
        return n - 1, f"n_neighbors {requested} is too large for {n} images; lowered to {n - 1}"
    if requested < 2:
        raise StageError(f"umap.n_neighbors must be at least 2, got {requested}")
    return requested, ""


def fit_umap(points: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                        n_jobs=1, init="spectral" if len(points) > n_neighbors + 2 else "random")
    return reducer.fit_transform(points).astype(np.float32)


def run(ctx: StageContext) -> dict:
    from .. import figures

    cfg = ctx.cfg.umap
    embeddings = ctx.load_npy("extract", "embeddings")
    labels = manifest_labels(read_manifest(ctx)[0])
    n_neighbors, note = valid_neighbours(cfg.n_neighbors, len(embeddings))
    started = time.perf_counter()
    coords = fit_umap(embeddings, n_neighbors, cfg.min_dist, cfg.seed)
    seconds = time.perf_counter() - started
    ctx.save_npy("coords", coords)
    figures.scatter_by_label(coords, labels, f"UMAP ({n_neighbors} neighbours, min_dist {cfg.min_dist:g})",
                             ctx.output("map"))
    return {"n_neighbors": n_neighbors, "adjustment": note, "min_dist": cfg.min_dist, "seconds": round(seconds, 3)}


STAGE = Stage(
    name="umap",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings"),
    params=("umap",),
    outputs={"coords": "umap.npy", "map": "umap_map.png"},
)
