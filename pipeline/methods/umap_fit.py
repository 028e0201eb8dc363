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
             knn: tuple[np.ndarray, np.ndarray] | None = None, on_gpu: bool = False, init: str = "pca",
             start: np.ndarray | None = None, resume: dict | None = None) -> np.ndarray:
    """A seeded 2-D UMAP of ``points`` at unit length (the cosine space), from ``knn`` (the graph's indices
    and cosine similarities of each point's nearest others) or, without it, from an exact search here.
    ``init``: umap-learn's starting layout (``umap.init``; tiny sets, where neither is defined, start at random).
    ``start``: an earlier map to start from instead (``layout_update.start_layout``), with ``resume``: the
    UMAP arguments of that refit (``n_epochs``, ``learning_rate``); the result is in ``start``'s frame.

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
    if start is not None:
        return resume_umap(layout, found, distances, n_neighbors, min_dist, seed, start, **resume)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1,
                        precomputed_knn=(found, distances, None),
                        init=init if len(points) > n_neighbors + 2 and spread_out(layout) else "random")
    with warnings.catch_warnings():  # new images are placed by the parametric maps, not by UMAP's transform
        warnings.filterwarnings("ignore", message="precomputed_knn.* is not an NNDescent object")
        coords = reducer.fit_transform(layout)
    return coords.astype(np.float32)


def resume_umap(layout: np.ndarray, found: np.ndarray, distances: np.ndarray, n_neighbors: int, min_dist: float,
                seed: int, start: np.ndarray, n_epochs: int, learning_rate: float) -> np.ndarray:
    """umap-learn's own pieces (its fuzzy graph, its a and b, its seeded SGD layout) run from ``start``, in
    ``start``'s frame. ``UMAP.fit`` would first squeeze any starting layout into a [0, 10] box, axis by axis;
    the earlier map is already at the scale its a and b set, and squeezing it makes the layout push itself
    apart again (measured on 5,050 Fashion-MNIST images: old images then moved a median 6 % of the radius)."""
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import INT32_MAX, INT32_MIN, find_ab_params, fuzzy_simplicial_set, make_epochs_per_sample

    random_state = np.random.RandomState(seed)
    graph, _, _ = fuzzy_simplicial_set(layout, n_neighbors, random_state, "euclidean", knn_indices=found,
                                       knn_dists=distances)
    graph = graph.tocoo()
    graph.sum_duplicates()
    graph.data[graph.data < graph.data.max() / float(max(n_epochs, 200))] = 0.0  # as umap-learn prunes
    graph.eliminate_zeros()
    a, b = find_ab_params(1.0, min_dist)
    rng_state = random_state.randint(INT32_MIN, INT32_MAX, 3).astype(np.int64)
    embedding = np.ascontiguousarray(start, np.float32)
    embedding = optimize_layout_euclidean(embedding, embedding, graph.row, graph.col, n_epochs, len(layout),
                                          make_epochs_per_sample(graph.data, n_epochs), a, b, rng_state,
                                          initial_alpha=learning_rate, parallel=False, move_other=True)
    return np.asarray(embedding, np.float32)

