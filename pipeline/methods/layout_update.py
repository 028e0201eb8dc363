"""A map kept in place when the collection changes: where each image starts, and how far the old ones moved.

Rows are matched by content (the sha256 ingest takes), so a renamed file keeps its place and a file rewritten
under its name is a new image. Images already on the earlier map start where they were; a new image starts at
the median of its nearest neighbours' places (the run's graph) among the images that were there, as openTSNE's
``prepare_partial`` places new points. What the maps do from that start is theirs (``tsne_fit``, ``umap_fit``,
``map_head_training``); how far the old images moved is measured as the ``stability`` stage measures seeds:
after the best rotation and scale (Procrustes), as a share of the earlier map's RMS radius.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stability


@dataclass(frozen=True)
class Carried:
    """Which rows of this run were on the earlier map, and where: ``now[i]`` was row ``before[i]`` there."""

    now: np.ndarray  # rows of this run that were on the earlier map
    before: np.ndarray  # their rows on the earlier map
    total: int  # rows in this run
    earlier_total: int  # rows on the earlier map

    @property
    def added(self) -> int:
        return self.total - len(self.now)

    @property
    def removed(self) -> int:
        return self.earlier_total - len(np.unique(self.before))

    def counts(self) -> dict:
        return {"kept": int(len(self.now)), "added": int(self.added), "removed": int(self.removed)}


def carried(earlier_ids, ids) -> Carried:
    """Match this run's rows to the earlier map's by content id (a repeated id: its first earlier row)."""
    first: dict[str, int] = {}
    for row, key in enumerate(np.asarray(earlier_ids).tolist()):
        first.setdefault(key, row)
    pairs = [(row, first[key]) for row, key in enumerate(np.asarray(ids).tolist()) if key in first]
    now, before = (np.array(side, np.int64) for side in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
    return Carried(now, before, len(ids), len(earlier_ids))


def start_layout(earlier: np.ndarray, match: Carried, graph_idx: np.ndarray, seed: int) -> np.ndarray:
    """The layout a refit starts from: each old image where it was; each new one at the median of its graph
    neighbours that were on the map (when none were, at the earlier map's centre, seeded jitter apart)."""
    earlier = np.asarray(earlier, np.float64)
    start = np.full((match.total, 2), np.nan)
    start[match.now] = earlier[match.before]
    placed = np.zeros(match.total, bool)
    placed[match.now] = True
    new = np.flatnonzero(~placed)
    if len(new):
        neighbours = graph_idx[new]
        known = placed[neighbours]
        spread = stability.rms_radius(earlier) if len(earlier) > 1 else 1.0
        jitter = np.random.default_rng(seed).normal(scale=1e-3 * spread, size=(len(new), 2))
        for i, row in enumerate(new):
            found = neighbours[i][known[i]]
            start[row] = (np.median(start[found], axis=0) if len(found) else earlier.mean(axis=0)) + jitter[i]
    return start


def said(name: str, since: dict) -> str:
    """One log line: what changed since the last run and how far the old images moved on map ``name``."""
    text = f"{name}: from the last run's map, {since['kept']:,} kept, {since['added']:,} added, {since['removed']:,} removed"
    if since.get("moved_median") is None:
        return text
    return (f"{text}; the kept moved a median {100 * since['moved_median']:.2f} %, 99th percentile "
            f"{100 * since['moved_p99']:.2f} % of the map's RMS radius")


def moved(earlier: np.ndarray, now: np.ndarray, match: Carried, k: int = 10) -> dict:
    """How far the images on both maps moved (after Procrustes, share of the earlier map's RMS radius) and
    how many of their map neighbours stayed, with the counts of kept, added and removed images."""
    if len(match.now) < 3:
        return {**match.counts(), "moved_median": None, "moved_p99": None, "neighbours_survive": None}
    before, after = np.asarray(earlier)[match.before], np.asarray(now)[match.now]
    shift = stability.aligned_displacement(before, after)
    kept = stability.neighbour_survival(before, after, k)
    return {**match.counts(), **{key: value for key, value in stability.summary([shift], [kept]).items()
                                 if key != "points"},
            "moved_max": round(float(shift.max()), 4)}
