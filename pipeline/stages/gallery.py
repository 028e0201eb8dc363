"""Stage ``gallery``: what the report's interactive map needs, written once and cached.

Inputs: ``ingest`` (paths, labels), ``extract`` (the thumbnails kept when each image was decoded),
``tsne``, ``umap``. Params: ``gallery``. Outputs: ``sprite`` (a sheet of the shown images' thumbnails,
row-major) and ``points`` (for each shown image: its t-SNE and UMAP coordinates, label, file name and its
tile in the sprite). On large sets a seeded sample of ``max_points`` images is shown, and the report says so.
"""

from __future__ import annotations

import math

import numpy as np

from ..manifest import read_manifest
from ..sampling import sample_indices
from ..stage import Stage, StageContext


def run(ctx: StageContext) -> dict:
    import cv2

    cfg = ctx.cfg.gallery
    manifest = read_manifest(ctx)[0]
    maps = {"tsne": ctx.load_npy("tsne", "coords"), "umap": ctx.load_npy("umap", "coords")}
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)
    thumb = thumbs.shape[1]
    shown = sample_indices(len(manifest), cfg.max_points, cfg.seed)
    columns = max(1, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / columns)
    sheet = np.full((rows * thumb, columns * thumb, 3), 255, np.uint8)
    points = []
    for tile, index in enumerate(shown):
        r, c = divmod(tile, columns)
        sheet[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = thumbs[index]
        points.append({"tsne": [round(float(v), 3) for v in maps["tsne"][index]],
                       "umap": [round(float(v), 3) for v in maps["umap"][index]],
                       "label": manifest[index]["label"], "name": manifest[index]["path"], "tile": tile})
    cv2.imwrite(str(ctx.output("sprite")), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    ctx.save_json("points", {"columns": columns, "thumb": thumb, "points": points,
                             "labels": sorted({p["label"] for p in points})})
    return {"shown": len(shown), "of": len(manifest), "thumb": thumb, "sampled": len(shown) < len(manifest)}


STAGE = Stage(
    name="gallery",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.thumbs", "tsne.coords", "umap.coords"),
    params=("gallery",),
    outputs={"sprite": "thumbs.jpg", "points": "points.json"},
)
