"""A million synthetic points through every analysis stage: a scaling test, not a data set.

The points are made from a finished run (by default the scale part's 70,000 Fashion-MNIST images) by the
stand-in ``ingest`` and ``extract`` stages of ``bench.synthetic``; every other stage is the project's own
declaration, run by the project's ``Runner``, so its cache, hashing and per-stage peak memory are those of a
normal run. Config: the defaults with ``backbone.input_size=112``, as the scale part runs ``embdeck deck`` (the
setting only shapes extraction, which does not run here). Left out: ``export`` (it runs the backbone on image
files, not an analysis) and ``compare`` (off by default). Reported per stage: state, seconds, peak memory; the
growth exponent of each stage's time from the 70,000-image run (the scale part's, else this harness at
``baseline`` points) to N.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

from .synthetic import LABEL, read_source, stand_ins

OVERRIDES = ("backbone.input_size=112",)
LEFT_OUT = {"export": "runs the backbone on image files (TorchScript parity), not an analysis of the embeddings",
            "compare": "off by default (backbone.compare is empty)"}
STAND_INS = ("ingest", "extract")
SEED = 0
NOISE_FRACTION = 0.5  # of the real embeddings' median nearest-neighbour distance
MEMORY_LIMIT_MB = 16 * 1024
# Retrieval + k-NN accuracy: the embedding space's search (the graph that retrieval and every k-NN figure read),
# the retrieval stage (precision@k, the query grid, leave-one-out and 5-fold k-NN accuracy from the graph) and
# the classes stage (per-class k-NN accuracy, confusion matrix, linear probe and label errors on the same graph).
# The PCA space's search is t-SNE's and the raw-pixel search the baseline's: listed apart, not counted.
RETRIEVAL_PARTS = "neighbours (embedding space search) + retrieval + classes"


def analysis_stages(source, points: int) -> list:
    """The registry's stages in order, ingest and extract replaced by stand-ins, export and compare left out."""
    from pipeline.registry import STAGES

    replaced = stand_ins(source, points, SEED, NOISE_FRACTION)
    return [replaced.get(stage.name, stage) for stage in STAGES if stage.name not in LEFT_OUT]


def one_run(source, points: int, out: Path, keep: bool, only: tuple = ()) -> dict:
    """The synthetic set of ``points`` through every analysis stage (``only``: these and what they read), into
    ``out`` (cold unless ``keep``)."""
    from pipeline.engine.config import load_config
    from pipeline.engine.record import build_record, write_record
    from pipeline.engine.runner import Runner

    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(None, [*OVERRIDES, f"out={out}", f"images={source.ingest_summary['folder']}"])
    runner = Runner(cfg, analysis_stages(source, points))
    if only:
        runner = runner.needing(only)
    started = time.perf_counter()
    result = runner.run()
    wall = time.perf_counter() - started
    write_record(runner.root / "run.json", build_record(cfg, result, wall))
    stages = {name: {key: s.get(key) for key in ("state", "seconds", "peak_rss_mb", "reason")}
              for name, s in result["stages"].items()}
    analysis = {name: s for name, s in stages.items() if name not in STAND_INS}
    peaks = [s["peak_rss_mb"] for s in analysis.values() if s.get("peak_rss_mb")]
    return {"points": points, "wall_s": round(wall, 1), "stages": stages, "only": sorted(stages) if only else None,
            "stand_in_seconds": round(sum(stages[n]["seconds"] or 0 for n in STAND_INS if n in stages), 1),
            "analysis_seconds": round(sum(s["seconds"] or 0 for s in analysis.values()), 1),
            "peak_rss_mb": max(peaks) if peaks else None,
            "stand_in_peak_rss_mb": max((stages[n]["peak_rss_mb"] or 0 for n in STAND_INS if n in stages), default=None),
            "within_16_gib": bool(peaks) and max(peaks) <= MEMORY_LIMIT_MB,
            "failed": {name: s["reason"] for name, s in stages.items() if s.get("state") in ("failed", "skipped")},
            "synthetic": result["summaries"].get("extract", {}).get("synthetic"),
            "neighbours": neighbour_facts(result), "retrieval_knn": retrieval_knn(result)}


def neighbour_facts(result: dict) -> dict:
    """Each space's search: method, index, k, measured recall (the stage's ``*_facts.json``) and seconds."""
    from pipeline.registry import stage_output

    entry = result["stages"].get("neighbours", {})
    if "dir" not in entry:
        return {}
    seconds = result["summaries"]["neighbours"]["spaces"]
    found = {}
    for space, timing in seconds.items():
        facts = json.loads(stage_output(result, "neighbours", f"{space}_facts").read_text(encoding="utf-8"))
        found[space] = {key: facts.get(key) for key in ("method", "index", "k", "recall", "recall_queries", "nprobe",
                                                         "efSearch", "dims") if key in facts}
        found[space]["seconds"] = timing["seconds"]
    return found


def retrieval_knn(result: dict) -> dict:
    stages, spaces = result["stages"], result["summaries"].get("neighbours", {}).get("spaces", {})
    parts = {"neighbours (embedding search)": spaces.get("embedding", {}).get("seconds"),
             "retrieval": stages.get("retrieval", {}).get("seconds"),
             "classes": stages.get("classes", {}).get("seconds")}
    complete = all(value is not None for value in parts.values())
    return {"counted": RETRIEVAL_PARTS, "parts": parts,
            "seconds": round(sum(parts.values()), 1) if complete else None,
            "not_counted": {"neighbours (pca search, t-SNE's)": spaces.get("pca", {}).get("seconds"),
                            "neighbours (raw-pixel search, the baseline's)": spaces.get("pixels", {}).get("seconds")}}


def growth(small: dict, large: dict, n_small: int, n_large: int) -> dict:
    """Per analysis stage: log(t_large / t_small) / log(n_large / n_small); None where either time is missing."""
    found = {}
    for name, stage in large.items():
        before = small.get(name, {}).get("seconds")
        if name in STAND_INS or not before or not stage.get("seconds") or stage.get("state") not in ("ran", "cached"):
            continue
        found[name] = round(math.log(stage["seconds"] / before) / math.log(n_large / n_small), 2)
    return found


def cached_sides(small: dict, large: dict, exponents: dict) -> dict:
    """Per exponent that rests on a time this run did not measure (a cached stage keeps the seconds of the run
    that computed it, on whatever the machine was doing then): which side was cached. Such an exponent is shown,
    never judged: growth is two times taken side by side."""
    found = {}
    for name in exponents:
        sides = [side for side, stages in (("baseline", small), ("large", large))
                 if stages.get(name, {}).get("state") == "cached"]
        if sides:
            found[name] = " and ".join(sides)
    return found


def run(source_run: Path, out: Path, points: int, scale: dict | None, baseline: int, keep: bool,
        only: tuple = ()) -> dict:
    """The synthetic run at ``points``; growth from the scale part's stage times, else from a run at ``baseline``
    (``only``: just these stages and what they read, in both runs)."""
    logging.getLogger("embdeck").setLevel(logging.INFO)  # the runner's per-stage progress
    source = read_source(source_run)
    result = {"label": LABEL, "source": {"run": str(source_run), "images": source.images,
                                         "folder": source.ingest_summary["folder"]},
              "config": list(OVERRIDES) + ["otherwise the defaults"], "left_out": LEFT_OUT}
    if scale and scale.get("stages"):
        small, n_small, origin = scale["stages"], int(scale["images"]), "the scale part's run of the real images"
    elif baseline:
        ran = one_run(source, baseline, out / f"million-run-{baseline}", keep, only)
        small, n_small, origin = ran["stages"], baseline, "this harness at the baseline size"
        result["baseline"] = ran
    else:
        small, n_small, origin = {}, 0, "none"
    result.update(one_run(source, points, out / "million-run", keep, only))
    exponents = growth(small, result["stages"], n_small, points) if 0 < n_small != points else {}
    result["growth"] = {"from_points": n_small, "from": origin, "exponents": exponents,
                        "cached": cached_sides(small, result["stages"], exponents),
                        "baseline_seconds": {name: s.get("seconds") for name, s in small.items()},
                        "baseline_states": {name: s.get("state") for name, s in small.items()}}
    return result
