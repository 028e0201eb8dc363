"""Whole image sets at the edges: each works (with what it could not do reported) or stops with a one-line
error that says what to change."""

import shutil

import pytest

from helpers import cli, quick_settings, record

pytestmark = pytest.mark.full  # whole decks and runs: the full suite


def deck(tmp_path, images):
    out, slides = tmp_path / "out", tmp_path / "slides"
    result = cli("deck", "--images", str(images), "--out", str(out), "--set", f"slides={slides}", *quick_settings())
    return result, out, slides


def copy_some(small_set, target, count, same=False):
    target.mkdir(parents=True)
    sources = sorted(small_set.rglob("*.png"))
    for i in range(count):
        shutil.copy(sources[0 if same else i * 7], target / f"img{i}.png")
    return target


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result, _, _ = deck(tmp_path, tmp_path / "empty")
    assert result.exit_code == 2 and "no usable images" in result.output and "Traceback" not in result.output


def test_one_image_makes_a_deck_that_says_what_it_could_not_do(tmp_path, small_set):
    result, out, slides = deck(tmp_path, copy_some(small_set, tmp_path / "one", 1))
    assert result.exit_code == 0, result.output
    not_run = record(out)["not_run"]
    assert not_run["pca"] == "PCA needs at least 3 images for a 2-D map, got 1"
    assert not_run["clusters"] == "clustering needs at least 3 images, got 1"
    assert "**1 images**" in (slides / "slides.md").read_text()


def test_identical_images_and_one_class(tmp_path, small_set):
    result, out, slides = deck(tmp_path, copy_some(small_set, tmp_path / "same", 8, same=True))
    assert result.exit_code == 0, result.output
    rec = record(out)
    assert len(rec["summaries"]["ingest"]["duplicates"]) == 7
    assert "knn_accuracy" not in rec["summaries"]["retrieval"], "no labels, no accuracy"
    assert "clusters" not in rec["not_run"], rec["not_run"]
    assert "retrieval" not in rec["not_run"]
    assert "No labels in this image folder" in (slides / "slides.md").read_text()


def test_two_images_of_one_class_with_impossible_settings(tmp_path, small_set):
    images = tmp_path / "two" / "Bag"
    images.mkdir(parents=True)
    for path in sorted((small_set / "Bag").iterdir())[:2]:
        shutil.copy(path, images / path.name)
    out, slides = tmp_path / "out", tmp_path / "slides"
    result = cli("deck", "--images", str(images.parent), "--out", str(out), "--set", f"slides={slides}",
                 *quick_settings(), "--set", "clusters.k_max=300", "--set", "tsne.perplexity=500")
    assert result.exit_code == 0, result.output
    rec = record(out)
    assert rec["summaries"]["ingest"]["labels"] == ["Bag"]
    assert rec["not_run"]["pca"] == "PCA needs at least 3 images for a 2-D map, got 2"
    assert rec["not_run"]["tsne"] == "needs pca, which could not run"
    assert rec["not_run"]["clusters"] == "clustering needs at least 3 images, got 2"
    assert "knn_accuracy" not in rec["summaries"]["retrieval"], "one class: nothing to classify"


def test_more_clusters_and_a_larger_perplexity_than_the_set_allows_are_lowered_and_said(tmp_path, small_set):
    out, slides = tmp_path / "out", tmp_path / "slides"
    result = cli("deck", "--images", str(small_set), "--out", str(out), "--set", f"slides={slides}",
                 *quick_settings(), "--set", "clusters.k_max=300", "--set", "tsne.perplexity=500",
                 "--set", "umap.n_neighbors=100")
    assert result.exit_code == 0, result.output
    s = record(out)["summaries"]
    assert s["clusters"]["adjustment"] == "k_max 300 is more clusters than 60 images allow; lowered to 59"
    assert s["tsne"]["adjustment"] == "perplexity 500 is too large for 60 images; lowered to 19.67"
    assert s["umap"]["adjustment"] == "n_neighbors 100 is too large for 60 images; lowered to 59"
    deck = (slides / "slides.md").read_text()
    assert "lowered to 19.67" in deck and "lowered to 59" in deck
