"""Reading one image file into an 8-bit RGB array, whatever its format, depth or channel layout.

Bytes are read by Python (a local file, or a file on shared storage or an object store: ``storage``) and
decoded by OpenCV's ``imdecode`` so that any path (unicode, spaces) works.
The header is checked first (with Pillow, which reads it without decoding) so that a decompression bomb is
refused before any pixel memory is allocated.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 31))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from . import storage  # noqa: E402

Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, with our own message

cv2.setNumThreads(1)  # decoding runs in our own worker threads


class ImageReadError(ValueError):
    """The file is not a usable image; the message is the reason shown to the user."""


JPEG_MAGIC = b"\xff\xd8\xff"


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None when Pillow cannot parse it (OpenCV may still)."""
    import io

    try:
        with Image.open(io.BytesIO(data)) as probe:
            return probe.size
    except Exception:  # noqa: BLE001 - any parse failure just means "no header info"
        return None


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale 16-bit and float images to 8 bits over their full range."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        top = 1.0 if float(np.nanmax(image)) <= 1.0 else float(np.nanmax(image))
        return np.clip(np.nan_to_num(image) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    info = np.iinfo(image.dtype)
    scaled = (image.astype(np.float64) - info.min) / (info.max - info.min) * 255.0
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR / BGRA / grey into RGB; transparency is composited over white."""
    image = to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # grey + alpha
        grey, alpha = image[:, :, 0], image[:, :, 1]
        image = cv2.merge([grey, grey, grey, alpha])
        channels = 4
    if channels == 4:
        bgr = image[:, :, :3].astype(np.float32)
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        blended = bgr * alpha + 255.0 * (1.0 - alpha)
        return cv2.cvtColor(np.clip(blended + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_BGR2RGB)
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)


def decode_rgb(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode image bytes to an (H, W, 3) uint8 RGB array or raise ImageReadError with the reason."""
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageReadError(
            f"declared size {size[0]}x{size[1]} exceeds the limit of {max_pixels:,} pixels "
            "(raise ingest.max_pixels to allow it)"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if data.startswith(JPEG_MAGIC):
        # JPEG has no alpha; IMREAD_COLOR applies the EXIF orientation and converts CMYK.
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    else:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError("not a decodable image (corrupt, truncated or unsupported format)")
    if image.size == 0:
        raise ImageReadError("image has no pixels")
    return to_rgb(image)


def read_rgb(path: "str | os.PathLike | storage.StoredPath", max_pixels: int = 100_000_000) -> np.ndarray:
    try:
        data = storage.read_bytes(path)
    except OSError as exc:
        raise ImageReadError(f"unreadable: {exc.strerror or exc}") from None
    return decode_rgb(data, max_pixels)


def letterbox(rgb: np.ndarray, size: int) -> np.ndarray:
    """The image fitted into a size x size tile on white, aspect kept (area-averaged when shrinking)."""
    tile = np.full((size, size, 3), 255, np.uint8)
    scale = size / max(rgb.shape[:2])
    h, w = max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    small = cv2.resize(rgb, (w, h), interpolation=interpolation)
    top, left = (size - h) // 2, (size - w) // 2
    tile[top:top + h, left:left + w] = small
    return tile


def small_copy(rgb: np.ndarray, side: int) -> np.ndarray:
    """The whole image squeezed to side x side by area averaging: the raw-pixel baseline's view of it."""
    return cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
