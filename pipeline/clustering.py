"""k-means as embdeck runs it, one way for every stage: on unit-length features reduced by PCA, seeded, with
silhouette (sampled on large sets), Davies-Bouldin and SSE. The ``clusters`` stage sweeps k with it; the
backbone comparison clusters every backbone and pooling at the k that sweep chose.
"""

from __future__ import annotations

import numpy as np

from .neighbours import normalise
from .pca_fit import reduce


def restarts(n_init: int, n: int, one_from: int) -> int:
    """k-means restarts for n images: as set, or (0) four on small sets and one on large ones."""
    if n_init > 0:
        return n_init
    return 1 if n >= one_from else 4


def prepare(features: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Each image's features at unit length, reduced by PCA: what k-means runs on."""
    return reduce(normalise(features), dims, seed)


def kmeans_at(x: np.ndarray, k: int, n_init: int, sample: int, seed: int) -> dict:
    """k-means with k clusters on prepared features: the assignment and its silhouette, Davies-Bouldin and SSE
    (NaN where fewer than two clusters, or one per point, came out)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    found = len(np.unique(model.labels_))
    ok = 2 <= found <= len(x) - 1
    silhouette = silhouette_score(x, model.labels_, sample_size=sample if len(x) > sample else None,
                                  random_state=seed) if ok else float("nan")
    return {"labels": model.labels_.astype(np.int32), "silhouette": float(silhouette),
            "davies_bouldin": float(davies_bouldin_score(x, model.labels_)) if ok else float("nan"),
            "sse": float(model.inertia_)}
