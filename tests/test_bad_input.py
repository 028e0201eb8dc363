"""Bad input files, each made for real by the test: decoded correctly, or skipped with the reason."""

import io
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.imaging import images
from pipeline.engine.config import Config, load_config
from pipeline.engine.stage import StageContext
from pipeline.stages.ingest import STAGE, discover, run


@pytest.fixture
def rgb(coffee) -> np.ndarray:
    return cv2.resize(coffee, (80, 60), interpolation=cv2.INTER_AREA)


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def close_to(a: np.ndarray, b: np.ndarray, tolerance: float = 6.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(int) - b.astype(int)).mean()) < tolerance


def test_formats_decode_as_a_viewer_shows_them(tmp_path, rgb):
    photo = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    (tmp_path / "rotated.jpg").write_bytes(encoded(photo, "JPEG", exif=exif.tobytes(), quality=95))
    (tmp_path / "cmyk.jpg").write_bytes(encoded(photo.convert("CMYK"), "JPEG", quality=95))
    frames = [photo, Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    photo.save(tmp_path / "image.tiff")
    photo.save(tmp_path / "image.webp", lossless=True)

    rotated = images.read_rgb(tmp_path / "rotated.jpg")
    assert rotated.shape == (80, 60, 3), "EXIF orientation applied"
    assert close_to(rotated, np.rot90(rgb, k=-1))
    assert close_to(images.read_rgb(tmp_path / "cmyk.jpg"), rgb, 10)
    assert close_to(images.read_rgb(tmp_path / "anim.gif"), rgb, 12), "the first frame, not the second"
    assert np.array_equal(images.read_rgb(tmp_path / "image.tiff"), rgb)
    assert np.array_equal(images.read_rgb(tmp_path / "image.webp"), rgb)


def test_bad_files_in_a_folder_are_reported_and_the_rest_used(tmp_path, rgb):
    folder = tmp_path / "in"
    (folder / "cls").mkdir(parents=True)
    jpg = encoded(Image.fromarray(rgb), "JPEG")
    png = encoded(Image.fromarray(rgb), "PNG")
    files = {
        "cls/good.png": png,
        "cls/copy of good.png": png,  # a duplicate
        "cls/truncated.jpg": jpg[: len(jpg) // 2],
        "cls/truncated.png": png[: len(png) // 2],
        "cls/zero.png": b"",
        "cls/text.jpg": b"hello, I am not a JPEG",
        "cls/<b>bold & {{ x }}.png": png,
        "cls/ünïcødé ñame.png": png,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    Image.new("L", (20_000, 20_000)).save(folder / "cls" / "bomb.png", optimize=False)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    os.symlink(folder, folder / "cls" / "loop")  # a symlink loop: never followed

    out = tmp_path / "out"
    out.mkdir()
    cfg = load_config(None, [f"images={folder}", "ingest.max_pixels=50000000"])
    summary = run(StageContext(cfg, STAGE, out, {}, {}, {}))
    manifest = {m["path"] for m in json.loads((out / "manifest.json").read_text())}
    skipped = {s["path"]: s["reason"] for s in json.loads((out / "skipped.json").read_text())}
    assert manifest == {"cls/good.png", "cls/copy of good.png", "cls/<b>bold & {{ x }}.png", "cls/ünïcødé ñame.png"}
    undecodable = "not a decodable image (corrupt, truncated or unsupported format)"
    assert skipped["cls/truncated.jpg"] == skipped["cls/truncated.png"] == undecodable
    assert skipped["cls/zero.png"] == "empty file (0 bytes)"
    assert "decodable" in skipped["cls/text.jpg"]
    assert "exceeds the limit" in skipped["cls/bomb.png"]
    assert skipped["notes.txt"] == "not an image file extension"
    assert ".DS_Store" not in skipped and not any("loop" in p for p in manifest | set(skipped))
    duplicates = {d["path"]: d["same_as"] for d in summary["duplicates"]}
    assert len(duplicates) == 3 and set(duplicates.values()) <= manifest


def test_16bit_grey_and_alpha_keep_their_content(tmp_path, rgb):
    grey16 = (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    decoded = images.read_rgb(tmp_path / "grey16.png")
    assert decoded.shape == (60, 80, 3) and np.array_equal(decoded[..., 0], (grey16 // 257).astype(np.uint8))


def test_discovery_ignores_hidden_folders(tmp_path, rgb):
    (tmp_path / ".cache").mkdir()
    cv2.imwrite(str(tmp_path / ".cache" / "x.png"), rgb)
    cv2.imwrite(str(tmp_path / "y.png"), rgb)
    found, _ = discover(tmp_path, Config().ingest.extensions)
    assert [p.name for p in found] == ["y.png"]
