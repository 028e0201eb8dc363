"""PCA fitting, one way for every stage: scikit-learn's covariance eigensolver, seeded."""

from __future__ import annotations

import numpy as np


def make_pca(n_components: int | None, seed: int, whiten: bool = False):
    from sklearn.decomposition import PCA

    return PCA(n_components=n_components, whiten=whiten, svd_solver="covariance_eigh", random_state=seed)


def fit_pca(embeddings: np.ndarray, n_components: int, whiten: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(projection onto the first k components, explained-variance ratio of every component)."""
    full = make_pca(None, seed, whiten)
    projected = full.fit_transform(embeddings.astype(np.float64))
    k = min(n_components, *embeddings.shape)
    return projected[:, :k].astype(np.float32), full.explained_variance_ratio_


def components_for(ratio: np.ndarray, share: float) -> int:
    """The smallest number of components whose cumulative explained variance reaches ``share``."""
    return int(np.searchsorted(np.cumsum(ratio), share - 1e-12) + 1)


def reduce(features: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """``features`` (already scaled as wanted) reduced to at most ``dims`` principal components, float32."""
    dims = min(dims, *features.shape)
    return make_pca(dims, seed).fit_transform(features).astype(np.float32)


def scaled_projection(train: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre, D x d projection), fitted on training rows only, scaled so the first component has unit spread.

    One scale for all components (not whitening): whitening would blow the low-variance, mostly-noise
    components up to the size of the informative ones, and a network would then fit noise.
    """
    dims = min(dims, *train.shape)
    pca = make_pca(dims, seed).fit(train.astype(np.float64))
    projection = pca.components_.T / np.sqrt(pca.explained_variance_[0] + 1e-12)
    return pca.mean_.astype(np.float32), projection.astype(np.float32)
