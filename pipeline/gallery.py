"""Stage ``gallery``: what the report's interactive map needs, written once and cached.

Inputs: ``ingest`` (paths, labels), ``tsne``, ``umap``. Params: ``gallery``. Outputs: ``thumbs.jpg`` (a
sprite sheet of small thumbnails, row-major, ``thumb`` pixels square) and ``points.json`` (for each shown
image: its t-SNE and UMAP coordinates, label, file name and its tile in the sprite). On large sets a seeded
sample of ``max_points`` images is shown, and the report says so.
"""

from __future__ import annotations

import math

import numpy as np

from .ingest import read_manifest
from .runner import Stage, StageContext


def run(ctx: StageContext) -> dict:
    import cv2

    from .figures import thumbnail
    from .quality import sample_indices

    cfg = ctx.cfg.gallery
    manifest, root = read_manifest(ctx)
    maps = {"tsne": ctx.load_npy("tsne", "tsne.npy"), "umap": ctx.load_npy("umap", "umap.npy")}
    shown = sample_indices(len(manifest), cfg.max_points, cfg.seed)
    columns = max(1, math.ceil(math.sqrt(len(shown))))
    rows = math.ceil(len(shown) / columns)
    sheet = np.full((rows * cfg.thumb, columns * cfg.thumb, 3), 255, np.uint8)
    points = []
    for tile, index in enumerate(shown):
        r, c = divmod(tile, columns)
        sheet[r * cfg.thumb:(r + 1) * cfg.thumb, c * cfg.thumb:(c + 1) * cfg.thumb] = thumbnail(
            root / manifest[index]["path"], cfg.thumb)
        points.append({"tsne": [round(float(v), 3) for v in maps["tsne"][index]],
                       "umap": [round(float(v), 3) for v in maps["umap"][index]],
                       "label": manifest[index]["label"], "name": manifest[index]["path"], "tile": tile})
    cv2.imwrite(str(ctx.out_dir / "thumbs.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    ctx.save_json("points.json", {"columns": columns, "thumb": cfg.thumb, "points": points,
                                  "labels": sorted({p["label"] for p in points})})
    return {"shown": len(shown), "of": len(manifest), "thumb": cfg.thumb, "sampled": len(shown) < len(manifest)}


STAGE = Stage(
    name="gallery",
    run=run,
    deps=("ingest", "tsne", "umap"),
    params=("gallery",),
    outputs=("thumbs.jpg", "points.json"),
    code=("pipeline.figures", "pipeline.images", "pipeline.ingest", "pipeline.quality"),
)
