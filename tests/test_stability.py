"""How much a map depends on its seed (pipeline/methods/stability.py), and the quick run's figures for it."""

import numpy as np
import pytest

from helpers import record, stage_dirs, strict_json
from pipeline.methods import stability


def layout(n: int = 300, seed: int = 0) -> np.ndarray:
    """Points in clumps, as a map has them (so that neighbours mean something)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(6, 2))
    return centres[rng.integers(0, 6, n)] + rng.normal(size=(n, 2))


def turned(points: np.ndarray, degrees: float, scale: float, mirror: bool, shift) -> np.ndarray:
    t = np.deg2rad(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return scale * points @ rotation * np.array([1.0, -1.0 if mirror else 1.0]) + np.asarray(shift)


@pytest.mark.parametrize("degrees,scale,mirror", [(0, 1, False), (37, 0.01, False), (200, 40, True)])
def test_a_turned_mirrored_scaled_shifted_copy_has_not_moved(degrees, scale, mirror):
    a = layout()
    b = turned(a, degrees, scale, mirror, (300.0, -7.5))
    assert stability.aligned_displacement(a, b).max() < 1e-9
    assert (stability.neighbour_survival(a, b, 10) == 1.0).all()


def test_a_shuffled_copy_has_moved_and_lost_its_neighbours():
    a = layout()
    b = a[np.random.default_rng(1).permutation(len(a))]
    moved = stability.aligned_displacement(a, b)
    assert np.median(moved) > 0.5, "a point sent to a random other point's place moves about a radius"
    assert stability.neighbour_survival(a, b, 10).mean() < 0.2


def test_a_small_jitter_moves_points_a_little_and_keeps_most_neighbours():
    a = layout()
    b = turned(a, 90, 2, False, (1, 1)) + np.random.default_rng(2).normal(scale=0.05, size=a.shape)
    moved = stability.aligned_displacement(a, b)
    assert 0 < np.median(moved) < 0.02
    assert 0.7 < stability.neighbour_survival(a, b, 10).mean() < 1.0


def test_raw_displacement_does_not_align():
    a = layout()
    assert stability.displacement(a, a).max() == 0
    assert np.median(stability.displacement(a, turned(a, 90, 1, False, (0, 0)))) > 0.5
    assert np.allclose(stability.displacement(a, a + [stability.rms_radius(a), 0]), 1.0)


def test_neighbour_survival_on_a_tiny_set_lowers_k():
    a = layout(5)
    assert (stability.neighbour_survival(a, a, 10) == 1.0).all()


def test_summary_pools_the_refits_and_takes_rows():
    moved = [np.array([0.0, 0.1, 0.2, 1.0]), np.array([0.0, 0.1, 0.2, 1.0])]
    kept = [np.array([1.0, 1.0, 0.5, 0.0]), np.array([1.0, 1.0, 0.5, 0.0])]
    whole = stability.summary(moved, kept)
    assert whole["moved_median"] == 0.15 and whole["points"] == 4 and whole["neighbours_survive"] == 0.625
    assert 0.9 < whole["moved_p99"] <= 1.0
    first = stability.summary(moved, kept, np.array([True, True, False, False]))
    assert first == {"moved_median": 0.05, "moved_p99": 0.1, "neighbours_survive": 1.0, "points": 2}


@pytest.mark.xdist_group("quick")
def test_the_quick_run_measures_every_map_across_seeds_and_the_table_shows_it(quick_run):
    out, slides = quick_run["out"], quick_run["slides"]
    summary = record(out)["summaries"]["stability"]
    assert summary["sample"] == 40 and summary["refits"] == 2 and not summary["skipped"], summary
    assert set(summary["maps"]) == {"tsne", "umap", "param_umap", "tsne_mlp"}
    for name, splits in summary["maps"].items():
        assert set(splits) == ({"all"} if name in ("tsne", "umap") else {"train", "heldout"}), name
        for figures in splits.values():
            assert 0 < figures["moved_median"] <= figures["moved_p99"], (name, figures)
            assert 0 <= figures["neighbours_survive"] <= 1, (name, figures)
    assert strict_json(stage_dirs(out)["stability"] / "stability.json") == summary["maps"]
    rows = strict_json(stage_dirs(out)["fidelity"] / "fidelity.json")
    tsne = next(row for row in rows if row["map"] == "t-SNE")
    assert tsne["seeds"] == {key: summary["maps"]["tsne"]["all"][key]
                             for key in ("moved_median", "moved_p99", "neighbours_survive")}
    held = next(row for row in rows if row["map"] == "t-SNE MLP" and row["split"] == "held out")
    assert held["seeds"]["neighbours_survive"] == summary["maps"]["tsne_mlp"]["heldout"]["neighbours_survive"]
    median = f'{summary["maps"]["umap"]["all"]["moved_median"] * 100:.1f} %'
    deck = (slides / "slides.md").read_text()
    assert "moved, other seeds (median / p99)" in deck and median in deck
    assert "moved, other seeds (median / p99)" in (out / "report" / "index.html").read_text()
