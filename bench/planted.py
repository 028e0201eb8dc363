"""Real collections unlike the demo, with planted problems whose truth is known: edited copies (brighter,
JPEG re-encoded, resized, lightly cropped), look-alike pairs that are not copies, mislabelled images and
foreign images. Each builder writes class folders of image files and returns the truth as relative paths,
so the acceptance part of the bench and tests/test_acceptance.py measure precision and recall the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

FOREIGN = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


@dataclass
class Truth:
    """What was planted, as paths relative to the set's root."""

    copies: list[tuple[str, str, str]] = field(default_factory=list)  # (original, copy, edit)
    lookalikes: list[tuple[str, str]] = field(default_factory=list)  # distinct images, pixels alike
    mislabelled: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def edit(image: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
    """One edit of a picture that leaves it the same picture: (edited image, file suffix)."""
    h, w = image.shape[:2]
    if kind == "brighter":
        return cv2.convertScaleAbs(image, alpha=1.15, beta=25), ".png"
    if kind == "contrast":
        return cv2.convertScaleAbs(image, alpha=0.8, beta=20), ".png"
    if kind == "jpeg":
        return image, ".jpg"  # written at quality 70
    if kind in ("resize", "resize+jpeg"):
        small = cv2.resize(image, (max(1, round(w * 0.9)), max(1, round(h * 0.9))), interpolation=cv2.INTER_AREA)
        return small, ".jpg" if kind == "resize+jpeg" else ".png"
    if kind == "crop":  # about 4 % off each side
        dy, dx = max(1, round(h * 0.04)), max(1, round(w * 0.04))
        return image[dy:h - dy, dx:w - dx], ".png"
    raise ValueError(kind)


EDITS = ("brighter", "jpeg", "resize", "crop", "contrast")


def write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 70] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"could not write {path}")


def plant(root: Path, truth: Truth, rng: np.random.Generator, copies: int, mislabelled: int, foreign: int,
          side: int, photo_copies: int = 2) -> None:
    """Plant edited copies, moved (mislabelled) files and foreign photos (the first ``photo_copies`` of them
    with a resized JPEG copy) into a written set of class folders."""
    from skimage import data

    files = sorted(p for p in root.rglob("*.png"))
    classes = sorted(p.name for p in root.iterdir())
    picks = rng.choice(len(files), size=copies + mislabelled, replace=False)
    for n, pick in enumerate(picks[:copies]):
        source = files[pick]
        kind = EDITS[n % len(EDITS)]
        image, suffix = edit(cv2.imread(str(source), cv2.IMREAD_UNCHANGED), kind)
        target = source.with_name(f"copy_{kind}_{source.stem}{suffix}")
        write(target, image)
        truth.copies.append((rel(source, root), rel(target, root), kind))
    for pick in picks[copies:]:  # moved into another class's folder: no file stays behind
        source = files[pick]
        other = [c for c in classes if c != source.parent.name]
        target = root / other[int(rng.integers(len(other)))] / f"moved_{source.name}"
        source.rename(target)
        truth.mislabelled.append(rel(target, root))
    for n, photo in enumerate(FOREIGN[:foreign]):
        image = cv2.cvtColor(getattr(data, photo)(), cv2.COLOR_RGB2BGR)
        target = root / classes[n % len(classes)] / f"foreign_{photo}.png"
        write(target, cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA))
        truth.foreign.append(rel(target, root))
        if n < photo_copies:  # a photo resized to 0.9 and re-encoded as JPEG 70
            copy = target.with_name(f"copy_resize_{target.stem}.jpg")
            write(copy, edit(cv2.imread(str(target)), "resize+jpeg")[0])
            truth.copies.append((rel(target, root), rel(copy, root), "photo resize+jpeg"))


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def pixel_lookalikes(images: np.ndarray, pool: np.ndarray, count: int, most: float = 0.98) -> list[tuple[int, int]]:
    """The ``count`` pairs of distinct images in ``pool`` whose pixels correlate most, up to ``most`` (each
    image once): above it, a pair may be the same photograph twice (Fashion-MNIST holds some)."""
    flat = images[pool].reshape(len(pool), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9
    best = []
    for start in range(0, len(flat), 2048):
        block = flat[start:start + 2048] @ flat.T
        for row in range(len(block)):
            block[row, start + row] = -1
            block[row, (flat[start + row] == flat).all(axis=1)] = -1  # exact repeats are copies, not look-alikes
        block[block > most] = -1
        j = block.argmax(axis=1)
        best += [(float(block[r, j[r]]), start + r, int(j[r])) for r in range(len(block))]
    pairs, used = [], set()
    for _, a, b in sorted(best, reverse=True):
        if a not in used and b not in used:
            pairs.append((int(pool[a]), int(pool[b])))
            used |= {a, b}
        if len(pairs) == count:
            break
    return pairs


def fashion_set(root: Path, images: np.ndarray, labels: np.ndarray, per_class: int = 300, seed: int = 0,
                copies: int = 10, lookalikes: int = 10, mislabelled: int = 10, foreign: int = 5) -> Truth:
    """Fashion-MNIST at its own 28 px, ``per_class`` images of each class, plus ``lookalikes`` pairs of
    the most pixel-alike distinct images taken from a further 2,000 (different products, same look)."""
    from pipeline import demo

    rng = np.random.default_rng(seed)
    chosen = demo.stratified_indices(labels, per_class, seed)
    rest = np.setdiff1d(np.arange(len(labels)), chosen)
    pool = rng.choice(rest, size=min(2000, len(rest)), replace=False)
    truth = Truth()
    demo.write_images(root, images, labels, chosen, prefix="f")
    for a, b in pixel_lookalikes(images, pool, lookalikes):
        for index in (a, b):
            demo.write_images(root, images, labels, np.array([index]), prefix="alike_")
        truth.lookalikes.append(tuple(f"{demo.CLASSES[labels[i]]}/alike_{i:05d}.png" for i in (a, b)))
    plant(root, truth, rng, copies, mislabelled, foreign, side=28)
    return truth


def digits_set(root: Path, side: int = 32, seed: int = 0, copies: int = 10, mislabelled: int = 10,
               foreign: int = 3) -> Truth:
    """scikit-learn's 1,797 handwritten 8x8 digits (16 grey levels) upsampled to ``side`` px: small,
    low-detail scans where many distinct images look almost the same."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    truth = Truth()
    for n, (image, label) in enumerate(zip(digits.images, digits.target)):
        grey = np.clip(image * 16, 0, 255).astype(np.uint8)
        write(root / str(label) / f"d{n:04d}.png", cv2.resize(255 - grey, (side, side), interpolation=cv2.INTER_CUBIC))
    plant(root, truth, np.random.default_rng(seed), copies, mislabelled, foreign, side)
    return truth


def photo_tiles_set(root: Path, tile: int = 96, seed: int = 0, copies: int = 10, mislabelled: int = 5) -> Truth:
    """scikit-image's real photographs cut into non-overlapping tiles, one class folder per photo: colour
    and texture, unlike Fashion-MNIST; neighbouring tiles of a photo look alike but are not copies."""
    from skimage import data

    names = [n for n in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                         "retina", "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel")
             if hasattr(data, n)]
    truth = Truth()
    for name in names:
        image = getattr(data, name)()
        image = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
        for y in range(0, image.shape[0] - tile + 1, tile):
            for x in range(0, image.shape[1] - tile + 1, tile):
                write(root / name / f"{name}_{y:04d}_{x:04d}.png", image[y:y + tile, x:x + tile])
    plant(root, truth, np.random.default_rng(seed), copies, mislabelled, 0, tile)
    return truth
