"""Stage ``umap``: umap-learn's 2-D map of the global embeddings, seeded.

Inputs: ``ingest`` (labels), ``extract`` (embeddings), ``neighbours`` (the embedding space's graph, cosine:
umap-learn lays out its fuzzy graph from it, no search of its own). Params: ``umap``. Outputs: ``coords``
(N, 2) and the ``map``. A seeded UMAP runs single-threaded, which is what makes it reproducible. ``n_neighbors`` larger
than the set allows is lowered to N - 1, and the run record says so.
With an earlier UMAP of the same settings in this output folder (``keep_place``), the map starts from it as
t-SNE does (``methods.layout_update``) and runs ``umap.resume_epochs`` epochs from ``umap.resume_learning_rate``;
``since_last`` says what changed and how far the old images moved; ``row_ids`` is what the next run matches by.
cuML's UMAP takes no starting layout: on the GPU the map starts fresh.
"""

from __future__ import annotations

import logging
import time

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_ids, manifest_labels, read_manifest
from ..methods import layout_update
from ..methods.gpu_maps import REPRODUCIBILITY, use_cuml
from ..methods.umap_fit import fit_umap, valid_neighbours

log = logging.getLogger("embdeck")

STARTS = {"pca": "PCA", "spectral": "spectral embedding"}  # umap.init as the slide names it


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.umap
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    manifest = read_manifest(ctx)[0]
    labels, ids = manifest_labels(manifest), manifest_ids(manifest)
    n_neighbors, note = valid_neighbours(cfg.n_neighbors, len(embeddings))
    started = time.perf_counter()
    knn = ctx.load_npy("neighbours", "embedding_idx"), ctx.load_npy("neighbours", "embedding_values")
    on_gpu = use_cuml(cfg.engine, ctx.cfg.device)
    resumed, since = ctx.earlier is not None and not on_gpu, None
    if resumed:
        earlier = ctx.earlier_npy("coords")
        match = layout_update.carried(ctx.earlier_npy("row_ids"), ids)
        start = layout_update.start_layout(earlier, match, knn[0], cfg.seed)
        coords = fit_umap(embeddings, n_neighbors, cfg.min_dist, cfg.seed, knn, start=start,
                          resume={"n_epochs": cfg.resume_epochs, "learning_rate": cfg.resume_learning_rate})
        since = layout_update.moved(earlier, coords, match)
        log.info(layout_update.said("UMAP", since))
    else:
        coords = fit_umap(embeddings, n_neighbors, cfg.min_dist, cfg.seed, knn, on_gpu, cfg.init)
    seconds = time.perf_counter() - started
    ctx.save_npy("coords", coords)
    ctx.save_npy("row_ids", ids)
    how = f", {cfg.resume_epochs} epochs from the last run's map" if resumed else ""
    figures.scatter_by_label(coords, labels, f"UMAP ({n_neighbors} neighbours, min_dist {cfg.min_dist:g}{how})",
                             ctx.output("map"))
    return {"n_neighbors": n_neighbors, "adjustment": note, "min_dist": cfg.min_dist, "seconds": round(seconds, 3),
            "resumed": resumed, "since_last": since,
            "init": "cuML's default" if on_gpu else "the last run's map" if resumed else STARTS[cfg.init], "engine": "cuML" if on_gpu else "umap-learn",
            "reproducibility": REPRODUCIBILITY if on_gpu else ""}


STAGE = Stage(
    name="umap",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "neighbours.embedding_idx",
            "neighbours.embedding_values"),
    params=("umap", "device"),
    outputs={"coords": "umap.npy", "row_ids": "row_ids.npy", "map": "umap_map.png"},
    resumes=("coords", "row_ids"),
)
