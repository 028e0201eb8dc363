"""Stage ``pca``: principal components of the global embeddings.

Inputs: ``ingest`` (labels), ``extract`` (embeddings). Params: ``pca``. Outputs: ``coords`` (N, k) the
first k = min(n_components, N, D) components (t-SNE runs on these; fitted block by block, so memory stays
bounded), ``explained_variance`` (the full
spectrum's ratios), and two figures: the 2-D ``map`` coloured by label and the cumulative explained-variance
curve (``variance``) with the number of components that reach 90 %.
"""

from __future__ import annotations

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.pca_fit import components_for, covariance, fit_pca


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.pca
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    labels = manifest_labels(read_manifest(ctx)[0])
    if len(embeddings) < 3:
        raise StageError(f"PCA needs at least 3 images for a 2-D map, got {len(embeddings)}")
    from ..methods.accel import moments  # the covariance on a GPU when there is one

    projected, ratio = fit_pca(embeddings, cfg.n_components, cfg.whiten, moments(ctx.cfg.device) or covariance)
    ctx.save_npy("coords", projected)
    ctx.save_npy("explained_variance", ratio)
    reach90 = components_for(ratio, 0.90)
    figures.scatter_by_label(projected[:, :2], labels, "PCA of the image embeddings", ctx.output("map"),
                             xlabel=f"PC1 ({ratio[0]:.1%} of variance)", ylabel=f"PC2 ({ratio[1]:.1%})")
    shown = min(len(ratio), max(reach90 * 2, 50))
    figures.line_plot(np.arange(1, shown + 1), {"cumulative": np.cumsum(ratio)[:shown]},
                      "Explained variance", ctx.output("variance"), "components", "cumulative share",
                      marks={f"90 % at {reach90}": reach90})
    return {
        "components": int(projected.shape[1]),
        "pc1_pc2_variance": [round(float(ratio[0]), 4), round(float(ratio[1]), 4)],
        "variance_kept": round(float(np.sum(ratio[:projected.shape[1]])), 4),
        "components_for_90": reach90,
    }


STAGE = Stage(
    name="pca",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings"),
    params=("pca", "device"),
    outputs={"coords": "pca.npy", "explained_variance": "explained_variance.npy", "map": "pca_map.png",
             "variance": "pca_variance.png"},
)
