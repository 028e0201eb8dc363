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


@pytest.fixture
def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()
