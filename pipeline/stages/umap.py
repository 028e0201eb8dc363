"""Stage ``umap``: umap-learn's 2-D map of the global embeddings, seeded.

Inputs: ``ingest`` (labels), ``extract`` (embeddings), ``neighbours`` (the embedding space's graph, cosine:
umap-learn lays out its fuzzy graph from it, no search of its own). Params: ``umap``. Outputs: ``coords``
(N, 2) and the ``map``. A seeded UMAP runs single-threaded, which is what makes it reproducible. ``n_neighbors`` larger
than the set allows is lowered to N - 1, and the run record says so.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.gpu_maps import REPRODUCIBILITY, use_cuml
from ..methods.knn import exact_graph

LAYOUT_DIMS = 50  # what umap-learn gets of the data (see fit_umap)
STARTS = {"pca": "PCA", "spectral": "spectral embedding"}  # umap.init as the slide names it


def valid_neighbours(requested: int, n: int) -> tuple[int, str]:
    if n < 3:
        raise StageError(f"UMAP needs at least 3 images, got {n}")
    if requested >= n:
        return n - 1, f"n_neighbors {requested} is too large for {n} images; lowered to {n - 1}"
    if requested < 2:
        raise StageError(f"umap.n_neighbors must be at least 2, got {requested}")
    return requested, ""


def with_self(idx: np.ndarray, similarity: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's k-NN arrays from the graph: each point first (distance 0), then its nearest others, at
    their Euclidean distance on the unit sphere, sqrt(2 - 2 cos) (the order of cosine similarity)."""
    n = len(idx)
    found = np.hstack([np.arange(n)[:, None], idx[:, :n_neighbors - 1]])
    apart = np.sqrt(np.maximum(2.0 - 2.0 * similarity[:, :n_neighbors - 1], 0.0))
    return found.astype(np.int64), np.hstack([np.zeros((n, 1), np.float32), apart]).astype(np.float32)


def fit_umap(points: np.ndarray, n_neighbors: int, min_dist: float, seed: int,
             knn: tuple[np.ndarray, np.ndarray] | None = None, on_gpu: bool = False, init: str = "pca") -> np.ndarray:
    """A seeded 2-D UMAP of ``points`` at unit length (the cosine space), from ``knn`` (the graph's indices
    and cosine similarities of each point's nearest others) or, without it, from an exact search here.
    ``init``: umap-learn's starting layout (``umap.init``; tiny sets, where neither is defined, start at random).

    umap-learn reads the data itself only to lay out disconnected parts of the graph; it gets the unit
    vectors' first principal components (built block by block), so a large set is never copied whole.
    """
    import umap

    from ..methods.numba_cache import cache_umap_kernels
    from ..methods.pca_fit import reduce, spread_out

    if knn is None:
        knn = exact_graph(points, n_neighbors - 1, "ip", True, 65_536)
    if knn[0].shape[1] < n_neighbors - 1:
        raise StageError(f"UMAP needs {n_neighbors - 1} neighbours per point, the graph has {knn[0].shape[1]}")
    found, distances = with_self(*knn, n_neighbors)
    if on_gpu:
        from ..methods.gpu_maps import umap_map

        return umap_map(reduce(points, LAYOUT_DIMS, unit=True), (found, distances), n_neighbors, min_dist, seed)
    cache_umap_kernels()
    layout = reduce(points, LAYOUT_DIMS, unit=True)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1,
                        precomputed_knn=(found, distances, None),
                        init=init if len(points) > n_neighbors + 2 and spread_out(layout) else "random")
    with warnings.catch_warnings():  # new images are placed by the parametric maps, not by UMAP's transform
        warnings.filterwarnings("ignore", message="precomputed_knn.* is not an NNDescent object")
        return reducer.fit_transform(layout).astype(np.float32)


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
