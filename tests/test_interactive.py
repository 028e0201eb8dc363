"""The interactive maps and `embdeck place` on the end-to-end run (tests/e2e.py): new images through the exported
models (both file kinds agree, and an image of the collection lands where the run put it), the maps in
Chromium with a real mouse (deck and report, placed layer included), and the PDF (no blank page, the map slide printed)."""

import csv
import json
import os
import subprocess

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from e2e import HOSTILE, ROOT, map_payload, record
from pipeline import demo
from pipeline.cli import main
from pipeline.registry import stage_output


@pytest.fixture(scope="session")
def placed(run_dirs, fashion, tmp_path_factory):
    """Six new files placed on the run: three Fashion-MNIST images it never saw, a copy of one of its own, a
    photo, and a broken file with a hostile name (skipped). Returns (folder, the CLI's output, its CSV rows)."""
    out, _, _ = run_dirs
    folder = tmp_path_factory.mktemp("new-images")
    images, labels = fashion
    seen = {p.name for p in (out.parent / "images").rglob("*.png")}
    unseen = [i for i in range(len(images)) if f"test_{i:05d}.png" not in seen][:3]
    demo.write_images(folder, images, labels, np.array(unseen), prefix="new_")
    own = sorted((out.parent / "images" / "Sandal").iterdir())[0]
    (folder / "own.png").write_bytes(own.read_bytes())
    from skimage import data

    cv2.imwrite(str(folder / "coffee.jpg"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    (folder / f"{HOSTILE}.png").write_text("not an image")
    result = CliRunner().invoke(main, ["place", str(folder), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(out / "placed" / "placed.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return folder, result.output, rows, f"Sandal/{own.name}"


def test_place_puts_new_images_on_both_maps(run_dirs, placed):
    out, _, _ = run_dirs
    folder, output, rows, own_name = placed
    assert len(rows) == 5 and "1 file(s) skipped" in output and f"skipped {HOSTILE}.png: not a decodable image" in output, "the broken file is named"
    assert (out / "placed" / "placed_map.png").is_file()
    rec = record(out)
    own = next(r for r in rows if r["file"] == "own.png")
    assert own["neighbour_1"] == own_name and float(own["similarity_1"]) > 0.9999, "its nearest image is itself"
    names = [m["path"] for m in json.loads(stage_output(rec, "ingest", "manifest").read_text())]
    row = names.index(own_name)
    for key in ("tsne_mlp", "param_umap"):  # the exported head puts the image where the run's network did
        want = np.load(stage_output(rec, "parametric", key))[row]
        column = "tsne" if key == "tsne_mlp" else "param_umap"
        got = np.array([float(own[f"{column}_x"]), float(own[f"{column}_y"])])
        assert np.abs(got - want).max() < 1e-3, (key, got, want)
    layer = map_payload(out / "report" / "map" / "placed.js", "placed")
    assert layer["count"] == 5 and 'data-placed="1"' in (out / "report" / "index.html").read_text()
    coffee = next(r for r in rows if r["file"] == "coffee.jpg")
    assert float(coffee["similarity_1"]) < float(own["similarity_1"])


def test_both_model_files_place_alike_and_a_missing_run_is_one_line(run_dirs, placed, tmp_path):
    out, _, _ = run_dirs
    folder, _, rows, _ = placed
    result = CliRunner().invoke(main, ["place", str(folder), "--out", str(out), "--format", "torchscript"])
    assert result.exit_code == 0, result.output
    with open(out / "placed" / "placed.csv", newline="", encoding="utf-8") as handle:
        again = list(csv.DictReader(handle))
    for a, b in zip(rows, again):
        assert a["file"] == b["file"] and a["neighbour_1"] == b["neighbour_1"]
        for key in ("tsne_x", "tsne_y", "param_umap_x", "param_umap_y"):
            assert abs(float(a[key]) - float(b[key])) < 1e-3, key
    CliRunner().invoke(main, ["place", str(folder), "--out", str(out)], catch_exceptions=False)  # back to pt2
    result = CliRunner().invoke(main, ["place", str(folder), "--out", str(tmp_path / "no-run")])
    assert result.exit_code == 2 and "embdeck deck" in result.output and len(result.output.strip().splitlines()) == 1


def test_the_maps_answer_a_real_mouse(run_dirs, placed, built_deck):
    """Deck and report in Chromium: hovers show the right file name and thumbnail on every map, the colour
    under each point is its colour in every colouring, search and neighbour lists match the graph, the placed
    layer answers, and a hostile file name is listed as written."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from check_render import check

    out, slides, _ = run_dirs
    result, problems = check(out, slides, built_deck, quick=True, probe="onerror")
    assert not problems, problems
    assert len(result["map"]["deck"]["hovers"]) >= 6 and len(result["map"]["report"]["hovers"]) >= 6
    assert result["map"]["reportExtras"]["placed"]["count"] == 5
    assert result["map"]["reportExtras"]["probed"]["texts"] == [f"Coat/{HOSTILE} $x$.png"]


def map_slide_number(deck) -> int:
    """The number of the slide holding the map component, as Slidev's own parser counts slides."""
    code = ("import('@slidev/parser').then(async p => { const fs = await import('node:fs');"
            f" const d = await p.parse(fs.readFileSync({str(deck)!r}, 'utf8'), {str(deck)!r});"
            " console.log(d.slides.findIndex(s => s.content.includes('<EmbeddingMap')) + 1); })")
    return int(subprocess.run(["node", "-e", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def test_the_pdf_has_no_blank_page_and_prints_the_map_slide(run_dirs, tmp_path):
    """Exported to PDF: no page is blank, the cover keeps its title over the picture and the map slide shows the
    static maps (the rules of check-render, here on the end-to-end deck)."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from check_render import pdf_pages_have_content

    _, slides, _ = run_dirs
    number = map_slide_number(slides / "slides.md")
    assert number > 1
    pdf = tmp_path / "deck.pdf"
    for attempt in (1, 2):  # Vite's first run in a fresh checkout can reload the pages mid-export: export again
        proc = subprocess.run(["npx", "--no-install", "slidev", "export", str(slides / "slides.md"), "--output", str(pdf),
                               "--executable-path", "/usr/bin/chromium", "--timeout", "120000"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, env={**os.environ, "JITI_FS_CACHE": "false"})
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        blank = pdf_pages_have_content(pdf, tmp_path, number)
        if not blank:
            break
    assert not blank
    words = [subprocess.run(["pdftotext", "-f", str(p), "-l", str(p), str(pdf), "-"], capture_output=True,
                            text=True, check=True).stdout for p in (1, number)]
    assert "Exploring Image" in words[0] and "300 images" in words[0], "the cover's title stays on its page"
    assert "Printed copy" in words[1], "the map slide prints its static figures, not the component"
    page = cv2.imread(str(tmp_path / f"pdf-page-{number:02d}.png"), cv2.IMREAD_GRAYSCALE)
    assert (page < 200).mean() > 0.03, "the map slide's figures are on the page"
