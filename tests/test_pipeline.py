"""End to end on 60 real Fashion-MNIST images with the bundled backbone: run, cache, deck, slidev build."""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


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


HOSTILE = "<img src=x onerror=alert(1)>{{ 7*7 }}"


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, small_set):
    """The 60 images plus a broken file with a hostile name, which must be skipped and shown as text."""
    base = tmp_path_factory.mktemp("e2e")
    images, out, slides = base / "images", base / "out", base / "slides"
    shutil.copytree(small_set, images)
    (images / "Bag" / f"{HOSTILE}.png").write_text("not an image")
    before = folder_digest(images)
    opts = ["--images", str(images), "--out", str(out), "--set", f"slides={slides}"]
    invoke("deck", *opts)
    assert folder_digest(images) == before, "the input folder must not change"
    return out, slides, opts


def record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_deck_numbers_come_from_the_run(run_dirs):
    out, slides, _ = run_dirs
    rec = record(out)
    deck = (slides / "slides.md").read_text()
    embeddings = np.load(next(out.glob("cache/extract/*/embeddings.npy")))
    assert embeddings.shape == (60, 1280) == (rec["summaries"]["ingest"]["images"], rec["summaries"]["extract"]["embedding_dim"])
    assert "**60 images**" in deck and "(60, 1280)" in deck
    assert "EfficientNet-Lite0" in deck and "did not use DINO" in deck
    assert "{{" not in deck and "placeholder" not in deck.lower()
    referenced = re.findall(r'src="(/figures/[^"]+)"', deck)
    assert len(referenced) >= 2
    for ref in referenced:
        assert (slides / "public" / ref.lstrip("/")).is_file(), ref
    assert not re.search(r"https?://", deck), "the deck stays offline"
    report = (out / "report" / "index.html").read_text()
    assert "60 images" in report
    assert "{{" not in report.replace("{{ 7*7 }}", ""), "only the hostile file name has braces"
    assert rec["summaries"]["ingest"]["skipped"] == 1


def test_hostile_file_names_reach_neither_deck_nor_report_raw(run_dirs):
    out, slides, _ = run_dirs
    deck = (slides / "slides.md").read_text()
    report = (out / "report" / "index.html").read_text()
    assert "<img src=x" not in deck and "<img src=x" not in report
    assert "&lt;img src=x onerror=alert(1)&gt;&#123;&#123; 7&#42;7 &#125;&#125;" in deck
    assert "&lt;img src=x onerror=alert(1)&gt;{{ 7*7 }}" in report


def test_rerun_recomputes_nothing_and_pca_change_reruns_only_pca(run_dirs):
    out, _, opts = run_dirs
    invoke("run", *opts)
    assert {s["state"] for s in record(out)["stages"].values()} == {"cached"}
    status = invoke("status", *opts, "--set", "pca.n_components=5")
    assert "pca.n_components 50 -> 5" in status and "extract  up to date" in status
    invoke("run", *opts, "--set", "pca.n_components=5")
    assert {k: s["state"] for k, s in record(out)["stages"].items()} == {"ingest": "cached", "extract": "cached", "pca": "ran"}
    assert np.load(next(out.glob("cache/pca/*/pca.npy"))).shape[1] in (5, 50)


def test_extraction_is_deterministic(run_dirs, tmp_path):
    out, _, opts = run_dirs
    invoke("run", *opts[:2], "--out", str(tmp_path / "again"), "--only", "extract")
    first = np.load(next(out.glob("cache/extract/*/embeddings.npy")))
    second = np.load(next((tmp_path / "again").glob("cache/extract/*/embeddings.npy")))
    assert np.array_equal(first, second)


def test_slidev_builds_the_rendered_deck(run_dirs, tmp_path):
    _, slides, _ = run_dirs
    assert (ROOT / "node_modules" / ".bin" / "slidev").exists(), "run `make test`: it installs Slidev"
    proc = subprocess.run(["npx", "--no-install", "slidev", "build", str(slides / "slides.md"), "--out",
                           str(tmp_path / "dist")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "JITI_FS_CACHE": "false"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "dist" / "index.html").is_file()
    figures = list((tmp_path / "dist" / "figures").glob("*.png"))
    assert len(figures) >= 2


def test_output_inside_input_is_refused(small_set):
    result = CliRunner().invoke(main, ["run", "--images", str(small_set), "--out", str(small_set / "out")])
    assert result.exit_code == 2 and "inside the image folder" in result.output
