"""The ViT path end to end through the stand-in hub, and the comparison of backbones.

The hub serves seeded *random* ViT-S/16 weights under DINO's name (their file says so, and so does the deck made
from them): these tests check the ViT code path (14 x 14 patch maps, three poolings that differ, the exported
``dino_model`` holding the ViT, a deck that builds), never DINO's quality. 30 Fashion-MNIST images (3 per
class) keep the ViT's CPU time to seconds. The first run downloads through the hub; the second, offline, finds the weights in
the cache and adds a randomly initialised ViT to the comparison, which extracts that one alone. Both run in
this process, with the hub client pointed at the stand-in hub (test_hub checks the environment variables
themselves in fresh processes).
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from hub_server import DINO_REPO, RANDOM_NOTE, StandInHub, point_client_at, random_weights
from pipeline.analyses import backbone_comparison as comparison
from pipeline.engine.artifacts import StageError
from pipeline.engine.config import load_config
from report.render import escape_deck
from helpers import QUICK, build_deck, cli, invoke, record, write_fashion_folder

FIRST = "bundled"
SECOND = "bundled,pixels,vit_small_patch16_224:random"

# With pytest-xdist (--dist loadgroup), the tests of one shared run stay on one worker.
pytestmark = pytest.mark.xdist_group("compare")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fashion):
    """Two decks on 30 images with DINO's name from the hub: comparing one thing, then three, offline."""
    base = tmp_path_factory.mktemp("vit")
    images = write_fashion_folder(base / "images", fashion, per_class=3, seed=3)
    hub = StandInHub().start()
    hub.add(DINO_REPO, {"model.safetensors": random_weights("vit_small_patch16_224")})
    out, slides = base / "out", base / "slides"
    opts = ["--images", str(images), "--out", str(out), "--set", f"slides={slides}"]
    # The quick settings but the input size: the ViT keeps its 224 px, so its patch maps are 14 x 14.
    opts += [arg for setting in QUICK if not setting.startswith("backbone.") for arg in ("--set", setting)]
    try:
        with pytest.MonkeyPatch.context() as patch:
            point_client_at(patch, hub.url, base / "hf")
            invoke("deck", *opts, "--compare", FIRST)
            first = record(out)
            point_client_at(patch, hub.url, base / "hf", offline=True)
            invoke("deck", *opts, "--compare", SECOND)
    finally:
        hub.stop()
    return {"first": first, "second": record(out), "out": out, "slides": slides,
            "deck": (slides / "slides.md").read_text(), "report": (out / "report" / "index.html").read_text(),
            "hub_requests": list(hub.requests)}


@pytest.mark.full
def test_auto_takes_dino_s_name_from_the_hub_and_the_deck_says_the_weights_are_random(runs):
    chosen = runs["first"]["backbone"]
    assert chosen["model"] == "vit_small_patch16_224.dino" and chosen["source"] == "hub-download"
    assert chosen["weights_sha256"] == __import__("hashlib").sha256(random_weights("vit_small_patch16_224")).hexdigest()
    assert runs["second"]["stages"]["extract"]["state"] == "cached", "offline, the same weights from the cache"
    downloads = [path for method, path, _ in runs["hub_requests"] if method == "GET" and "/resolve/" in path]
    assert downloads == [f"/{DINO_REPO}/resolve/main/model.safetensors"], "downloaded once, then found in the cache"
    note = RANDOM_NOTE.format(arch="vit_small_patch16_224", seed=0)
    assert chosen["note"] == note
    assert escape_deck(note) in runs["deck"] and str(escape(note)) in runs["report"]


@pytest.mark.full
def test_vit_patch_maps_are_14_by_14(runs):
    patches = runs["second"]["summaries"]["patches"]
    assert patches["grid"] == [14, 14] and runs["second"]["summaries"]["extract"]["patch_grid"] == [14, 14]
    rgb = np.load(Path(runs["second"]["stages"]["patches"]["dir"]) / "patch_rgb.npy")
    assert rgb.shape == (4, 14, 14, 3) and rgb.std() > 0
    assert "14×14 patches per image" in runs["deck"]


@pytest.mark.full
def test_the_three_poolings_really_differ_in_the_sweep(runs):
    clusters = runs["second"]["summaries"]["clusters"]
    sweep = json.loads((Path(runs["second"]["stages"]["clusters"]["dir"]) / "sweep.json").read_text())
    assert not clusters["cls_equals_patch_mean"]
    assert set(sweep) == {"CLS / global", "mean of patch tokens", "concatenation"}
    curves = [np.asarray(rows["silhouette"]) for rows in sweep.values()]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(curves[i] - curves[j]).max() > 1e-3, (i, j)


@pytest.mark.full
def test_the_dino_model_export_holds_the_vit(runs):
    import torch

    import timm
    from safetensors.torch import load as load_safetensors

    loaded = torch.jit.load(str(runs["out"] / "model_repository" / "dino_model" / "1" / "model.pt"))
    program = torch.export.load(str(runs["out"] / "model_repository" / "dino_model" / "1" / "model.pt2")).module()
    vit = loaded.model
    assert len(list(vit.blocks.children())) == 12 and hasattr(vit, "patch_embed") and hasattr(vit, "cls_token")
    # The eager ViT here, from the weights the hub served: the export must compute what it computes.
    eager = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    eager.load_state_dict(load_safetensors(random_weights("vit_small_patch16_224")))
    p = runs["second"]["summaries"]["extract"]["preprocess"]
    mean, std = torch.tensor(p["mean"]).view(1, 3, 1, 1), torch.tensor(p["std"]).view(1, 3, 1, 1)
    images = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = eager.eval().forward_head(eager.forward_features((images - mean) / std), pre_logits=True)
        for got in (loaded(images), program(images)):
            assert got.shape == (3, 384) and float((got - want).abs().max()) < 1e-4 * float(want.abs().max())
    config = (runs["out"] / "model_repository" / "dino_model" / "config.pbtxt").read_text()
    assert 'string_value: "DINO ViT-S/16"' in config


@pytest.mark.full
def test_adding_a_backbone_extracts_only_that_one(runs):
    first, second = runs["first"]["stages"], runs["second"]["stages"]
    assert first["extract@bundled"]["state"] == "ran" and first["compare"]["state"] == "ran"
    assert [b["label"] for b in runs["first"]["summaries"]["compare"]["backbones"]] == ["bundled"]
    assert second["extract@bundled"]["state"] == "cached"
    assert second["extract@vit_small_patch16_224:random"]["state"] == "ran"
    assert second["compare"]["state"] == "ran"
    assert {name for name, stage in second.items() if stage["state"] == "ran"} == {
        "extract@vit_small_patch16_224:random", "compare"}
    lock = json.loads((runs["out"] / "embdeck.lock.json").read_text())
    assert lock["stages"]["extract"]["key"] == second["extract"]["key"], "the variants leave the run's lock alone"
    assert lock["stages"]["extract"]["fingerprint"]["backbone"]["model"] == "vit_small_patch16_224.dino"


@pytest.mark.full
def test_the_comparison_slide_shows_the_run_s_numbers_and_names(runs):
    compare = runs["second"]["summaries"]["compare"]
    names = [b["name"] for b in compare["backbones"]]
    assert names == ["EfficientNet-Lite0 (ImageNet-1k, bundled offline)", "raw pixels (32×32 grey)",
                     "ViT-S/16, random weights (not pretrained)"]
    assert [(r["backbone"], r["pooling"]) for r in compare["rows"]] == [
        (names[0], "CLS / global"), (names[1], "pixels"), (names[2], "CLS / global"),
        (names[2], "mean of patch tokens"), (names[2], "concatenation")]
    slide = runs["deck"].split("# Backbones compared")[1].split("\n---\n")[0]
    for row in compare["rows"]:
        cells = [f"{row[key]:.3f}" for key in ("knn_accuracy", "linear_probe_accuracy", "trustworthiness",
                                                "silhouette", "ari", "nmi")]
        line = next(line for line in slide.splitlines() if f"| {row['pooling']} | {row['dims']} |" in line)
        assert [c.strip("* ") for c in line.split("|")[4:10]] == cells, line
        if row["backbone"] != names[2]:  # trained features and raw pixels beat chance; random weights need not
            assert row["knn_accuracy"] > compare["chance"] and row["linear_probe_accuracy"] > compare["chance"], row
    table = [line for line in slide.splitlines() if line.startswith("| ") and not line.startswith("| backbone")]
    assert [line.split("|")[1].strip() for line in table] == [names[0], names[1], names[2], "", ""], "each named once"
    comparison_slides = runs["deck"].split("# Backbones compared")[1].split("# Model export")[0]
    assert "DINO" not in comparison_slides, "none of these three is DINO"
    for figure in ("compare_scores.png", "compare_maps.png", "compare_patches.png"):
        assert f"/figures/{figure}" in runs["deck"] and (runs["slides"] / "public" / "figures" / figure).is_file()
        assert f"figures/{figure}" in runs["report"]


@pytest.mark.full
def test_slidev_builds_the_vit_deck_with_its_comparison(runs, tmp_path):
    dist = build_deck(runs["slides"], tmp_path / "dist")
    assert {"compare_maps.png", "compare_patches.png", "patch_maps.png"} <= {p.name for p in (dist / "figures").glob("*.png")}


def test_an_unknown_model_in_the_list_is_a_one_line_error_before_any_work(tmp_path, small_set):
    result = cli("run", "--images", str(small_set), "--out", str(tmp_path / "out"), "--compare", "bundled,vit_tiny_nope")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "backbone.compare (vit_tiny_nope): timm has no model named 'vit_tiny_nope'" in result.output
    assert not (tmp_path / "out" / "cache").exists(), "nothing ran"


def test_a_backbone_whose_weights_cannot_be_had_is_an_error_naming_it(tmp_path, small_set):
    result = cli("run", "--images", str(small_set), "--out", str(tmp_path / "out"),
                 "--compare", "pixels,vit_small_patch14_dinov2.lvd142m")
    line = result.output.strip()
    assert result.exit_code == 2 and len(line.splitlines()) == 1, result.output
    assert ("backbone.compare (vit_small_patch14_dinov2.lvd142m): no weights for vit_small_patch14_dinov2.lvd142m: "
            "the hub is switched off (HF_HUB_OFFLINE)") in line
    assert not (tmp_path / "out" / "cache").exists()


def test_a_backbone_listed_twice_is_an_error(tmp_path):
    cfg = load_config(None, ["backbone.compare=pixels,bundled,pixels"])
    with pytest.raises(StageError, match="lists pixels more than once"):
        comparison.expand(cfg)


def test_the_offline_demo_compares_three_things_and_says_what_it_left_out():
    entries, notes = comparison.expand(load_config(None, ["backbone.compare=demo"]))
    assert [e.label for e in entries] == ["bundled", "pixels", "vit_small_patch16_224:random"]
    assert [n.split(" left out: ")[0] for n in notes] == ["DINO ViT-S/16", "DINOv2 ViT-S/14"]
    assert all("switched off (HF_HUB_OFFLINE)" in n for n in notes)
    configs = comparison.variant_configs(load_config(None, ["backbone.compare=demo"]))
    assert {label: (c.backbone.model, c.backbone.weights, c.backbone.compare) for label, c in configs.items()} == {
        "bundled": ("bundled", "", ()), "vit_small_patch16_224:random": ("vit_small_patch16_224", "random", ())}


def test_the_demo_adds_dino_and_dinov2_where_the_hub_answers(tmp_path, monkeypatch):
    """The hub serves both (any whole safetensors file will do: nothing is extracted here)."""
    from safetensors.numpy import save

    hub = StandInHub().start()
    weights = save({"w": np.zeros(4, np.float32)})
    for model in comparison.HUB_DEMO:
        hub.add(f"timm/{model}", {"model.safetensors": weights})
    try:
        point_client_at(monkeypatch, hub.url, tmp_path / "hf")
        entries, notes = comparison.expand(load_config(None, ["backbone.compare=demo"]))
    finally:
        hub.stop()
    assert [e.label for e in entries] == ["bundled", "pixels", "vit_small_patch16_224:random",
                                          "vit_small_patch16_224.dino", "vit_small_patch14_dinov2.lvd142m"]
    assert notes == []


def test_the_default_deck_has_no_comparison(tmp_path, small_set):
    """Off unless asked for: ``status`` says so, and a run leaves it out of its stages and its 'not run' list."""
    assert not comparison.off_when(load_config(None, ["backbone.compare=pixels"]))
    status = cli("status", "--images", str(small_set), "--out", str(tmp_path / "out")).output
    assert re.search(r"^compare\s+off: no backbones to compare \(backbone.compare is empty\)$", status, re.M), status
