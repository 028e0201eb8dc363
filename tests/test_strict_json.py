"""Every JSON a run writes is strict JSON (no NaN, no Infinity), and a set of identical images, whose maps once
came out NaN, runs through every stage."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pipeline.pictures import map_data
from pipeline.engine.artifacts import json_text
from pipeline.methods.pca_fit import spread_out

ROOT = Path(__file__).resolve().parent.parent


def refuse(name):
    raise ValueError(f"{name} is not JSON")


def strict(text: str):
    """Parsed as a strict parser (JSON.parse, jq) would: NaN and Infinity refused."""
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null():
    data = {"silhouette": float("nan"), "scores": [float("inf"), -np.inf, 0.5], "f32": np.float32("nan"),
            "kept": np.float64(0.25)}
    assert strict(json_text(data)) == {"silhouette": None, "scores": [None, None, 0.5], "f32": None, "kept": 0.25}


def test_map_data_takes_points_all_in_one_place_and_refuses_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by a zero span once warned here ("invalid value ... cast")
        scaled, bounds = map_data.quantise(np.full((5, 2), 3.0, np.float32))
    assert (scaled == 0).all() and bounds == [3.0, 3.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="1 map coordinates are not finite"):
        map_data.quantise(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    body = re.fullmatch(r'EmbdeckMap\.receive\("x", (.*)\);\n', map_data.script("x", {"v": float("nan")}), re.S)[1]
    assert strict(body) == {"v": None}


def test_maps_of_identical_points_are_finite():
    from pipeline.methods.tsne_fit import fit_tsne

    same = np.tile(np.arange(8, dtype=np.float32), (40, 1))
    assert not spread_out(same) and spread_out(same + np.eye(40, 8, dtype=np.float32))
    coords = np.asarray(fit_tsne(same, 5.0, 40, "bh", 0, 1))
    assert np.isfinite(coords).all()


@pytest.mark.full
def test_every_json_of_a_run_on_identical_images_is_strict(tmp_path, fashion):
    """Two class folders of one image, copied: every stage runs, nothing it writes holds NaN, and the deck and
    report render without claiming a best score that is undefined."""
    import cv2

    image = fashion[0][0]
    for folder in ("a", "b"):
        (tmp_path / "images" / folder).mkdir(parents=True)
        for i in range(12):
            cv2.imwrite(str(tmp_path / "images" / folder / f"{i:02d}.png"), image)
    out, slides = tmp_path / "out", tmp_path / "slides"
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "deck", "--images", str(tmp_path / "images"),
                           "--out", str(out), "--set", f"slides={slides}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "invalid value encountered" not in done.stderr, done.stderr[-3000:]
    record = strict((out / "run.json").read_text())
    assert set(record["not_run"]) <= {"compare"}, record["not_run"]
    files = [p for p in out.rglob("*.json")]
    scripts = [p for p in out.rglob("*.js") if p.read_text(errors="replace").startswith("EmbdeckMap.receive(")]
    assert len(files) > 10 and scripts
    for path in files:
        strict(path.read_text())
    for path in scripts:
        strict(re.fullmatch(r'EmbdeckMap\.receive\("[^"]*", (.*)\);\n', path.read_text(), re.S)[1])
    deck = (slides / "slides.md").read_text()
    assert "undefined at every k" in deck and "best silhouette" not in deck, "no best score where none is defined"
    assert not re.search(r"\bnan\b", deck + (out / "report" / "index.html").read_text(), re.I)


def test_the_chosen_k_claims_no_best_score_where_none_is_defined():
    from pipeline.methods.kmeans_sweep import choose_k

    k, reason = choose_k([2, 3, 4], [float("nan")] * 3, [float("nan")] * 3, elbow=3)
    assert k == 3 and "best" not in reason and "undefined at every k" in reason
