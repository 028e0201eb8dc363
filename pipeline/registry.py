"""The pipeline's stages, in an order where each comes after everything it reads, and the graph they make."""

from __future__ import annotations

from pathlib import Path

from .engine.stage import SUMMARY, Stage, is_series, series_files
from .stages import (
    classes,
    clusters,
    compare,
    export,
    extract,
    fidelity,
    findings,
    gallery,
    ingest,
    neighbours,
    parametric,
    patches,
    pca,
    retrieval,
    stability,
    tsne,
    umap,
)

STAGES: list[Stage] = [
    ingest.STAGE, extract.STAGE, pca.STAGE, neighbours.STAGE, tsne.STAGE, umap.STAGE, parametric.STAGE,
    clusters.STAGE, patches.STAGE, retrieval.STAGE, classes.STAGE, findings.STAGE, export.STAGE, stability.STAGE,
    fidelity.STAGE, gallery.STAGE, compare.STAGE,
]


def declared(stage: str) -> Stage:
    """A stage's declaration, by name (for readers outside ``stages/``, which import no stage module)."""
    return next(s for s in STAGES if s.name == stage)


def stage_output(record: dict, stage: str, key: str) -> Path:
    """Where the cache entry this run used keeps a stage's declared output ``key``."""
    name = declared(stage).outputs[key]
    if is_series(name):
        raise KeyError(f"{stage}.{key} ({name}) is a series of files: read it with stage_outputs")
    return Path(record["stages"][stage]["dir"]) / name


def stage_outputs(record: dict, stage: str, key: str) -> list[Path]:
    """The files of a stage's declared output ``key`` in the cache entry this run used: one, or a series'."""
    name = declared(stage).outputs[key]
    folder = Path(record["stages"][stage]["dir"])
    return series_files(folder, name) if is_series(name) else [folder / name]


def first_line(func, lower: bool = False) -> str:
    """The first line of a declared function's docstring: what the graph says of it."""
    line = ((func.__doc__ or "").strip().splitlines() or [""])[0] if func else ""
    return (line[:1].lower() + line[1:]).rstrip(".") if lower else line


def describe(stages: list[Stage]) -> str:
    """The stage graph as text, from the declarations alone: each stage's inputs, parameters and outputs."""
    lines = []
    for stage in stages:
        reads = [item for item in stage.inputs if not item.endswith(f".{SUMMARY}")]
        summaries = [item.split(".")[0] for item in stage.inputs if item.endswith(f".{SUMMARY}")]
        outside = first_line(stage.fingerprint)
        lines.append(f"{stage.name}  ({stage.module.rsplit('.', 1)[-1]}.py)")
        if stage.off_when:
            lines.append(f"  runs: {first_line(stage.off_when, lower=True)}")
        if outside:
            lines.append(f"  reads outside: {outside}")
        if reads:
            lines.append(f"  inputs:  {', '.join(reads)}")
        if summaries:
            lines.append(f"  summaries: {', '.join(summaries)}")
        if stage.variants:
            lines.append(f"  per variant: {', '.join(stage.variants.inputs)} ({first_line(stage.variants.configs, True)})")
        if stage.optional:
            lines.append(f"  can do without: {', '.join(stage.optional)}")
        derived = f" (and {stage.derived.__doc__.split(':')[0].strip()})" if stage.derived else ""
        lines.append(f"  params:  {', '.join(stage.params) or '-'}{derived}")
        resumes = f"; starts from its last run's {', '.join(stage.resumes)} (keep_place)" if stage.resumes else ""
        lines.append(f"  outputs: {', '.join(f'{key} ({name})' for key, name in stage.outputs.items())}{resumes}")
    return "\n".join(lines) + "\n"
