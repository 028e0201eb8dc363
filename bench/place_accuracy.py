"""``embdeck place`` on held-out images: how far it puts them from where a refit that includes them puts them,
and how fast.

Held-out images are images the run never saw: Fashion-MNIST images outside the run when its files are
Fashion-MNIST's (the demo set), else (the 70k run holds all of them) mirror images of a seeded sample of the
run's own images, which are new files with new pixels. They are placed through the run's exported models (no
refit). The refit is the run's own settings on its images plus the held-out ones, up to the t-SNE map, in a
scratch folder. The two t-SNE maps live in different frames, so the refit is brought onto the run's map by the
similarity transform (rotation, reflection, scale, shift; orthogonal Procrustes) that best matches the images
both hold. The error is the held-out images' RMS distance, as a share of the map's RMS radius (as the fidelity
and parametric slides quote it); the same figure for the images both maps hold is the floor any placement
meets, since a refit moves the old images too. The parametric UMAP's map has no refit to compare with (its
network is the map), so only t-SNE is measured.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from pathlib import Path

import numpy as np

HELD_OUT = 200
FASHION_NAME = re.compile(r"^[^/]+/(test|train)_(\d{5})\.png$")


def held_out_images(record: dict, manifest: list[dict], folder: Path, count: int, seed: int) -> str:
    """Write ``count`` held-out images under ``folder`` (label subfolders); returns what they are."""
    import cv2

    from pipeline import demo

    seen = [FASHION_NAME.match(m["path"]) for m in manifest]
    if all(seen):
        used = {(m.group(1), int(m.group(2))) for m in seen}
        for split, prefix in (("t10k", "test"), ("train", "train")):
            labels = demo.read_idx(f"{split}-labels-idx1-ubyte")
            unseen = np.array([i for i in range(len(labels)) if (prefix, i) not in used])
            if len(unseen) >= count:
                picks = np.sort(np.random.default_rng(seed).choice(unseen, count, replace=False))
                demo.write_images(folder, demo.read_idx(f"{split}-images-idx3-ubyte"), labels, picks, f"held_{prefix}_")
                return f"{count} Fashion-MNIST {prefix} images the run never saw"
    root = Path(record["input"]["folder"])
    picks = np.sort(np.random.default_rng(seed).choice(len(manifest), min(count, len(manifest)), replace=False))
    for i in picks:
        source = manifest[int(i)]["path"]
        target = folder / f"{Path(source).parent}" / f"mirrored_{Path(source).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.flip(cv2.imread(str(root / source), cv2.IMREAD_UNCHANGED), 1))
    return f"{len(picks)} mirror images of a seeded sample of the run's images (the run holds every Fashion-MNIST image)"


def union_folder(root: Path, manifest: list[dict], held: Path, target: Path) -> None:
    """The run's images (linked, not copied) and the held-out ones, in one folder with the same labels."""
    for item in manifest:
        link = target / item["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root / item["path"])
    for path in held.rglob("*.png"):
        link = target / path.relative_to(held)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)


def procrustes(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The similarity transform (as a function of points) taking ``source`` closest to ``target``."""
    from scipy.linalg import orthogonal_procrustes

    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mu_s, target - mu_t
    rotation, scale = orthogonal_procrustes(a, b)
    scale /= (a ** 2).sum()
    return lambda points: (points - mu_s) @ rotation * scale + mu_t


def refit_tsne(record: dict, union: Path, scratch: Path) -> tuple[np.ndarray, list[str]]:
    """The run's settings on ``union``, up to t-SNE: (coordinates, the manifest's paths)."""
    from pipeline.engine.config import build
    from pipeline.engine.runner import Runner
    from pipeline.registry import STAGES, stage_output

    cfg = dataclasses.replace(build(record["config"]), images=str(union), out=str(scratch))
    result = Runner(cfg, STAGES).run(only="tsne")
    manifest = json.loads(stage_output(result, "ingest", "manifest").read_text(encoding="utf-8"))
    return np.load(stage_output(result, "tsne", "coords")), [m["path"] for m in manifest]


def run(out: Path, count: int = HELD_OUT, seed: int = 0) -> dict:
    from pipeline import new_images as placing
    from pipeline.registry import stage_output

    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    manifest = json.loads(stage_output(record, "ingest", "manifest").read_text(encoding="utf-8"))
    tsne = np.load(stage_output(record, "tsne", "coords"))
    with tempfile.TemporaryDirectory(prefix="embdeck-place-") as tmp:
        held, scratch = Path(tmp) / "held-out", Path(tmp) / "refit"
        kind = held_out_images(record, manifest, held, count, seed)
        runs = {f: placing.place(out, held, f, k=5, into=Path(tmp) / f"placed-{f}") for f in ("pt2", "torchscript")}
        placed = runs["pt2"]
        union_folder(Path(record["input"]["folder"]), manifest, held, Path(tmp) / "union")
        refit, paths = refit_tsne(record, Path(tmp) / "union", scratch)
    where = {p: i for i, p in enumerate(paths)}
    old = np.array([where[m["path"]] for m in manifest])
    new = np.array([where[name] for name in placed["names"]])
    onto = procrustes(refit[old], tsne)
    radius = float(np.sqrt(((tsne - tsne.mean(axis=0)) ** 2).sum(axis=1).mean()))
    errors = np.linalg.norm(np.asarray(placed["points"]["tsne"]) - onto(refit[new]), axis=1)
    floor = np.linalg.norm(tsne - onto(refit[old]), axis=1)
    agree = np.abs(np.asarray(runs["pt2"]["points"]["tsne"]) - np.asarray(runs["torchscript"]["points"]["tsne"])).max()
    return {
        "run": str(out), "images": len(manifest), "held_out": placed["count"], "held_out_kind": kind,
        "tsne_error_share_of_radius": round(float(np.sqrt((errors ** 2).mean())) / radius, 4),
        "tsne_error_median_share": round(float(np.median(errors)) / radius, 4),
        "floor_share_of_radius": round(float(np.sqrt((floor ** 2).mean())) / radius, 4),
        "radius": round(radius, 3),
        "images_per_s": {f: r["images_per_s"] for f, r in runs.items()},
        "images_per_s_with_loading": {f: r["images_per_s_with_loading"] for f, r in runs.items()},
        "model_load_s": {f: r["model_load_seconds"] for f, r in runs.items()},
        "pt2_vs_torchscript_max_diff": float(agree),
    }
