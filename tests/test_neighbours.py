"""The neighbour graph on real data: exact search against brute force, the approximate indexes against their
recall target, the k-NN probes read from the graph against a search of their own, and PCA by blocks."""

import numpy as np
import pytest

from pipeline.methods import ann, knn as neighbours, pca_fit
from pipeline.analyses import probes
from pipeline.engine.artifacts import StageError


@pytest.fixture(scope="module")
def fashion_pca(fashion):
    """6,000 real Fashion-MNIST images as PCA-50 of their pixels, with labels."""
    from pipeline import demo

    images, labels = fashion
    picks = demo.stratified_indices(labels, 600, seed=3)
    pixels = images[picks].reshape(len(picks), -1).astype(np.float32) / 255.0
    return pca_fit.reduce(pixels, 50), labels[picks]


def brute_force(x: np.ndarray, k: int, cosine: bool) -> np.ndarray:
    unit = neighbours.normalise(x) if cosine else x.astype(np.float64)
    if cosine:
        scores = unit @ unit.T
    else:
        scores = -((unit[:, None, :] - unit[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_exact_graph_is_brute_force_without_the_point_itself(pixel_features):
    x, _ = pixel_features
    for metric, unit in (("ip", True), ("l2", False)):
        found, values = neighbours.exact_graph(x, 12, metric, unit, block=64)
        truth = brute_force(x, 12, cosine=unit)
        assert found.shape == (len(x), 12) and not (found == np.arange(len(x))[:, None]).any()
        assert neighbours.recall_at_k(found, truth) > 0.999
        assert (np.diff(values, axis=1) <= 1e-6).all() if unit else (np.diff(values, axis=1) >= -1e-5).all()
    doubled = np.concatenate([x[:50], x[:50]])
    found, values = neighbours.exact_graph(doubled, 3, "ip", True, block=16)
    assert (found[:50, 0] == np.arange(50, 100)).all() and np.allclose(values[:, 0], 1.0, atol=1e-5), "its copy first"


@pytest.mark.parametrize("method", ["ivf", "hnsw"])
def test_approximate_graphs_reach_their_recall_and_measure_it(fashion_pca, method):
    x, _ = fashion_pca
    graph = ann.build_graph(x, 15, "ip", True, method, exact_up_to=0, min_recall=0.99, recall_queries=300, block=2048,
                            seed=0)
    assert graph.facts["method"] == method and graph.facts["recall_queries"] == 300
    truth, _ = neighbours.exact_graph(x, 15, "ip", True, block=2048)
    measured = neighbours.recall_at_k(graph.idx, truth)
    assert graph.facts["recall"] >= 0.99 and measured >= 0.985, "tuned to 0.99 on samples, it holds on all images"
    check = ann.seeded_rows(len(x), 300, 2)
    assert abs(graph.facts["recall"] - neighbours.recall_at_k(graph.idx[check], truth[check])) < 1e-4
    assert not (graph.idx == np.arange(len(x))[:, None]).any()
    again = ann.build_graph(x, 15, "ip", True, method, exact_up_to=0, min_recall=0.99, recall_queries=300, block=2048,
                            seed=0)
    assert np.array_equal(graph.idx, again.idx), "the same seed and data give the same graph"


def test_auto_is_exact_up_to_its_threshold_and_tiny_sets_get_a_clear_error(fashion_pca):
    x, _ = fashion_pca
    small = ann.build_graph(x[:500], 5, "l2", False, "auto", exact_up_to=1000, min_recall=0.99, recall_queries=50,
                            block=128, seed=0)
    assert small.facts["method"] == "exact" and small.facts["recall"] == 1.0
    large = ann.build_graph(x, 5, "l2", False, "auto", exact_up_to=1000, min_recall=0.99, recall_queries=100,
                            block=1024, seed=0)
    assert large.facts["method"] == "ivf" and large.facts["recall"] >= 0.98
    assert ann.pick_method("auto", 10**6, 50_000) == "ivf" and ann.pick_method("auto", 10, 50) == "exact"
    assert ann.pick_method("hnsw", 10**6, 50_000) == "hnsw"
    with pytest.raises(StageError, match="needs at least 64 images"):
        ann.build_graph(x[:20], 5, "l2", False, "ivf", 0, 0.99, 10, 16, 0)


def test_knn_probes_from_the_graph_equal_a_search_of_their_own(fashion_pca):
    x, labels = fashion_pca
    graph, _ = neighbours.exact_graph(x, 15, "ip", True, block=4096)
    found = probes.knn_from_graph(graph, labels, 5, 5, seed=0)
    searched, folds = probes.knn_accuracy(x, labels, 5, 5, seed=0)
    assert folds == found["folds_used"] == 5 and found["short_rows"] == 0
    assert found["folds"] == pytest.approx(searched, abs=1e-12)
    from sklearn.neighbors import KNeighborsClassifier

    unit = neighbours.normalise(x)
    held = np.arange(0, len(x), 10)
    rest = np.setdiff1d(np.arange(len(x)), held)
    # leave-one-out on the held rows: their 5 nearest others, as a classifier fitted without them would see
    # them, plus the other held rows; compare on the rows where no other held row is among the 5.
    classifier = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(unit[rest], labels[rest])
    alone = ~np.isin(graph[held, :5], held).any(axis=1)
    predicted = probes.vote(np.unique(labels, return_inverse=True)[1][graph[held, :5]], np.ones((len(held), 5), bool), 10)
    assert (predicted[alone] == classifier.predict(unit[held][alone])).mean() > 0.99
    assert 0.5 < found["leave_one_out"] < 1


def test_blocked_pca_matches_scikit_learn(fashion_pca):
    from sklearn.decomposition import PCA

    x, _ = fashion_pca
    ours = pca_fit.fit(x, 10)
    theirs = PCA(10, svd_solver="covariance_eigh").fit(x.astype(np.float64))
    assert np.allclose(ours.components, theirs.components_, atol=1e-8)
    assert np.allclose(ours.explained_variance, theirs.explained_variance_, rtol=1e-9)
    assert np.allclose(ours.transform(x), theirs.transform(x.astype(np.float64)), atol=1e-4)
    rows = np.arange(0, len(x), 3)
    assert np.allclose(pca_fit.fit(x, 10, rows).components, pca_fit.fit(x[rows], 10).components, atol=1e-10)


def test_recall_counts_any_of_equally_near_copies(pixel_features):
    """Exact copies tie: an approximate index that lists other copies than exact search did is still right, and
    is tuned to a shallow depth rather than to searching everything."""
    x, _ = pixel_features
    copies = np.concatenate([x] * 6)  # every point has 5 exact copies: its 5 nearest are ties
    graph = ann.build_graph(copies, 8, "ip", True, "ivf", exact_up_to=0, min_recall=0.99, recall_queries=300,
                            block=1024, seed=0)
    assert graph.facts["recall"] >= 0.99 and graph.facts["nprobe"] < graph.facts["cells"]
    truth, values = neighbours.exact_graph(copies, 8, "ip", True, block=1024)
    assert neighbours.recall_with_ties(values, values, "ip") == 1.0
    shuffled = values.copy()
    shuffled[:, -1] -= 0.5  # a last hit far worse than the true one is a miss
    assert abs(neighbours.recall_with_ties(shuffled, values, "ip") - 7 / 8) < 1e-9


def test_compressed_ivf_reranks_to_exact_values_and_repeats(fashion):
    """High-dimensional data goes through 4-bit PQ codes, re-ranked exactly: the recall target holds, the values
    are the exact cosines of the pairs found, and the same seed gives the same graph."""
    from pipeline import demo

    images, labels = fashion
    picks = demo.stratified_indices(labels, 600, seed=3)
    x = pca_fit.reduce(images[picks].reshape(len(picks), -1).astype(np.float32) / 255.0, 128)
    graph = ann.build_graph(x, 10, "ip", True, "ivf", exact_up_to=0, min_recall=0.99, recall_queries=300, block=2048,
                            seed=0)
    assert "PQ32x4fs" in graph.facts["index"] and graph.facts["rerank_factor"] >= ann.RERANK
    truth, _ = neighbours.exact_graph(x, 10, "ip", True, block=2048)
    assert graph.facts["recall"] >= 0.99 and neighbours.recall_at_k(graph.idx, truth) >= 0.985
    unit = neighbours.normalise(x)
    exact_values = np.einsum("nd,nkd->nk", unit, unit[graph.idx])
    assert np.allclose(graph.values, exact_values, atol=1e-5), "re-ranked by exact distance, not by the codes"
    again = ann.build_graph(x, 10, "ip", True, "ivf", exact_up_to=0, min_recall=0.99, recall_queries=300, block=2048,
                            seed=0)
    assert np.array_equal(graph.idx, again.idx) and np.array_equal(graph.values, again.values)


def test_grey_pixels_are_searched_in_one_channel_with_the_same_cosines(fashion):
    images, _ = fashion
    grey = np.repeat(images[:300, :, :, None], 3, axis=3)  # (N, 28, 28, 3), every channel equal
    rows = neighbours.PixelRows(grey)
    assert rows.grey and rows.shape == (300, 784) and rows[5:9].shape == (4, 784)
    full = grey.reshape(300, -1).astype(np.float32) / 255.0
    assert np.allclose(neighbours.normalise(rows[:]) @ neighbours.normalise(rows[:]).T,
                       neighbours.normalise(full) @ neighbours.normalise(full).T, atol=1e-5)
    coloured = grey.copy()
    coloured[299, 0, 0, 2] ^= 1  # one pixel of the last image in one channel
    assert not neighbours.all_grey(coloured, block=64) and neighbours.PixelRows(coloured).shape == (300, 2352)


def test_the_search_depth_ladder_steps_by_a_half_or_a_third():
    """The tuned depth is at most 1.5 times the smallest that reaches the target, not up to double."""
    depths = [1]
    while depths[-1] < 128:
        depths.append(ann.deeper(depths[-1]))
    assert depths == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]
    assert all(b / a <= 2 for a, b in zip(depths, depths[1:])) and ann.deeper(20) == 40


def test_exact_knn_graph_matches_brute_force(pixel_features):
    x, _ = pixel_features
    found, dists = neighbours.exact_knn(x, 6)
    brute = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    expected = np.sort(brute, axis=1)[:, :6]
    assert np.allclose(dists, expected, atol=1e-3)
    assert (found[:, 0] == np.arange(len(x))).mean() > 0.99  # itself first, as umap-learn expects


def test_tsne_neighbours_are_exact_and_exclude_the_point_itself(pixel_features):
    from openTSNE.affinity import MultiscaleMixture
    from openTSNE.nearest_neighbors import PrecomputedNeighbors
    from sklearn.neighbors import NearestNeighbors

    x, _ = pixel_features
    x = np.concatenate([x[:200], x[:3], x[:3]])  # each of the first three images three times over
    found, distances = neighbours.exact_graph(x, 90, "l2", False, 64)  # the PCA space's graph, as t-SNE reads it
    assert found.shape == (len(x), 90) and not (found == np.arange(len(x))[:, None]).any()
    assert np.array_equal(distances[[0, 200, 203], :2], np.zeros((3, 2)))  # its two copies come first
    _, reference = NearestNeighbors(n_neighbors=90).fit(x).kneighbors(x[3:200], 91)
    agree = np.mean([len(np.intersect1d(a, b[1:])) / 90 for a, b in zip(found[3:200], reference)])
    assert agree > 0.999
    # The affinities are those openTSNE computes itself with its exact neighbour search.
    unique = x[:200].astype(np.float64)
    graph = neighbours.exact_graph(unique, 90, "l2", False, 64)
    ours = MultiscaleMixture(perplexities=[30], knn_index=PrecomputedNeighbors(graph[0], graph[1].astype(np.float64)))
    theirs = MultiscaleMixture(unique, [30], method="exact")
    assert abs(ours.P - theirs.P).max() < 1e-5 and abs(ours.P.sum() - 1.0) < 1e-6
