"""Stage ``patches``: patch maps as in the DINOv2 paper's Fig. 1 (seed 004).

Inputs: ``extract`` (spatial tokens of a few images, and their crops for the figure). Params: ``patches``.
One PCA over the patch tokens of all shown images together (as the paper fits them jointly); its first
component, scaled to [0, 1] (between its 1st and 99th percentiles), passes ``threshold`` (seed: 0.6) on the foreground. The component's
sign is arbitrary, so it is oriented so that the foreground is the smaller part: if more than half of the
patches pass, the component is negated and the threshold applied again. A second PCA with three components,
on the foreground patches only, gives RGB (each component min-max scaled); the background is black. The
unmasked map is a three-component PCA of all patches. For a CNN the "patches" are the cells of its last
feature map. Outputs: the arrays ``rgb`` (masked), ``rgb_raw`` (unmasked) and ``masks``, and the ``figure``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..artifacts import StageError
from ..stage import Stage, StageContext


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


def run(ctx: StageContext) -> dict:
    from .. import figures

    tokens = ctx.load_npy("extract", "patch_tokens")
    sources = ctx.load_json("extract", "patch_images")
    if len(tokens) == 0:
        raise StageError("no images were kept for patch maps (extract.patch_images_from_set = 0 and no photos)")
    # Images of one kind are fitted jointly, as the paper does: the data-set images together, the photos
    # together (one PCA over both would spend its first component on telling the two kinds apart).
    groups = {kind: [i for i, s in enumerate(sources) if s["kind"] == kind] for kind in ("set", "photo")}
    maps = {"rgb": np.zeros(tokens.shape[:3] + (3,), np.float32), "raw": np.zeros(tokens.shape[:3] + (3,), np.float32),
            "masks": np.zeros(tokens.shape[:3], bool)}
    group_notes = {}
    for kind, members in groups.items():
        if len(members) == 0:
            continue
        found = patch_maps(tokens[members], ctx.cfg.patches.threshold)
        for key in ("rgb", "raw", "masks"):
            maps[key][members] = found[key]
        group_notes[kind] = {"images": len(members), "component_negated": found["flipped"],
                             "foreground_share": round(found["foreground_share"], 4)}
    ctx.save_npy("rgb", maps["rgb"])
    ctx.save_npy("rgb_raw", maps["raw"])
    ctx.save_npy("masks", maps["masks"])
    crops = ctx.load_npy("extract", "patch_pixels")
    size = crops.shape[1]
    tiles, captions = [], []
    for row, (title, key) in enumerate((("image", None), ("foreground, 3 PCs as RGB", "rgb"), ("all patches", "raw"))):
        for i, source in enumerate(sources):
            if key is None:
                tiles.append(crops[i])
                captions.append(Path(source["path"]).stem[:16])
            else:
                tiles.append(upsample(maps[key][i], size))
                captions.append(title if i == 0 else "")
    figures.image_grid(tiles, captions, f"Patch features: PCA fitted jointly per kind of image "
                       f"({tokens.shape[1]}x{tokens.shape[2]} patches each)", ctx.output("figure"),
                       columns=len(sources), cell=1.6)
    return {"images": len(sources), "grid": list(tokens.shape[1:3]), "threshold": ctx.cfg.patches.threshold,
            "groups": group_notes, "sources": [Path(s["path"]).name for s in sources]}


STAGE = Stage(
    name="patches",
    run=run,
    inputs=("extract.patch_tokens", "extract.patch_images", "extract.patch_pixels"),
    params=("patches",),
    outputs={"rgb": "patch_rgb.npy", "rgb_raw": "patch_rgb_raw.npy", "masks": "patch_masks.npy",
             "figure": "patch_maps.png"},
)
