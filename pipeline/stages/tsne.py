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

from ..manifest import manifest_labels, read_manifest
from ..stage import Stage, StageContext
from ..tsne_fit import fft_library, fit_tsne, gradient_method, valid_perplexity  # noqa: F401


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
