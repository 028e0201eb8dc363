"""How much a 2-D map depends on its seed: two layouts of the same points compared, point by point.

A map fitted again with another seed may come out turned, mirrored, shifted or scaled, and none of that
changes what it says; so the second layout is first brought onto the first by the best rotation (or
reflection), translation and uniform scale (Procrustes), and only what is left counts as movement. Movement is
given as a share of the first layout's RMS radius (the root of the mean squared distance from its centre), so
maps of different extent compare. Beside it, the share of each point's ``k`` nearest neighbours on the first
layout that are still among its ``k`` nearest on the second: what a reader of the map would notice.
Nothing here fits a map; the ``stability`` stage does, and hands the layouts in.
"""

from __future__ import annotations

import numpy as np

from .knn import nearest


def rms_radius(layout: np.ndarray) -> float:
    """Root of the mean squared distance of the points from their centre."""
    centred = layout - layout.mean(axis=0)
    return float(np.sqrt((centred ** 2).sum(axis=1).mean()))


def standard(layout: np.ndarray) -> np.ndarray:
    """The layout centred and scaled to RMS radius 1 (neighbours and shares do not change)."""
    layout = np.asarray(layout, np.float64)
    return (layout - layout.mean(axis=0)) / max(rms_radius(layout), 1e-12)


def displacement(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Each point's distance between the two layouts as they stand (nothing aligned), as a share of the
    reference's RMS radius."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    return np.linalg.norm(reference - other, axis=1) / max(rms_radius(reference), 1e-12)


def aligned(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` moved onto ``reference`` by the rotation or reflection, translation and uniform scale that
    leave the least squared distance between them (scipy's orthogonal Procrustes, then the optimal scale)."""
    from scipy.linalg import orthogonal_procrustes

    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    ref_centre, other_centre = reference.mean(axis=0), other.mean(axis=0)
    a, b = reference - ref_centre, other - other_centre
    norm = (b ** 2).sum()
    if norm <= 0:  # all of other on one point: the best is to put it at the reference's centre
        return np.broadcast_to(ref_centre, reference.shape).copy()
    rotation, singular_sum = orthogonal_procrustes(b, a)
    return (singular_sum / norm) * (b @ rotation) + ref_centre


def aligned_displacement(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Each point's movement once ``other`` is aligned onto ``reference`` (``aligned``), as a share of the
    reference's RMS radius: 0 for a turned, mirrored, shifted or scaled copy."""
    return displacement(reference, aligned(reference, other))


def neighbour_survival(reference: np.ndarray, other: np.ndarray, k: int = 10) -> np.ndarray:
    """Per point, the share of its ``k`` nearest others on ``reference`` that are among its ``k`` nearest on
    ``other`` (1 for identical layouts). ``k`` is lowered to N - 1 on tiny sets. Each layout is centred and
    scaled first: the search is in float32, where a map far from its origin would lose its small distances."""
    k = min(k, len(reference) - 1)
    if k < 1:
        return np.full(len(reference), np.nan)
    first, second = (standard(layout) for layout in (reference, other))
    first, second = (nearest(layout, layout, k, exclude_self=True) for layout in (first, second))
    return np.array([len(np.intersect1d(a, b)) for a, b in zip(first, second)], np.float64) / k


def summary(moved: list[np.ndarray], kept: list[np.ndarray], rows: np.ndarray | None = None) -> dict:
    """Median and 99th percentile of the movement and the mean neighbour survival, pooled over the refits
    (one array per refit, one value per point), over ``rows`` only when given."""
    moved_all = np.concatenate([m if rows is None else m[rows] for m in moved])
    kept_all = np.concatenate([s if rows is None else s[rows] for s in kept])
    return {"moved_median": round(float(np.median(moved_all)), 4),
            "moved_p99": round(float(np.percentile(moved_all, 99)), 4),
            "neighbours_survive": round(float(np.mean(kept_all)), 4),
            "points": int(len(moved_all) // max(len(moved), 1))}


def compare_refits(reference: np.ndarray, refits: list[np.ndarray], k: int = 10) -> tuple[list, list]:
    """Per refit, every point's aligned movement and neighbour survival against ``reference``."""
    return ([aligned_displacement(reference, layout) for layout in refits],
            [neighbour_survival(reference, layout, k) for layout in refits])
