"""The whole of Fashion-MNIST (70,000 images, train and test) through ``embdeck deck``, as a user runs it.

Written once as PNG files into a folder (``embdeck fashion-mnist DIR``), then one ``embdeck deck`` run on it
with the input size set for 28-px images (the extraction part of the bench shows that size's k-NN accuracy
against the default). Wall time, the peak memory of the process, and each stage's time and peak memory.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from .deck import REPO, run_command, stages_of

INPUT_SIZE = 112


def ensure_full_set(folder: Path) -> int:
    from pipeline.demo import write_full_dataset

    stamp = folder / ".embdeck-full-set"
    if not stamp.is_file():
        if folder.is_dir() and any(folder.iterdir()):
            raise RuntimeError(f"{folder} is not empty and was not written by the bench; give a new folder")
        count = write_full_dataset(folder)
        stamp.write_text(str(count))
    return int(stamp.read_text())


def run(folder: Path, out: Path) -> dict:
    """One cold run into ``out`` (the bench's own folder, emptied first; the maps part reads its embeddings)."""
    images = ensure_full_set(folder)
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="embdeck-70k-") as tmp:
        command = [sys.executable, "-m", "pipeline.cli", "deck", "--images", str(folder), "--out", str(out),
                   "--set", f"slides={Path(tmp) / 'slides'}", "--set", f"backbone.input_size={INPUT_SIZE}"]
        result = run_command(command, REPO)
        stages = stages_of(out)
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    peaks = [s["peak_rss_mb"] for s in stages.values() if s.get("peak_rss_mb")]
    return {"images": images, "input_size": INPUT_SIZE, "command": "embdeck deck --images DIR --set backbone.input_size=112",
            "wall_s": result["seconds"], "peak_rss_mb": max(peaks) if peaks else None, "stages": stages,
            "images_per_s_extract": record["summaries"].get("extract", {}).get("images_per_s"),
            "not_run": record.get("not_run", {})}
