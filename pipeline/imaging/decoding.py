"""Turning an image file into the network's input and the small copies later stages keep, without torch.

Both extraction engines decode through ``decode``: the local engine in threads beside the model, the Ray
engine in CPU tasks apart from the model actors (which is why this module must not import torch: a decode
task should not pay for it). The same function on both sides is what makes their kept arrays byte-for-byte
equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import images

if TYPE_CHECKING:
    import torch

    from .storage import Location

CV2_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST,
                     "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


PATCH_FIGURE_PX = 160  # side of each image on the patch-map figure (the largest crop a run keeps)


@dataclass(frozen=True)
class Preprocess:
    """How a decoded RGB image becomes the network's input, from timm's data config."""

    input_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mode: str = "timm"  # timm | thumbnail
    thumbnail_size: int = 32

    def resize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 at the size the batch is assembled at (input size, or the thumbnail)."""
        if self.mode == "thumbnail":
            return cv2.resize(rgb, (self.thumbnail_size, self.thumbnail_size), interpolation=cv2.INTER_AREA)
        return resize_center_crop(rgb, self.input_size, self.crop_pct, self.interpolation)

    def to_unit(self, batch: np.ndarray, device: "torch.device") -> "torch.Tensor":
        """(B, H, W, 3) uint8 -> (B, 3, S, S) float RGB in [0, 1] on the device, upsampled there when the batch
        was assembled smaller: what the exported models take (they normalise inside)."""
        import torch

        x = torch.from_numpy(batch).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.input_size:
            x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                                align_corners=False)
        return x

    def to_tensor(self, batch: np.ndarray, device: "torch.device") -> "torch.Tensor":
        """(B, H, W, 3) uint8 -> normalised (B, 3, S, S) float on the device."""
        import torch

        x = self.to_unit(batch, device)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return (x - mean) / std


def resize_center_crop(rgb: np.ndarray, size: int, crop_pct: float, interpolation: str) -> np.ndarray:
    """timm's eval transform: shorter side to size / crop_pct, then the centre size x size crop."""
    scale_size = int(np.floor(size / crop_pct))
    height, width = rgb.shape[:2]
    if height <= width:
        new_h, new_w = scale_size, max(scale_size, round(width * scale_size / height))
    else:
        new_h, new_w = max(scale_size, round(height * scale_size / width)), scale_size
    flag = CV2_INTERPOLATION.get(interpolation, cv2.INTER_CUBIC)
    if new_h < height and new_w < width and flag == cv2.INTER_CUBIC:
        flag = cv2.INTER_AREA  # shrinking: area averaging avoids aliasing that bicubic keeps
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=flag)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


@dataclass(frozen=True)
class Keep:
    """What a pass keeps of each decoded image besides its features, so no later stage decodes it again.

    ``pixels``: side of the raw-pixel baseline's copy; ``thumb``: side of the map's letterboxed thumbnail;
    ``crop``: side of a centre crop, for the rows in ``crop_rows`` (the patch maps' figure); ``input_rows``:
    rows whose model input is handed back (the patch maps' second pass reuses it). 0 / empty: not kept.
    """

    pixels: int = 0
    thumb: int = 0
    crop: int = 0
    crop_rows: frozenset = frozenset()
    input_rows: frozenset = frozenset()


def needed_side(prep: Preprocess, keep: Keep, row: int) -> int:
    """The shortest side a decoded image may have and still give every copy at full quality: the model's input
    before its centre crop, the raw-pixel copy, the thumbnail and the patch crop. Photographs are decoded no
    larger than this (``photo_formats``)."""
    model = prep.thumbnail_size if prep.mode == "thumbnail" else int(np.floor(prep.input_size / prep.crop_pct))
    crop = keep.crop if row in keep.crop_rows else 0
    return max(model, keep.pixels, keep.thumb, crop)


def decode(where: "Location", row: int, keep: Keep, prep: Preprocess, max_pixels: int) -> dict:
    """One image file decoded once: ``input`` (the model's uint8 input) and what ``keep`` asks for of row ``row``.

    A file that cannot be read raises ``images.ImageReadError`` naming the file."""
    try:
        rgb = images.read_rgb(where, max_pixels, needed_side(prep, keep, row))
    except images.ImageReadError as exc:
        raise images.ImageReadError(f"{where}: {exc}") from None
    found = {"input": prep.resize(rgb)}
    if keep.pixels:
        found["pixels"] = images.small_copy(rgb, keep.pixels)
    if keep.thumb:
        found["thumb"] = images.letterbox(rgb, keep.thumb)
    if keep.crop and row in keep.crop_rows:
        found["crop"] = resize_center_crop(rgb, keep.crop, 1.0, "bicubic")
    return found


def kept_shapes(prep: Preprocess, keep: Keep) -> dict[str, tuple[int, int, int]]:
    """The shape of each array ``decode`` returns for every row: the model input and the kept copies."""
    side = prep.thumbnail_size if prep.mode == "thumbnail" else prep.input_size
    shapes = {"input": (side, side, 3)}
    if keep.pixels:
        shapes["pixels"] = (keep.pixels, keep.pixels, 3)
    if keep.thumb:
        shapes["thumb"] = (keep.thumb, keep.thumb, 3)
    return shapes


@dataclass
class Batch:
    """Features of some rows of a pass's input list (consecutive for the local engine, in any order for Ray)."""

    rows: np.ndarray  # int64 row numbers into the pass's input list
    pooled: np.ndarray
    mean: np.ndarray
    spatial: np.ndarray | None
    # "pixels", "thumb": stacked, one per row; "crop", "input": {row: image} for the rows Keep names
    kept: dict = field(default_factory=dict)
