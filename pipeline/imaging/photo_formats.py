"""Photographs decoded at the size a run needs, each format by its cheapest path, orientation applied.

A camera's 26 MP JPEG decoded whole takes ~146 ms here, while the run keeps at most a few hundred pixels of
it (the network's 224 px input, the 160 px patch crop, 48 px thumbnails). libjpeg's DCT scaling decodes it at
1/2, 1/4 or 1/8 for far less (~55-63 ms at 1/8), so a JPEG is decoded at the largest reduction whose short
side still covers what is needed. HEIC goes through pillow-heif (libheif applies its rotation), camera RAW
through rawpy: the embedded preview when it is large enough, else a half-size demosaic. Anything else, and
any JPEG where no reduction applies, is left to ``images.decode_rgb``'s OpenCV path unchanged, so small
images decode byte for byte as before.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

JPEG_MAGIC = b"\xff\xd8\xff"
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef",
                  ".srw", ".raw", ".rwl", ".3fr", ".erf", ".kdc", ".mrw", ".x3f")
HEIF_EXTENSIONS = (".heic", ".heif", ".hif")
JPEG_REDUCTIONS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
# OpenCV (5.0) turns EXIF orientation into pixels for JPEG (IMREAD_COLOR and IMREAD_REDUCED_*) and for TIFF,
# but not for PNG or WebP read with IMREAD_UNCHANGED (checked here): those we turn ourselves.
ORIENTED_BY_US = ("PNG", "WEBP")
# EXIF orientation -> numpy turn that shows the stored pixels upright.
UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 1)[::-1],
           8: lambda a: np.rot90(a, 1)}
# LibRaw's ``sizes.flip`` (0, 3, 5, 6) as the EXIF orientation it stands for.
RAW_FLIP = {0: 1, 3: 3, 5: 8, 6: 6}


class ImageReadError(ValueError):
    """The file is not a usable image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding pixels: size as shown (orientation applied)."""

    width: int
    height: int
    orientation: int = 1
    format: str = ""


def is_raw(suffix: str) -> bool:
    return suffix.lower() in RAW_EXTENSIONS


@functools.cache
def register_heif() -> None:
    """Pillow learns HEIC/HEIF (its lazy open then reads only the header)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def header(data: bytes, suffix: str = "") -> Header | None:
    """The header's size and orientation, or None when it cannot be parsed (a decoder may still manage)."""
    try:
        if is_raw(suffix):
            return raw_header(data)
        register_heif()
        with Image.open(io.BytesIO(data)) as probe:
            orientation = int(probe.getexif().get(0x0112, 1)) if probe.format != "HEIF" else 1
            width, height = probe.size
            fmt = probe.format or ""
    except Exception:  # noqa: BLE001 - any parse failure just means "no header info"
        return None
    orientation = orientation if orientation in UPRIGHT else 1
    if orientation >= 5:
        width, height = height, width
    return Header(width, height, orientation, fmt)


def raw_header(data: bytes) -> Header:
    import rawpy

    with rawpy.imread(io.BytesIO(data)) as raw:
        sizes = raw.sizes
    orientation = RAW_FLIP.get(sizes.flip, 1)
    width, height = (sizes.iheight, sizes.iwidth) if orientation >= 5 else (sizes.iwidth, sizes.iheight)
    return Header(width, height, orientation, "RAW")


def jpeg_reduction(width: int, height: int, need: int) -> tuple[int, int]:
    """(factor, imread flag) of the largest DCT reduction whose short side still covers ``need``; (1, COLOR)."""
    if need > 0:
        for factor, flag in JPEG_REDUCTIONS:
            if min(width, height) // factor >= need:
                return factor, flag
    return 1, cv2.IMREAD_COLOR


def decode_jpeg(data: bytes, need: int, head: Header | None, orient: bool = True) -> np.ndarray | None:
    """A JPEG at its largest useful reduction as BGR, or None where none applies (the caller's full path)."""
    if head is None:
        return None
    factor, flag = jpeg_reduction(head.width, head.height, need)
    if factor == 1:
        return None
    flag = flag if orient else flag | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise ImageReadError("not a decodable image (corrupt, truncated or unsupported format)")
    return image


def decode_heif(data: bytes) -> np.ndarray:
    """A HEIC/HEIF's primary image as RGB; libheif applies the file's rotation and mirroring."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        rgb = np.asarray(heif)
    except Exception as exc:  # noqa: BLE001 - libheif's own message is the reason
        raise ImageReadError(f"not a decodable HEIC/HEIF image ({exc})") from None
    if rgb.ndim == 3 and rgb.shape[2] == 4:  # composite alpha over white as other formats are
        alpha = rgb[:, :, 3:4].astype(np.float32) / 255.0
        rgb = np.clip(rgb[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, :3]) if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)


def decode_raw(data: bytes, need: int) -> np.ndarray:
    """A camera RAW file as RGB: its embedded preview when its short side covers ``need``, else LibRaw's
    half-size demosaic with the camera's white balance (a quarter of the pixels, no interpolation)."""
    import rawpy

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            preview = raw_preview(raw, need)
            if preview is not None:
                return preview
            return raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - LibRaw's own message is the reason
        raise ImageReadError(f"not a decodable camera RAW file ({exc})") from None


def raw_preview(raw, need: int) -> np.ndarray | None:
    """The embedded preview as upright RGB when it is large enough, else None."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        head = header(thumb.data)
        if head is None or min(head.width, head.height) < need:
            return None
        # The preview is stored as the sensor saw it; the RAW's own flip says how to show it.
        image = decode_jpeg(thumb.data, need, head, orient=False)
        if image is None:
            image = cv2.imdecode(np.frombuffer(thumb.data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            return None
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        rgb = np.asarray(thumb.data)
        if rgb.ndim != 3 or min(rgb.shape[:2]) < need:
            return None
    return orient(rgb, RAW_FLIP.get(raw.sizes.flip, 1))


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels stored under EXIF ``orientation`` turned upright."""
    turn = UPRIGHT.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def decode(data: bytes, need: int, suffix: str, head: Header | None) -> tuple[str, np.ndarray] | None:
    """The format's own path as ("bgr" | "rgb", pixels), or None where OpenCV's ordinary path decodes it."""
    if is_raw(suffix):
        return "rgb", decode_raw(data, need)
    if data.startswith(JPEG_MAGIC):
        image = decode_jpeg(data, need, head)
        return None if image is None else ("bgr", image)
    if (head is not None and head.format == "HEIF") or suffix.lower() in HEIF_EXTENSIONS:
        return "rgb", decode_heif(data)
    return None
