"""What the deck and the report show, gathered from the run record: numbers only from the run itself."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.engine.config import Config
from pipeline.registry import stage_output

# Stages whose slides say why they are missing when they could not run (too few images, say).
ANALYSES = ("pca", "tsne", "umap", "parametric", "clusters", "patches", "retrieval", "classes", "findings", "export",
            "fidelity", "compare")
# The comparison's measures as its table shows them (key, heading); higher is better for each.
COMPARE_COLUMNS = (("knn_accuracy", "k-NN"), ("linear_probe_accuracy", "linear probe"),
                   ("trustworthiness", "t-SNE trust"), ("silhouette", "silhouette @k"), ("ari", "ARI"), ("nmi", "NMI"))


def dataset_name(cfg: Config, folder: str) -> str:
    return "Fashion-MNIST test split (demo subset)" if not cfg.images else Path(folder).name


def engine_text(extract: dict) -> str:
    """Which engine ran extraction and on how many workers, in one phrase for the deck and the report."""
    if extract.get("engine") != "ray":
        return "local (this machine; decoding in threads beside the model)"
    ray = extract["ray"]
    return (f"Ray Data ({extract['workers']} model worker{'s' * (extract['workers'] != 1)} on a {ray['nodes']}-node "
            f"cluster, {ray['cpus']:g} CPUs, {ray['gpus']:g} GPUs; decoding in Ray tasks)")


def stage_json(record: dict, stage: str, key: str):
    """A stage's declared JSON output, read from the cache entry this run used."""
    return json.loads(stage_output(record, stage, key).read_text(encoding="utf-8"))


MAP_NAMES = (("tsne", None, "t-SNE"), ("umap", None, "UMAP"), ("parametric", "param_umap", "parametric UMAP"),
             ("parametric", "tsne_mlp", "t-SNE MLP"))


def update_facts(summaries: dict, extract_state: str = "ran") -> dict:
    """What this run took from earlier ones: images embedded now or reused from the embedding store (none
    embedded when the extraction was cached), and for each map that started from the previous run's
    (``since_last``): images kept, added and removed, and how far the kept ones moved (Procrustes, share of the
    map's RMS radius)."""
    extract = summaries["extract"]
    moved = []
    for stage, head, name in MAP_NAMES:
        summary = summaries.get(stage) or {}
        since = (summary.get(head) or {} if head else summary).get("since_last")
        if since and since.get("moved_median") is not None:
            moved.append({"map": name, **since})
    cached = extract_state == "cached"
    return {"embedded": 0 if cached else extract.get("embedded"), "reused": extract.get("reused"), "cached": cached,
            "maps": moved,
            "changes": {key: moved[0][key] for key in ("kept", "added", "removed")} if moved else None}


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
            "note": backbone.get("note", ""),
        },
        "extract": extract,
        "engine": engine_text(extract),
        "update": update_facts(summaries, stages.get("extract", {}).get("state", "ran")),
        "embedding_shape": f"({extract['images']}, {extract['embedding_dim']})",
        **{name: summaries.get(name) for name in ANALYSES},
        "sweep": stage_json(record, "clusters", "sweep") if "clusters" in summaries else {},
        "gallery_summary": summaries.get("gallery"),
        "compare_columns": [c for c in COMPARE_COLUMNS if summaries.get("compare")
                            and any(c[0] in row for row in summaries["compare"]["rows"])],
        "compare_best": best_of(summaries.get("compare")),
        "not_run": record.get("not_run", {}),
        "figures": figures,
        "timings": {name: stage["seconds"] for name, stage in stages.items() if "seconds" in stage},
        "total_seconds": round(sum(stage.get("seconds", 0) for stage in stages.values()), 1),
        "config_hash": record["config_hash"][:12],
        "manifest_hash": record["input"]["manifest_hash"][:12],
        "versions": record["versions"],
    }


def best_of(compare: dict | None) -> dict:
    """The best value of each measure over the comparison's rows (the table shows it in bold), and each
    backbone's best pooling by linear probe (or k-NN, or trustworthiness when there are no labels)."""
    if not compare:
        return {}
    best = {key: max((row[key] for row in compare["rows"] if key in row and row[key] == row[key]), default=None)
            for key, _ in COMPARE_COLUMNS if any(key in row for row in compare["rows"])}
    rank = next((key for key in ("linear_probe_accuracy", "knn_accuracy", "trustworthiness") if key in best), None)
    per_backbone = {}
    for row in compare["rows"]:
        held = per_backbone.get(row["backbone"])
        if held is None or (rank and row[rank] > held[rank]):
            per_backbone[row["backbone"]] = row
    return {"values": best, "by": rank, "per_backbone": list(per_backbone.values())}
