"""Nearest-neighbour search, in one place: exact FAISS flat search, dropping the point itself, normalising.

Euclidean search returns distances, cosine search returns similarities; both return the hits in order,
nearest first.
"""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), so inner products are cosines."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def flat_search(base: np.ndarray, queries: np.ndarray, k: int, metric: str = "l2") -> tuple[np.ndarray, np.ndarray]:
    """(values, indices) of each query's ``k`` nearest rows of ``base`` by exact search; values are squared
    distances (``l2``) or inner products (``ip``)."""
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatL2(base.shape[1]) if metric == "l2" else faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def exact_knn(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, Euclidean distances) of each point's k nearest points, itself included (first, as umap-learn
    expects)."""
    squared, found = flat_search(points, points, k)
    return found.astype(np.int64), np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)


def without_self(found: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` hits of each row's search that are not the row's own point, and their values (scores or
    distances). Self is normally the first hit; with exact duplicates it may come later."""
    order = np.argsort(found == np.arange(len(found))[:, None], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, 1), np.take_along_axis(values, order, 1)


def cosine_neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of each image's k nearest other images."""
    unit = normalise(embeddings)
    k = min(k, len(unit) - 1)
    scores, found = flat_search(unit, unit, k + 1, metric="ip")
    return without_self(found, scores, k)


def nearest(points: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """Indices of the k nearest points (Euclidean, exact) for each query; ``exclude_self`` drops the first hit
    (the query itself, when the queries are rows of ``points``)."""
    _, found = flat_search(points, queries, k + int(exclude_self))
    return found[:, 1:] if exclude_self else found


def knn_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """Majority label of each test row's k nearest training rows by cosine; a tie goes to the smallest label,
    as in scikit-learn's ``KNeighborsClassifier``."""
    _, found = flat_search(normalise(train), normalise(test), k, metric="ip")
    votes = train_labels[found]
    counts = np.stack([(votes == c).sum(axis=1) for c in range(int(train_labels.max()) + 1)], axis=1)
    return counts.argmax(axis=1)
