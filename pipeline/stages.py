"""The pipeline's stages, in an order where each comes after everything it reads."""

from __future__ import annotations

from . import extract, ingest, pca
from .runner import Stage

STAGES: list[Stage] = [ingest.STAGE, extract.STAGE, pca.STAGE]
