"""Real photo files for the tests: camera-style JPEGs with EXIF orientation, HEIC and DNG, from real pixels."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Pillow's transpose that displays orientation o upright (as ImageOps.exif_transpose); its inverse stores it.
DISPLAY = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
STORE = {**DISPLAY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def oriented_jpeg(rgb: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """A JPEG whose pixels are stored as a camera held that way would store them, tagged so a viewer shows
    ``rgb`` upright."""
    upright = Image.fromarray(rgb)
    stored = upright if orientation == 1 else upright.transpose(STORE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif.tobytes(), quality=quality)
    return buffer.getvalue()


def heic(rgb: np.ndarray, quality: int = 90) -> bytes:
    """A real HEIC file made by pillow-heif's encoder (libheif with x265)."""
    import pillow_heif

    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(buffer, quality=quality)
    return buffer.getvalue()


# ColorMatrix1 maps XYZ to the camera's colours: here the camera's filters are sRGB's primaries (D65).
XYZ_TO_SRGB = [[round(v * 10000), 10000] for v in (3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415,
                                                   0.0557, -0.2040, 1.0570)]


def dng(rgb: np.ndarray, orientation: int = 1) -> bytes:
    """A real DNG (as a camera writes: a 12-bit RGGB Bayer mosaic, no preview) made by pidng from ``rgb``, its
    pixels as stored and ``orientation`` (TIFF/EXIF) saying how to show them."""
    from pidng.core import RAW2DNG
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation
    from pidng.dng import DNGTags, Tag

    height, width = (s - s % 2 for s in rgb.shape[:2])
    linear = (rgb[:height, :width].astype(np.float64) / 255.0) ** 2.2 * 4095
    mosaic = np.empty((height, width), np.uint16)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    tags = DNGTags()
    for tag, value in ((Tag.ImageWidth, width), (Tag.ImageLength, height), (Tag.TileWidth, width),
                       (Tag.TileLength, height), (Tag.Orientation, orientation), (Tag.BitsPerSample, 12),
                       (Tag.SamplesPerPixel, 1), (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
                       (Tag.CFARepeatPatternDim, [2, 2]), (Tag.CFAPattern, CFAPattern.RGGB), (Tag.BlackLevel, 0),
                       (Tag.WhiteLevel, 4095), (Tag.ColorMatrix1, XYZ_TO_SRGB),
                       (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65), (Tag.AsShotNeutral, [[1, 1]] * 3),
                       (Tag.BaselineExposure, [[0, 1]]), (Tag.Make, "embdeck"), (Tag.Model, "test"),
                       (Tag.DNGVersion, DNGVersion.V1_4), (Tag.DNGBackwardVersion, DNGVersion.V1_2)):
        tags.set(tag, value)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    return bytes(writer.convert(mosaic))

