"""The pipeline's stages, in an order where each comes after everything it reads, and the graph they make."""

from __future__ import annotations

from .stage import SUMMARY, Stage
from .stages import (classes, clusters, export, extract, fidelity, findings, gallery, ingest, neighbours, parametric,
                     patches, pca, retrieval, tsne, umap)

STAGES: list[Stage] = [
    ingest.STAGE, extract.STAGE, pca.STAGE, neighbours.STAGE, tsne.STAGE, umap.STAGE, parametric.STAGE,
    clusters.STAGE, patches.STAGE, retrieval.STAGE, classes.STAGE, findings.STAGE, export.STAGE, fidelity.STAGE,
    gallery.STAGE,
]


def describe(stages: list[Stage]) -> str:
    """The stage graph as text, from the declarations alone: each stage's inputs, parameters and outputs."""
    lines = []
    for stage in stages:
        reads = [item for item in stage.inputs if not item.endswith(f".{SUMMARY}")]
        summaries = [item.split(".")[0] for item in stage.inputs if item.endswith(f".{SUMMARY}")]
        outside = ((stage.fingerprint.__doc__ or "").strip().splitlines() or [""])[0] if stage.fingerprint else ""
        lines.append(f"{stage.name}  ({stage.module.rsplit('.', 1)[-1]}.py)")
        if outside:
            lines.append(f"  reads outside: {outside}")
        if reads:
            lines.append(f"  inputs:  {', '.join(reads)}")
        if summaries:
            lines.append(f"  summaries: {', '.join(summaries)}")
        if stage.optional:
            lines.append(f"  can do without: {', '.join(stage.optional)}")
        derived = f" (and {stage.derived.__doc__.split(':')[0].strip()})" if stage.derived else ""
        lines.append(f"  params:  {', '.join(stage.params) or '-'}{derived}")
        lines.append(f"  outputs: {', '.join(f'{key} ({name})' for key, name in stage.outputs.items())}")
    return "\n".join(lines) + "\n"
