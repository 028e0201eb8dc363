"""Stage ``umap``: umap-learn's 2-D map of the global embeddings, seeded.

Inputs: ``ingest`` (labels), ``extract`` (embeddings), ``neighbours`` (the embedding space's graph, cosine:
umap-learn lays out its fuzzy graph from it, no search of its own). Params: ``umap``. Outputs: ``coords``
(N, 2) and the ``map``. A seeded UMAP runs single-threaded, which is what makes it reproducible. ``n_neighbors`` larger
than the set allows is lowered to N - 1, and the run record says so.
"""

from __future__ import annotations

import time

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.gpu_maps import REPRODUCIBILITY, use_cuml
from ..methods.umap_fit import fit_umap, valid_neighbours

STARTS = {"pca": "PCA", "spectral": "spectral embedding"}  # umap.init as the slide names it


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.umap
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    labels = manifest_labels(read_manifest(ctx)[0])
    n_neighbors, note = valid_neighbours(cfg.n_neighbors, len(embeddings))
    started = time.perf_counter()
    knn = ctx.load_npy("neighbours", "embedding_idx"), ctx.load_npy("neighbours", "embedding_values")
    on_gpu = use_cuml(cfg.engine, ctx.cfg.device)
    coords = fit_umap(embeddings, n_neighbors, cfg.min_dist, cfg.seed, knn, on_gpu, cfg.init)
    seconds = time.perf_counter() - started
    ctx.save_npy("coords", coords)
    figures.scatter_by_label(coords, labels, f"UMAP ({n_neighbors} neighbours, min_dist {cfg.min_dist:g})",
                             ctx.output("map"))
    return {"n_neighbors": n_neighbors, "adjustment": note, "min_dist": cfg.min_dist, "seconds": round(seconds, 3),
            "init": "cuML's default" if on_gpu else STARTS[cfg.init], "engine": "cuML" if on_gpu else "umap-learn",
            "reproducibility": REPRODUCIBILITY if on_gpu else ""}


STAGE = Stage(
    name="umap",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "neighbours.embedding_idx",
            "neighbours.embedding_values"),
    params=("umap", "device"),
    outputs={"coords": "umap.npy", "map": "umap_map.png"},
)
