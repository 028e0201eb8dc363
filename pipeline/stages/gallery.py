"""Stage ``gallery``: the interactive maps' data for every image, and the collection as one picture.

Inputs: ``ingest`` (paths, labels), ``extract`` (the thumbnails kept when each image was decoded), ``tsne``,
``umap``, ``parametric`` (optional: the parametric UMAP's map of every image, the map that ``embdeck place``
puts new images on besides t-SNE's), ``clusters`` (optional: colour by cluster), ``neighbours`` (the embedding graph: each image's
nearest neighbours with their cosine similarity, and its outlier score, ``findings.outlier_k``).
Params: ``gallery``, ``findings``. Outputs (format in ``pipeline/pictures/map_data.py``, read by ``web/map-core.js``):
``points`` (``map/points.js``: the maps, labels, clusters, outlier scores and file names of all N images),
``tiles`` (the thumbnail sheets ``map/tiles-*.webp``), ``neighbour_files`` (``map/nbrs-*.js``), ``order``
(the manifest row of each map position), ``mosaic`` (the picture) and ``mosaic_layout`` (which image is in
which cell).
"""

from __future__ import annotations

import numpy as np

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.knn import outlier_scores
from ..pictures import map_data


def write_map(ctx: StageContext, manifest: list[dict], order: np.ndarray, maps: dict) -> dict:
    """The data files under ``map/``; returns the facts the summary keeps."""
    cfg = ctx.cfg.gallery
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)
    sheets, tried, estimated = map_data.fit_sheets(thumbs, order, cfg.tiles_mb * 1e6, cfg.tile_quality)
    side = list(tried)[-1]
    for number, data in enumerate(sheets):
        ctx.output("tiles", f"{number:04d}").write_bytes(data)
    idx = ctx.load_npy("neighbours", "embedding_idx")
    similarity = ctx.load_npy("neighbours", "embedding_values")
    k = min(cfg.neighbours, idx.shape[1])
    blocks = map_data.neighbour_blocks(order, idx, similarity, k)
    for number, block in enumerate(blocks):
        map_data.write_script(ctx.output("neighbour_files", f"{number:03d}"), f"nbrs-{number:03d}", block)
    labels = manifest_labels(manifest)
    clusters = ctx.load_npy("clusters", "assignment") if ctx.has("clusters") else None
    outlier_k = min(ctx.cfg.findings.outlier_k, similarity.shape[1])
    payload = map_data.points_payload(
        order, maps, [m["path"] for m in manifest], labels, clusters, outlier_scores(similarity, outlier_k),
        outlier_k, map_data.palettes(len(set(labels))), side, len(sheets),
        {"k": k, "block": map_data.NEIGHBOUR_BLOCK, "files": len(blocks)})
    map_data.write_script(ctx.output("points"), "points", payload)
    data_bytes = sum(p.stat().st_size for p in ctx.output("points").parent.iterdir())
    return {"tile": side, "tiles_bytes_tried": {str(s): size for s, size in tried.items()},
            "tiles_bytes_estimated": {str(s): size for s, size in estimated.items()},
            "tiles_bytes": tried[side], "over_budget": tried[side] > cfg.tiles_mb * 1e6,
            "sheets": len(sheets), "neighbours": k, "neighbour_files": len(blocks), "outlier_k": outlier_k,
            "clusters": clusters is not None, "map_bytes": data_bytes}


def run(ctx: StageContext) -> dict:
    import cv2

    from ..pictures import mosaic

    cfg = ctx.cfg.gallery
    manifest = read_manifest(ctx)[0]
    maps = {"tsne": ("t-SNE", ctx.load_npy("tsne", "coords")), "umap": ("UMAP", ctx.load_npy("umap", "coords"))}
    if ctx.has("parametric"):  # the map `embdeck place` puts new images on besides t-SNE's (umap-learn has no network)
        maps["param_umap"] = ("parametric UMAP", ctx.load_npy("parametric", "param_umap"))
    order = map_data.map_order(maps["tsne"][1])
    ctx.save_npy("order", order)
    facts = write_map(ctx, manifest, order, maps)

    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)
    placed, cells, columns, rows = mosaic.assign(maps["tsne"][1], cfg.mosaic_columns, cfg.mosaic_rows, cfg.seed)
    image = mosaic.picture(thumbs, placed, cells, columns, rows, cfg.mosaic_cell)
    cv2.imwrite(str(ctx.output("mosaic")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    ctx.save_npy("mosaic_layout", np.column_stack([placed, cells]).astype(np.int64))
    return {"images": len(manifest), **facts,
            "mosaic": {"columns": columns, "rows": rows, "images": int(len(placed)), "cell": cfg.mosaic_cell,
                       "sampled": bool(len(placed) < len(manifest))}}


STAGE = Stage(
    name="gallery",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.thumbs", "tsne.coords", "umap.coords", "clusters.assignment",
            "neighbours.embedding_idx", "neighbours.embedding_values", "parametric.param_umap"),
    params=("gallery", "findings"),
    optional=("clusters", "parametric"),  # without them: no colour by cluster, no parametric UMAP map
    outputs={"points": "map/points.js", "tiles": "map/tiles-*.webp", "neighbour_files": "map/nbrs-*.js",
             "order": "order.npy", "mosaic": "mosaic.png", "mosaic_layout": "mosaic.npy"},
)
