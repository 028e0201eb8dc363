"""How faithful a 2-D map is to the embedding space: small functions, testable alone.

Both measures compare each point's neighbours in the embedding space with its neighbours on the map.
On large sets they are computed on a seeded sample of points: the neighbour share takes a sampled point's
neighbours among all points (from the run's graph when there is one, so nothing is searched again in the
embedding space); trustworthiness needs full rank matrices, so it uses the sample alone.
"""

from __future__ import annotations

import numpy as np

from .knn import nearest, normalise
from .sampling import sample_indices

SAMPLE = 5000


def shared_share(high_nn: np.ndarray, low_nn: np.ndarray) -> float:
    shared = [len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(high_nn, low_nn)]
    return float(np.mean(shared) / high_nn.shape[1])


def neighbours_kept(high: np.ndarray, low: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Mean share of each point's k nearest neighbours in ``high`` that are also among its k on ``low``."""
    k = min(k, len(high) - 1)
    if k < 1:
        return float("nan")
    picks = sample_indices(len(high), SAMPLE, seed)
    return shared_share(nearest(high, high[picks], k, exclude_self=True), nearest(low, low[picks], k, exclude_self=True))


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """scikit-learn's trustworthiness (1 = no false neighbours on the map), on a sample when N is large."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    picks = sample_indices(len(high), SAMPLE, seed)
    k = min(k, (len(picks) - 1) // 2)
    if k < 1:
        return float("nan")
    return float(sk_trustworthiness(high[picks], low[picks], n_neighbors=k))


def map_fidelity(high: np.ndarray, low: np.ndarray, k: int = 10, seed: int = 0) -> dict:
    return {"trustworthiness": round(trustworthiness(high, low, k, seed), 4),
            "neighbours_kept": round(neighbours_kept(high, low, k, seed), 4), "points": int(len(high))}


def graph_fidelity(embeddings: np.ndarray, graph: np.ndarray, low: np.ndarray, k: int = 10, seed: int = 0) -> dict:
    """``map_fidelity`` of a map of every image, in the cosine space, with each sampled image's neighbours read
    from the run's graph (``graph``: (N, >= k) nearest others) rather than searched again."""
    k = min(k, graph.shape[1], len(low) - 1)
    if k < 1:
        return {"trustworthiness": float("nan"), "neighbours_kept": float("nan"), "points": int(len(low))}
    picks = sample_indices(len(low), SAMPLE, seed)
    kept = shared_share(graph[picks, :k], nearest(low, low[picks], k, exclude_self=True))
    return {"trustworthiness": round(trustworthiness(normalise(embeddings[picks]), low[picks], k, seed), 4),
            "neighbours_kept": round(kept, 4), "points": int(len(low))}
