"""Settings that are valid alone but contradict together: one line, before any work (config_rules.CROSS_RULES)."""

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.engine.config import Config, ConfigError, load_config
from pipeline.engine.config_rules import CROSS_RULES

ROOT = Path(__file__).resolve().parent.parent

BROKEN = [
    (["clusters.k_max=1"], "clusters.k_max = 1 must be 0 (scaled to the set) or at least clusters.k_min = 2"),
    (["clusters.k_min=8", "clusters.k_max=5"], "clusters.k_max = 5 must be 0 (scaled to the set) or at least clusters.k_min = 8"),
    (["tsne.engine=cuml", "device=cpu"], "tsne.engine = 'cuml' runs on an NVIDIA GPU: it needs device = cuda or auto, not 'cpu'"),
    (["umap.engine=cuml", "device=mps"], "umap.engine = 'cuml' runs on an NVIDIA GPU: it needs device = cuda or auto, not 'mps'"),
    (["extract.workers=2"], "extract.workers = 2 is the number of Ray model actors: it needs extract.engine = ray, not 'local' (or workers = 0)"),
    (["backbone.model=bundled", "backbone.weights=random"], "backbone.weights = 'random' would be ignored: backbone.model = 'bundled' ships its own weights (name a timm model, or auto)"),
]
KEPT = [["clusters.k_max=0"], ["clusters.k_max=2"], ["clusters.k_min=5", "clusters.k_max=5"], ["tsne.engine=cuml"],
        ["umap.engine=cuml", "device=cuda"], ["extract.engine=ray", "extract.workers=2"],
        ["backbone.model=bundled"], ["backbone.weights=random"]]


@pytest.mark.parametrize("overrides, message", BROKEN)
def test_contradicting_settings_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, overrides)
    assert str(raised.value) == message


@pytest.mark.parametrize("overrides", KEPT)
def test_settings_that_agree_pass(overrides):
    load_config(None, overrides)


def test_every_cross_rule_has_a_broken_case():
    named = {override.split("=")[0] for overrides, _ in BROKEN for override in overrides}
    for cross in CROSS_RULES:
        assert set(cross.keys) <= named | {"clusters.k_min", "extract.engine"}, cross.keys
    assert len(BROKEN) >= len(CROSS_RULES) + 1


def test_a_config_built_by_hand_is_checked_too():
    import dataclasses

    with pytest.raises(ConfigError, match="clusters.k_max = 1"):
        Config(clusters=dataclasses.replace(Config().clusters, k_max=1))


def test_the_cli_refuses_before_any_stage_runs(tmp_path):
    """`--set clusters.k_max=1` once ran the whole deck and told of a best silhouette at k=1."""
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--images", str(images), "--out", str(out),
                           "--set", "clusters.k_max=1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: clusters.k_max = 1 must be 0 (scaled to the set) or at least clusters.k_min = 2"]
    assert not out.exists(), "nothing written: no stage ran"
