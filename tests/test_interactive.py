"""The interactive maps and `embdeck place` on a copy of the full suite's end-to-end run (tests/e2e.py): new images
through the exported models (both file kinds agree, and an image of the collection lands where the run put it),
and the maps in Chromium with a real mouse (deck and report, placed layer included). The PDF is checked by
`make check-render` on the demo deck, which CI runs."""

import csv
import json

import cv2
import numpy as np
import pytest

from helpers import HOSTILE, ROOT, cli, copy_of_run, invoke, map_payload, record
from pipeline import demo
from pipeline.registry import stage_output

pytestmark = [pytest.mark.full, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="session")
def placed(run_dirs, fashion, tmp_path_factory):
    """Six new files placed on a copy of the run (the shared run stays as made): three Fashion-MNIST images it
    never saw, a copy of one of its own, a photo, and a broken file with a hostile name (skipped). Returns (the
    copy's output folder, the new images' folder, the CLI's output, its CSV rows, the copied image's name)."""
    original, _, _ = run_dirs
    out = copy_of_run(original, tmp_path_factory.mktemp("placed-run") / "out")
    folder = tmp_path_factory.mktemp("new-images")
    images, labels = fashion
    seen = {p.name for p in (original.parent / "images").rglob("*.png")}
    unseen = [i for i in range(len(images)) if f"test_{i:05d}.png" not in seen][:3]
    demo.write_images(folder, images, labels, np.array(unseen), prefix="new_")
    own = sorted((original.parent / "images" / "Sandal").iterdir())[0]
    (folder / "own.png").write_bytes(own.read_bytes())
    from skimage import data

    cv2.imwrite(str(folder / "coffee.jpg"), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    (folder / f"{HOSTILE}.png").write_text("not an image")
    output = invoke("place", str(folder), "--out", str(out))
    with open(out / "placed" / "placed.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return out, folder, output, rows, f"Sandal/{own.name}"


def test_place_puts_new_images_on_both_maps(placed):
    out, folder, output, rows, own_name = placed
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


def test_both_model_files_place_alike_and_a_missing_run_is_one_line(placed, copy_run, tmp_path):
    placed_out, folder, _, rows, _ = placed
    out = copy_run(placed_out)
    invoke("place", str(folder), "--out", str(out), "--format", "torchscript")
    with open(out / "placed" / "placed.csv", newline="", encoding="utf-8") as handle:
        again = list(csv.DictReader(handle))
    assert [a["file"] for a in again] == [a["file"] for a in rows] and len(rows) == 5
    for a, b in zip(rows, again):
        assert a["neighbour_1"] == b["neighbour_1"]
        for key in ("tsne_x", "tsne_y", "param_umap_x", "param_umap_y"):
            assert abs(float(a[key]) - float(b[key])) < 1e-3, key
    result = cli("place", str(folder), "--out", str(tmp_path / "no-run"))
    assert result.exit_code == 2 and "embdeck deck" in result.output and len(result.output.strip().splitlines()) == 1


def test_the_maps_answer_a_real_mouse(run_dirs, placed, built_deck):
    """Deck and report in Chromium: hovers show the right file name and thumbnail on every map, the colour
    under each point is its colour in every colouring, search and neighbour lists match the graph, the placed
    layer answers, and a hostile file name is listed as written."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from check_render import check

    _, slides, _ = run_dirs
    out = placed[0]
    result, problems = check(out, slides, built_deck, quick=True, probe="onerror")
    assert not problems, problems
    assert len(result["map"]["deck"]["hovers"]) >= 6 and len(result["map"]["report"]["hovers"]) >= 6
    assert result["map"]["reportExtras"]["placed"]["count"] == 5
    assert result["map"]["reportExtras"]["probed"]["texts"] == [f"Coat/{HOSTILE} $x$.png"]
