"""Ingest on real files the test writes: formats, depths, broken files, labels, manifest."""


import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.imaging import images
from pipeline.engine.config import Config
from pipeline.engine.artifacts import StageError
from pipeline.engine.stage import StageContext
from pipeline.stages.ingest import STAGE, discover, inspect_file, label_of, run


@pytest.fixture
def photo(coffee) -> np.ndarray:
    return cv2.resize(coffee, (64, 48), interpolation=cv2.INTER_AREA)  # RGB, real content


def test_grey_alpha_palette_16bit_decode_to_rgb(tmp_path, photo):
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "colour.png"), bgr)
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
    rgba = np.dstack([bgr, np.full(grey.shape, 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(tmp_path / "palette.png")

    colour = images.read_rgb(tmp_path / "colour.png")
    assert colour.shape == (48, 64, 3) and colour.dtype == np.uint8
    assert np.array_equal(colour, photo), "BGR must become RGB"
    assert np.array_equal(images.read_rgb(tmp_path / "deep.png"), photo), "16-bit scales to the same 8-bit"
    grey_rgb = images.read_rgb(tmp_path / "grey.png")
    assert grey_rgb.shape == (48, 64, 3) and np.array_equal(grey_rgb[..., 0], grey_rgb[..., 2])
    alpha = images.read_rgb(tmp_path / "alpha.png")
    assert (alpha[:10, :10] == 255).all(), "transparent pixels composite over white"
    assert np.array_equal(alpha[20:, 20:], photo[20:, 20:])
    palette = images.read_rgb(tmp_path / "palette.png")
    assert palette.shape == (48, 64, 3)
    assert np.abs(palette.astype(int) - photo.astype(int)).mean() < 12


def test_broken_files_are_skipped_with_reasons(tmp_path, photo):
    good = tmp_path / "shirts" / "good.png"
    good.parent.mkdir()
    cv2.imwrite(str(good), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (tmp_path / "shirts" / "empty.png").write_bytes(b"")
    (tmp_path / "shirts" / "text.jpg").write_text("not an image at all")
    png = good.read_bytes()
    (tmp_path / "shirts" / "truncated.png").write_bytes(png[: len(png) // 3])
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    (tmp_path / ".hidden.png").write_bytes(png)

    cfg = Config(images=str(tmp_path))
    out = tmp_path.parent / (tmp_path.name + "-out")
    out.mkdir()
    summary = run(StageContext(cfg, STAGE, out, {}, {}, {}))
    manifest = __import__("json").loads((out / "manifest.json").read_text())
    skipped = {s["path"]: s["reason"] for s in __import__("json").loads((out / "skipped.json").read_text())}
    assert [m["path"] for m in manifest] == ["shirts/good.png"]
    assert manifest[0]["label"] == "shirts" and (manifest[0]["width"], manifest[0]["height"]) == (64, 48)
    assert skipped["shirts/empty.png"].startswith("empty file")
    assert "not a decodable image" in skipped["shirts/text.jpg"]
    assert "not a decodable image" in skipped["shirts/truncated.png"]
    assert skipped["notes.txt"] == "not an image file extension"
    assert ".hidden.png" not in skipped
    assert summary["images"] == 1 and summary["skipped"] == 3


def test_no_usable_image_is_a_clear_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    out = tmp_path.parent / (tmp_path.name + "-out")
    out.mkdir()
    with pytest.raises(StageError, match="no usable images.*a.png"):
        run(StageContext(Config(images=str(tmp_path)), STAGE, out, {}, {}, {}))


def test_decompression_bomb_is_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (4000, 3000)).save(path)
    record = inspect_file(path, tmp_path, max_pixels=1_000_000)
    assert "exceeds the limit" in record["reason"]


def test_labels_and_unicode_paths(tmp_path, photo):
    folder = tmp_path / "café noir"
    folder.mkdir()
    path = folder / "tasse à café.png"
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    path.write_bytes(encoded.tobytes())
    found, _ = discover(tmp_path, Config().ingest.extensions)
    assert found == [path]
    record = inspect_file(path, tmp_path, 10**8)
    assert record["label"] == "café noir" and len(record["sha256"]) == 64
    assert label_of("top.png") == ""
