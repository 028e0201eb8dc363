"""The default suite's end to end: the demo set at 4 images a class through every stage (quick settings), the deck
and the report it renders, the exported models run with torch alone, `embdeck place` onto it, `embdeck graph`, and
what a rerun recomputes. Quality at scale is judged in the full suite's 300-image run (test_pipeline.py)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.stored_rows import load_array
from helpers import ROOT, invoke, map_payload, record, stage_dirs, strict_json

# With pytest-xdist (--dist loadgroup), the tests of one shared run stay on one worker.
pytestmark = pytest.mark.xdist_group("quick")


def placeable(folder: Path) -> list[str]:
    """The new images that can be placed: every PNG but the broken one, as the CSV and the report name them."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png") if p.name != "broken.png")


def test_deck_and_report_hold_the_run_s_numbers_and_every_figure(quick_run):
    out, slides = quick_run["out"], quick_run["slides"]
    rec = record(out)
    images = rec["summaries"]["ingest"]["images"]
    assert images == 40 and rec["summaries"]["ingest"]["folder"] == str(quick_run["data"] / "fashion-mnist")
    embeddings = load_array(stage_dirs(out)["extract"] / "embeddings.rows.json")
    assert embeddings.shape == (40, rec["summaries"]["extract"]["embedding_dim"]) == (40, 1280)
    assert not rec["not_run"], rec["not_run"]
    assert {s["state"] for s in rec["stages"].values()} == {"ran"}
    deck = (slides / "slides.md").read_text()
    assert "**40 images**" in deck and "(40, 1280)" in deck
    assert "EfficientNet-Lite0" in deck and "did not use DINO" in deck, "a fallback says which backbone it is"
    assert "{{" not in deck and "placeholder" not in deck.lower()
    referenced = re.findall(r'src="(/figures/[^"]+)"', deck) + re.findall(r"^background: (/figures/\S+)$", deck, re.M)
    made = {p.name for p in (slides / "public" / "figures").glob("*.png")}
    assert len(made) == 20 and made == {ref.rsplit("/", 1)[1] for ref in referenced}, "every figure is on a slide"
    assert not re.search(r"https?://", deck), "the deck stays offline"
    k = rec["summaries"]["clusters"]["k"]
    assert f"k = {k}" in deck or f"k={k}" in deck, "the chosen k is the run's"
    report = (out / "report" / "index.html").read_text()
    assert "40 images" in report and "{{" not in report


def test_every_json_the_run_writes_is_strict(quick_run):
    files = sorted(quick_run["out"].rglob("*.json"))
    assert len(files) > 20
    for path in files:
        strict_json(path)  # NaN or Infinity would raise here, naming the file


def test_the_report_map_holds_every_image_and_the_placed_layer(quick_run):
    out, slides = quick_run["out"], quick_run["slides"]
    points = map_payload(out / "report" / "map" / "points.js", "points")
    assert points["count"] == 40 and [m["key"] for m in points["maps"]] == ["tsne", "umap", "param_umap"]
    assert len(points["names"]["base"]) == 40 and points["clusters"]["k"] == record(out)["summaries"]["clusters"]["k"]
    assert sum(points["clusters"]["sizes"]) == 40
    assert (slides / "public" / "map" / "points.js").read_bytes() == (out / "report" / "map" / "points.js").read_bytes()
    placed = map_payload(out / "report" / "map" / "placed.js", "placed")
    assert placed["count"] == 4 and sorted(placed["names"]) == placeable(quick_run["new"])
    assert set(placed["maps"]) == {"tsne", "param_umap"} and all(len(xy) == 8 for xy in placed["maps"].values())
    assert 'data-placed="1"' in (out / "report" / "index.html").read_text()


def test_place_puts_an_image_of_the_collection_where_the_run_put_it(quick_run):
    import csv

    out = quick_run["out"]
    assert "skipped broken.png: not a decodable image" in quick_run["placed"]
    with open(out / "placed" / "placed.csv", newline="", encoding="utf-8") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == placeable(quick_run["new"])
    own = rows["own.png"]
    assert own["neighbour_1"] == quick_run["own"] and float(own["similarity_1"]) > 0.9999, own
    assert all(float(row["similarity_1"]) < 0.9999 for name, row in rows.items() if name != "own.png")
    dirs = stage_dirs(out)
    manifest = json.loads((dirs["ingest"] / "manifest.json").read_text())
    at = [m["path"] for m in manifest].index(quick_run["own"])
    for key, file in (("tsne", "tsne_mlp.npy"), ("param_umap", "param_umap.npy")):
        run_xy = np.load(dirs["parametric"] / file)
        placed = np.array([float(own[f"{key}_x"]), float(own[f"{key}_y"])])
        assert np.abs(placed - run_xy[at]).max() < 1e-3 * np.abs(run_xy).max() + 1e-4, key


def test_exported_models_run_with_torch_alone_and_match_the_eager_pipeline(quick_run, tmp_path):
    """model.pt and model.pt2 loaded in a fresh process where timm and embdeck cannot be imported, on images
    decoded and resized as the run did: their outputs against the run's own embeddings (the eager model's), a
    batch of a size never traced against its images one by one, and the t-SNE ensemble against the run's map."""
    out = quick_run["out"]
    from pipeline.imaging.images import read_rgb
    from pipeline.new_images import preprocess_of

    rec, dirs = record(out), stage_dirs(out)
    manifest = json.loads((dirs["ingest"] / "manifest.json").read_text())
    picks = np.arange(0, 40, 7)  # 6 images across the classes
    prep = preprocess_of(rec)
    root = Path(rec["summaries"]["ingest"]["folder"])
    np.save(tmp_path / "batch.npy", np.stack([prep.resize(read_rgb(root / manifest[i]["path"])) for i in picks]))
    model = out / "model_repository" / "dino_model" / "1" / "model.pt"
    head = out / "model_repository" / "tsne_head" / "1" / "model.pt"
    script = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("timm", "pipeline", "torchvision"):
            raise ImportError("only torch here: " + name)
sys.meta_path.insert(0, Block())
import numpy as np, torch
batch = torch.from_numpy(np.load({str(tmp_path / "batch.npy")!r})).permute(0, 3, 1, 2).float() / 255.0
with torch.inference_mode():
    for kind, model in (("pt", torch.jit.load({str(model)!r})), ("pt2", torch.export.load({str(model) + "2"!r}).module())):
        np.save({str(tmp_path)!r} + f"/{{kind}}.npy", model(batch).numpy())
        np.save({str(tmp_path)!r} + f"/{{kind}}-five.npy", model(batch[:5]).numpy())
        np.save({str(tmp_path)!r} + f"/{{kind}}-one.npy", model(batch[:1]).numpy())
    head = torch.jit.load({str(head)!r})
    np.save({str(tmp_path)!r} + "/ensemble.npy", head(torch.jit.load({str(model)!r})(batch)).numpy())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = load_array(dirs["extract"] / "embeddings.rows.json")[picks]
    tolerance = rec["config"]["export"]["tolerance"]
    for kind in ("pt", "pt2"):
        got = np.load(tmp_path / f"{kind}.npy")
        assert got.shape == want.shape and np.abs(got - want).max() < tolerance * max(1.0, np.abs(want).max()), kind
        assert np.abs(np.load(tmp_path / f"{kind}-five.npy") - got[:5]).max() < 1e-4, kind
        assert np.abs(np.load(tmp_path / f"{kind}-one.npy") - got[:1]).max() < 1e-4, kind
    placed = np.load(dirs["parametric"] / "tsne_mlp.npy")[picks]
    ensemble = np.load(tmp_path / "ensemble.npy")
    assert ensemble.shape == placed.shape and np.abs(ensemble - placed).max() < 1e-3 * np.abs(placed).max()


def test_graph_prints_every_stage_as_the_readme_shows_it():
    from pipeline.registry import STAGES, describe

    shown = invoke("graph")
    assert shown == describe(STAGES)
    assert [line.split()[0] for line in shown.splitlines() if line and not line.startswith(" ")][:len(STAGES)] == \
        [stage.name for stage in STAGES]
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- embdeck graph -->\n```text\n(.*?)```\n<!-- /embdeck graph -->", readme, re.S)
    assert block and block.group(1) == shown, "run `embdeck graph` and paste its output into the README"


def test_a_rerun_recomputes_nothing_and_a_pca_change_reruns_only_what_reads_it(quick_run, copy_run, tmp_path):
    out = copy_run(quick_run["out"])
    slides = tmp_path / "slides"
    opts = [*quick_run["opts"][2:], "--out", str(out)]
    opts[opts.index(f"slides={quick_run['slides']}")] = f"slides={slides}"
    invoke("deck", *opts)
    rendered = [slides / "slides.md", out / "report" / "index.html"]
    before = [(p.read_bytes(), p.stat().st_mtime_ns) for p in rendered]
    assert {s["state"] for s in record(out)["stages"].values()} == {"cached"}
    invoke("deck", *opts)
    assert [(p.read_bytes(), p.stat().st_mtime_ns) for p in rendered] == before, "a warm deck rewrites nothing"
    status = invoke("status", *opts, "--set", "pca.n_components=5")
    assert "pca.n_components 50 -> 5" in status and "extract  up to date" in status
    invoke("run", *opts, "--set", "pca.n_components=5")
    states = {k: s["state"] for k, s in record(out)["stages"].items()}
    assert states.pop("pca") == "ran" and states["ingest"] == states["extract"] == states["umap"] == "cached"
    assert states["clusters"] == states["retrieval"] == states["patches"] == "cached", "they do not read PCA"
    assert np.load(stage_dirs(out)["pca"] / "pca.npy").shape == (40, 5)
