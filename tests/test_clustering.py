"""k-means as every stage runs it (pipeline/methods/kmeans.py), on real pixels: seeded, the scores it reports
are scikit-learn's on its own assignment, and the restart rule."""

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score, silhouette_score

from pipeline.methods import kmeans as clustering


def test_restarts_are_as_set_or_four_below_the_threshold_and_one_above():
    assert clustering.restarts(7, 10, 100) == 7
    assert clustering.restarts(0, 99, 100) == 4 and clustering.restarts(0, 100, 100) == 1


def test_prepare_reduces_unit_rows_to_the_dims_asked(pixel_features):
    x, _ = pixel_features
    prepared = clustering.prepare(x * 10.0, 8)
    assert prepared.shape == (len(x), 8)
    assert np.allclose(prepared, clustering.prepare(x, 8), atol=1e-4), "the scale of a row does not matter"


def test_kmeans_at_reports_scikit_learn_s_scores_of_its_own_assignment(pixel_features):
    x, labels = pixel_features
    prepared = clustering.prepare(x, 20)
    found = clustering.kmeans_at(prepared, 10, n_init=2, sample=10_000, seed=0)
    again = clustering.kmeans_at(prepared, 10, n_init=2, sample=10_000, seed=0)
    assert np.array_equal(found["labels"], again["labels"]) and found["sse"] == again["sse"], "seeded"
    assert len(np.unique(found["labels"])) == 10
    assert found["silhouette"] == pytest.approx(silhouette_score(prepared, found["labels"]), abs=1e-6)
    assert found["davies_bouldin"] == pytest.approx(davies_bouldin_score(prepared, found["labels"]), abs=1e-6)
    centres = np.stack([prepared[found["labels"] == c].mean(0) for c in range(10)])
    sse = float(((prepared - centres[found["labels"]]) ** 2).sum())
    assert found["sse"] == pytest.approx(sse, rel=1e-3)


def test_one_cluster_or_one_point_per_cluster_has_no_score():
    each = clustering.kmeans_at(np.eye(4, dtype=np.float32), 4, n_init=1, sample=100, seed=0)
    assert np.isnan(each["silhouette"]) and np.isnan(each["davies_bouldin"]), "one point per cluster"
    pairs = clustering.kmeans_at(np.repeat(np.eye(3, dtype=np.float32), 2, axis=0), 3, n_init=1, sample=100, seed=0)
    assert pairs["silhouette"] == pytest.approx(1.0) and pairs["sse"] == pytest.approx(0.0), "three real clusters"


def test_a_unit_concatenation_weighs_both_halves_alike():
    a = np.array([[3.0, 4.0], [0.0, 2.0]], np.float32)
    b = np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.5]], np.float32)
    both = clustering.UnitConcatenation(a, b)
    assert both.shape == (2, 5) and len(both) == 2
    assert np.allclose(both[np.arange(2)], [[0.6, 0.8, 1, 0, 0], [0, 1, 0, 0, 1]])
