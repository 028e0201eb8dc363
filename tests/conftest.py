"""Shared fixtures: small real data (Fashion-MNIST images, scikit-image photos), always offline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for the network
os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pipeline import demo  # noqa: E402


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST's test split (images, labels), read and checksum-verified like the demo does."""
    return demo.read_idx("t10k-images-idx3-ubyte"), demo.read_idx("t10k-labels-idx1-ubyte")


def write_fashion_folder(target: Path, fashion, per_class: int, seed: int = 0) -> Path:
    images, labels = fashion
    indices = demo.stratified_indices(labels, per_class, seed)
    demo.write_images(target, images, labels, indices, prefix="test_")
    return target


@pytest.fixture(scope="session")
def small_set(tmp_path_factory, fashion) -> Path:
    """60 real Fashion-MNIST images, 6 per class, in class subfolders (read-only for tests)."""
    return write_fashion_folder(tmp_path_factory.mktemp("fashion60"), fashion, per_class=6)


@pytest.fixture(scope="session")
def medium_set(tmp_path_factory, fashion) -> Path:
    """300 real Fashion-MNIST images, 30 per class: enough for the quality thresholds at a small scale."""
    return write_fashion_folder(tmp_path_factory.mktemp("fashion300"), fashion, per_class=30, seed=1)


@pytest.fixture(scope="session")
def pixel_features(fashion) -> tuple[np.ndarray, np.ndarray]:
    """PCA-50 of 500 Fashion-MNIST images' pixels, with their labels: real data for the map tests."""
    from sklearn.decomposition import PCA

    images, labels = fashion
    picks = demo.stratified_indices(labels, 50, seed=2)
    pixels = images[picks].reshape(len(picks), -1).astype(np.float32) / 255.0
    return PCA(n_components=50, random_state=0).fit_transform(pixels).astype(np.float32), labels[picks]


@pytest.fixture
def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory, medium_set):
    """The end-to-end run (out, slides, its options) of tests/e2e.py, once per session."""
    from e2e import make_run

    return make_run(tmp_path_factory.mktemp("e2e"), medium_set)


@pytest.fixture(scope="session")
def built_deck(run_dirs, tmp_path_factory) -> Path:
    """The end-to-end run's deck built by Slidev (its static site), once for the tests that open it."""
    from e2e import build_deck

    return build_deck(run_dirs[1], tmp_path_factory.mktemp("dist") / "dist")
