"""A neighbour graph grown with its collection: the earlier graph's rows kept, only the new rows searched.

When rows were only added (``layout_update.carried``: matched by content, none removed), every old row keeps its
earlier list, renumbered, and gains any new row nearer than its k-th neighbour (an exact search of the old rows
against the new rows alone); every new row gets its neighbours by exact search over all rows. Each old row's
new list is then exactly what a search would add to its earlier one, so the graph is as good as the earlier one
(an exact graph stays exact) at the cost of ``added x N`` distances instead of ``N x N``. A removed row, or an
image that appears twice, would leave holes in the earlier lists: then (and when too many rows are new for this
to be the cheaper way) the stage searches all rows again.
"""

from __future__ import annotations

import numpy as np

from .knn import exact_search, flat_search, query_blocks, rows_as_float32
from .layout_update import Carried


def can_grow(match: Carried, earlier_k: int, k: int, up_to: float) -> str:
    """Why the earlier graph cannot be grown into this run's ("" when it can)."""
    if match.removed:
        return f"{match.removed:,} images were removed"
    if len(np.unique(match.before)) != len(match.before):
        return "an image appears more than once"
    if earlier_k != k:
        return f"the earlier graph has {earlier_k} neighbours a row, this run needs {k}"
    if match.added > up_to * match.total:
        return f"{match.added:,} new images are more than {up_to:.0%} of the set: one search of all is cheaper"
    return ""


def merged(idx: np.ndarray, values: np.ndarray, more_idx: np.ndarray, more_values: np.ndarray, k: int,
           metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best of its two lists (most similar first for ``ip``, nearest first for ``l2``)."""
    both_idx, both_values = np.hstack([idx, more_idx]), np.hstack([values, more_values])
    order = np.argsort(-both_values if metric == "ip" else both_values, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(both_idx, order, 1), np.take_along_axis(both_values, order, 1)


def grown_graph(x, earlier_idx: np.ndarray, earlier_values: np.ndarray, match: Carried, metric: str, unit: bool,
                block: int, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """This run's graph from the earlier one (``can_grow`` must have said yes): indices and values as
    ``knn.exact_graph`` returns them."""
    n, k = match.total, earlier_idx.shape[1]
    renumber = np.empty(match.earlier_total, np.int64)
    renumber[match.before] = match.now
    idx, values = np.empty((n, k), np.int64), np.empty((n, k), np.float32)
    idx[match.now] = renumber[np.asarray(earlier_idx)[match.before]]
    values[match.now] = np.asarray(earlier_values)[match.before]
    new = np.setdiff1d(np.arange(n), match.now)
    if len(new) == 0:
        return idx, values
    for start in range(0, len(new), block):
        rows = new[start:start + block]
        idx[rows], values[rows] = exact_search(x, rows, k, metric, unit, block)
    if progress is not None:
        progress(len(new))
    added = rows_as_float32(x, new, unit)
    reach = min(k, len(new))
    for part in query_blocks(len(match.now), block):
        rows = match.now[part]
        found, hits = flat_search(added, rows_as_float32(x, rows, unit), reach, metric)[::-1]
        if metric == "l2":
            hits = np.sqrt(np.maximum(hits, 0.0))
        idx[rows], values[rows] = merged(idx[rows], values[rows], new[found], hits.astype(np.float32), k, metric)
        if progress is not None:
            progress(len(rows))
    return idx, values
