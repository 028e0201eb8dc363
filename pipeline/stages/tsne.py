"""Stage ``tsne``: openTSNE on the first 50 principal components, seeded.

Inputs: ``ingest`` (labels), ``pca`` (PCA-50), ``neighbours`` (the PCA space's graph: openTSNE's affinities
are built from it, no search of their own). Params: ``tsne``. Outputs: ``coords`` (N, 2) and the ``map``.
The seed's settings are the defaults: perplexity 30, 1,000 iterations (openTSNE splits them into 250
early-exaggeration iterations and 750 more). ``method = "auto"`` picks openTSNE's Barnes-Hut gradient below
``fft_from`` points and its FFT-interpolated gradient from there on, where FFT is the faster one (measured:
the crossover lies near 27,000 points here; ``make bench`` compares both with scikit-learn's t-SNE).
openTSNE is built from source against FFTW (``make install``): its wheel's own FFT is ~20 % slower at 70,000
points. Which one ran is recorded (``fft_library``).
A perplexity too large for the set is lowered to (N - 1) / 3 and the run record says so.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ..artifacts import StageError
from ..manifest import manifest_labels, read_manifest
from ..neighbours import exact_graph
from ..stage import Stage, StageContext

MIN_POINTS = 4


def valid_perplexity(requested: float, n: int) -> tuple[float, str]:
    """The perplexity to use for ``n`` points and, when it had to change, why."""
    if n < MIN_POINTS:
        raise StageError(f"t-SNE needs at least {MIN_POINTS} images, got {n}")
    ceiling = (n - 1) / 3.0  # the neighbourhood is 3 * perplexity points; it must fit in the set
    if requested > ceiling:
        return ceiling, f"perplexity {requested:g} is too large for {n} images; lowered to {ceiling:.2f}"
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


def fit_tsne(points: np.ndarray, perplexity: float, n_iter: int, method: str, seed: int, n_jobs: int,
             knn: tuple[np.ndarray, np.ndarray] | None = None):
    """openTSNE embedding of ``points``; returns the fitted ``TSNEEmbedding`` (it can place new points).

    The affinities are openTSNE's own (the kernel its ``TSNE.fit`` uses, on 3 x perplexity neighbours),
    built from ``knn`` (indices, Euclidean distances of each point's nearest others: the run's graph) instead
    of Annoy's approximate search; without it, from an exact search here.
    """
    from openTSNE import TSNE
    from openTSNE.affinity import MultiscaleMixture
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    k = min(len(points) - 1, int(3 * perplexity))
    if knn is None:
        knn = exact_graph(points, k, "l2", False, 65_536)
    if knn[0].shape[1] < k:
        raise StageError(f"t-SNE needs {k} neighbours per point, the graph has {knn[0].shape[1]}")
    neighbours = np.ascontiguousarray(knn[0][:, :k])
    distances = np.ascontiguousarray(knn[1][:, :k], dtype=np.float64)
    points = np.ascontiguousarray(points, dtype=np.float64)
    affinities = MultiscaleMixture(perplexities=[perplexity], n_jobs=n_jobs, random_state=seed,
                                   knn_index=PrecomputedNeighbors(neighbours, distances))
    exaggeration_iter = min(250, n_iter // 4)
    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter - exaggeration_iter,
                early_exaggeration_iter=exaggeration_iter, negative_gradient_method=method,
                random_state=seed, n_jobs=n_jobs, initialization="pca", verbose=False)
    return tsne.fit(points, affinities=affinities)


def run(ctx: StageContext) -> dict:
    from .. import figures

    cfg = ctx.cfg.tsne
    points = ctx.load_npy("pca", "coords")
    labels = manifest_labels(read_manifest(ctx)[0])
    perplexity, note = valid_perplexity(cfg.perplexity, len(points))
    method = gradient_method(cfg.method, len(points), cfg.fft_from)
    started = time.perf_counter()
    knn = ctx.load_npy("neighbours", "pca_idx"), ctx.load_npy("neighbours", "pca_values")
    embedding = fit_tsne(points, perplexity, cfg.n_iter, method, cfg.seed, cfg.n_jobs or os.cpu_count() or 1, knn)
    seconds = time.perf_counter() - started
    coords = np.asarray(embedding, dtype=np.float32)
    ctx.save_npy("coords", coords)
    figures.scatter_by_label(coords, labels, f"t-SNE (perplexity {perplexity:g}, {cfg.n_iter} iterations)",
                             ctx.output("map"))
    return {"perplexity": round(perplexity, 3), "requested_perplexity": cfg.perplexity, "adjustment": note,
            "n_iter": cfg.n_iter, "method": method, "fft_library": fft_library() if method == "fft" else None,
            "neighbours": ctx.load_json("neighbours", "pca_facts")["method"], "input_dims": int(points.shape[1]),
            "kl_divergence": round(float(embedding.kl_divergence), 4), "seconds": round(seconds, 3)}


STAGE = Stage(
    name="tsne",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "pca.coords", "neighbours.pca_idx", "neighbours.pca_values",
            "neighbours.pca_facts"),
    params=("tsne",),
    outputs={"coords": "tsne.npy", "map": "tsne_map.png"},
)
