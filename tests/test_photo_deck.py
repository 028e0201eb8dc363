"""A folder as a phone and a camera fill it (JPEG, EXIF-turned JPEG, HEIC, DNG, one large JPEG decoded reduced,
and a broken HEIC and RAW) makes a quick deck; the broken files are listed with their reason."""

import json

import cv2
import numpy as np
from skimage import data

from helpers import invoke, quick_settings, record, stage_dirs
from photo_files import dng, heic, oriented_jpeg

MAKERS = {"jpg": lambda rgb: oriented_jpeg(rgb, 1), "turned.jpg": lambda rgb: oriented_jpeg(rgb, 6),
          "heic": heic, "dng": dng}


def test_a_mixed_photo_folder_makes_a_deck(tmp_path):
    folder = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for label, photo in (("cat", data.chelsea()), ("coffee", data.coffee()), ("astronaut", data.astronaut())):
        (folder / label).mkdir(parents=True)
        for i in range(12):  # seeded crops of one photo: a class each
            h, w = photo.shape[:2]
            top, left = rng.integers(0, h // 4), rng.integers(0, w // 4)
            rgb = cv2.resize(photo[top:top + 3 * h // 4, left:left + 3 * w // 4], (240, 176), interpolation=cv2.INTER_AREA)
            kind = list(MAKERS)[i % len(MAKERS)]
            (folder / label / f"{i:02d}.{kind}").write_bytes(MAKERS[kind](rgb))
    (folder / "cat" / "large.jpg").write_bytes(oriented_jpeg(cv2.resize(data.chelsea(), (2400, 1600)), 3))
    (folder / "coffee" / "broken.heic").write_bytes(heic(data.coffee())[:500])
    (folder / "coffee" / "broken.nef").write_bytes(b"MM\0*not a camera file")
    out, slides = tmp_path / "out", tmp_path / "slides"
    invoke("deck", "--images", folder, "--out", out, "--set", f"slides={slides}", *quick_settings())
    rec = record(out)
    manifest = json.loads((stage_dirs(out)["ingest"] / "manifest.json").read_text())
    suffixes = {m["path"].split(".", 1)[1] for m in manifest}
    assert len(manifest) == 37 and suffixes == {"jpg", "turned.jpg", "heic", "dng"}
    assert {s["state"] for s in rec["stages"].values()} == {"ran"} and not rec["not_run"]
    skipped = {s["path"]: s["reason"] for s in rec["summaries"]["ingest"]["skipped_files"]}
    assert skipped["coffee/broken.heic"].startswith("not a decodable HEIC/HEIF image")
    assert skipped["coffee/broken.nef"].startswith("not a decodable camera RAW file")
    deck = (slides / "slides.md").read_text()
    assert "**37 images**" in deck and "broken.heic" in deck
    assert "not a decodable camera RAW file" in (out / "report" / "index.html").read_text()
