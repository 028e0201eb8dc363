"""The full suite's end to end on 300 real Fashion-MNIST images with the bundled backbone and default settings (the
run of tests/e2e.py, shared with test_interactive; no test changes it): the deck and report, hostile file names,
the quality thresholds at a small scale, the Triton repository, a Slidev build under a sub-path as the Pages
workflow builds it, and what stages read. The default suite's quick deck (test_quick_deck.py) covers the rerun,
the exported models in a fresh process and `embdeck place`."""

import collections
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine.stored_rows import load_array
from helpers import HOSTILE, QUICK, ROOT, build_deck, invoke, map_payload, quick_settings, record, stage_dirs


pytestmark = [pytest.mark.full, pytest.mark.xdist_group("e2e")]


def test_deck_numbers_come_from_the_run(run_dirs):
    out, slides, _ = run_dirs
    rec = record(out)
    deck = (slides / "slides.md").read_text()
    embeddings = load_array(next(out.glob("cache/extract/*/embeddings.rows.json")))
    assert embeddings.shape == (300, 1280) == (rec["summaries"]["ingest"]["images"], rec["summaries"]["extract"]["embedding_dim"])
    assert "**300 images**" in deck and "(300, 1280)" in deck
    assert "EfficientNet-Lite0" in deck and "did not use DINO" in deck
    assert "{{" not in deck and "placeholder" not in deck.lower()
    referenced = re.findall(r'src="(/figures/[^"]+)"', deck) + re.findall(r"^background: (/figures/\S+)$", deck, re.M)
    made = {p.name for p in (slides / "public" / "figures").glob("*.png")}
    assert len(made) == 20 and made == {ref.rsplit("/", 1)[1] for ref in referenced}, "every figure is on a slide"
    assert "background: /figures/mosaic.png" in deck, "the collection picture is the cover's background"
    for ref in referenced:
        assert (slides / "public" / ref.lstrip("/")).is_file(), ref
    assert not re.search(r"https?://", deck), "the deck stays offline"
    report = (out / "report" / "index.html").read_text()
    assert "300 images" in report
    assert "{{" not in report.replace("{{ 7*7 }}", ""), "only the hostile file name has braces"
    assert rec["summaries"]["ingest"]["skipped"] == 1


def test_report_has_an_offline_interactive_map_of_every_image(run_dirs):
    out, slides, _ = run_dirs
    report = (out / "report" / "index.html").read_text()
    points = map_payload(out / "report" / "map" / "points.js", "points")
    assert points["count"] == 300 and [m["key"] for m in points["maps"]] == ["tsne", "umap", "param_umap"]
    assert len(points["names"]["base"]) == 300 and points["clusters"]["k"] == record(out)["summaries"]["clusters"]["k"]
    sheets = sorted((out / "report" / "map").glob("tiles-*.webp"))
    assert len(sheets) == points["sheets"] == 2, "300 thumbnails, 256 a sheet"
    assert (out / "report" / "map" / "nbrs-000.js").is_file()
    for src in re.findall(r'(?:src|href)="([^"#]+)"', report):
        if src.startswith("data:"):  # inline (the empty favicon): nothing to fetch
            continue
        assert not src.startswith(("http:", "https:", "/")) and (out / "report" / src).is_file(), src
    deck_map = slides / "public" / "map"
    assert (deck_map / "points.js").read_bytes() == (out / "report" / "map" / "points.js").read_bytes()
    assert not list(deck_map.glob("nbrs-*")), "the deck does not ship the neighbour files it never reads"
    assert (slides / "components" / "EmbeddingMap.vue").is_file(), "the component travels with a slides folder"


def test_hostile_file_names_reach_neither_deck_nor_report_raw(run_dirs):
    out, slides, _ = run_dirs
    deck = (slides / "slides.md").read_text()
    report = (out / "report" / "index.html").read_text()
    assert "<img src=x" not in deck and "<img src=x" not in report
    assert "&lt;img src=x onerror=alert(1)&gt;&#123;&#123; 7&#42;7 &#125;&#125;" in deck
    assert "&lt;img src=x onerror=alert(1)&gt;{{ 7*7 }}" in report
    points = map_payload(out / "report" / "map" / "points.js", "points")
    assert f"{HOSTILE} $x$.png" in points["names"]["base"], "kept literally, shown as text (textContent)"
    for script in (ROOT / "web").glob("*.js"):
        assert "innerHTML" not in script.read_text(), f"{script.name}: names must never become HTML"


def test_slidev_builds_the_deck_under_a_sub_path_as_pages_publishes_it(run_dirs, tmp_path):
    """`DECK_BASE=/deck/` as .github/workflows/pages.yml builds it: every asset the page asks for is under the
    sub-path and is in the build, and the figures and the live map's files travel with it."""
    _, slides, _ = run_dirs
    site = tmp_path / "site"
    dist = build_deck(slides, site / "deck", base="/deck/")
    page = (dist / "index.html").read_text()
    asked = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert asked and all(url.startswith("/deck/") for url in asked if not url.startswith(("data:", "#"))), asked
    for url in asked:
        if url.startswith("/deck/"):
            assert (site / url.lstrip("/")).is_file(), url
    figures = sorted(p.name for p in (slides / "public" / "figures").glob("*.png"))
    assert sorted(p.name for p in (dist / "figures").glob("*.png")) == figures and len(figures) == 20
    assert (dist / "map" / "points.js").is_file() and (dist / "map" / "map-view.js").is_file()
    built = page + "".join(p.read_text(errors="replace") for p in (dist / "assets").glob("*.js"))
    for name in figures:  # each slide asks for its figure under the sub-path (the map reads BASE_URL + "map/")
        assert f"/deck/figures/{name}" in built, name


def test_a_sampled_sweep_says_so_and_clusters_every_image(run_dirs, copy_run):
    original, _, opts = run_dirs
    out = copy_run(original)
    invoke("run", *opts, "--out", str(out), "--set", "clusters.sweep_sample=150", "--only", "clusters")
    s = record(out)["summaries"]["clusters"]
    assert s["sweep_sampled"] and s["sweep_images"] == 150 and s["ks"][-1] <= 2 * int(150 ** 0.5)
    assignment = np.load(stage_dirs(out)["clusters"] / "cluster_labels.npy")
    assert len(assignment) == 300 and len(np.unique(assignment)) == s["k"]
    assert not record(original)["summaries"]["clusters"]["sweep_sampled"], "the shared run is left as it was"


def test_quality_at_a_small_scale(run_dirs):
    out, _, _ = run_dirs
    s = record(out)["summaries"]
    assert s["tsne"]["adjustment"] == "", "perplexity 30 fits 300 images"
    rows = {(r["map"], r["split"]): r for r in s["fidelity"]["rows"]}
    assert rows[("t-SNE", "all")]["trustworthiness"] >= 0.9
    assert s["retrieval"]["knn_accuracy"] > s["retrieval"]["knn_accuracy_raw_pixels"]
    for name in ("parametric UMAP", "t-SNE MLP"):
        train, held = rows[(name, "training (sample)")], rows[(name, "held out")]
        assert held["trustworthiness"] >= train["trustworthiness"] - 0.05, name
    # The reported ARI is the one of the run's own assignment against the folders' labels, and far from chance (0).
    from sklearn.metrics import adjusted_rand_score

    manifest = json.loads((stage_dirs(out)["ingest"] / "manifest.json").read_text())
    assignment = np.load(stage_dirs(out)["clusters"] / "cluster_labels.npy")
    assert s["clusters"]["k"] in s["clusters"]["ks"] and len(np.unique(assignment)) == s["clusters"]["k"]
    ari = adjusted_rand_score([m["label"] for m in manifest], assignment)
    assert s["clusters"]["ari"] == pytest.approx(ari, abs=1e-4) and ari > 0.2, ari


def triton_model_config():
    """Triton's ``ModelConfig`` message from tritonclient's generated module, loaded by its path: the
    package's ``grpc/__init__`` imports grpcio, which reading the schema does not need."""
    import importlib.util

    import tritonclient

    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelConfig


def test_the_model_repository_is_one_triton_reads(run_dirs):
    """Every config.pbtxt parses with Triton's own schema; each image -> point ensemble runs dino_model then
    its head, wires the tensors by the names those models declare, and has the empty version folder Triton
    expects; the other models have their TorchScript file."""
    from google.protobuf import text_format

    out, _, _ = run_dirs
    repository = out / "model_repository"
    schema = triton_model_config()
    configs = {d.name: text_format.Parse((d / "config.pbtxt").read_text(), schema())
               for d in repository.iterdir() if d.is_dir()}
    assert set(configs) == {"dino_model", "tsne_map", "umap_map", "tsne_head", "umap_head"}
    for name, config in configs.items():
        assert config.name == name and (repository / name / "1").is_dir(), name
        if config.platform != "ensemble":
            assert config.platform == "pytorch_libtorch" and (repository / name / "1" / "model.pt").is_file()
            continue
        steps = config.ensemble_scheduling.step
        assert [step.model_name for step in steps] == ["dino_model", name.replace("_map", "_head")]
        assert not any((repository / name / "1").iterdir()), "an ensemble has no weights of its own"
        first, second = configs[steps[0].model_name], configs[steps[1].model_name]
        assert dict(steps[0].input_map) == {first.input[0].name: config.input[0].name}
        between = steps[0].output_map[first.output[0].name]
        assert dict(steps[1].input_map) == {second.input[0].name: between}
        assert dict(steps[1].output_map) == {second.output[0].name: config.output[0].name}
        assert list(config.input[0].dims) == list(first.input[0].dims)
        assert list(first.output[0].dims) == list(second.input[0].dims)
        assert list(config.output[0].dims) == list(second.output[0].dims) == [2]


def test_a_set_too_small_for_some_analyses_still_makes_a_deck(tmp_path, small_set):
    """3 images: t-SNE cannot run (and what needs it is skipped); the deck says why instead of failing."""
    images = tmp_path / "images"
    for label in ("Bag", "Coat"):
        (images / label).mkdir(parents=True)
    picks = [sorted((small_set / "Bag").iterdir())[0], *sorted((small_set / "Coat").iterdir())[:2]]
    for path in picks:
        shutil.copy(path, images / path.parent.name / path.name)
    out, slides = tmp_path / "out", tmp_path / "slides"
    invoke("deck", "--images", str(images), "--out", str(out), "--set", f"slides={slides}", *quick_settings())
    rec = record(out)
    assert rec["not_run"]["tsne"] == "t-SNE needs at least 4 images, got 3"
    assert rec["not_run"]["parametric"] == "needs tsne, which could not run"
    assert rec["stages"]["export"]["state"] == "ran", "the feature extractor is exported without the map heads"
    deck = (slides / "slides.md").read_text()
    assert "could not run on this image set: t-SNE needs at least 4 images, got 3" in deck
    assert "**3 images**" in deck


def test_status_names_the_edited_module_of_a_stage(run_dirs, tmp_path):
    """Edit a helper in a copy of the code: `embdeck status` from that copy names exactly the stages that import
    it, with the file as the reason; the others stay up to date."""
    import os

    out, _, opts = run_dirs
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "pipeline" / "methods" / "knn.py", "a") as handle:
        handle.write("\n# an edit\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "status", *opts], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    from pipeline.engine import codegraph
    from pipeline.engine.config import Config
    from pipeline.registry import STAGES

    importing = {st.name for st in STAGES if "pipeline.methods.knn" in codegraph.closure(st.module, ROOT)}
    assert {"neighbours", "tsne", "umap", "clusters", "fidelity"} <= importing and "extract" not in importing
    waiting: set = set()
    for stage in STAGES:  # in order: a stage after a stale one waits on it
        if stage.off_when and stage.off_when(Config()):
            assert " off: " in lines[stage.name], lines[stage.name]
        elif stage.name in importing:
            assert "stale: code changed: pipeline/methods/knn.py" in lines[stage.name], lines[stage.name]
        elif set(stage.deps) & (importing | waiting):
            assert "stale: upstream" in lines[stage.name] and "code changed" not in lines[stage.name], lines[stage.name]
            waiting.add(stage.name)
        else:
            assert "up to date" in lines[stage.name], lines[stage.name]
    assert "up to date" in lines["extract"] and "up to date" in lines["patches"]


def test_the_model_share_is_the_main_pass_s(run_dirs):
    """One source for the figure: the main pass's model time over its own time (a CNN on tiny images spends
    most of it in the model), never the patch-map pass's few images over the whole extraction."""
    out, _, _ = run_dirs
    extract = record(out)["summaries"]["extract"]
    assert 0.5 < extract["model_share"] <= 1.0
    # The main pass is part of the stage: its time is within what the runner timed for the whole stage.
    assert extract["images"] == 300 and 0 < extract["seconds"] <= record(out)["stages"]["extract"]["seconds"]


def test_no_stage_after_extract_decodes_the_collection(tmp_path, small_set, monkeypatch):
    """Each image is decoded once by extract; later stages read what it kept. Only figure tiles (a bounded
    handful) and the export's parity images are decoded again. And the neighbour graph is searched once per
    space, by the neighbours stage: no other stage searches a space again."""
    import dataclasses
    import functools

    from faiss.contrib import exhaustive_search

    from pipeline.imaging import images
    from pipeline.engine.config import load_config
    from pipeline.registry import STAGES
    from pipeline.engine.runner import Runner

    reads, current = [], {"stage": None}
    real_read = images.read_rgb

    def counting_read(path, *args, **kwargs):
        reads.append((current["stage"], Path(path).resolve()))
        return real_read(path, *args, **kwargs)

    def tracked(stage):
        @functools.wraps(stage.run)
        def run(ctx):
            current["stage"] = stage.name
            return stage.run(ctx)
        return dataclasses.replace(stage, run=run)

    searches = []
    real_search = exhaustive_search.knn_ground_truth

    def counting_search(queries, *args, **kwargs):
        searches.append((current["stage"], queries.shape))
        return real_search(queries, *args, **kwargs)

    monkeypatch.setattr(images, "read_rgb", counting_read)
    monkeypatch.setattr(exhaustive_search, "knn_ground_truth", counting_search)
    cfg = load_config(None, [f"images={small_set}", f"out={tmp_path / 'out'}", *QUICK, "stability.sample=40"])
    result = Runner(cfg, [tracked(s) for s in STAGES]).run()
    assert all(s["state"] == "ran" for s in result["stages"].values())
    collection = {p.resolve() for p in small_set.rglob("*.png")}
    by_stage: dict = {}
    for stage, path in reads:
        if path in collection:
            by_stage.setdefault(stage, []).append(path)
    # Every image once for the store's rows; the patch-map picks once more for their spatial tokens (a per-run
    # extra the store does not keep), and nothing else twice.
    decoded = collections.Counter(by_stage["extract"])
    picks = {(small_set / p["path"]).resolve() for p in json.loads(
        next((tmp_path / "out" / "cache" / "extract").glob("*/patch_images.json")).read_text()) if p["kind"] == "set"}
    assert set(decoded) == collection, "extract decodes every image"
    assert {p for p, n in decoded.items() if n > 1} == picks and max(decoded.values()) == 2, decoded.most_common(3)
    s = result["summaries"]
    bounds = {"clusters": s["clusters"]["k"] + 48, "retrieval": s["retrieval"]["queries"] * (s["retrieval"]["top_k"] + 1),
              "export": cfg.export.batch_size}
    for stage, paths in by_stage.items():
        if stage != "extract":
            assert stage in bounds and len(paths) <= bounds[stage], (stage, len(paths))
    # The stability stage refits the maps on a bounded sample (their neighbour searches and the map neighbours
    # it compares); no other stage searches.
    sampled = [shape for stage, shape in searches if stage == "stability"]
    assert sampled and all(shape[0] <= cfg.stability.sample for shape in sampled), sampled
    searches = [(stage, shape) for stage, shape in searches if stage != "stability"]
    assert [stage for stage, _ in searches] == ["neighbours"] * 3, "one exact search per space, nowhere else"
    assert all(shape[0] == 60 for _, shape in searches), "each covers every image"
    assert s["neighbours"]["searches"] == {"embedding": 1, "pca": 1, "pixels": 1}
