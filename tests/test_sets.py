"""Whole image sets at the edges: each works (with what it could not do reported) or stops with a one-line
error that says what to change."""

import json
import shutil

import numpy as np
from click.testing import CliRunner

from pipeline.cli import main


def deck(tmp_path, images):
    out, slides = tmp_path / "out", tmp_path / "slides"
    result = CliRunner().invoke(main, ["deck", "--images", str(images), "--out", str(out), "--set", f"slides={slides}"])
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
    not_run = json.loads((out / "run.json").read_text())["not_run"]
    assert not_run["pca"] == "PCA needs at least 3 images for a 2-D map, got 1"
    assert not_run["clusters"] == "clustering needs at least 3 images, got 1"
    assert "**1 images**" in (slides / "slides.md").read_text()


def test_identical_images_and_one_class(tmp_path, small_set):
    result, out, slides = deck(tmp_path, copy_some(small_set, tmp_path / "same", 8, same=True))
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert len(record["summaries"]["ingest"]["duplicates"]) == 7
    assert "knn_accuracy" not in record["summaries"]["retrieval"], "no labels, no accuracy"
    assert "clusters" not in record["not_run"], record["not_run"]
    assert "No labels" in (slides / "slides.md").read_text() or "retrieval" in record["not_run"]
