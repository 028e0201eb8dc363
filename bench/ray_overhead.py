"""Ray's overhead on one machine: the Ray engine's images/s against the local engine's, side by side.

Both run as a user runs them (``embdeck run --only extract --force --set extract.engine=...``) on the same
ingested folder, with the CPU default backbone and settings. The set is Fashion-MNIST's test split, all
10,000 images: at the local engine's ~120 images/s here that is over a minute of extraction, so the Ray
engine's fixed start-up (starting a local cluster, starting the actors, loading the model: seconds) is a
small part of it. Figures: each engine's pass images/s (start-up included, what a user waits for), the Ray
pass's rate once its first batch is back (start-up left out), and the whole stage's seconds.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .deck import REPO, run_command

SET_NAME = "Fashion-MNIST test split (10,000 PNG files, 28 px)"


def ensure_set(folder: Path) -> int:
    """All 10,000 test images as PNG files in class folders, written once."""
    from pipeline import demo

    stamp = folder / ".embdeck-ray-set"
    if not stamp.is_file():
        if folder.is_dir() and any(folder.iterdir()):
            raise RuntimeError(f"{folder} is not empty and was not written by the bench; give a new folder")
        images, labels = demo.read_idx("t10k-images-idx3-ubyte"), demo.read_idx("t10k-labels-idx1-ubyte")
        demo.write_images(folder, images, labels, range(len(labels)), prefix="test_")
        stamp.write_text(str(len(labels)))
    return int(stamp.read_text())


def extract_once(folder: Path, out: Path, engine: str) -> dict:
    store = out / f"store-{engine}"  # an empty embedding store: every image goes through this engine's pass
    shutil.rmtree(store, ignore_errors=True)
    command = [sys.executable, "-m", "pipeline.cli", "run", "--images", str(folder), "--out", str(out),
               "--only", "extract", "--force", "--set", f"extract.engine={engine}", "--set", f"store={store}"]
    wall = run_command(command, REPO)["seconds"]
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    summary = record["summaries"]["extract"]
    row = {"engine": summary["engine"], "workers": summary["workers"], "images": summary["images"],
           "pass_s": summary["seconds"], "images_per_s": summary["images_per_s"],
           "stage_s": record["stages"]["extract"]["seconds"], "command_s": wall,
           "device": summary["device"], "torch_threads": summary["torch_threads"]}
    if engine == "ray":
        ray = summary["ray"]
        row.update(startup_s=ray["startup_seconds"], connect_s=ray["connect_seconds"],
                   steady_images_per_s=ray["steady_images_per_s"], nodes=ray["nodes"], cpus=ray["cpus"])
    return row


def run(folder: Path, out: Path) -> dict:
    images = ensure_set(folder)
    run_command([sys.executable, "-m", "pipeline.cli", "run", "--images", str(folder), "--out", str(out),
                 "--only", "ingest"], REPO)
    rows = {engine: extract_once(folder, out, engine) for engine in ("local", "ray")}
    local, ray = rows["local"], rows["ray"]
    return {"set": SET_NAME, "images": images, "engines": rows,
            "ray_vs_local": {"images_per_s": round(ray["images_per_s"] / local["images_per_s"], 3),
                             "steady_images_per_s": round(ray["steady_images_per_s"] / local["images_per_s"], 3),
                             "stage_seconds": round(ray["stage_s"] / local["stage_s"], 3)}}
