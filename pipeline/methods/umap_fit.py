"""UMAP as embdeck fits it, one way for every caller: umap-learn on the run's neighbour graph, seeded.

The ``umap`` stage maps the run's embeddings with it; the bench times it at growing N. A seeded UMAP runs
single-threaded, which is what makes it reproducible. ``n_neighbors`` larger than the set allows is lowered to
N - 1 (``valid_neighbours`` says so, for the run record).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..engine.artifacts import StageError
from .knn import exact_graph

LAYOUT_DIMS = 50  # what umap-learn gets of the data (see fit_umap)


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

    from .numba_cache import cache_umap_kernels
    from .pca_fit import reduce, spread_out

    if knn is None:
        knn = exact_graph(points, n_neighbors - 1, "ip", True, 65_536)
    if knn[0].shape[1] < n_neighbors - 1:
        raise StageError(f"UMAP needs {n_neighbors - 1} neighbours per point, the graph has {knn[0].shape[1]}")
    found, distances = with_self(*knn, n_neighbors)
    if on_gpu:
        from .gpu_maps import umap_map

        return umap_map(reduce(points, LAYOUT_DIMS, unit=True), (found, distances), n_neighbors, min_dist, seed)
    cache_umap_kernels()
    layout = reduce(points, LAYOUT_DIMS, unit=True)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1,
                        precomputed_knn=(found, distances, None),
                        init=init if len(points) > n_neighbors + 2 and spread_out(layout) else "random")
    with warnings.catch_warnings():  # new images are placed by the parametric maps, not by UMAP's transform
        warnings.filterwarnings("ignore", message="precomputed_knn.* is not an NNDescent object")
        return reducer.fit_transform(layout).astype(np.float32)
