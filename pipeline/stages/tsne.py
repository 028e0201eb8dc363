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
When this output folder holds an earlier t-SNE of the same settings (``keep_place``), the map starts from it
(``methods.layout_update``: old images where they were, new ones among their neighbours) and runs
``tsne.resume_iter`` iterations without early exaggeration; the summary's ``since_last`` says how many images
were kept, added and removed and how far the old ones moved. ``row_ids`` (each row's content sha256) is what
the next run matches rows by.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_ids, manifest_labels, read_manifest
from ..methods import layout_update
from ..methods.gpu_maps import REPRODUCIBILITY, tsne_map, use_cuml
from ..methods.tsne_fit import fft_library, fit_tsne, gradient_method, resume_tsne, valid_perplexity  # noqa: F401

log = logging.getLogger("embdeck")


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.tsne
    points = ctx.load_npy("pca", "coords")
    manifest = read_manifest(ctx)[0]
    labels, ids = manifest_labels(manifest), manifest_ids(manifest)
    perplexity, note = valid_perplexity(cfg.perplexity, len(points))
    method = gradient_method(cfg.method, len(points), cfg.fft_from)
    started = time.perf_counter()
    on_gpu = use_cuml(cfg.engine, ctx.cfg.device)
    resumed, since, n_iter = ctx.earlier is not None and not on_gpu, None, cfg.n_iter
    if on_gpu:
        coords, kl, method = tsne_map(points, perplexity, cfg.n_iter, cfg.seed), None, "fft"
    else:
        knn = ctx.load_npy("neighbours", "pca_idx"), ctx.load_npy("neighbours", "pca_values")
        jobs = cfg.n_jobs or os.cpu_count() or 1
        if resumed:
            earlier = ctx.earlier_npy("coords")
            match = layout_update.carried(ctx.earlier_npy("row_ids"), ids)
            start = layout_update.start_layout(earlier, match, knn[0], cfg.seed)
            embedding, n_iter = resume_tsne(points, perplexity, cfg.resume_iter, method, cfg.seed, jobs, knn, start), cfg.resume_iter
        else:
            embedding = fit_tsne(points, perplexity, cfg.n_iter, method, cfg.seed, jobs, knn)
        coords, kl = np.asarray(embedding, dtype=np.float32), round(float(embedding.kl_divergence), 4)
        if resumed:
            since = layout_update.moved(earlier, coords, match)
            log.info(layout_update.said("t-SNE", since))
    seconds = time.perf_counter() - started
    ctx.save_npy("coords", coords)
    ctx.save_npy("row_ids", ids)
    how = f"{n_iter} iterations from the last run's map" if resumed else f"{n_iter} iterations"
    figures.scatter_by_label(coords, labels, f"t-SNE (perplexity {perplexity:g}, {how})", ctx.output("map"))
    return {"perplexity": round(perplexity, 3), "requested_perplexity": cfg.perplexity, "adjustment": note,
            "n_iter": n_iter, "resumed": resumed, "since_last": since, "method": method, "fft_library": fft_library() if method == "fft" and not on_gpu else None,
            "neighbours": "cuML's own" if on_gpu else ctx.load_json("neighbours", "pca_facts")["method"], "input_dims": int(points.shape[1]),
            "kl_divergence": kl, "seconds": round(seconds, 3), "engine": "cuML" if on_gpu else "openTSNE",
            "reproducibility": REPRODUCIBILITY if on_gpu else ""}


STAGE = Stage(
    name="tsne",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "pca.coords", "neighbours.pca_idx", "neighbours.pca_values",
            "neighbours.pca_facts"),
    params=("tsne", "device"),
    outputs={"coords": "tsne.npy", "row_ids": "row_ids.npy", "map": "tsne_map.png"},
    resumes=("coords", "row_ids"),
)
