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

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..methods.patch_pca import maps_by_kind, patch_maps, upsample  # noqa: F401 - patch_maps: the stage's rule


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    tokens = ctx.load_npy("extract", "patch_tokens")
    sources = ctx.load_json("extract", "patch_images")
    if len(tokens) == 0:
        raise StageError("no images were kept for patch maps (extract.patch_images_from_set = 0 and no photos)")
    maps, group_notes = maps_by_kind(tokens, sources, ctx.cfg.patches.threshold)
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
                       columns=len(sources), cell=1.6, text_pt=12, gap=0.2)  # shown at ~0.4 of its size
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
