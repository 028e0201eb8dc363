"""PCA of patch tokens as colours (the DINOv2 paper's Fig. 1): a foreground mask from the first component, RGB
from three more. The ``patches`` stage draws the run's backbone with it; the backbone comparison draws every
compared backbone's patches side by side with the same functions.
"""

from __future__ import annotations

import numpy as np

from ..engine.artifacts import StageError


def minmax(values: np.ndarray, axis=0, tail: float = 1.0) -> np.ndarray:
    """Scale to [0, 1] between the ``tail`` and 100 - ``tail`` percentiles (clipped), so that a few extreme
    patches do not squash all the others into a narrow band."""
    low = np.percentile(values, tail, axis=axis, keepdims=True)
    high = np.percentile(values, 100 - tail, axis=axis, keepdims=True)
    return np.clip((values - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)


def first_component(flat: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=1, svd_solver="full", random_state=seed).fit_transform(flat)[:, 0]


def foreground_mask(flat: np.ndarray, threshold: float, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(mask over patches, whether the component was negated so the foreground is the smaller part)."""
    score = minmax(first_component(flat, seed))
    mask = score > threshold
    flipped = bool(mask.mean() > 0.5)
    if flipped:
        mask = (1.0 - score) > threshold
    return mask, flipped


def rgb_components(flat: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    count = min(3, *flat.shape)
    rgb = np.zeros((len(flat), 3), np.float32)
    rgb[:, :count] = minmax(PCA(n_components=count, svd_solver="full", random_state=seed).fit_transform(flat))
    return rgb


def patch_maps(tokens: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """Masked and unmasked RGB maps (M, h, w, 3) and the masks (M, h, w) for tokens (M, h, w, D)."""
    m, h, w, d = tokens.shape
    flat = tokens.reshape(-1, d).astype(np.float64)
    if len(flat) < 4:
        raise StageError("patch maps need at least 4 patches")
    mask, flipped = foreground_mask(flat, threshold, seed)
    masked = np.zeros((len(flat), 3), np.float32)
    if mask.sum() >= 3:
        masked[mask] = rgb_components(flat[mask], seed)
    return {"rgb": masked.reshape(m, h, w, 3), "raw": rgb_components(flat, seed).reshape(m, h, w, 3),
            "masks": mask.reshape(m, h, w), "flipped": flipped, "foreground_share": float(mask.mean())}


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize((grid * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def maps_by_kind(tokens: np.ndarray, sources: list[dict], threshold: float) -> tuple[dict, dict]:
    """``patch_maps`` fitted per kind of image: the data-set images together, the photos together (one PCA over
    both would spend its first component on telling the two kinds apart). Returns the maps for all images and,
    per kind, how the fit went."""
    groups = {kind: [i for i, s in enumerate(sources) if s["kind"] == kind] for kind in ("set", "photo")}
    maps = {"rgb": np.zeros(tokens.shape[:3] + (3,), np.float32), "raw": np.zeros(tokens.shape[:3] + (3,), np.float32),
            "masks": np.zeros(tokens.shape[:3], bool)}
    notes = {}
    for kind, members in groups.items():
        if len(members) == 0:
            continue
        found = patch_maps(tokens[members], threshold)
        for key in ("rgb", "raw", "masks"):
            maps[key][members] = found[key]
        notes[kind] = {"images": len(members), "component_negated": found["flipped"],
                       "foreground_share": round(found["foreground_share"], 4)}
    return maps, notes
