"""Tiny stages for runner tests: cheap, deterministic, and able to pause mid-write when asked."""

import os
import time

import numpy as np

from pipeline.engine.stage import Stage, StageContext


def make_numbers(ctx: StageContext) -> dict:
    values = np.random.default_rng(ctx.cfg.demo.seed).normal(size=(200, 8))
    ctx.save_npy("numbers", values)
    return {"rows": 200}


def summarise(ctx: StageContext) -> dict:
    values = ctx.load_npy("numbers", "numbers")
    top = np.sort(values @ np.ones(8))[::-1][: ctx.cfg.pca.n_components]
    with open(ctx.output("top"), "wb") as handle:
        np.save(handle, top[: len(top) // 2])  # the first part of the output ...
        handle.flush()
        if os.environ.get("TOY_PAUSE_MID_WRITE"):
            (ctx.out_dir / "paused").touch()
            time.sleep(60)  # ... the test kills us here
    np.save(ctx.output("top"), top)
    return {"count": int(len(top))}


STAGES = [
    Stage("numbers", make_numbers, params=("demo",), outputs={"numbers": "numbers.npy"}),
    Stage("summary", summarise, inputs=("numbers.numbers",), params=("pca",), outputs={"top": "top.npy"}),
]
