"""Photographs as cameras make them, each file made for real: JPEGs decoded at the size the run needs, all eight
EXIF orientations shown upright through the real extraction path, HEIC (pillow-heif's encoder) and DNG (pidng,
read back by rawpy) as inputs, broken ones reported with their reason, sizes read from headers alone."""

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from photo_files import dng, heic, oriented_jpeg
from pipeline.imaging import images, photo_formats
from pipeline.engine.config import Config, load_config
from pipeline.imaging.decoding import Keep, Preprocess, needed_side

# Lowest cosine allowed between the features of one photo stored under any EXIF orientation and stored upright.
# Measured with the bundled CNN: >= 0.9995 at full decode, >= 0.9998 through DCT scaling (the JPEG blocks fall
# differently once turned); skipping the turn scores 0.79 to 0.98 (0.983: the mirror image, orientation 2).
ORIENTATION_COSINE = 0.999


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    from skimage import data

    return data.chelsea()


def photo(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)


def test_the_needed_side_picks_the_largest_reduction_that_still_covers_it():
    prep = Preprocess(224, 0.875, "bicubic", (0.5,) * 3, (0.5,) * 3)
    keep = Keep(pixels=32, thumb=48, crop=160, crop_rows=frozenset({3}))
    assert needed_side(prep, keep, 0) == 256, "timm resizes the short side to 224 / 0.875 before its crop"
    assert needed_side(prep, Keep(pixels=300), 0) == 300 and needed_side(prep, Keep(crop=400, crop_rows={3}), 3) == 400
    assert photo_formats.jpeg_reduction(6240, 4160, 256)[0] == 8, "26 MP: 520 px short side at 1/8"
    assert photo_formats.jpeg_reduction(3000, 2047, 256)[0] == 4 and photo_formats.jpeg_reduction(3000, 2048, 256)[0] == 8
    assert photo_formats.jpeg_reduction(600, 511, 256)[0] == 1, "no reduction leaves less than needed"
    assert photo_formats.jpeg_reduction(6240, 4160, 0)[0] == 1, "need 0: the full image"


def test_a_large_jpeg_decodes_reduced_and_a_small_one_exactly_as_before(cat):
    big = oriented_jpeg(photo(cat, 2400, 1600), 1)
    reduced = images.decode_rgb(big, 10**9, need=256)
    assert reduced.shape == (400, 600, 3), "1/4: the largest reduction leaving 256 px"
    full = images.decode_rgb(big, 10**9)
    assert full.shape == (1600, 2400, 3)
    small = cv2.resize(full, (600, 400), interpolation=cv2.INTER_AREA)
    assert float(np.abs(small.astype(int) - reduced).mean()) < 3, "DCT scaling gives the area-shrunk picture"
    little = oriented_jpeg(photo(cat, 400, 300), 1)
    assert np.array_equal(images.decode_rgb(little, 10**9, need=256),
                          cv2.cvtColor(cv2.imdecode(np.frombuffer(little, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def extractor():
    import torch

    from pipeline.imaging import backbone
    from pipeline.imaging.features import Extractor, preprocess_for

    cfg = Config()
    model = backbone.build(backbone.resolve(cfg.backbone)).eval()
    return Extractor(model, preprocess_for(model, cfg), torch.device("cpu"), torch.float32, cfg.ingest.max_pixels)


@pytest.mark.parametrize("size", [(1536, 1024), (448, 304)], ids=["reduced 1-4", "full decode"])
def test_all_eight_orientations_give_the_upright_photo_s_embedding(tmp_path, cat, extractor, size):
    from pipeline.imaging.features import cosine_rows

    upright = photo(cat, *size)
    paths = []
    for orientation in range(1, 9):
        paths.append(tmp_path / f"o{orientation}.jpg")
        paths[-1].write_bytes(oriented_jpeg(upright, orientation))
    assert images.read_rgb(paths[5], need=256).shape[0] == (256 if size[1] > 1000 else size[1]), "which path ran"
    pooled, mean, _ = extractor.run(paths, 8, 2)
    for features in (pooled, mean):
        cosine = cosine_rows(features, np.repeat(features[:1], 8, axis=0))
        assert cosine.min() >= ORIENTATION_COSINE, cosine
    assert {images.header_size(p.read_bytes()) for p in paths} == {size}, "the header's size is the shown size"


def test_png_and_webp_with_an_exif_orientation_are_turned_too(cat):
    upright = photo(cat, 96, 64)
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(np.rot90(upright, 1)).save(buffer, fmt, exif=exif.tobytes(), lossless=True)
        assert np.array_equal(images.decode_rgb(buffer.getvalue(), 10**9), upright), fmt


def test_heic_decodes_upright_at_its_size(cat):
    upright = photo(cat, 320, 224)
    decoded = images.decode_rgb(heic(upright), 10**9, need=256, suffix=".heic")
    assert decoded.shape == upright.shape and float(np.abs(decoded.astype(int) - upright).mean()) < 4
    assert images.header_size(heic(upright)) == (320, 224)


def test_dng_decodes_by_half_size_demosaic_and_follows_its_flip(cat):
    upright = photo(cat, 320, 224)
    decoded = images.decode_rgb(dng(upright), 10**9, need=100, suffix=".dng")
    assert decoded.shape == (112, 160, 3), "LibRaw's half size: one pixel a Bayer quad"
    shrunk = cv2.resize(upright, (160, 112), interpolation=cv2.INTER_AREA)
    # dcraw brightens and has its own tone curve: the same picture, judged by correlation, not by level
    assert np.corrcoef(decoded.ravel(), shrunk.ravel())[0, 1] > 0.95
    turned = dng(np.ascontiguousarray(np.rot90(upright, 1)), orientation=6)
    assert images.header_size(turned, ".dng") == (320, 224)
    assert images.decode_rgb(turned, 10**9, need=100, suffix=".dng").shape == (112, 160, 3)


def test_a_raw_file_s_preview_is_used_when_large_enough(cat):
    """pidng writes no preview, so the camera's embedded JPEG is given by a stand-in for LibRaw's handle."""
    import rawpy

    upright = photo(cat, 640, 448)

    class Raw:
        sizes = type("Sizes", (), {"flip": 6})()

        def extract_thumb(self):
            stored = np.ascontiguousarray(np.rot90(upright, 1))  # as the sensor lay: turned
            return type("Thumb", (), {"format": rawpy.ThumbFormat.JPEG, "data": oriented_jpeg(stored, 1)})()

    preview = photo_formats.raw_preview(Raw(), 200)
    assert preview.shape == (224, 320, 3), "upright by the RAW's flip, and DCT-scaled to what is needed"
    shrunk = cv2.resize(upright, (320, 224), interpolation=cv2.INTER_AREA)
    assert float(np.abs(preview.astype(int) - shrunk).mean()) < 4
    assert photo_formats.raw_preview(Raw(), 600) is None, "too small: the caller demosaics"


def test_ingest_reports_a_broken_heic_and_raw_and_reads_sizes_from_headers(tmp_path, cat):
    from pipeline.engine.stage import StageContext
    from pipeline.stages.ingest import STAGE, run

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    upright = photo(cat, 320, 224)
    good = {"a.heic": heic(upright), "b.dng": dng(upright), "c.jpg": oriented_jpeg(upright, 8),
            "d.jpg": oriented_jpeg(photo(cat, 2400, 1600), 1)}
    broken = {"e.heic": good["a.heic"][:400], "f.dng": good["b.dng"][:3000], "g.cr2": b"II*\0not a raw file"}
    for name, data in {**good, **broken}.items():
        (folder / name).write_bytes(data)
    cfg = load_config(None, [f"images={folder}"])
    run(StageContext(cfg, STAGE, out, {}, {}, {}))
    manifest = {m["path"]: (m["width"], m["height"]) for m in json.loads((out / "manifest.json").read_text())}
    assert manifest == {"a.heic": (320, 224), "b.dng": (320, 224), "c.jpg": (320, 224), "d.jpg": (2400, 1600)}
    skipped = {s["path"]: s["reason"] for s in json.loads((out / "skipped.json").read_text())}
    assert set(skipped) == set(broken)
    assert skipped["e.heic"].startswith("not a decodable HEIC/HEIF image (")
    assert skipped["f.dng"].startswith("not a decodable camera RAW file (")
    assert skipped["g.cr2"].startswith("not a decodable camera RAW file (")


def test_the_device_jpeg_decoder_gives_what_the_cpu_path_gives(tmp_path, cat):
    """``gpu_jpeg.decode`` is nvJPEG on CUDA; here torchvision's CPU decoder runs the same function."""
    from pipeline.imaging import gpu_jpeg
    from pipeline.imaging.decoding import decode

    prep = Preprocess(224, 0.875, "bicubic", (0.5,) * 3, (0.5,) * 3)
    keep = Keep(pixels=32, thumb=48, crop=160, crop_rows=frozenset({0}))
    path = tmp_path / "turned.jpg"
    path.write_bytes(oriented_jpeg(photo(cat, 960, 640), 6))
    on_device, on_cpu = gpu_jpeg.decode(path, 0, keep, prep, 10**9, "cpu"), decode(path, 0, keep, prep, 10**9)
    assert on_device.keys() == on_cpu.keys() == {"input", "pixels", "thumb", "crop"}
    for name in on_cpu:
        assert on_device[name].shape == on_cpu[name].shape, name
        assert float(np.abs(on_device[name].astype(int) - on_cpu[name]).mean()) < 3, name  # upright, not turned
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), photo(cat, 64, 48))
    assert gpu_jpeg.decode(png, 0, keep, prep, 10**9, "cpu") is None, "not a JPEG: the CPU path decodes it"
