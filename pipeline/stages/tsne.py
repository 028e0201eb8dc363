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

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.gpu_maps import REPRODUCIBILITY, tsne_map, use_cuml
from ..methods.tsne_fit import fft_library, fit_tsne, gradient_method, valid_perplexity  # noqa: F401


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.tsne
    points = ctx.load_npy("pca", "coords")
    labels = manifest_labels(read_manifest(ctx)[0])
    perplexity, note = valid_perplexity(cfg.perplexity, len(points))
    method = gradient_method(cfg.method, len(points), cfg.fft_from)
    started = time.perf_counter()
    on_gpu = use_cuml(cfg.engine, ctx.cfg.device)
    if on_gpu:
        coords, kl, method = tsne_map(points, perplexity, cfg.n_iter, cfg.seed), None, "fft"
    else:
        knn = ctx.load_npy("neighbours", "pca_idx"), ctx.load_npy("neighbours", "pca_values")
        embedding = fit_tsne(points, perplexity, cfg.n_iter, method, cfg.seed, cfg.n_jobs or os.cpu_count() or 1, knn)
        coords, kl = np.asarray(embedding, dtype=np.float32), round(float(embedding.kl_divergence), 4)
    seconds = time.perf_counter() - started
    ctx.save_npy("coords", coords)
    figures.scatter_by_label(coords, labels, f"t-SNE (perplexity {perplexity:g}, {cfg.n_iter} iterations)",
                             ctx.output("map"))
    return {"perplexity": round(perplexity, 3), "requested_perplexity": cfg.perplexity, "adjustment": note,
            "n_iter": cfg.n_iter, "method": method, "fft_library": fft_library() if method == "fft" and not on_gpu else None,
            "neighbours": "cuML's own" if on_gpu else ctx.load_json("neighbours", "pca_facts")["method"], "input_dims": int(points.shape[1]),
            "kl_divergence": kl, "seconds": round(seconds, 3), "engine": "cuML" if on_gpu else "openTSNE",
            "reproducibility": REPRODUCIBILITY if on_gpu else ""}


STAGE = Stage(
    name="tsne",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "pca.coords", "neighbours.pca_idx", "neighbours.pca_values",
            "neighbours.pca_facts"),
    params=("tsne", "device"),
    outputs={"coords": "tsne.npy", "map": "tsne_map.png"},
)
