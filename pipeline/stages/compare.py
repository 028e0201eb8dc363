"""Stage ``compare``: the backbones of ``backbone.compare`` side by side, per pooling (seed 003's comparison).

Runs only when ``backbone.compare`` names something (``--compare``, ``make compare``). Inputs: ``ingest``
(labels), ``extract`` (the raw-pixel copies, and the crops and sources of the patch-map images), ``clusters``
(the chosen k); and, per compared network, ``extract`` run under that backbone (the runner's variants: each
backbone has its own cache entry, so adding one to the list extracts only that one). Params: ``compare``;
``retrieval`` (k-NN k and folds), ``pca`` and ``tsne`` (the maps), ``clusters`` (restarts, PCA dims, silhouette
sample), ``fidelity`` (trustworthiness k) and ``patches`` (threshold): the same settings as the main analyses,
so the numbers are comparable with theirs.

Per backbone and pooling (CLS / global, mean of patch tokens, their concatenation; one where they coincide, as
for a CNN; raw pixels are one): k-NN and linear-probe accuracy, t-SNE trustworthiness, silhouette at the
chosen k, ARI and NMI against the labels; per backbone its images/s (from its extraction). Outputs: ``table``
(the rows), ``scores`` (the measures as bars), ``maps`` (each backbone's t-SNE map side by side) and
``patches`` (each network's patch features side by side).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..analyses import backbone_comparison as comparison
from ..analyses.baselines import chance
from ..analyses.probes import raw_pixels
from ..engine.stage import Stage, StageContext, Variants
from ..imaging.manifest import manifest_labels, read_manifest

MEASURES = (("k-NN accuracy", "knn_accuracy"), ("linear probe", "linear_probe_accuracy"),
            ("t-SNE trustworthiness", "trustworthiness"), ("silhouette at k", "silhouette"))


def pixel_backbone(ctx: StageContext, label: str) -> tuple[dict, dict[str, np.ndarray]]:
    pixels = ctx.load_npy("extract", "pixels", mmap=True)
    features = raw_pixels(pixels)
    colour = "grey" if features.shape[1] == pixels.shape[1] * pixels.shape[2] else "RGB"
    info = {"label": label, "name": f"raw pixels ({pixels.shape[1]}×{pixels.shape[2]} {colour})", "kind": "pixels",
            "source": "the copies extraction keeps", "is_dino": False, "images_per_s": None,
            "extract_seconds": None, "patch_grid": None, "note": ""}
    return info, {"pixels": features}


def network_backbone(ctx: StageContext, label: str) -> tuple[dict, dict[str, np.ndarray]]:
    extract = ctx.variant_summary(label, "extract")
    chosen = extract["backbone"]
    features = comparison.poolings(ctx.load_variant_npy(label, "extract", "embeddings"),
                                   ctx.load_variant_npy(label, "extract", "patch_mean"))
    info = {"label": label, "name": chosen["display_name"], "kind": "network", "model": chosen["model"],
            "source": chosen["source"], "is_dino": bool(chosen.get("is_dino")), "note": chosen.get("note", ""),
            "weights_sha256": chosen["weights_sha256"][:16], "images_per_s": extract["images_per_s"],
            "extract_seconds": extract["seconds"], "device": extract["device"], "dtype": extract["dtype"],
            "input_size": extract["preprocess"]["input_size"], "patch_grid": extract["patch_grid"],
            "poolings_coincide": len(features) == 1}
    return info, features


def patch_figure(ctx: StageContext, networks: list[dict], path: Path) -> None:
    """The patch-map images, then one row per network: three principal components of its patch tokens as RGB."""
    from ..methods.patch_pca import maps_by_kind, upsample
    from ..pictures import figures

    crops = ctx.load_npy("extract", "patch_pixels")
    sources = ctx.load_json("extract", "patch_images")
    size = crops.shape[1]
    tiles = list(crops)
    captions = [Path(s["path"]).stem[:16] for s in sources]
    for info in networks:
        tokens = ctx.load_variant_npy(info["label"], "extract", "patch_tokens")
        maps, _ = maps_by_kind(tokens, sources, ctx.cfg.patches.threshold)
        tiles += [upsample(rgb, size) for rgb in maps["raw"]]
        grid = f"{tokens.shape[1]}×{tokens.shape[2]}"
        captions += [f"{comparison.short_name(info['name'])} · {grid}" if i == 0 else "" for i in range(len(sources))]
    figures.image_grid(tiles, captions, "Patch features side by side: 3 principal components as RGB, per backbone",
                       path, columns=max(1, len(sources)), cell=1.5)


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg
    entries, notes = comparison.expand(cfg)
    labels = np.asarray(manifest_labels(read_manifest(ctx)[0]))
    k = int(ctx.summary("clusters")["k"])
    backbones, rows, panels = [], [], []
    for entry in entries:
        info, features = (pixel_backbone if entry.is_pixels else network_backbone)(ctx, entry.label)
        for pooling, x in features.items():
            started = time.perf_counter()
            judged = comparison.judge(np.asarray(x, np.float32), labels, k, cfg)
            coords = judged.pop("map")
            rows.append({"backbone": info["name"], "label": entry.label, "pooling": pooling, **judged,
                         "seconds": round(time.perf_counter() - started, 2)})
            if len(panels) < len(backbones) + 1:  # each backbone's first pooling (the global one) on the maps
                score = (f"k-NN {judged['knn_accuracy']:.3f} · " if "knn_accuracy" in judged else "")
                panels.append((f"{info['name']}\n{pooling} · {score}trust {judged['trustworthiness']:.3f}", coords))
        backbones.append(info)
    ctx.save_json("table", rows)
    groups = [info["name"] for info in backbones]
    series = {}
    for title, key in MEASURES:
        if any(key in row for row in rows):
            series[title] = {pooling: [next((r.get(key, np.nan) for r in rows if r["backbone"] == name
                                             and r["pooling"] == pooling), np.nan) for name in groups]
                             for pooling in dict.fromkeys(r["pooling"] for r in rows)}
    figures.grouped_bars([comparison.short_name(name) for name in groups], series,
                         f"Backbones and poolings on {len(labels):,} images (k = {k} for the silhouette)",
                         ctx.output("scores"))
    figures.map_panels(panels, labels.tolist(), "t-SNE of each backbone's global embedding, same settings",
                       ctx.output("maps"))
    patch_figure(ctx, [info for info in backbones if info["kind"] == "network"], ctx.output("patches"))
    labelled = len(set(labels.tolist())) > 1
    baseline = chance(labels.tolist()) if labelled else {"chance": None, "majority_class": None}
    return {"k": k, "images": int(len(labels)), "backbones": backbones, "rows": rows, "notes": notes,
            "labelled": labelled, "knn_k": cfg.retrieval.knn_k, "folds": next((r["folds"] for r in rows if "folds" in r), 0),
            "chance": baseline["chance"],  # always answering the largest class
            "majority_class": baseline["majority_class"],
            "measures": [title for title, key in MEASURES if title in series]}


STAGE = Stage(
    name="compare",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.pixels", "extract.patch_pixels", "extract.patch_images",
            "clusters.summary"),
    variants=Variants(comparison.variant_configs, ("extract.embeddings", "extract.patch_mean",
                                                   "extract.patch_tokens", "extract.summary")),
    params=("compare", "backbone", "retrieval", "pca", "tsne", "clusters", "fidelity", "patches"),
    outputs={"table": "compare.json", "scores": "compare_scores.png", "maps": "compare_maps.png",
             "patches": "compare_patches.png"},
    fingerprint=comparison.fingerprint,
    off_when=comparison.off_when,
)
