"""Stage ``extract``: run the backbone over every image, batched, and keep three kinds of features.

Inputs: ``ingest`` (the manifest). Params: ``backbone``, ``extract``. Each image is decoded once, here;
what later stages need from its pixels is kept from that decode, so no stage after this one reads the
collection again. Outputs:
``embeddings`` (N, D) the global embedding (CLS token for a ViT, pooled features for a CNN);
``patch_mean`` (N, D) the mean of the patch tokens (of the last feature map for a CNN);
``pixels`` (N, p, p, 3) uint8, each image squeezed to ``keep_pixels`` (the raw-pixel baseline);
``thumbs`` (N, t, t, 3) uint8 letterboxed thumbnails (the interactive map);
``patch_tokens`` (M, h, w, D) spatial tokens of the few images the patch maps show, listed in
``patch_images``, and ``patch_pixels`` (M, 160, 160, 3) their centre crops for the figure.
The four per-image arrays live in the embedding store (one row per image's sha256; only images it lacks are
run through the network); the entry holds ``rows`` (the run's sha256 list), ``store_location`` and a reference
per array (``<name>.rows.json``, ``engine/stored_rows.py``), which later stages read like a memory-mapped array.
Preprocessing follows timm's pretrained data config; ``preprocess = "thumbnail"`` is the seed deck's path
(shrink to a thumbnail, upsample on the device).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError, hash_json
from ..engine.stage import Stage, StageContext
from ..imaging import backbone as backbones
from ..imaging.decoding import PATCH_FIGURE_PX, Keep
from ..engine.embedding_store import Appender, EmbeddingStore, store_root
from ..imaging.manifest import read_manifest
from ..methods.sampling import spread_indices

if TYPE_CHECKING:
    from ..engine.config import Config

log = logging.getLogger("embdeck")



def patch_photo_folder(cfg: "Config") -> Path | None:
    setting = cfg.extract.patch_photos
    if setting == "auto":
        if cfg.images:
            return None
        from ..demo import photos_folder

        return photos_folder(cfg)
    return Path(setting).expanduser() if setting else None


def photo_paths(cfg: "Config") -> list[Path]:
    folder = patch_photo_folder(cfg)
    if folder is None:
        return []
    if not folder.is_dir():
        raise StageError(f"extract.patch_photos: folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in cfg.ingest.extensions and not p.name.startswith("."))


def fingerprint(cfg: "Config") -> dict:
    """The backbone's weights (by content) and the patch-map photos folder."""
    photos = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in photo_paths(cfg)]
    return {"backbone": backbones.resolve(cfg.backbone).identity(), "patch_photos": hash_json(photos)}


def check_dtype(extractor, manifest: list[dict], root: Path, cfg: "Config") -> dict:
    """Under bf16, how far its features are from fp32's on a spread sample (lowest cosine), for the record.

    The only place a few images are decoded a second time, and only under bf16."""
    import torch

    if extractor.dtype == torch.float32:
        return {"checked": False}
    sample = [root / manifest[i]["path"] for i in spread_indices(len(manifest), cfg.extract.dtype_check_images)]
    return {"checked": True, "images": len(sample), "min_cosine_to_fp32": round(extractor.agreement(sample), 5)}


FEATURES = ("embeddings", "patch_mean", "pixels", "thumbs")  # the per-image rows the store holds


def store_rows(appender, shas: list[str], batches) -> tuple[dict, dict]:
    """Each batch's rows (any order) handed to the store under their images' sha256; returns the picked rows'
    model inputs and crops."""
    picked, crops = {}, {}
    for batch in batches:
        appender.add([shas[int(row)] for row in batch.rows],
                     {"embeddings": batch.pooled, "patch_mean": batch.mean, "pixels": batch.kept["pixels"],
                      "thumbs": batch.kept["thumb"]})
        picked.update(batch.kept.get("input", {}))
        crops.update(batch.kept.get("crop", {}))
    appender.flush()
    return picked, crops


def refer(ctx: StageContext, store, shas: list[str]) -> dict:
    """The run's per-image outputs as references to the store's rows (``stored_rows``): nothing is copied, so an
    update writes only its new rows, and later stages read them like memory-mapped arrays. Each array's shape."""
    from ..engine import stored_rows

    found = store.lookup(shas)
    if found.missing.any():
        raise StageError(f"extract: {int(found.missing.sum())} rows are not in the store {store.folder} "
                         "(freed by a gc at the same moment?); run again")
    parts = store.shapes(found, list(FEATURES))
    stored_rows.write_rows(ctx.out_dir, store, shas, parts)
    return {name: (len(shas), *shape) for name, (shape, _) in parts.items()}


def namespace(ctx: StageContext, extractor, prep) -> dict:
    """Everything that changes a row's numbers (the store's namespace): the extraction's key material less the
    image list and the per-run extras (patch-map picks and photos)."""
    from dataclasses import asdict

    from ..engine.codegraph import code_hashes

    cfg = ctx.cfg
    if cfg.extract.engine == "ray":  # the workers pick their own device: keyed on what they were asked for
        device = {"engine": "ray", "device": cfg.extract.device, "dtype": cfg.extract.dtype}
    else:
        device = {"device": extractor.device.type, "dtype": str(extractor.dtype)}
    return {"backbone": ctx.fingerprint.get("backbone") or backbones.resolve(cfg.backbone).identity(),
            "preprocess": asdict(prep), "keep": [cfg.extract.keep_pixels, cfg.extract.keep_thumb],
            "max_pixels": cfg.ingest.max_pixels, **device,
            "rows_per_call": extractor.micro_batch or cfg.extract.batch_size,
            "forward_pass": extractor.forward_pass.get("pass", "eager"),
            "code": code_hashes("pipeline.imaging.features")}


def local_pass(ctx: StageContext, extractor, paths: list, keep, appender, shas) -> tuple[tuple, dict]:
    """The main pass on this machine: decoding in threads one batch ahead of the model."""
    import torch

    from ..imaging.features import PassStats

    stats = PassStats()
    workers = max(1, os.cpu_count() or 1)
    written = store_rows(appender, shas, extractor.stream(paths, ctx.cfg.extract.batch_size, workers, keep,
                                                          stats=stats))
    return written, {"engine": "local", "workers": 1, "seconds": round(stats.seconds, 3),
                     "images_per_s": round(stats.images_per_s, 2), "model_share": round(stats.model_share, 3),
                     "device": str(extractor.device), "dtype": str(extractor.dtype).replace("torch.", ""),
                     "torch_threads": torch.get_num_threads(), "forward_pass": extractor.forward_pass}


def ray_pass(ctx: StageContext, model, prep, manifest: list[dict], root, keep, appender, shas) -> tuple[tuple, dict]:
    """The main pass on a Ray cluster (``ray_engine``); the cluster is left when it ends, however it ends."""
    from ..imaging import ray_engine

    cluster = ray_engine.connect(verbose=log.isEnabledFor(logging.DEBUG))
    stats = ray_engine.RayStats()
    try:
        batches = ray_engine.extract([r["path"] for r in manifest], str(root), model, prep, keep, ctx.cfg.extract,
                                     ctx.cfg.ingest.max_pixels, stats, cluster)
        written = store_rows(appender, shas, batches)
    finally:
        ray_engine.disconnect(cluster)
    device, _, dtype = sorted(stats.devices)[0].partition(" ")
    facts = {"engine": "ray", "workers": stats.pool, "seconds": round(stats.seconds, 3),
             "images_per_s": round(stats.images_per_s, 2), "model_share": round(stats.model_share, 3),
             "device": device, "dtype": dtype, "torch_threads": stats.torch_threads,
             "ray": {"nodes": cluster.nodes, "cpus": cluster.cpus, "gpus": cluster.gpus,
                     "started_here": cluster.started_here, "connect_seconds": cluster.connect_seconds,
                     "startup_seconds": round(stats.first_result_s, 3),
                     "steady_images_per_s": round(stats.steady_images_per_s, 2),
                     "actor_resources": stats.actor_resources, "devices": sorted(stats.devices),
                     "actor_processes": sorted(stats.served_by), "rows_returned_twice": stats.rows_twice}}
    return written, facts


def main_pass(ctx: StageContext, extractor, model, prep, manifest: list[dict], root, todo: list[int], store) -> dict:
    """Embed the manifest's rows ``todo`` (those the store lacks) into the store; the engine's facts."""
    import torch

    cfg = ctx.cfg
    keep = Keep(cfg.extract.keep_pixels, cfg.extract.keep_thumb)  # the same for every row: no picks here
    appender = Appender(store, cfg.extract.store_segment_rows)
    shas = [manifest[i]["sha256"] for i in todo]
    if not todo:
        return {"engine": cfg.extract.engine, "workers": 0, "seconds": 0.0, "images_per_s": 0.0, "model_share": 0.0,
                "device": str(extractor.device), "dtype": str(extractor.dtype).replace("torch.", ""),
                "torch_threads": torch.get_num_threads(), "forward_pass": extractor.forward_pass}
    if cfg.extract.engine == "ray":
        return ray_pass(ctx, model, prep, [manifest[i] for i in todo], root, keep, appender, shas)[1]
    return local_pass(ctx, extractor, [root / manifest[i]["path"] for i in todo], keep, appender, shas)[1]


def run(ctx: StageContext) -> dict:
    import torch

    from ..imaging.features import Extractor, pick_device, pick_dtype, preprocess_for
    from ..imaging.images import ImageReadError

    cfg = ctx.cfg
    torch.set_num_threads(os.cpu_count() or 1)
    choice = backbones.resolve(cfg.backbone)
    manifest, root = read_manifest(ctx)
    model = backbones.build(choice, seed=cfg.extract.seed)
    prep = preprocess_for(model, cfg)
    device = pick_device(cfg.extract.device)
    dtype = pick_dtype(cfg.extract.dtype, device)
    extractor = Extractor(model, prep, device, dtype, cfg.ingest.max_pixels)
    images = len(manifest)
    dtype_check = check_dtype(extractor, manifest, root, cfg)
    about = namespace(ctx, extractor, prep)
    store = EmbeddingStore(store_root(cfg.out, cfg.store), hash_json(about)[:20], about)
    shas = [record["sha256"] for record in manifest]
    missing = store.lookup(shas).missing
    todo = sorted({shas[i]: i for i in reversed(np.flatnonzero(missing).tolist())}.values())  # once per content
    log.info("extract: %d images with %s, engine %s, batch %d: %d to embed, %d stored already or copies (%s)",
             images, choice.display_name, cfg.extract.engine, cfg.extract.batch_size, len(todo),
             images - len(todo), store.folder)
    try:
        engine = main_pass(ctx, extractor, model, prep, manifest, root, todo, store)
    except ImageReadError as exc:  # ingest read every file: this one changed or went away since
        raise StageError(f"extract: cannot read {exc}; the image folder changed after ingest, run again") from None
    store.touch(cfg.out, shas)
    shapes = refer(ctx, store, shas)
    if engine["dtype"] != str(extractor.dtype).replace("torch.", ""):  # Ray workers chose their own device
        dtype_check = {"checked": False, "reason": f"the workers ran {engine['dtype']} on {engine['device']}; "
                                                   f"this machine, which checks, has {extractor.device} only"}
    log.info("extract: embedded %d, reused %d; %.1f images/s on %s (%s), %d worker(s), %.0f %% of the time in "
             "the model", len(todo), images - len(todo), engine["images_per_s"], engine["device"],
             engine["dtype"], engine["workers"], 100 * engine["model_share"])

    # Spatial tokens for the patch maps: the set's picks and the extra photos, decoded here (a per-run extra).
    set_picks = spread_indices(images, cfg.extract.patch_images_from_set)
    photos = photo_paths(cfg)
    patch_sources = [{"kind": "set", "path": manifest[i]["path"], "index": i} for i in set_picks]
    patch_sources += [{"kind": "photo", "path": str(p), "index": -1} for p in photos]
    items = [root / manifest[i]["path"] for i in set_picks] + photos
    photo_keep = Keep(crop=PATCH_FIGURE_PX, crop_rows=frozenset(range(len(items))))
    spatial, figure_crops = [], []
    for batch in extractor.stream(items, cfg.extract.batch_size, max(1, os.cpu_count() or 1), photo_keep,
                                  keep_spatial=True, desc="patches"):
        spatial.append(batch.spatial)
        figure_crops += [batch.kept["crop"][row] for row in sorted(batch.kept["crop"])]
    dims = shapes["embeddings"][1]
    tokens = np.concatenate(spatial).astype(np.float32) if spatial else np.zeros((0, 0, 0, dims), np.float32)
    ctx.save_npy("patch_tokens", tokens)
    ctx.save_npy("patch_pixels", np.stack(figure_crops) if figure_crops
                 else np.zeros((0, PATCH_FIGURE_PX, PATCH_FIGURE_PX, 3), np.uint8))
    ctx.save_json("patch_images", patch_sources)
    return {
        "backbone": choice.as_dict(),
        "images": images,
        "embedded": len(todo),  # run through the network now
        "reused": images - len(todo),  # taken from the embedding store (or a copy of an image embedded now)
        "store": {"namespace": store.folder.name, "segments": len(store.segments())},
        "embedding_dim": int(dims),
        "patch_grid": list(tokens.shape[1:3]),
        **engine,  # engine, workers, device, dtype, seconds, images_per_s, model_share, torch_threads (+ ray)
        "dtype_check": dtype_check,
        "batch_size": cfg.extract.batch_size,
        "preprocess": {"mode": prep.mode, "input_size": prep.input_size, "crop_pct": prep.crop_pct,
                       "interpolation": prep.interpolation, "mean": prep.mean, "std": prep.std,
                       "thumbnail_size": prep.thumbnail_size if prep.mode == "thumbnail" else None},
        "kept": {"pixels": cfg.extract.keep_pixels, "thumb": cfg.extract.keep_thumb},
    }


STAGE = Stage(
    name="extract",
    run=run,
    inputs=("ingest.manifest", "ingest.summary"),
    params=("backbone", "extract", "ingest", "demo"),  # ingest: max_pixels, the photos' extensions; demo: its photos
    outputs={"rows": "rows.npy", "store_location": "store.json", "embeddings": "embeddings.rows.json",
             "patch_mean": "patch_mean.rows.json", "pixels": "pixels.rows.json", "thumbs": "thumbs.rows.json",
             "patch_tokens": "patch_tokens.npy", "patch_pixels": "patch_pixels.npy", "patch_images": "patch_images.json"},
    essential=True,
    fingerprint=fingerprint,
)
