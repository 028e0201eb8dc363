"""Stage ``extract``: run the backbone over every image, batched, and keep three kinds of features.

Inputs: ``ingest`` (the manifest). Params: ``backbone``, ``extract``. Outputs:
``embeddings.npy`` (N, D) the global embedding (CLS token for a ViT, pooled features for a CNN);
``patch_mean.npy`` (N, D) the mean of the patch tokens (of the last feature map for a CNN);
``patch_tokens.npy`` (M, h, w, D) spatial tokens of the few images the patch maps show, listed in
``patch_images.json``. Preprocessing follows timm's pretrained data config; ``preprocess = "thumbnail"``
is the seed deck's path (shrink to a thumbnail, upsample on the device).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from . import backbone as backbones
from .config import Config, hash_json
from .ingest import read_manifest
from .runner import Stage, StageContext, StageError

log = logging.getLogger("embdeck")


def patch_photo_folder(cfg: Config) -> Path | None:
    setting = cfg.extract.patch_photos
    if setting == "auto":
        if cfg.images:
            return None
        from .demo import photos_folder

        return photos_folder(cfg)
    return Path(setting).expanduser() if setting else None


def photo_paths(cfg: Config) -> list[Path]:
    folder = patch_photo_folder(cfg)
    if folder is None:
        return []
    if not folder.is_dir():
        raise StageError(f"extract.patch_photos: folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in cfg.ingest.extensions and not p.name.startswith("."))


def fingerprint(cfg: Config) -> dict:
    photos = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in photo_paths(cfg)]
    choice = backbones.resolve(cfg.backbone)
    # The weights are identified by content, not by where they happen to lie on this machine.
    return {"backbone": {"model": choice.model, "source": choice.source, "weights_sha256": choice.weights_sha256},
            "patch_photos": hash_json(photos)}


def spread_indices(count: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``range(count)`` (deterministic, covers every class in order)."""
    wanted = min(wanted, count)
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted).round()}) if wanted else []


def check_dtype(extractor, paths: list[Path], cfg: Config) -> dict:
    """Under bf16, how far its features are from fp32's on a spread sample (lowest cosine), for the record."""
    import torch

    if extractor.dtype == torch.float32:
        return {"checked": False}
    sample = [paths[i] for i in spread_indices(len(paths), cfg.extract.dtype_check_images)]
    return {"checked": True, "images": len(sample), "min_cosine_to_fp32": round(extractor.agreement(sample), 5)}


def run(ctx: StageContext) -> dict:
    import torch

    from .features import Extractor, pick_device, pick_dtype, preprocess_for

    cfg = ctx.cfg
    torch.set_num_threads(os.cpu_count() or 1)
    choice = backbones.resolve(cfg.backbone)
    manifest, root = read_manifest(ctx)
    model = backbones.build(choice, seed=cfg.extract.seed)
    prep = preprocess_for(model, cfg)
    device = pick_device(cfg.extract.device)
    dtype = pick_dtype(cfg.extract.dtype, device)
    extractor = Extractor(model, prep, device, dtype, cfg.ingest.max_pixels)
    workers = max(1, os.cpu_count() or 1)
    paths = [root / record["path"] for record in manifest]
    dtype_check = check_dtype(extractor, paths, cfg)
    log.info("extract: %d images with %s on %s (%s), batch %d", len(paths), choice.display_name, device,
             str(extractor.dtype).replace("torch.", ""), cfg.extract.batch_size)
    started = time.perf_counter()
    pooled, patch_mean, _ = extractor.run(paths, cfg.extract.batch_size, workers)
    seconds = time.perf_counter() - started
    log.info("extract: %.1f images/s, %.0f %% of the time in the model", len(paths) / seconds,
             100 * extractor.model_seconds / seconds)

    set_picks = spread_indices(len(paths), cfg.extract.patch_images_from_set)
    photos = photo_paths(cfg)
    patch_sources = [{"kind": "set", "path": manifest[i]["path"], "index": i} for i in set_picks]
    patch_sources += [{"kind": "photo", "path": str(p), "index": -1} for p in photos]
    _, _, spatial = extractor.run([root / manifest[i]["path"] for i in set_picks] + photos,
                                  cfg.extract.batch_size, workers, keep_spatial=True, desc="patches")

    ctx.save_npy("embeddings.npy", pooled)
    ctx.save_npy("patch_mean.npy", patch_mean)
    ctx.save_npy("patch_tokens.npy", spatial)
    ctx.save_json("patch_images.json", patch_sources)
    return {
        "backbone": choice.as_dict(),
        "images": len(paths),
        "embedding_dim": int(pooled.shape[1]),
        "patch_grid": list(spatial.shape[1:3]),
        "device": str(device),
        "dtype": str(extractor.dtype).replace("torch.", ""),
        "dtype_check": dtype_check,
        "model_share": round(extractor.model_seconds / seconds, 3),
        "batch_size": cfg.extract.batch_size,
        "preprocess": {"mode": prep.mode, "input_size": prep.input_size, "crop_pct": prep.crop_pct,
                       "interpolation": prep.interpolation, "mean": prep.mean, "std": prep.std,
                       "thumbnail_size": prep.thumbnail_size if prep.mode == "thumbnail" else None},
        "seconds": round(seconds, 3),
        "images_per_s": round(len(paths) / seconds, 2),
        "torch_threads": torch.get_num_threads(),
    }


STAGE = Stage(
    name="extract",
    run=run,
    deps=("ingest",),
    params=("backbone", "extract"),
    outputs=("embeddings.npy", "patch_mean.npy", "patch_tokens.npy", "patch_images.json"),
    essential=True,
    fingerprint=fingerprint,
    code=("pipeline.backbone", "pipeline.features", "pipeline.images", "pipeline.ingest"),
)
