"""The run record: everything needed to trust and reproduce a run's numbers."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import TYPE_CHECKING

from .. import __version__
from .artifacts import write_json_atomic

if TYPE_CHECKING:
    from .config import Config

LIBRARIES = ("torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "opencv-python-headless", "pillow",
             "umap-learn", "openTSNE", "faiss-cpu", "matplotlib", "jinja2", "huggingface_hub", "ray", "pyarrow")


def versions() -> dict:
    found = {"python": platform.python_version(), "embdeck": __version__}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def build_record(cfg: "Config", result: dict, seconds: float) -> dict:
    summaries = result["summaries"]
    ingest = summaries.get("ingest", {})
    extract = summaries.get("extract", {})
    return {
        "computed_at": max((stage.get("finished_at", "") for stage in result["stages"].values()), default=""),
        "run_id": cfg.digest()[:8] + "-" + ingest.get("manifest_hash", "")[:8],
        "config": cfg.to_dict(),
        "config_hash": cfg.digest(),
        "input": {"folder": ingest.get("folder"), "images": ingest.get("images"),
                  "manifest_hash": ingest.get("manifest_hash")},
        "backbone": extract.get("backbone"),
        # Which engine made the embeddings (a cached run: the one that made the cached outputs) and on how many
        # model workers; the extract summary holds the rest (the Ray cluster's nodes, CPUs, GPUs, start-up).
        "extraction": {"engine": extract.get("engine"), "workers": extract.get("workers"),
                       "device": extract.get("device")},
        "versions": versions(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "stages": result["stages"],
        "not_run": {name: stage["reason"] for name, stage in result["stages"].items() if "reason" in stage},
        "off": result.get("off", {}),  # stages that do not apply to this config, and why
        "summaries": summaries,
        "pipeline_seconds": round(seconds, 3),
    }


def write_record(path, record: dict) -> None:
    write_json_atomic(path, record)
