"""The built-in demo set, written as ordinary image files so the demo walks a user's path exactly.

``fashion-mnist/<class>/<index>.png``: a seeded, stratified subset of Fashion-MNIST's test split (real
photographs of clothing, 28x28 grey, MIT licence), read from Debian's ``dataset-fashion-mnist`` or from a
copy of the authors' files, checked by the sha256 of the decompressed IDX bytes (Debian recompresses the
gzip files, so the archive hashes differ while the content is identical).
``photos/<name>.png``: real photographs bundled with scikit-image, for the patch maps.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .engine.config import Config

log = logging.getLogger("embdeck")

CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
SEARCH_DIRS = ("/usr/share/datasets/fashion-mnist",)
IDX_SHA256 = {
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "horse")


class DemoDataError(RuntimeError):
    pass


def demo_root(cfg: "Config") -> Path:
    return Path(cfg.demo.folder).expanduser()


def dataset_folder(cfg: "Config") -> Path:
    return demo_root(cfg) / "fashion-mnist"


def photos_folder(cfg: "Config") -> Path:
    return demo_root(cfg) / "photos"


def find_idx(name: str) -> Path:
    extra = os.environ.get("EMBDECK_FASHION_MNIST_DIR")
    for folder in ([extra] if extra else []) + list(SEARCH_DIRS):
        for candidate in (Path(folder) / f"{name}.gz", Path(folder) / name):
            if candidate.is_file():
                return candidate
    raise DemoDataError(
        f"Fashion-MNIST file {name}.gz not found in {', '.join(SEARCH_DIRS)}. Install it with "
        "'apt-get install dataset-fashion-mnist' (Debian), or download the authors' files and set "
        "EMBDECK_FASHION_MNIST_DIR to their folder."
    )


def read_idx(name: str) -> np.ndarray:
    """An IDX array (Fashion-MNIST's format), verified against the known content hash."""
    import hashlib

    path = find_idx(name)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != IDX_SHA256[name]:
        raise DemoDataError(f"{path}: content sha256 {digest} does not match Fashion-MNIST's {IDX_SHA256[name]}")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def stratified_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` indices of each class, chosen with a seeded generator, in ascending order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if per_class > len(members):
            raise DemoDataError(f"demo.per_class={per_class} but class {cls} has only {len(members)} images")
        chosen.append(np.sort(rng.choice(members, size=per_class, replace=False)))
    return np.sort(np.concatenate(chosen))


def write_images(target: Path, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, prefix: str) -> None:
    import cv2

    for index in indices:
        folder = target / CLASSES[labels[index]]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix}{index:05d}.png"), images[index])


def build_photos(target: Path) -> None:
    import cv2
    from skimage import data

    target.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE_PHOTOS:
        loader = getattr(data, "stereo_motorcycle" if name == "motorcycle" else name)
        image = loader()
        if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
            image = image[0]
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        cv2.imwrite(str(target / f"{name}.png"), cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR))


def ensure_demo(cfg: "Config") -> Path:
    """Write the demo set once; a complete set (stamp matches the settings) is left untouched."""
    root = demo_root(cfg)
    stamp_path = root / "demo.json"
    stamp = {"source": "fashion-mnist t10k", "per_class": cfg.demo.per_class, "seed": cfg.demo.seed,
             "photos": list(SKIMAGE_PHOTOS), "format": 1}
    try:
        if json.loads(stamp_path.read_text()) == stamp:
            return dataset_folder(cfg)
    except (OSError, ValueError):
        pass
    images = read_idx("t10k-images-idx3-ubyte")
    labels = read_idx("t10k-labels-idx1-ubyte")
    indices = stratified_indices(labels, cfg.demo.per_class, cfg.demo.seed)
    staging = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    write_images(staging / "fashion-mnist", images, labels, indices, prefix="test_")
    build_photos(staging / "photos")
    (staging / "demo.json").write_text(json.dumps(stamp, indent=2, allow_nan=False) + "\n")
    if root.exists():
        if not stamp_path.is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise DemoDataError(f"{root} exists and is not an embdeck demo folder; set demo.folder elsewhere")
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, root)
    log.info("demo set written to %s: %d images in %d classes, %d photos",
             root, len(indices), len(CLASSES), len(SKIMAGE_PHOTOS))
    return dataset_folder(cfg)


def write_full_dataset(target: Path) -> int:
    """All 70,000 Fashion-MNIST images (train and test) as PNG files, for scale runs and benchmarks."""
    total = 0
    for split, prefix in (("train", "train_"), ("t10k", "test_")):
        images = read_idx(f"{split}-images-idx3-ubyte")
        labels = read_idx(f"{split}-labels-idx1-ubyte")
        write_images(target, images, labels, np.arange(len(labels)), prefix)
        total += len(labels)
    return total
