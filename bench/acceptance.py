"""Bench part ``acceptance``: the findings on real collections unlike the demo, each with planted problems
(``bench.planted``), run through the pipeline up to the findings with the run's defaults. Measured per set:
precision and recall of near-duplicates (a planted copy found = in one group with its original; a group is
right when it holds a planted copy), planted look-alike pairs wrongly grouped, the share of images called
near-duplicates, recall of label errors (cleanlab's flags) and of foreign images among the top outliers,
and the k-NN slide's chance beside the largest class's share.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from . import planted

SETS = ("fashion", "digits", "photos")


def build(name: str, root: Path, per_class: int = 300) -> planted.Truth:
    if name == "fashion":
        from pipeline import demo

        return planted.fashion_set(root, demo.read_idx("t10k-images-idx3-ubyte"),
                                   demo.read_idx("t10k-labels-idx1-ubyte"), per_class=per_class)
    if name == "digits":
        return planted.digits_set(root)
    if name == "photos":
        return planted.photo_tiles_set(root)
    raise ValueError(name)


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run_findings(images: Path, out: Path, overrides: tuple[str, ...] = ()) -> dict:
    """The pipeline up to the findings on ``images`` (defaults, the offline backbone); the runner's result."""
    from pipeline.engine.config import load_config
    from pipeline.engine.runner import Runner
    from pipeline.registry import STAGES

    cfg = load_config(None, [f"images={images}", f"out={out}", *overrides])
    return Runner(cfg, STAGES).run(only="findings")


def measure(result: dict, truth: planted.Truth) -> dict:
    """Precision and recall of what the findings name, against what was planted."""
    from pipeline.registry import stage_output

    found = rows(stage_output(result, "findings", "duplicates"))
    groups: dict[str, set[str]] = {}
    for row in found:
        if row["kind"] == "near":
            groups.setdefault(row["group"], set()).add(row["path"])
    copies = [(a, b) for a, b, _ in truth.copies]
    planted_paths = {p for pair in copies for p in pair}
    found_pairs = sum(any({a, b} <= g for g in groups.values()) for a, b in copies)
    right = sum(bool(g & planted_paths) for g in groups.values())
    alike_grouped = sum(any({a, b} <= g for g in groups.values()) for a, b in truth.lookalikes)
    missed = [f"{kind}: {b}" for a, b, kind in truth.copies if not any({a, b} <= g for g in groups.values())]
    manifest = json.loads(stage_output(result, "ingest", "manifest").read_text(encoding="utf-8"))
    called = sum(map(len, groups.values()))
    report = json.loads(stage_output(result, "findings", "report").read_text(encoding="utf-8"))
    measured = {
        "images": len(manifest), "planted_copies": len(copies), "copies_found": found_pairs,
        "duplicate_recall": round(found_pairs / len(copies), 3) if copies else None,
        "groups": len(groups), "groups_with_a_planted_copy": right,
        "duplicate_precision": round(right / len(groups), 3) if groups else None,
        "called_share": round(called / len(manifest), 4), "lookalike_pairs": len(truth.lookalikes),
        "lookalikes_grouped": alike_grouped, "missed": missed, "sentences": report["sentences"],
    }
    if "dir" in result["stages"].get("classes", {}):  # it needs two images a class or more
        flagged = [row["path"] for row in rows(stage_output(result, "classes", "label_issues"))]
        hits = set(flagged) & set(truth.mislabelled)
        measured.update({"label_flagged": len(flagged), "mislabelled": len(truth.mislabelled),
                         "label_recall": round(len(hits) / len(truth.mislabelled), 3) if truth.mislabelled else None,
                         "label_precision": round(len(hits) / len(flagged), 3) if flagged else None,
                         "label_recall_top2x": round(len(set(flagged[:2 * len(truth.mislabelled)]) & set(truth.mislabelled))
                                                     / max(1, len(truth.mislabelled)), 3)})
    if truth.foreign:
        ranked = [row["path"] for row in rows(stage_output(result, "findings", "outliers"))]
        top = ranked[:2 * len(truth.foreign)]
        measured.update({"foreign": len(truth.foreign),
                         "outlier_recall_top2x": round(len(set(top) & set(truth.foreign)) / len(truth.foreign), 3),
                         "outlier_precision_top2x": round(len(set(top) & set(truth.foreign)) / len(top), 3)})
    retrieval = result["summaries"].get("retrieval") or {}
    if "chance" in retrieval:
        labels = [m["label"] for m in manifest]
        largest = max(labels.count(name) for name in set(labels)) / len(labels)
        measured.update({"chance": retrieval["chance"], "largest_class_share": round(largest, 4),
                         "classes": retrieval["classes"], "knn_accuracy": retrieval["knn_accuracy"],
                         "knn_balanced_accuracy": retrieval.get("knn_balanced_accuracy")})
    return measured


def imbalanced(root: Path, truth: planted.Truth, keep: float = 0.25) -> None:
    """Make a written set imbalanced: keep only ``keep`` of the files of every class but the first, two at
    least (planted files stay)."""
    keep_paths = {p for pair in truth.copies for p in pair[:2]} | set(truth.mislabelled) | set(truth.foreign)
    keep_paths |= {p for pair in truth.lookalikes for p in pair}
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders[1:]:
        files = sorted(folder.iterdir())
        for path in files[max(2, int(len(files) * keep)):]:
            if path.relative_to(root).as_posix() not in keep_paths:
                path.unlink()


def run(out: Path, sets: tuple[str, ...] = SETS) -> dict:
    results = {}
    for name in sets:
        base = out / name
        shutil.rmtree(base / "images", ignore_errors=True)
        truth = build(name, base / "images")
        if name == "photos":
            imbalanced(base / "images", truth)
        results[name] = measure(run_findings(base / "images", base / "out"), truth)
    return results
