"""The pipeline's stages, in an order where each comes after everything it reads."""

from __future__ import annotations

from . import clusters, export, extract, fidelity, gallery, ingest, paramaps, patches, pca, retrieval, tsne, umap_map
from .runner import Stage

STAGES: list[Stage] = [
    ingest.STAGE, extract.STAGE, pca.STAGE, tsne.STAGE, umap_map.STAGE, paramaps.STAGE, clusters.STAGE,
    patches.STAGE, retrieval.STAGE, export.STAGE, fidelity.STAGE, gallery.STAGE,
]
