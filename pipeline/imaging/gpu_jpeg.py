"""JPEGs decoded and resized on the extraction device (nvJPEG through ``torchvision.io.decode_jpeg`` on CUDA).

On a GPU host the CPU's libjpeg is what limits extraction of camera photographs: the model is far faster than
a few CPU cores can decode. ``decode`` is the one place this happens; it gives what ``decoding.decode`` gives
(the model's input and the kept copies, as uint8 arrays), from the same file, resized on the device with
antialiasing instead of OpenCV's kernels, so its arrays are close to the CPU path's, not equal. The tests run
it with ``device="cpu"`` (torchvision's libjpeg decoder); on CUDA it has not been run here (no GPU): see
docs/photos.md. torchvision 0.29 marks ``decode_jpeg`` deprecated in favour of TorchCodec.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from . import images, storage
from .decoding import Keep, Preprocess


def resized(x: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """(3, H, W) float -> (3, height, width), antialiased when shrinking (as OpenCV's area averaging)."""
    mode = mode if mode in ("bilinear", "bicubic") else "bilinear"
    out = torch.nn.functional.interpolate(x[None], size=(height, width), mode=mode, antialias=True, align_corners=False)
    return out[0]


def short_side_crop(x: torch.Tensor, scale: int, size: int, mode: str) -> torch.Tensor:
    """timm's eval transform on the device: the short side to ``scale``, then the centre ``size`` crop."""
    h, w = x.shape[-2:]
    nh, nw = (scale, max(scale, round(w * scale / h))) if h <= w else (max(scale, round(h * scale / w)), scale)
    x = resized(x, nh, nw, mode)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[:, top:top + size, left:left + size]


def letterboxed(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    tile = torch.full((3, size, size), 255.0, device=x.device)
    top, left = (size - nh) // 2, (size - nw) // 2
    tile[:, top:top + nh, left:left + nw] = resized(x, nh, nw)
    return tile


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def decode(where, row: int, keep: Keep, prep: Preprocess, max_pixels: int, device: "str | torch.device") -> dict | None:
    """One JPEG decoded on ``device`` into ``decoding.decode``'s dict; None when the file is not a JPEG or the
    device's decoder refuses it (the caller then decodes it on the CPU, which reports a broken file)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = storage.read_bytes(where)
    if not data.startswith(images.JPEG_MAGIC):
        return None
    size = images.header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        return None  # the CPU path refuses it with its reason
    try:
        with warnings.catch_warnings():  # torchvision 0.29's notice, on each call, that TorchCodec supersedes it
            warnings.simplefilter("ignore", DeprecationWarning)
            rgb = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                              device=device, apply_exif_orientation=True)
    except RuntimeError:  # corrupt, or a JPEG nvJPEG does not take (CMYK, some progressive): the CPU path decides
        return None
    x = rgb.float()
    if prep.mode == "thumbnail":
        found = {"input": to_uint8(resized(x, prep.thumbnail_size, prep.thumbnail_size))}
    else:
        scale = int(np.floor(prep.input_size / prep.crop_pct))
        found = {"input": to_uint8(short_side_crop(x, scale, prep.input_size, prep.interpolation))}
    if keep.pixels:
        found["pixels"] = to_uint8(resized(x, keep.pixels, keep.pixels))
    if keep.thumb:
        found["thumb"] = to_uint8(letterboxed(x, keep.thumb))
    if keep.crop and row in keep.crop_rows:
        found["crop"] = to_uint8(short_side_crop(x, keep.crop, keep.crop, "bicubic"))
    return found
