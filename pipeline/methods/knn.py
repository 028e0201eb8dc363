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


def without_self(found: np.ndarray, values: np.ndarray, k: int, own: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` hits of each row's search that are not the row's own point (``own``: the queries' row
    numbers, by default 0..n-1), and their values (scores or distances). Self is normally the first hit; with
    exact duplicates it may come later."""
    own = np.arange(len(found)) if own is None else np.asarray(own)
    order = np.argsort(found == own[:, None], axis=1, kind="stable")[:, :k]
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


def all_grey(pixels: np.ndarray, block: int = 65_536) -> bool:
    """Whether every image's three channels are equal, checked block by block (a memory-mapped set stays on
    disk)."""
    for rows in query_blocks(len(pixels), block):
        part = np.asarray(pixels[rows])
        if not ((part[..., 0] == part[..., 1]).all() and (part[..., 0] == part[..., 2]).all()):
            return False
    return True


class PixelRows:
    """Small image copies (N, p, p, 3) uint8 seen as flat rows (N, p*p*c) in [0, 1], without copying them: one
    channel when every image is grey. Repeating a grey channel three times scales every dot product and norm
    alike, so cosines (and neighbours) are exactly those of the grey pixels, at a third of the search cost."""

    def __init__(self, pixels: np.ndarray, grey: bool | None = None):
        self.pixels = pixels
        self.grey = all_grey(pixels) if grey is None else grey
        channels = 1 if self.grey else pixels.shape[-1]
        self.shape = (len(pixels), int(np.prod(pixels.shape[1:-1])) * channels)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        part = np.asarray(self.pixels[rows])
        if self.grey:
            part = part[..., :1]
        return part.reshape(len(part), -1).astype(np.float32) / 255.0


def rows_as_float32(x: np.ndarray, rows: slice | np.ndarray, unit: bool) -> np.ndarray:
    """A block of rows of a (possibly memory-mapped) array, as contiguous float32, at unit length if asked."""
    block = np.ascontiguousarray(x[rows], dtype=np.float32)
    return normalise(block) if unit else block


def query_blocks(n: int, block: int):
    for start in range(0, n, block):
        yield slice(start, min(n, start + block))


def finish(found: np.ndarray, values: np.ndarray, k: int, metric: str, own: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """Drop each query's own point, keep ``k`` hits; similarities stay, squared distances become distances."""
    found, values = without_self(found, values, k, own)
    if metric == "l2":
        values = np.sqrt(np.maximum(values, 0.0))
    return found.astype(np.int64), values.astype(np.float32)


def database(x: np.ndarray, unit: bool, block: int):
    """The rows of ``x`` block by block, as float32 (at unit length if asked): what exact search streams."""
    for rows in query_blocks(len(x), block):
        yield rows_as_float32(x, rows, unit)


def exact_search(x: np.ndarray, rows: np.ndarray, k: int, metric: str, unit: bool, block: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other points of the given rows of ``x``, by exact search over all of ``x``.

    FAISS's ``knn_ground_truth`` streams the data block by block (BLAS for each block, results merged in a
    heap), so the data is never held whole; it runs on the GPUs when FAISS sees any.
    """
    import faiss
    from faiss.contrib.exhaustive_search import knn_ground_truth

    kind = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    values, found = knn_ground_truth(rows_as_float32(x, rows, unit), database(x, unit, block), k + 1, kind)
    return finish(found, values, k, metric, rows)


def exact_graph(x: np.ndarray, k: int, metric: str, unit: bool, block: int, progress=None):
    """(indices, values) of every row's ``k`` nearest other rows by exact search.

    ``values`` are cosine similarities (``metric = "ip"`` on unit rows) or Euclidean distances (``"l2"``).
    """
    found = np.empty((len(x), k), np.int64)
    values = np.empty((len(x), k), np.float32)
    step = max(block, 65_536)  # many queries per pass over the data: one read of it per pass
    for rows in query_blocks(len(x), step):
        found[rows], values[rows] = exact_search(x, np.arange(rows.start, rows.stop), k, metric, unit, block)
        if progress is not None:
            progress(rows.stop - rows.start)
    return found, values


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true k nearest neighbours that were found."""
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(a[:k], b)) / k for a, b in zip(found, truth)]))


def recall_with_ties(found_values: np.ndarray, truth_values: np.ndarray, metric: str) -> float:
    """recall@k where equally near points are interchangeable: the mean share of each row's k hits that are at
    least as near as its k-th true neighbour (values as ``finish`` returns them). Without ties it is
    ``recall_at_k``; with exact duplicates any k of the equal copies are a right answer, which comparing indices
    counts wrong (an index tuned on that would search everything and still fall short)."""
    kth = truth_values[:, -1:]
    slack = 1e-5 * np.maximum(1.0, np.abs(kth))
    near = found_values >= kth - slack if metric == "ip" else found_values <= kth + slack
    return float(near[:, :truth_values.shape[1]].mean())


def outlier_scores(similarities: np.ndarray, k: int) -> np.ndarray:
    """Each image's k-NN distance: its mean cosine distance (1 - similarity) to its ``k`` nearest neighbours,
    read from the graph's similarities (N, >= k). Large: far from everything else, an outlier."""
    return (1.0 - similarities[:, :k].mean(axis=1)).astype(np.float32)
