"""Seeded picks of indices: one implementation of each kind, so every stage samples the same way."""

from __future__ import annotations

import numpy as np


def sample_indices(n: int, limit: int, seed: int) -> np.ndarray:
    """All of ``range(n)``, or a seeded sample of ``limit`` of them, ascending."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def sample_of(rows: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """``rows`` (ascending), or a seeded sample of ``limit`` of them; ``limit <= 0`` keeps all."""
    if limit <= 0:
        return rows
    return rows[sample_indices(len(rows), limit, seed)]


def spread_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (deterministic, covers every class in order)."""
    wanted = min(wanted, count)
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted).round()}) if wanted else []


def holdout_split(labels: list[str], share: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out images: a seeded, per-label share (every label keeps training images)."""
    rng = np.random.default_rng(seed)
    labels_array = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels_array):
        members = np.flatnonzero(labels_array == label)
        count = int(round(len(members) * share))
        count = min(count, len(members) - 1)
        if count > 0:
            mask[rng.choice(members, size=count, replace=False)] = True
    return mask


def pick_queries(labels: list[str], count: int, seed: int) -> list[int]:
    """One query per label (seeded), up to ``count``; spread over the set when unlabelled."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    if len(names) > 1:
        return [int(rng.choice([i for i, label in enumerate(labels) if label == name])) for name in names[:count]]
    return sorted(int(i) for i in rng.choice(len(labels), size=min(count, len(labels)), replace=False))
