"""Reading the ingest stage's manifest: the images a run uses, their folder and labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stage import StageContext


def read_manifest(ctx: "StageContext") -> tuple[list[dict], Path]:
    """For stages downstream of ingest: the manifest, and the folder its paths are relative to."""
    return ctx.load_json("ingest", "manifest"), Path(ctx.summary("ingest")["folder"])


def manifest_labels(manifest: list[dict]) -> list[str]:
    return [record["label"] for record in manifest]
