"""k-means as embdeck runs it, one way for every stage: on unit-length features reduced by PCA, seeded, with
silhouette (sampled on large sets), Davies-Bouldin and SSE. The ``clusters`` stage sweeps k with it; the
backbone comparison clusters every backbone and pooling at the k that sweep chose.
"""

from __future__ import annotations

import numpy as np

from .knn import normalise
from .pca_fit import covariance, reduce


def restarts(n_init: int, n: int, one_from: int) -> int:
    """k-means restarts for n images: as set, or (0) four on small sets and one on large ones."""
    if n_init > 0:
        return n_init
    return 1 if n >= one_from else 4


def prepare(features: np.ndarray, dims: int, moments=covariance) -> np.ndarray:
    """Each image's features at unit length, reduced by PCA: what k-means runs on (block by block)."""
    return reduce(features, dims, unit=True, moments=moments)


class UnitConcatenation:
    """Two feature arrays side by side, each row of each at unit length, read block by block (never built
    whole), so that neither half of the concatenation dominates."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        self.a, self.b = a, b
        self.shape = (len(a), a.shape[1] + b.shape[1])

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, rows) -> np.ndarray:
        return np.hstack([normalise(self.a[rows]), normalise(self.b[rows])])


def kmeans(x: np.ndarray, k: int, n_init: int, seed: int, gpu=None) -> tuple[np.ndarray, float]:
    """(labels, SSE) of seeded k-means: scikit-learn's, or on a GPU ``accel.kmeans`` (its best of ``n_init``
    seeded starts, as scikit-learn keeps the best of its restarts)."""
    if gpu is None:
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
        return model.labels_.astype(np.int32), float(model.inertia_)
    from .accel import kmeans as on_device

    return min((on_device(x, k, seed + start, gpu) for start in range(n_init)), key=lambda found: found[1])


def kmeans_at(x: np.ndarray, k: int, n_init: int, sample: int, seed: int, gpu=None) -> dict:
    """k-means with k clusters on prepared features: the assignment and its silhouette, Davies-Bouldin and SSE
    (NaN where fewer than two clusters, or one per point, came out)."""
    from sklearn.metrics import davies_bouldin_score, silhouette_score

    labels, sse = kmeans(x, k, n_init, seed, gpu)
    found = len(np.unique(labels))
    ok = 2 <= found <= len(x) - 1
    silhouette = silhouette_score(x, labels, sample_size=sample if len(x) > sample else None,
                                  random_state=seed) if ok else float("nan")
    return {"labels": labels, "silhouette": float(silhouette),
            "davies_bouldin": float(davies_bouldin_score(x, labels)) if ok else float("nan"), "sse": sse}
