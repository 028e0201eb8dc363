"""The demo deck end to end: cold from a fresh clone, the pipeline alone cold, warm, and one parameter changed.

Each is a real command in a subprocess, as a user types it; which stages ran is read from the run record
(``out/run.json``), and the peak memory of each stage from the same record.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TSNE_CHANGE = "tsne.perplexity=31"  # the one t-SNE setting the warm run changes


def run_command(command: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Wall time, exit status and the peak RSS of the largest process the command started (``env``: its whole
    environment, this process's by default)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": round(seconds, 2), "peak_rss_mb_if_new_high": round(peak / 1024, 1) if peak > before else None}


def stages_of(out: Path) -> dict:
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {name: {"state": s["state"], "seconds": s.get("seconds"), "peak_rss_mb": s.get("peak_rss_mb")}
            for name, s in record["stages"].items()}


def ran(stages: dict) -> list[str]:
    return [name for name, s in stages.items() if s["state"] == "ran"]


def reference_code(commit: str, into: Path) -> Path:
    """The reference commit's files (``git archive``), unpacked into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def reference_cold(commit: str) -> dict:
    """The reference commit's pipeline cold on the demo set, as ``pipeline_runs`` runs this code's."""
    with tempfile.TemporaryDirectory(prefix="embdeck-reference-") as tmp:
        code = reference_code(commit, Path(tmp) / "code")
        out = Path(tmp) / "out"
        run_command([sys.executable, "-m", "pipeline.cli", "demo"], REPO)  # written once, read by both codes
        cold = run_command([sys.executable, "-m", "pipeline.cli", "deck", "--out", str(out), "--set",
                            f"slides={Path(tmp) / 'slides'}", "--set", f"demo.folder={REPO / 'data' / 'demo'}"], code)
        cold["stages"] = stages_of(out)
    return {"commit": commit, **cold}


def pipeline_runs(reps_warm: int = 3) -> dict:
    """The pipeline alone: cold into an empty output folder, warm, then one t-SNE parameter changed."""
    embdeck = [sys.executable, "-m", "pipeline.cli"]
    with tempfile.TemporaryDirectory(prefix="embdeck-bench-") as tmp:
        out, slides = Path(tmp) / "out", Path(tmp) / "slides"
        args = ["deck", "--out", str(out), "--set", f"slides={slides}"]
        cold = run_command(embdeck + args, REPO)
        cold["stages"] = stages_of(out)
        warm = [run_command(embdeck + args, REPO) for _ in range(reps_warm)]
        warm_stages = stages_of(out)
        changed = run_command(embdeck + args + ["--set", TSNE_CHANGE], REPO)
        changed_stages = stages_of(out)
    warm_seconds = sorted(w["seconds"] for w in warm)
    return {"cold": cold, "cold_stage_seconds": round(sum(s["seconds"] or 0 for s in cold["stages"].values()), 1),
            "warm": {"median_s": warm_seconds[len(warm_seconds) // 2], "runs_s": [w["seconds"] for w in warm],
                     "stages_ran": ran(warm_stages)},
            "tsne_perplexity_changed": {"seconds": changed["seconds"], "stages_ran": ran(changed_stages),
                                        "stages_cached": [n for n, s in changed_stages.items() if s["state"] == "cached"]}}


def fresh_clone() -> dict:
    """``git clone`` then ``make deck``: install (venv, npm packages), pipeline, Slidev build and PDF."""
    # uv's own rule for where its cache lies: UV_CACHE_DIR, else $XDG_CACHE_HOME/uv, else ~/.cache/uv.
    uv_cache = Path(os.environ.get("UV_CACHE_DIR")
                    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv")
    uv_cache_warm = uv_cache.is_dir() and any(uv_cache.iterdir())
    with tempfile.TemporaryDirectory(prefix="embdeck-clone-") as tmp:
        target = Path(tmp) / "embdeck"
        subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
        # As a user types it: without `make bench`'s own variables (make exports its command line's ARGS to
        # the environment, where `make deck` would read them) and outside the bench's virtual environment;
        # with a fresh numba cache, so the first compile of umap-learn's functions is counted.
        inherited = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ARGS", "IMAGES", "VIRTUAL_ENV")
        env = {**{k: v for k, v in os.environ.items() if k not in inherited},
               "CI": "", "NUMBA_CACHE_DIR": str(Path(tmp) / "numba-cache")}
        result = run_command(["make", "deck"], target, env)
        result["stages"] = stages_of(target / "out")
        shutil.rmtree(target, ignore_errors=True)
    result["note"] = ("uv and npm install from their caches on this machine (uv's cache "
                      + ("already held packages" if uv_cache_warm else "was empty")
                      + " before this clone) and the Debian packages are already present; "
                      "a first install on a new machine also downloads the packages")
    result["uv_cache_warm"] = uv_cache_warm
    return result


def run(fresh: bool = True, reference: str = "") -> dict:
    """The pipeline runs; with ``reference``, that commit's cold pipeline just before this code's, so both meet
    the same machine (its speed drifts: the first release took 66 s cold when the issue was filed, 104 s on
    2026-11-28)."""
    out = {}
    if reference:
        out["reference_cold"] = reference_cold(reference)
    out["pipeline"] = pipeline_runs()
    if reference:
        out["cold_ratio_to_reference"] = round(out["pipeline"]["cold"]["seconds"] / out["reference_cold"]["seconds"], 3)
    if fresh:
        out["fresh_clone_make_deck"] = fresh_clone()
    return out
