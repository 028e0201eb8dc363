"""Reading the ingest stage's manifest: the images a run uses, their folder and labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .storage import Location, location

if TYPE_CHECKING:
    from ..engine.stage import StageContext


def read_manifest(ctx: "StageContext") -> tuple[list[dict], Location]:
    """For stages downstream of ingest: the manifest, and the folder its paths are relative to (a local
    ``Path``, or a ``storage.StoredPath`` for a URI; ``folder / path`` reads the same way for both)."""
    return ctx.load_json("ingest", "manifest"), location(ctx.summary("ingest")["folder"])


def manifest_labels(manifest: list[dict]) -> list[str]:
    return [record["label"] for record in manifest]


def manifest_ids(manifest: list[dict]) -> np.ndarray:
    """Each image's content id (its sha256): what a map kept in place matches its rows by."""
    return np.array([record["sha256"] for record in manifest])
