"""What ``make compare`` adds to ``make deck`` on the demo set: the same deck run, then the run again with the
demo comparison (``--compare demo``: the bundled CNN, raw pixels, a randomly initialised ViT-S/16, and DINO
and DINOv2 where the hub answers), into the same output folder, as a user would after a first deck. The
second run's extra time is the comparison's cost; each compared backbone's extraction and the compare stage
are timed apart, and the comparison's table is kept for the closing note."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from .deck import REPO, ran, run_command, stages_of


def run() -> dict:
    embdeck = [sys.executable, "-m", "pipeline.cli", "deck"]
    with tempfile.TemporaryDirectory(prefix="embdeck-compare-") as tmp:
        out, slides = Path(tmp) / "out", Path(tmp) / "slides"
        args = ["--out", str(out), "--set", f"slides={slides}"]
        deck = run_command(embdeck + args, REPO)
        compared = run_command(embdeck + args + ["--compare", "demo"], REPO)
        stages = stages_of(out)
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    summary = record["summaries"].get("compare", {})
    return {"deck_s": deck["seconds"],
            "added_s": compared["seconds"], "stages_ran": ran(stages),
            "per_stage_s": {name: s["seconds"] for name, s in stages.items() if s["state"] == "ran"},
            "backbones": [b.get("name") for b in summary.get("backbones", [])], "rows": summary.get("rows"),
            "notes": summary.get("notes")}
