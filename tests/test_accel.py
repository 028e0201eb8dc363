"""The GPU paths of the analyses, run here on the CPU through the same torch code: they must give what the
CPU libraries give (exact neighbours, the same PCA, k-means as good as scikit-learn's)."""

import numpy as np
import pytest
import torch

from pipeline.methods import accel, knn as neighbours, pca_fit
from pipeline.engine.artifacts import StageError

CPU = torch.device("cpu")


def test_exact_graph_on_the_device_equals_faiss(pixel_features):
    x, _ = pixel_features
    for metric, unit in (("ip", True), ("l2", False)):
        ours, our_values = accel.exact_graph(x, 10, metric, unit, CPU, block=77)
        theirs, their_values = neighbours.exact_graph(x, 10, metric, unit, block=128)
        assert neighbours.recall_at_k(ours, theirs) > 0.999
        assert np.allclose(our_values, their_values, atol=2e-3)
        assert not (ours == np.arange(len(x))[:, None]).any()


def test_covariance_on_the_device_gives_the_same_pca(pixel_features):
    x, _ = pixel_features
    cpu = pca_fit.fit(x, 10)
    device = pca_fit.fit(x, 10, moments=lambda *a: accel.covariance(*a, on=CPU, block=64))
    assert np.allclose(cpu.components, device.components, atol=1e-8)
    assert np.allclose(cpu.transform(x), device.transform(x), atol=1e-5)


def test_kmeans_on_the_device_is_as_good_as_scikit_learns(pixel_features):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x, _ = pixel_features
    labels, sse = accel.kmeans(x, 10, seed=0, on=CPU)
    reference = KMeans(10, n_init=1, random_state=0).fit(x)
    assert sse <= reference.inertia_ * 1.01 and adjusted_rand_score(reference.labels_, labels) > 0.9
    assert np.array_equal(labels, accel.kmeans(x, 10, seed=0, on=CPU)[0]), "seeded"


def test_asking_for_a_missing_accelerator_is_an_error(monkeypatch):
    assert accel.device("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # so on a CUDA machine too
    with pytest.raises(StageError, match="no CUDA device"):
        accel.device("cuda")
    assert accel.graph_block(1_000_000) * 1_000_000 <= 1 << 28


def test_maps_leave_cuml_alone_unless_it_can_run(monkeypatch):
    """cuML's UMAP and t-SNE are used only on CUDA with cuML installed; asked for by name without them, one
    line says what is missing. (The cuML calls themselves need an NVIDIA GPU: not testable here.)"""
    from pipeline.methods import gpu_maps

    assert gpu_maps.use_cuml("cpu", "auto") is False
    monkeypatch.setattr(gpu_maps, "installed", lambda: False)
    assert gpu_maps.use_cuml("auto", "auto") is False
    with pytest.raises(StageError, match="cuML is not installed"):
        gpu_maps.use_cuml("cuml", "cpu")
    monkeypatch.setattr(gpu_maps, "installed", lambda: True)
    assert gpu_maps.use_cuml("auto", "cpu") is False, "installed, but the analyses run on the CPU"
    with pytest.raises(StageError, match="device = cuda"):
        gpu_maps.use_cuml("cuml", "cpu")
