"""The whole of Fashion-MNIST (70,000 images, train and test) through ``embdeck deck``, as a user runs it, side by
side with a reference commit's code on the same images in the same bench run.

Written once as PNG files into a folder (``embdeck fashion-mnist DIR``), then one ``embdeck deck`` run on it
with the input size set for 28-px images (the extraction part of the bench shows that size's k-NN accuracy
against the default), then the same command with the reference commit's code (``git archive`` of it into a
temporary folder, run with this environment). Wall time, the peak memory of the process, each stage's time and
peak memory, and the quality figures of both runs, measured by one function on each run's outputs so that a
change of how the run reports them cannot pass for a change of quality.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pipeline.engine.stored_rows import load_array

from .deck import REPO, reference_code, run_command, stages_of

INPUT_SIZE = 112
REFERENCE = "512ace4"  # the code of the first release, before the neighbour graph: 591 s, 4.3 GiB at 70k


def ensure_full_set(folder: Path) -> int:
    from pipeline.demo import write_full_dataset

    stamp = folder / ".embdeck-full-set"
    if not stamp.is_file():
        if folder.is_dir() and any(folder.iterdir()):
            raise RuntimeError(f"{folder} is not empty and was not written by the bench; give a new folder")
        count = write_full_dataset(folder)
        stamp.write_text(str(count))
    return int(stamp.read_text())


def one_run(code: Path, folder: Path, out: Path) -> dict:
    """``embdeck deck`` of the code in ``code`` on the folder, cold into ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="embdeck-70k-") as tmp:
        found = deck_run(code, folder, out, Path(tmp) / "slides")
    found.pop("record")
    return found


def deck_run(code: Path, folder: Path, out: Path, slides: Path) -> dict:
    """``embdeck deck`` of the code in ``code`` on the folder into ``out`` as it stands (its cache and store
    used), timed as a user runs it; with its run record."""
    command = [sys.executable, "-m", "pipeline.cli", "deck", "--images", str(folder), "--out", str(out),
               "--set", f"slides={slides}", "--set", f"backbone.input_size={INPUT_SIZE}"]
    result = run_command(command, code)
    stages = stages_of(out)
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    peaks = [s["peak_rss_mb"] for s in stages.values() if s.get("peak_rss_mb")]
    return {"wall_s": result["seconds"], "peak_rss_mb": max(peaks) if peaks else None, "stages": stages,
            "images_per_s_extract": record["summaries"].get("extract", {}).get("images_per_s"),
            "not_run": record.get("not_run", {}), "quality": quality(record), "record": record}


def output_file(record: dict, stage: str, name: str) -> Path | None:
    entry = record["stages"].get(stage, {})
    path = Path(entry["dir"]) / name if entry.get("dir") else None
    return path if path is not None and path.is_file() else None


def quality(record: dict) -> dict:
    """t-SNE and UMAP trustworthiness by one function (``quality.trustworthiness``: scikit-learn's, k = 10 on a
    seeded sample of 5,000, in the embedding space), and the k-NN accuracy and ARI the run reports."""
    from pipeline.methods.quality import trustworthiness

    embeddings = (output_file(record, "extract", "embeddings.rows.json")  # rows of the store, named
                  or output_file(record, "extract", "embeddings.npy"))  # the reference code's copy
    found = {"knn_accuracy": record["summaries"].get("retrieval", {}).get("knn_accuracy"),
             "ari": record["summaries"].get("clusters", {}).get("ari")}
    high = load_array(embeddings, mmap=True) if embeddings else None
    for stage, name in (("tsne", "tsne.npy"), ("umap", "umap.npy")):
        coords = output_file(record, stage, name)
        if high is not None and coords is not None:
            found[f"{stage}_trustworthiness"] = round(trustworthiness(high, np.load(coords), 10, 0), 4)  # a sample
    return found


def run(folder: Path, out: Path, reference: str = REFERENCE) -> dict:
    """This code's run into ``out`` (the maps part reads its embeddings), then the reference's, side by side."""
    images = ensure_full_set(folder)
    ours = one_run(REPO, folder, out)
    result = {"images": images, "input_size": INPUT_SIZE,
              "command": f"embdeck deck --images DIR --set backbone.input_size={INPUT_SIZE}", **ours}
    if reference:
        with tempfile.TemporaryDirectory(prefix="embdeck-reference-") as tmp:
            code = reference_code(reference, Path(tmp) / "code")
            theirs = one_run(code, folder, Path(tmp) / "out")
        result["reference"] = {"commit": reference, **theirs}
        result["quality_delta"] = {key: round(value - theirs["quality"][key], 4)
                                   for key, value in ours["quality"].items()
                                   if value is not None and theirs["quality"].get(key) is not None}
        result["speedup_vs_reference"] = round(theirs["wall_s"] / ours["wall_s"], 2)
    return result
