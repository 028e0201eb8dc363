"""The full suite's end-to-end run on 300 real Fashion-MNIST images (made once per session by the ``run_dirs``
fixture in conftest.py; test_pipeline and test_interactive read it and never change it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import HOSTILE, folder_digest, invoke


def make_run(base: Path, medium_set: Path) -> tuple[Path, Path, list[str]]:
    """The 300 images plus a broken file with a hostile name, which must be skipped and shown as text."""
    images, out, slides = base / "images", base / "out", base / "slides"
    shutil.copytree(medium_set, images)
    (images / "Bag" / f"{HOSTILE}.png").write_text("not an image")
    first = sorted((images / "Coat").iterdir())[0]
    first.rename(first.with_name(f"{HOSTILE} $x$.png"))  # a real image with a hostile name
    before = folder_digest(images)
    opts = ["--images", str(images), "--out", str(out), "--set", f"slides={slides}"]
    invoke("deck", *opts)
    assert folder_digest(images) == before, "the input folder must not change"
    return out, slides, opts
