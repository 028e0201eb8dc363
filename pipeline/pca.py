"""Stage ``pca``: principal components of the global embeddings.

Inputs: ``ingest`` (labels), ``extract`` (embeddings). Params: ``pca``. Outputs: ``pca.npy`` (N, k) the
first k = min(n_components, N, D) components (t-SNE runs on these), ``explained_variance.npy`` (the
full spectrum's ratios), and two figures: the 2-D map coloured by label and the cumulative
explained-variance curve with the number of components that reach 90 %.
"""

from __future__ import annotations

import numpy as np

from .ingest import manifest_labels, read_manifest
from .runner import Stage, StageContext, StageError


def fit_pca(embeddings: np.ndarray, n_components: int, whiten: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(projection onto the first k components, explained-variance ratio of every component)."""
    from sklearn.decomposition import PCA

    full = PCA(n_components=None, whiten=whiten, svd_solver="covariance_eigh", random_state=seed)
    projected = full.fit_transform(embeddings.astype(np.float64))
    k = min(n_components, *embeddings.shape)
    return projected[:, :k].astype(np.float32), full.explained_variance_ratio_


def components_for(ratio: np.ndarray, share: float) -> int:
    """The smallest number of components whose cumulative explained variance reaches ``share``."""
    return int(np.searchsorted(np.cumsum(ratio), share - 1e-12) + 1)


def run(ctx: StageContext) -> dict:
    from . import figures

    cfg = ctx.cfg.pca
    embeddings = ctx.load_npy("extract", "embeddings.npy")
    labels = manifest_labels(read_manifest(ctx)[0])
    if len(embeddings) < 3:
        raise StageError(f"PCA needs at least 3 images for a 2-D map, got {len(embeddings)}")
    projected, ratio = fit_pca(embeddings, cfg.n_components, cfg.whiten, cfg.seed)
    ctx.save_npy("pca.npy", projected)
    ctx.save_npy("explained_variance.npy", ratio)
    reach90 = components_for(ratio, 0.90)
    figures.scatter_by_label(projected[:, :2], labels, "PCA of the image embeddings", ctx.out_dir / "pca_map.png",
                             xlabel=f"PC1 ({ratio[0]:.1%} of variance)", ylabel=f"PC2 ({ratio[1]:.1%})")
    shown = min(len(ratio), max(reach90 * 2, 50))
    figures.line_plot(np.arange(1, shown + 1), {"cumulative": np.cumsum(ratio)[:shown]},
                      "Explained variance", ctx.out_dir / "pca_variance.png", "components", "cumulative share",
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
    deps=("ingest", "extract"),
    params=("pca",),
    outputs=("pca.npy", "explained_variance.npy", "pca_map.png", "pca_variance.png"),
    code=("pipeline.figures", "pipeline.ingest"),
)
