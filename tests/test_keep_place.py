"""Maps that keep their place (pipeline/methods/layout_update.py and the runner's ``resumes``): rows matched by
content, old images started where they were, new ones among their neighbours; then, on real Fashion-MNIST
images, a collection grown and shrunk in one output folder: the maps resume, say what changed and how far the
old images moved, keep each image's side of the held-out split, recompute nothing when nothing changed, and
start fresh (as a new folder would) when ``keep_place`` is off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import copy_of_run, invoke, quick_settings, record, write_fashion_folder
from pipeline.methods import layout_update

MAPS = ("tsne", "umap", "parametric")


# -- the method alone ------------------------------------------------------------------------------------------
def test_rows_are_matched_by_content_whatever_their_order():
    match = layout_update.carried(["a", "b", "c", "b"], ["c", "x", "a", "b"])
    assert match.now.tolist() == [0, 2, 3] and match.before.tolist() == [2, 0, 1]
    assert match.counts() == {"kept": 3, "added": 1, "removed": 1}


def test_old_images_start_where_they_were_and_new_ones_among_their_neighbours():
    earlier = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 1.0], [10.0, 2.0]])
    match = layout_update.carried(["p", "q", "r", "s"], ["q", "new", "p", "r", "s", "alone"])
    graph = np.array([[2, 3], [0, 3], [0, 1], [0, 4], [0, 3], [1, 1]])  # "new" sits by q and r; "alone" by none
    start = layout_update.start_layout(earlier, match, graph, seed=0)
    assert np.array_equal(start[[0, 2, 3, 4]], earlier[[1, 0, 2, 3]])
    assert np.allclose(start[1], [10.0, 0.5], atol=0.05)  # the median of q (10, 0) and r (10, 1)
    assert np.allclose(start[5], earlier.mean(axis=0), atol=0.05)


def test_a_map_that_did_not_move_reports_no_movement_and_a_shuffled_one_does():
    rng = np.random.default_rng(0)
    earlier = rng.normal(size=(200, 2))
    match = layout_update.carried([str(i) for i in range(200)], [str(i) for i in range(210)])
    now = np.vstack([earlier * 3 + 1, rng.normal(size=(10, 2))])  # scaled and shifted: not a move
    still = layout_update.moved(earlier, now, match)
    assert still["moved_median"] < 1e-9 and still["neighbours_survive"] == 1.0 and still["added"] == 10
    shuffled = layout_update.moved(earlier, np.vstack([earlier[rng.permutation(200)], now[200:]]), match)
    assert shuffled["moved_median"] > 0.5 and shuffled["neighbours_survive"] < 0.2


# -- through the pipeline --------------------------------------------------------------------------------------
def maps_run(images: Path, out: Path, *settings: str) -> dict:
    invoke("run", "--images", images, "--out", out, "--only", "parametric", *quick_settings(),
           *[arg for s in settings for arg in ("--set", s)])
    stages = record(out)["stages"]
    found = {}
    for name in MAPS:
        folder = Path(stages[name]["dir"])
        found[name] = {"state": stages[name]["state"], "key": stages[name]["key"],
                       "summary": json.loads((folder / "meta.json").read_text())["summary"],
                       "ids": np.load(folder / "row_ids.npy")}
    folder = Path(stages["parametric"]["dir"])
    found["coords"] = {"tsne": np.load(Path(stages["tsne"]["dir"]) / "tsne.npy"),
                       "umap": np.load(Path(stages["umap"]["dir"]) / "umap.npy"),
                       "param_umap": np.load(folder / "param_umap.npy"), "tsne_mlp": np.load(folder / "tsne_mlp.npy")}
    found["heldout"] = np.load(folder / "heldout.npy")
    graph = Path(stages["neighbours"]["dir"])
    found["neighbours"] = {"facts": json.loads((graph / "meta.json").read_text())["summary"]["spaces"],
                           **{space: (np.load(graph / f"{space}_idx.npy"), np.load(graph / f"{space}_values.npy"))
                              for space in ("embedding", "pixels")}}
    return found


@pytest.fixture(scope="module")
def growing(tmp_path_factory, fashion):
    """60 images mapped, then 8 more in the same folder, then nothing changed, then the 8 removed again."""
    base = tmp_path_factory.mktemp("growing")
    images, out = base / "images", base / "out"
    write_fashion_folder(images, fashion, per_class=6)
    first = maps_run(images, out)
    extra = write_fashion_folder(base / "extra", fashion, per_class=1, seed=11)
    added = []
    for path in sorted(extra.rglob("*.png"))[:8]:
        target = images / path.relative_to(extra).parent / f"extra_{path.name}"
        shutil.copy(path, target)
        added.append(target)
    grown = maps_run(images, out)
    cold = maps_run(images, base / "cold")
    again = maps_run(images, out)
    for path in added:
        path.unlink()
    shrunk = maps_run(images, out)
    return {"base": base, "images": images, "out": out, "first": first, "grown": grown, "cold": cold, "again": again,
            "shrunk": shrunk, "added": added}


def test_a_first_run_starts_fresh(growing):
    for name in MAPS:
        assert growing["first"][name]["summary"]["resumed"] is False


def test_a_grown_set_resumes_every_map_and_says_what_changed(growing):
    first, grown, cold = growing["first"], growing["grown"], growing["cold"]
    match = layout_update.carried(first["tsne"]["ids"], grown["tsne"]["ids"])
    for name in ("tsne", "umap"):
        summary = grown[name]["summary"]
        assert summary["resumed"] is True and cold[name]["summary"]["resumed"] is False
        since = summary["since_last"]
        assert (since["kept"], since["added"], since["removed"]) == (60, 8, 0)
        assert since == layout_update.moved(first["coords"][name], grown["coords"][name], match)
        # The old images stay far nearer where they were than on a fresh map of the grown set
        fresh = layout_update.moved(first["coords"][name], cold["coords"][name], match)
        assert since["moved_median"] < fresh["moved_median"] / 2 and since["moved_p99"] < fresh["moved_p99"], \
            (name, since, fresh)
        assert len(grown[name]["ids"]) == 68 and set(first[name]["ids"]) < set(grown[name]["ids"])
    assert grown["parametric"]["summary"]["resumed"] is True
    for head in ("param_umap", "tsne_mlp"):
        assert grown["parametric"]["summary"][head]["continued"] is True
        assert grown["parametric"]["summary"][head]["since_last"]["kept"] == 60


def test_old_images_keep_their_side_of_the_held_out_split(growing):
    first, grown = growing["first"], growing["grown"]
    match = layout_update.carried(first["parametric"]["ids"], grown["parametric"]["ids"])
    assert np.array_equal(grown["heldout"][match.now], first["heldout"][match.before])


def test_nothing_changed_recomputes_nothing(growing):
    for name in MAPS:
        assert growing["again"][name]["state"] == "cached"
        assert growing["again"][name]["key"] == growing["grown"][name]["key"]


def test_removed_images_resume_the_map_without_them(growing):
    since = growing["shrunk"]["tsne"]["summary"]["since_last"]
    assert (since["kept"], since["added"], since["removed"]) == (60, 0, 8)
    assert growing["shrunk"]["tsne"]["summary"]["resumed"] is True


def test_keep_place_off_gives_the_map_a_new_folder_gives(growing, tmp_path):
    fresh_here = maps_run(growing["images"], copy_of_run(growing["out"], tmp_path / "out"), "keep_place=false")
    fresh_there = maps_run(growing["images"], tmp_path / "cold")
    for name in MAPS:
        assert fresh_here[name]["summary"]["resumed"] is False
    for name in ("tsne", "umap"):  # the parametric key also covers the maps' timings (their summaries)
        assert fresh_here[name]["key"] == fresh_there[name]["key"]
    for name, coords in fresh_here["coords"].items():
        assert np.array_equal(coords, fresh_there["coords"][name]), name


# -- the neighbour graph, grown --------------------------------------------------------------------------------
@pytest.mark.parametrize("metric,unit", [("ip", True), ("l2", False)])
def test_a_grown_graph_is_the_graph_a_full_search_makes(metric, unit):
    from pipeline.methods import graph_update
    from pipeline.methods.knn import exact_graph

    x = np.random.default_rng(1).normal(size=(600, 16)).astype(np.float32)
    order = np.random.default_rng(2).permutation(600)  # the grown set lists its rows in another order
    ids = np.array([f"r{i}" for i in range(600)])
    earlier = exact_graph(x[:540], 12, metric, unit, 128)
    match = layout_update.carried(ids[:540], ids[order])
    assert graph_update.can_grow(match, 12, 12, 0.2) == ""
    idx, values = graph_update.grown_graph(x[order], *earlier, match, metric, unit, 128)
    full_idx, full_values = exact_graph(x[order], 12, metric, unit, 128)
    assert np.allclose(values, full_values, atol=1e-5)
    assert (idx == full_idx).mean() > 0.999  # equal but for the order of exact ties


def test_a_graph_is_searched_again_when_images_were_removed_or_too_many_are_new():
    from pipeline.methods import graph_update

    removed = layout_update.carried(["a", "b", "c"], ["a", "b"])
    assert "removed" in graph_update.can_grow(removed, 5, 5, 0.2)
    many = layout_update.carried(["a", "b", "c"], ["a", "b", "c", "d", "e"])
    assert "more than 20%" in graph_update.can_grow(many, 5, 5, 0.2)
    assert "neighbours a row" in graph_update.can_grow(layout_update.carried(["a"], ["a"]), 4, 5, 0.2)
    twice = layout_update.carried(["a", "b"], ["a", "a", "b"])
    assert "more than once" in graph_update.can_grow(twice, 5, 5, 0.5)


def test_the_grown_run_searched_only_the_new_rows_and_its_graph_is_the_cold_run_s(growing):
    grown, cold = growing["grown"], growing["cold"]
    for space in ("embedding", "pixels"):
        facts = grown["neighbours"]["facts"][space]
        assert facts["grown"] == {"kept": 60, "added": 8} and "grown" not in cold["neighbours"]["facts"][space]
        assert np.allclose(grown["neighbours"][space][1], cold["neighbours"][space][1], atol=1e-5)
    assert "grown" not in grown["neighbours"]["facts"]["pca"]  # PCA is fitted again: searched whole
    assert "removed" in growing["shrunk"]["neighbours"]["facts"]["embedding"]["not_grown"]


def test_the_deck_and_the_report_say_what_the_update_embedded_and_how_far_the_maps_moved(growing, tmp_path):
    out, slides = copy_of_run(growing["out"], tmp_path / "out"), tmp_path / "slides"
    invoke("deck", "--images", growing["images"], "--out", out, "--set", f"slides={slides}", *quick_settings())
    since = growing["shrunk"]["tsne"]["summary"]["since_last"]  # the last run: 8 images removed, none added
    deck = (slides / "slides.md").read_text()
    # the 60 images are the first run's: its extraction entry is cached, nothing ran through the network
    assert "Embeddings from the cache: no image run through the network this time" in deck
    assert (f"The maps started from the previous run's: 0 added, 8 removed, and the 60 kept images moved a median "
            f"{100 * since['moved_median']:.1f} % (t-SNE)") in deck
    report = (out / "report" / "index.html").read_text()
    assert "These maps started from the previous run's in this folder: 0 images added, 8 removed, 60 kept;" in report
    assert f"<td>t-SNE</td><td>{100 * since['moved_median']:.2f} %</td>" in report
