"""The k-means sweep and the choice of k: metrics per k on a grid, the elbow (Kneedle), and a k justified by
where elbow, silhouette and Davies-Bouldin agree. The ``clusters`` stage runs it on each embedding variant;
the bench runs it at growing N.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from .kmeans import kmeans, kmeans_at, restarts

if TYPE_CHECKING:
    from ..engine.config import ClusterConfig


def k_grid(n: int, k_min: int, k_max: int, steps: int) -> tuple[list[int], str]:
    """The k values to try for n images, and a note when the request had to shrink to fit."""
    if n < 3:
        raise StageError(f"clustering needs at least 3 images, got {n}")
    auto = k_max <= 0
    wanted = max(10, int(2 * math.sqrt(n))) if auto else k_max
    top = min(wanted, n - 1)
    note = "" if top == wanted or auto else f"k_max {wanted} is more clusters than {n} images allow; lowered to {top}"
    low = min(max(2, k_min), top)
    return sorted({int(round(k)) for k in np.linspace(low, top, max(1, steps))}), note


def sweep(x: np.ndarray, ks: list[int], n_init: int, sample: int, seed: int, gpu=None) -> dict:
    """Metrics per k; ``labels`` holds the assignment for every k."""
    rows = {"k": [], "silhouette": [], "davies_bouldin": [], "sse": [], "labels": {}}
    for k in ks:
        fit = kmeans_at(x, k, n_init, sample, seed, gpu)
        rows["k"].append(k)
        for key in ("silhouette", "davies_bouldin", "sse"):
            rows[key].append(fit[key])
        rows["labels"][k] = fit["labels"]
    return rows


def kneedle(ks: list[int], sse: list[float]) -> int:
    """The elbow of a decreasing SSE curve: the k farthest below the chord between its ends."""
    if len(ks) < 3:
        return ks[0]
    x = (np.asarray(ks, float) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(sse, float)
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    return int(ks[int(np.argmax((1.0 - y) - x))])


def choose_k(ks: list[int], silhouette: list[float], davies_bouldin: list[float], elbow: int) -> tuple[int, str]:
    if not np.isfinite(np.asarray(silhouette, float)).any():  # fewer than two clusters came out at every k
        return elbow, (f"silhouette and Davies-Bouldin are undefined at every k (k-means found a single cluster: "
                       f"the images are alike); k={elbow}, the elbow of the SSE curve")
    sil, db = np.nan_to_num(silhouette, nan=-1.0), np.nan_to_num(davies_bouldin, nan=np.inf)
    best_sil, best_db = ks[int(np.argmax(sil))], ks[int(np.argmin(db))]
    votes = {"elbow": elbow, "silhouette": best_sil, "Davies-Bouldin": best_db}
    said = f"elbow at k={elbow}, best silhouette at k={best_sil}, best Davies-Bouldin at k={best_db}"
    if elbow == best_sil == best_db:
        return elbow, f"all three agree: {said}"
    for k in (best_sil, best_db, elbow):
        agreeing = [name for name, v in votes.items() if v == k]
        if len(agreeing) >= 2:
            return k, f"{' and '.join(agreeing)} agree on k={k} ({said})"
    shortfall = dict(zip(ks, shortfalls(sil, db)))
    chosen = min(votes.values(), key=lambda k: (shortfall[k], k))
    return chosen, (f"no two agree ({said}); k={chosen} is the nearest to both bests (shortfall "
                    f"{shortfall[chosen]:.2f} of each score's range over the grid)")


def shortfalls(silhouette: np.ndarray, davies_bouldin: np.ndarray) -> np.ndarray:
    """Per k, how far it falls short of the best silhouette plus how far short of the best Davies-Bouldin,
    each as a share of that score's range over the grid. Ranks would turn a 1 % move of a Davies-Bouldin into
    as large a step as a 20 % gap in silhouette (on all 70,000 Fashion-MNIST images such a move flipped k
    from 2 to 22); shares of the range keep the gaps' sizes."""
    def share(gap: np.ndarray) -> np.ndarray:
        finite = gap[np.isfinite(gap)]
        spread = finite.max() - finite.min() if finite.size else 0.0
        return np.nan_to_num(gap / max(spread, 1e-12), nan=1.0, posinf=1.0)

    return share(silhouette.max() - silhouette) + share(davies_bouldin - davies_bouldin.min())


def fitted_on_all(x: np.ndarray, swept_rows: dict, swept: np.ndarray, k: int, cfg: "ClusterConfig", gpu=None
                  ) -> np.ndarray:
    """Every image's cluster at ``k``: the sweep's own assignment when it ran on all images, else k-means
    fitted on all of them (seeded, with the restarts their number calls for)."""
    if len(swept) == len(x):
        return swept_rows["labels"][k]
    return kmeans(x, k, restarts(cfg.n_init, len(x), cfg.n_init_one_from), cfg.seed, gpu)[0]


def medoid_order(x: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Members sorted by distance to their centroid, the most typical first."""
    centre = x[members].mean(axis=0)
    return members[np.argsort(np.linalg.norm(x[members] - centre, axis=1), kind="stable")]

