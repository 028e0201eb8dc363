"""The stage runner: keys, skipping, upstream invalidation, status reasons, and killed runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.engine.config import load_config
from pipeline.engine.runner import Runner

from toy_stages import STAGES

HERE = Path(__file__).parent


def runner(out: Path, **pca) -> Runner:
    cfg = load_config(None, [f"out={out}", *(f"pca.{key}={value}" for key, value in pca.items())])
    return Runner(cfg, STAGES)


def states(result: dict) -> dict:
    return {name: stage["state"] for name, stage in result["stages"].items()}


def test_second_run_recomputes_nothing(tmp_path):
    assert states(runner(tmp_path).run()) == {"numbers": "ran", "summary": "ran"}
    assert states(runner(tmp_path).run()) == {"numbers": "cached", "summary": "cached"}


def test_a_param_change_reruns_that_stage_and_not_upstream(tmp_path):
    runner(tmp_path).run()
    changed = runner(tmp_path, n_components=10)
    assert [p.reasons for p in changed.plan()] == [[], ["pca.n_components 50 -> 10"]]
    assert states(changed.run()) == {"numbers": "cached", "summary": "ran"}


def test_upstream_change_invalidates_downstream(tmp_path):
    runner(tmp_path).run()
    cfg = load_config(None, [f"out={tmp_path}", "demo.seed=5"])
    plan = Runner(cfg, STAGES).plan()
    assert plan[0].reasons == ["demo.seed 0 -> 5"]
    assert plan[1].reasons == ["upstream numbers is stale"]
    assert states(Runner(cfg, STAGES).run()) == {"numbers": "ran", "summary": "ran"}


def test_only_and_force(tmp_path):
    runner(tmp_path).run()
    result = runner(tmp_path).run(only="summary", force=True)
    assert states(result) == {"numbers": "cached", "summary": "ran"}


def test_a_run_killed_mid_write_leaves_nothing_trusted(tmp_path):
    out = tmp_path / "out"
    script = (f"import sys; sys.path.insert(0, {str(HERE)!r}); from test_runner import runner; "
              f"from pathlib import Path; runner(Path({str(out)!r})).run()")
    env = {**os.environ, "TOY_PAUSE_MID_WRITE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=HERE.parent)
    deadline = time.time() + 60
    while not list(out.glob("cache/summary/.tmp-*/paused")):
        assert time.time() < deadline and proc.poll() is None, "the stage never reached its pause"
        time.sleep(0.05)
    partial = next(out.glob("cache/summary/.tmp-*/top.npy"))
    assert partial.stat().st_size > 0, "the stage had written part of its output"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    resumed = runner(out)
    assert resumed.plan()[1].reasons, "the killed stage must not look finished"
    assert states(resumed.run()) == {"numbers": "cached", "summary": "ran"}
    assert not list(out.glob("cache/*/.tmp-*")), "leftovers of the killed run are cleaned"
    clean = tmp_path / "clean"
    runner(clean).run()
    got = np.load(next(out.glob("cache/summary/*/top.npy")))
    want = np.load(next(clean.glob("cache/summary/*/top.npy")))
    assert np.array_equal(got, want)


def test_an_entry_without_meta_is_not_trusted(tmp_path):
    first = runner(tmp_path)
    first.run()
    key = first.plan()[1].key
    (first.entry_dir("summary", key) / "meta.json").unlink()
    assert states(runner(tmp_path).run())["summary"] == "ran"


def test_upstream_rerun_with_identical_output_keeps_downstream(tmp_path):
    """Keys follow upstream *outputs*: a rerun that writes the same bytes invalidates nothing after it."""
    runner(tmp_path).run()
    cfg = load_config(None, [f"out={tmp_path}", "demo.per_class=3"])  # read by the stage's params, not used by its math
    assert states(Runner(cfg, STAGES).run()) == {"numbers": "ran", "summary": "cached"}


def test_variants_are_cached_apart_and_leave_the_lock_alone(tmp_path):
    """A stage that reads ``numbers`` once per variant config: each variant is its own cache entry (one equal to
    the run's config is the run's own), adding a variant runs only that one, and the lock keeps the run's key."""
    import dataclasses

    from pipeline.engine.stage import Stage, Variants

    def seeds(cfg):
        return {f"seed {s}": dataclasses.replace(cfg, demo=dataclasses.replace(cfg.demo, seed=s))
                for s in range(cfg.pca.n_components)}

    def spread(ctx):
        ctx.save_npy("spread", np.array([ctx.load_variant_npy(label, "numbers", "numbers").std()
                                         for label in ctx.variant_labels()]))
        return {"variants": ctx.variant_labels()}

    stages = [*STAGES, Stage("spread", spread, inputs=("numbers.numbers",), params=("pca",),
                             variants=Variants(seeds, ("numbers.numbers",)), outputs={"spread": "spread.npy"})]

    def run(count):
        cfg = load_config(None, [f"out={tmp_path}", f"pca.n_components={count}"])
        return states(Runner(cfg, stages).run())

    assert run(2) == {"numbers": "ran", "numbers@seed 0": "cached", "numbers@seed 1": "ran", "summary": "ran",
                      "spread": "ran"}, "seed 0 is the run's own config: its entry is reused"
    lock = json.loads((tmp_path / "embdeck.lock.json").read_text())
    assert lock["stages"]["numbers"]["params"] == {"demo": {"per_class": 200, "seed": 0}}
    assert run(3) == {"numbers": "cached", "numbers@seed 0": "cached", "numbers@seed 1": "cached",
                      "numbers@seed 2": "ran", "summary": "ran", "spread": "ran"}
    assert [p.reasons for p in Runner(load_config(None, [f"out={tmp_path}", "pca.n_components=4"]), stages).plan()][
        -1] == ["pca.n_components 3 -> 4", "numbers@seed 3 is stale"]


def test_a_source_edited_while_a_stage_runs_keeps_nothing_under_its_key(tmp_path):
    """A stage's key names its sources as the run found them; when one changes before the stage ends, the
    output may come from either version, so the runner keeps none of it, and the next run (keyed by the new
    source) computes it again."""
    import shutil

    from pipeline.engine.stage import Stage

    from toy_stages import make_numbers

    code = tmp_path / "code"
    shutil.copytree(HERE.parent / "pipeline", code / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    edited = code / "pipeline" / "engine" / "stage.py"

    def numbers_while_editing(ctx):
        edited.write_text(edited.read_text() + "\n# edited mid-run\n")
        return make_numbers(ctx)

    cfg = load_config(None, [f"out={tmp_path / 'out'}"])
    spec = {"params": ("demo",), "outputs": {"numbers": "numbers.npy"}}
    failed = Runner(cfg, [Stage("numbers", numbers_while_editing, **spec)], code_root=code).run()["stages"]["numbers"]
    assert failed["state"] == "failed" and "pipeline/engine/stage.py changed on disk" in failed["reason"]
    assert not list((tmp_path / "out" / "cache" / "numbers").iterdir()), "nothing kept, not even a partial entry"
    again = Runner(cfg, [Stage("numbers", make_numbers, **spec)], code_root=code).run()["stages"]["numbers"]
    assert again["state"] == "ran"


def test_a_stage_reading_a_config_section_it_does_not_declare_fails_naming_it(tmp_path):
    """As an undeclared input is refused, so is an undeclared section: what a stage reads is in its key."""
    from pipeline.engine.stage import Stage

    def peeks(ctx):
        ctx.cfg.tsne.perplexity  # declares demo only
        return {}

    def places_and_declared(ctx):
        return {"out": ctx.cfg.out, "seed": ctx.cfg.demo.seed}

    stages = [Stage("peeks", peeks, params=("demo",)), Stage("reads", places_and_declared, params=("demo",))]
    result = Runner(load_config(None, [f"out={tmp_path}"]), stages).run()["stages"]
    assert result["peeks"]["state"] == "failed"
    assert "stage peeks reads config section 'tsne' but does not declare it" in result["peeks"]["reason"]
    assert result["reads"]["state"] == "ran"


def test_every_file_a_stage_writes_is_declared_and_a_series_is_found_by_its_pattern(tmp_path):
    """A numbered series (``part-*.txt``) is one declared output; a file outside the declarations keeps nothing."""
    from pipeline.engine.stage import Stage, series_files

    def parts(ctx):
        for number in range(3):
            ctx.output("parts", f"{number:02d}").write_text(str(number))
        return {}

    def stray(ctx):
        ctx.output("one").write_text("declared")
        (ctx.out_dir / "extra.txt").write_text("not declared")
        return {}

    def reader(ctx):
        return {"read": [p.read_text() for p in ctx.series("parts", "parts")]}

    stages = [Stage("parts", parts, outputs={"parts": "part-*.txt"}),
              Stage("stray", stray, outputs={"one": "one.txt"}),
              Stage("reader", reader, inputs=("parts.parts",))]
    result = Runner(load_config(None, [f"out={tmp_path}"]), stages).run()
    entry = Path(result["stages"]["parts"]["dir"])
    assert [p.name for p in series_files(entry, "part-*.txt")] == ["part-00.txt", "part-01.txt", "part-02.txt"]
    assert result["summaries"]["reader"] == {"read": ["0", "1", "2"]}
    assert result["stages"]["stray"]["state"] == "failed"
    assert "wrote extra.txt, which it does not declare" in result["stages"]["stray"]["reason"]
    assert not list((tmp_path / "cache" / "stray").iterdir()), "nothing kept"
