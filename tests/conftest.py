"""Shared fixtures: small real data (Fashion-MNIST images, scikit-image photos), always offline."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for the network
os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers import copy_of_run, write_fashion_folder  # noqa: E402
from pipeline import demo  # noqa: E402


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST's test split (images, labels), read and checksum-verified like the demo does."""
    return demo.read_idx("t10k-images-idx3-ubyte"), demo.read_idx("t10k-labels-idx1-ubyte")


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
def quick_run(tmp_path_factory, fashion):
    """The default suite's one deck: the demo set at 4 images a class (40, plus its photos for the patch maps),
    every stage with quick settings, then new images placed on it. Tests read it and never run it again: a test
    that reruns or changes a run works on a copy (``copy_run``)."""
    from helpers import invoke, quick_settings, record

    base = tmp_path_factory.mktemp("quick")
    out, slides, data = base / "out", base / "slides", base / "demo"
    opts = ["--out", str(out), "--set", f"slides={slides}", "--set", f"demo.folder={data}", "--set", "demo.per_class=4",
            *quick_settings()]
    invoke("deck", *opts)
    new = base / "new"
    images, labels = fashion
    seen = {p.name for p in (data / "fashion-mnist").rglob("*.png")}
    unseen = np.array([i for i in range(len(labels)) if f"test_{i:05d}.png" not in seen][:3])
    demo.write_images(new, images, labels, unseen, prefix="new_")
    own = sorted((data / "fashion-mnist" / "Sandal").iterdir())[0]
    (new / "own.png").write_bytes(own.read_bytes())
    (new / "broken.png").write_text("not an image")
    placed = invoke("place", new, "--out", out)
    assert record(out)["stages"]["gallery"]["state"] == "ran"
    return {"out": out, "slides": slides, "opts": opts, "data": data, "new": new, "placed": placed,
            "own": f"Sandal/{own.name}"}


@pytest.fixture
def copy_run(tmp_path):
    """A copy of a finished run (``copy_of_run``), for a test that runs it again or changes it."""
    return lambda out: copy_of_run(out, tmp_path / "copy")


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory, medium_set):
    """The full suite's end-to-end run (out, slides, its options) on 300 images, once per session."""
    from e2e import make_run

    return make_run(tmp_path_factory.mktemp("e2e"), medium_set)


@pytest.fixture(scope="session")
def built_deck(run_dirs, tmp_path_factory) -> Path:
    """The end-to-end run's deck built by Slidev (its static site), once for the tests that open it."""
    from helpers import build_deck

    return build_deck(run_dirs[1], tmp_path_factory.mktemp("dist") / "dist")
