"""PCA fitting, one way for every stage: the covariance matrix summed block by block, then its eigenvectors.

This is scikit-learn's ``covariance_eigh`` solver without its copy of the data: the mean and the D x D
covariance are accumulated in float64 over blocks of rows, so a memory-mapped (N, D) array is never held in
memory whole (a million 1280-d embeddings would take 10 GB in float64). Signs follow scikit-learn's
``svd_flip`` (each component's largest entry positive), so the result does not depend on the solver's whim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .knn import normalise

BLOCK = 16_384  # rows per block: 16,384 x 1280 float64 is 168 MB (and its centred copy)


def spread_out(x: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether the rows of ``x`` are not all in one place (a set of identical images is): a PCA start needs
    a spread, and umap-learn and openTSNE divide by it, turning every coordinate into NaN when it is 0."""
    return bool(len(x)) and float(np.ptp(x, axis=0).max()) >= tol


def blocks(n: int, size: int = BLOCK):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@dataclass
class FittedPca:
    mean: np.ndarray  # (D,) float64
    components: np.ndarray  # (k, D) float64, rows sorted by explained variance
    explained_variance: np.ndarray  # (k,)
    ratio: np.ndarray  # explained-variance ratio of each kept component (of the whole spectrum)

    unit: bool = False  # rows were scaled to unit length before fitting (and are before projecting)

    def transform(self, x: np.ndarray, k: int | None = None, whiten: bool = False, dtype=np.float32) -> np.ndarray:
        """Rows of ``x`` (any array, memory-mapped too) projected onto the first ``k`` components, by block."""
        k = len(self.components) if k is None else k
        out = np.empty((len(x), k), dtype)
        basis = self.components[:k].T
        scale = np.sqrt(self.explained_variance[:k]) if whiten else None
        for rows in blocks(len(x)):
            projected = (as_rows(x[rows], self.unit) - self.mean) @ basis
            out[rows] = projected / np.maximum(scale, 1e-12) if whiten else projected
        return out


def as_rows(block: np.ndarray, unit: bool) -> np.ndarray:
    return np.asarray(normalise(block) if unit else block, np.float64)


def covariance(x: np.ndarray, rows: np.ndarray | None, unit: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, covariance, count) of the rows of ``x`` (or its ``rows``), in float64, block by block."""
    n = len(x) if rows is None else len(rows)
    d = x.shape[1]

    def block_of(part: slice) -> np.ndarray:
        return as_rows(x[part] if rows is None else x[rows[part]], unit)

    mean = sum(block_of(part).sum(axis=0) for part in blocks(n)) / n
    scatter = np.zeros((d, d))
    for part in blocks(n):  # a second pass, on centred rows: no cancellation between large sums
        centred = block_of(part) - mean
        scatter += centred.T @ centred
    return mean, scatter / max(n - 1, 1), n


def fit(x: np.ndarray, n_components: int | None = None, rows: np.ndarray | None = None, unit: bool = False,
        moments=covariance) -> FittedPca:
    """PCA of ``x`` (or of the rows ``rows`` of it), keeping ``n_components`` (None: min(N, D)); ``unit``
    scales each row to unit length first. ``moments`` computes (mean, covariance, count): this module's,
    or ``accel.covariance`` bound to a GPU."""
    mean, covariance, n = moments(x, rows, unit)
    d = x.shape[1]
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, components = np.maximum(values[order], 0.0), vectors[:, order].T
    from sklearn.utils.extmath import svd_flip

    _, components = svd_flip(None, components, u_based_decision=False)
    keep = min(n, d) if n_components is None else min(n_components, n, d)
    ratio = values / max(values.sum(), 1e-300)
    return FittedPca(mean, components[:keep], values[:keep], ratio[:keep], unit)


def fit_pca(embeddings: np.ndarray, n_components: int, whiten: bool, moments=covariance
            ) -> tuple[np.ndarray, np.ndarray]:
    """(projection onto the first k components, explained-variance ratio of every component)."""
    pca = fit(embeddings, moments=moments)
    k = min(n_components, *embeddings.shape)
    return pca.transform(embeddings, k, whiten), pca.ratio


def components_for(ratio: np.ndarray, share: float) -> int:
    """The smallest number of components whose cumulative explained variance reaches ``share``."""
    return int(np.searchsorted(np.cumsum(ratio), share - 1e-12) + 1)


def reduce(features: np.ndarray, dims: int, unit: bool = False, moments=covariance) -> np.ndarray:
    """``features`` (each row at unit length first, if asked) reduced to at most ``dims`` principal components."""
    return fit(features, dims, unit=unit, moments=moments).transform(features)


def scaled_projection(train: np.ndarray, dims: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(centre, D x d projection), fitted on training rows only, scaled so the first component has unit spread.

    One scale for all components (not whitening): whitening would blow the low-variance, mostly-noise
    components up to the size of the informative ones, and a network would then fit noise.
    """
    pca = fit(train, dims, rows)
    projection = pca.components.T / np.sqrt(pca.explained_variance[0] + 1e-12)
    return pca.mean.astype(np.float32), projection.astype(np.float32)
