"""The end-to-end run on 300 real Fashion-MNIST images that test_pipeline and test_interactive share (made once
per session by the fixtures in conftest.py), and the helpers both read it with."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "<img src=x onerror=alert(1)>{{ 7*7 }}"


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def invoke(*args) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def map_payload(path: Path, name: str) -> dict:
    """A map data file's payload, as web/map-core.js receives it."""
    text = path.read_text(encoding="ascii")
    return json.loads(re.fullmatch(r'EmbdeckMap\.receive\("%s", (.*)\);\n' % name, text, re.S).group(1))


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


def build_deck(slides: Path, dist: Path) -> Path:
    """The rendered deck built by Slidev into ``dist``."""
    assert (ROOT / "node_modules" / ".bin" / "slidev").exists(), "run `make test`: it installs Slidev"
    proc = subprocess.run(["npx", "--no-install", "slidev", "build", str(slides / "slides.md"), "--out", str(dist)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JITI_FS_CACHE": "false"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return dist
