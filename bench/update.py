"""A collection that grows: all 70,000 Fashion-MNIST images at 112 px, then 700 new ones (1 %), side by side with
a cold run of the same 70,700.

The working folder holds the 70,000 as hard links to the full set's files (nothing is copied or changed there).
One ``embdeck deck`` maps them (the base run; its time is not judged), then 700 new images are added: mirror
images of a seeded sample of the 70,000 (real garments the set does not hold; one whose mirror is byte-equal to
an image is passed over). The same command in the same output folder is the update; the same command into a new
output folder (its own, empty embedding store) is the cold run. Both are timed as a user runs them, and measured
by one function (``scale.quality``): trustworthiness of t-SNE and UMAP on the same seeded sample. How far the old
images moved is what the update's maps report (``since_last``); beside it, how far a fresh map (the cold run)
moved them from the base run's, which is what a user saw before maps kept their place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import scale
from .deck import REPO
from .scale import INPUT_SIZE, ensure_full_set

ADDED = 700
SEED = 0
MAPS = (("tsne", "tsne.npy"), ("umap", "umap.npy"))


def linked_copy(source: Path, target: Path) -> None:
    """``target`` as a tree of hard links to ``source``'s files (a copy when the two are on different disks)."""
    for path in sorted(source.rglob("*.png")):
        into = target / path.relative_to(source)
        into.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, into)
        except OSError:
            shutil.copy2(path, into)


def add_mirrors(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` mirror images of a seeded sample of the folder's PNGs, written beside them as ``added_*``."""
    import cv2

    files = sorted(p for p in folder.rglob("*.png") if not p.name.startswith("added_"))
    seen = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    written = []
    for index in np.random.default_rng(seed).permutation(len(files)):
        if len(written) == count:
            break
        source = files[index]
        ok, data = cv2.imencode(".png", cv2.flip(cv2.imread(str(source), cv2.IMREAD_UNCHANGED), 1))
        if not ok or hashlib.sha256(data.tobytes()).hexdigest() in seen:
            continue
        target = source.with_name(f"added_{source.name}")
        target.write_bytes(data.tobytes())
        written.append(target)
    return written


def deck_run(images: Path, out: Path, slides: Path) -> dict:
    found = scale.deck_run(REPO, images, out, slides)
    summary = found["record"]["summaries"]["extract"]
    return {**found, "ran": [name for name, s in found["stages"].items() if s["state"] == "ran"],
            "extract": {key: summary.get(key) for key in ("embedded", "reused", "seconds", "images")}}


def coords_of(record: dict, stage: str, name: str) -> np.ndarray:
    return np.load(Path(record["stages"][stage]["dir"]) / name)


def fresh_movement(base: dict, cold: dict) -> dict:
    """How far a fresh map of the grown set moved the base run's images (the same measure the update reports)."""
    from pipeline.methods import layout_update

    found = {}
    for stage, name in MAPS:
        match = layout_update.carried(coords_of(base, stage, "row_ids.npy"), coords_of(cold, stage, "row_ids.npy"))
        found[stage] = layout_update.moved(coords_of(base, stage, name), coords_of(cold, stage, name), match)
    return found


def run(full_set: Path, work: Path) -> dict:
    ensure_full_set(full_set)
    shutil.rmtree(work, ignore_errors=True)
    images = work / "images"
    linked_copy(full_set, images)
    with tempfile.TemporaryDirectory(prefix="embdeck-update-") as tmp:
        base = deck_run(images, work / "out", Path(tmp) / "slides")
        added = add_mirrors(images, ADDED, SEED)
        update = deck_run(images, work / "out", Path(tmp) / "slides")
        cold = deck_run(images, work / "cold", Path(tmp) / "slides-cold")
    since = {stage: update["record"]["summaries"][stage].get("since_last") for stage, _ in MAPS}
    fresh = fresh_movement(base["record"], cold["record"])
    for part in (base, update, cold):
        part.pop("record")
    return {"images": base["extract"]["images"], "added": len(added), "input_size": INPUT_SIZE,
            "base": base, "update": update, "cold": cold, "since_last": since, "fresh_map_moved": fresh,
            "extract_ratio": round(update["stages"]["extract"]["seconds"] / cold["stages"]["extract"]["seconds"], 4),
            "wall_ratio": round(update["wall_s"] / cold["wall_s"], 3),
            "trust_delta": {key: round(update["quality"][key] - cold["quality"][key], 4)
                            for key in ("tsne_trustworthiness", "umap_trustworthiness")}}


def targets(result: dict) -> list[dict]:
    rows = []

    def add(name, value, wanted, met, note=""):
        rows.append({"target": name, "measured": value, "wanted": wanted, "status": "met" if met else "NOT met",
                     "note": note})

    update, cold = result["update"], result["cold"]
    add("update +1 %: extraction vs the cold run's", result["extract_ratio"], "<= 0.03", result["extract_ratio"] <= 0.03,
        f"{update['stages']['extract']['seconds']} s vs {cold['stages']['extract']['seconds']} s")
    add("update +1 %: whole run vs the cold run's", result["wall_ratio"], "<= 0.6", result["wall_ratio"] <= 0.6,
        f"{update['wall_s']} s vs {cold['wall_s']} s")
    for stage, label in (("tsne", "t-SNE"), ("umap", "UMAP")):
        since, fresh = result["since_last"][stage], result["fresh_map_moved"][stage]
        add(f"update +1 %: {label} old images moved (median / p99 of the RMS radius)",
            f"{since['moved_median']:.4f} / {since['moved_p99']:.4f}", "<= 0.01 / <= 0.05",
            since["moved_median"] <= 0.01 and since["moved_p99"] <= 0.05,
            f"a fresh map: {fresh['moved_median']:.4f} / {fresh['moved_p99']:.4f}")
        delta = result["trust_delta"][f"{stage}_trustworthiness"]
        add(f"update +1 %: {label} trustworthiness vs the cold run's", delta, "within 0.01", abs(delta) <= 0.01)
    add("update +1 %: peak memory vs the cold run's (MiB)", update["peak_rss_mb"], f"<= {cold['peak_rss_mb']}",
        update["peak_rss_mb"] <= cold["peak_rss_mb"])
    return rows
