"""t-SNE as embdeck fits it, one way for every stage: openTSNE on a precomputed neighbour graph, seeded.

The ``tsne`` stage maps the run's embeddings with it; the backbone comparison maps every backbone and pooling
with the same function, so their trustworthiness figures are comparable with the main map's.
"""

from __future__ import annotations

import numpy as np

from ..engine.artifacts import StageError
from .knn import exact_graph
from .pca_fit import spread_out

MIN_POINTS = 4


def valid_perplexity(requested: float, n: int) -> tuple[float, str]:
    """The perplexity to use for ``n`` points and, when it had to change, why."""
    if n < MIN_POINTS:
        raise StageError(f"t-SNE needs at least {MIN_POINTS} images, got {n}")
    ceiling = (n - 1) / 3.0  # the neighbourhood is 3 * perplexity points; it must fit in the set
    if requested > ceiling:
        return ceiling, f"perplexity {requested:g} is too large for {n} images; lowered to {ceiling:.2f}"
    if requested <= 0:
        raise StageError(f"tsne.perplexity must be positive, got {requested:g}")
    return float(requested), ""


def gradient_method(method: str, n: int, fft_from: int) -> str:
    if method == "auto":
        return "fft" if n >= fft_from else "bh"
    if method not in ("fft", "bh"):
        raise StageError(f"tsne.method must be auto, fft or bh, got {method!r}")
    return method


def fft_library() -> str:
    """``"FFTW"`` when openTSNE's FFT gradient was built against FFTW, else ``"numpy"`` (its wheel's fallback)."""
    from pathlib import Path

    import openTSNE

    for lib in (Path(openTSNE.__file__).parent / "_matrix_mul").glob("*.so"):
        if b"fftw_execute" in lib.read_bytes():
            return "FFTW"
    return "numpy"


def affinities(points: np.ndarray, perplexity: float, seed: int, n_jobs: int,
               knn: tuple[np.ndarray, np.ndarray] | None = None):
    """openTSNE's affinities (the kernel its ``TSNE.fit`` uses, on 3 x perplexity neighbours), built from
    ``knn`` (indices, Euclidean distances of each point's nearest others: the run's graph) instead of Annoy's
    approximate search; without it, from an exact search here."""
    from openTSNE.affinity import MultiscaleMixture
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    k = min(len(points) - 1, int(3 * perplexity))
    if knn is None:
        knn = exact_graph(points, k, "l2", False, 65_536)
    if knn[0].shape[1] < k:
        raise StageError(f"t-SNE needs {k} neighbours per point, the graph has {knn[0].shape[1]}")
    neighbours = np.ascontiguousarray(knn[0][:, :k])
    distances = np.ascontiguousarray(knn[1][:, :k], dtype=np.float64)
    return MultiscaleMixture(perplexities=[perplexity], n_jobs=n_jobs, random_state=seed,
                             knn_index=PrecomputedNeighbors(neighbours, distances))


def fit_tsne(points: np.ndarray, perplexity: float, n_iter: int, method: str, seed: int, n_jobs: int,
             knn: tuple[np.ndarray, np.ndarray] | None = None):
    """openTSNE embedding of ``points``; returns the fitted ``TSNEEmbedding`` (it can place new points)."""
    from openTSNE import TSNE

    similar = affinities(points, perplexity, seed, n_jobs, knn)
    points = np.ascontiguousarray(points, dtype=np.float64)
    exaggeration_iter = min(250, n_iter // 4)
    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter - exaggeration_iter,
                early_exaggeration_iter=exaggeration_iter, negative_gradient_method=method,
                random_state=seed, n_jobs=n_jobs, initialization="pca" if spread_out(points) else "random",
                verbose=False)
    return tsne.fit(points, affinities=similar)


def resume_tsne(points: np.ndarray, perplexity: float, n_iter: int, method: str, seed: int, n_jobs: int,
                knn: tuple[np.ndarray, np.ndarray] | None, start: np.ndarray):
    """openTSNE from ``start`` (an earlier map, new points placed among their neighbours): ``n_iter``
    iterations of its normal phase (exaggeration 1, momentum 0.8, learning rate N), with no early exaggeration,
    which would first pull the old layout into tight clumps and scatter it."""
    from openTSNE import TSNEEmbedding

    embedding = TSNEEmbedding(np.ascontiguousarray(start, np.float64), affinities(points, perplexity, seed, n_jobs, knn),
                              negative_gradient_method=method, random_state=seed, n_jobs=n_jobs, verbose=False)
    return embedding.optimize(n_iter=n_iter, exaggeration=None, momentum=0.8, learning_rate="auto")
