"""Reading one image file into an 8-bit RGB array, whatever its format, depth or channel layout.

Bytes are read by Python (a local file, or a file on shared storage or an object store: ``storage``) and
decoded by OpenCV's ``imdecode`` so that any path (unicode, spaces) works.
The header is checked first (with Pillow, which reads it without decoding) so that a decompression bomb is
refused before any pixel memory is allocated. Photographs (large JPEGs, HEIC, camera RAW) take their own
cheaper paths in ``photo_formats``, at the size the caller needs.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 31))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from . import photo_formats, storage  # noqa: E402
from .photo_formats import JPEG_MAGIC, ImageReadError  # noqa: E402,F401 - this module's API

Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, with our own message

cv2.setNumThreads(1)  # decoding runs in our own worker threads


def header_size(data: bytes, suffix: str = "") -> tuple[int, int] | None:
    """(width, height) as shown, from the header alone, or None when it cannot be parsed (OpenCV may still)."""
    head = photo_formats.header(data, suffix)
    return None if head is None else (head.width, head.height)


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


def decode_rgb(data: bytes, max_pixels: int, need: int = 0, suffix: str = "") -> np.ndarray:
    """Decode image bytes to an (H, W, 3) uint8 RGB array or raise ImageReadError with the reason.

    ``need``: the short side the caller needs (0: full size); ``suffix``: the file's, which names RAW files."""
    return decode_with_header(data, parsed_header(data, suffix), max_pixels, need, suffix)


def parsed_header(data: bytes, suffix: str = "") -> "photo_formats.Header | None":
    """The file's header (None when only a decoder can tell), an empty file refused first."""
    if not data:
        raise ImageReadError("empty file (0 bytes)")
    return photo_formats.header(data, suffix)


def decode_with_header(data: bytes, head: "photo_formats.Header | None", max_pixels: int, need: int = 0,
                       suffix: str = "") -> np.ndarray:
    """``decode_rgb`` for a caller that has parsed the header already (a RAW file's is parsed by LibRaw)."""
    if head is not None and head.width * head.height > max_pixels:
        raise ImageReadError(
            f"declared size {head.width}x{head.height} exceeds the limit of {max_pixels:,} pixels "
            "(raise ingest.max_pixels to allow it)"
        )
    own = photo_formats.decode(data, need, suffix, head)
    if own is not None:
        return own[1] if own[0] == "rgb" else to_rgb(own[1])
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
    if head is not None and head.format in photo_formats.ORIENTED_BY_US:
        image = photo_formats.orient(image, head.orientation)
    return to_rgb(image)


def checked_size(data: bytes, max_pixels: int, suffix: str = "") -> tuple[int, int]:
    """(width, height) as shown, from the header, with the file checked by its cheapest whole decode (a JPEG at
    1/8 still reads every byte of its stream, so a truncated one is caught); raises ImageReadError."""
    head = parsed_header(data, suffix)
    rgb = decode_with_header(data, head, max_pixels, need=1, suffix=suffix)
    return (head.width, head.height) if head is not None else (rgb.shape[1], rgb.shape[0])


def read_rgb(path: "str | os.PathLike | storage.StoredPath", max_pixels: int = 100_000_000,
             need: int = 0) -> np.ndarray:
    try:
        data = storage.read_bytes(path)
    except OSError as exc:
        raise ImageReadError(f"unreadable: {exc.strerror or exc}") from None
    return decode_rgb(data, max_pixels, need, os.path.splitext(str(path))[1])


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
