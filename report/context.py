"""What the deck and the report show, gathered from the run record: numbers only from the run itself."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Config
from pipeline.record import stage_output


# Stages whose slides say why they are missing when they could not run (too few images, say).
ANALYSES = ("pca", "tsne", "umap", "parametric", "clusters", "patches", "retrieval", "export", "fidelity")


def dataset_name(cfg: Config, folder: str) -> str:
    return "Fashion-MNIST test split (demo subset)" if not cfg.images else Path(folder).name


def stage_json(record: dict, stage: str, key: str):
    """A stage's declared JSON output, read from the cache entry this run used."""
    return json.loads(stage_output(record, stage, key).read_text(encoding="utf-8"))


def deck_context(cfg: Config, record: dict, figures: dict[str, str]) -> dict:
    """Everything a template may print; a template asking for anything else fails (StrictUndefined)."""
    summaries = record["summaries"]
    ingest, extract = summaries["ingest"], summaries["extract"]
    backbone = extract["backbone"]
    stages = record["stages"]
    return {
        "run_id": record["run_id"],
        "date": record["computed_at"][:10],
        "dataset": dataset_name(cfg, ingest["folder"]),
        "images": ingest["images"],
        "skipped": ingest["skipped"],
        "skipped_files": stage_json(record, "ingest", "skipped"),
        "duplicates": len(ingest["duplicates"]),
        "labels": ingest["labels"],
        "backbone": {
            "name": backbone["display_name"],
            "timm_name": backbone["model"],
            "source": backbone["source"],
            "reason": backbone["reason"],
            "sha256": backbone["weights_sha256"][:16],
            "is_dino": "dino" in backbone["model"] and backbone["source"] != "random",
        },
        "extract": extract,
        "embedding_shape": f"({extract['images']}, {extract['embedding_dim']})",
        **{name: summaries.get(name) for name in ANALYSES},
        "sweep": stage_json(record, "clusters", "sweep") if "clusters" in summaries else {},
        "gallery_summary": summaries.get("gallery"),
        "not_run": record.get("not_run", {}),
        "figures": figures,
        "timings": {name: stage["seconds"] for name, stage in stages.items() if "seconds" in stage},
        "total_seconds": round(sum(stage.get("seconds", 0) for stage in stages.values()), 1),
        "config_hash": record["config_hash"][:12],
        "manifest_hash": record["input"]["manifest_hash"][:12],
        "versions": record["versions"],
    }
