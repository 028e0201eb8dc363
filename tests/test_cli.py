"""The command line's own commands and options: `demo`, `fashion-mnist`, `run --only --force`, and the paths it
refuses before any work."""

import numpy as np
import pytest

from helpers import cli, invoke, one_line_error, record, stage_dirs
from pipeline import demo


def test_demo_writes_the_set_once_and_refuses_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "demo"
    opts = ["--set", f"demo.folder={folder}", "--set", "demo.per_class=2"]
    written = invoke("demo", *opts).strip()
    assert written == str(folder / "fashion-mnist")
    images = sorted((folder / "fashion-mnist").rglob("*.png"))
    assert len(images) == 20 and {p.parent.name for p in images} == set(demo.CLASSES)
    assert sorted(p.stem for p in (folder / "photos").glob("*.png")) == sorted(demo.SKIMAGE_PHOTOS)
    stamps = {p: p.stat().st_mtime_ns for p in images}
    invoke("demo", *opts)
    assert {p: p.stat().st_mtime_ns for p in images} == stamps, "a complete set is left untouched"
    invoke("demo", "--set", f"demo.folder={folder}", "--set", "demo.per_class=3")
    assert len(list((folder / "fashion-mnist").rglob("*.png"))) == 30, "other settings, the set written anew"
    foreign = tmp_path / "mine"
    (foreign / "keep.txt").parent.mkdir()
    (foreign / "keep.txt").write_text("the user's")
    result = cli("demo", "--set", f"demo.folder={foreign}")
    assert result.exit_code != 0 and "is not an embdeck demo folder" in result.output
    assert (foreign / "keep.txt").read_text() == "the user's", "nothing the user had is lost"


def test_fashion_mnist_writes_every_image_of_both_splits_and_refuses_a_full_folder(tmp_path, monkeypatch, fashion):
    images, labels = fashion
    splits = {"train": (images[:7], labels[:7]), "t10k": (images[7:12], labels[7:12])}

    def small_idx(name):  # both splits, five and seven real images: the command's own loop over them
        split, kind = name.split("-")[:2]
        return splits[split][0 if kind == "images" else 1]

    monkeypatch.setattr(demo, "read_idx", small_idx)
    target = tmp_path / "all"
    assert invoke("fashion-mnist", target).strip() == f"12 images written to {target}"
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.png"))
    want = sorted([f"{demo.CLASSES[labels[i]]}/train_{i:05d}.png" for i in range(7)]
                  + [f"{demo.CLASSES[labels[7 + i]]}/test_{i:05d}.png" for i in range(5)])
    assert written == want
    result = cli("fashion-mnist", target)
    assert result.exit_code != 0 and "is not empty; give a new folder" in result.output


@pytest.mark.xdist_group("quick")  # reads the quick deck: on its worker under pytest-xdist
def test_force_reruns_only_the_stage_named(quick_run, copy_run):
    out = copy_run(quick_run["out"])
    opts = [*quick_run["opts"][2:], "--out", str(out)]
    before = np.load(stage_dirs(quick_run["out"])["pca"] / "pca.npy")
    invoke("run", *opts, "--only", "pca", "--force")
    states = {name: stage["state"] for name, stage in record(out)["stages"].items()}
    assert states == {"ingest": "cached", "extract": "cached", "pca": "ran"}, states
    assert stage_dirs(out)["pca"].is_relative_to(out)
    after = np.load(stage_dirs(out)["pca"] / "pca.npy")
    assert after.tobytes() == before.tobytes(), "forced, and the same numbers"
    invoke("run", *opts, "--only", "pca")
    assert {name: stage["state"] for name, stage in record(out)["stages"].items()}["pca"] == "cached"


def test_output_inside_input_is_refused(small_set):
    line = one_line_error(cli("run", "--images", small_set, "--out", small_set / "out"))
    assert "inside the image folder" in line and not (small_set / "out").exists()


def test_a_stage_that_does_not_exist_is_a_one_line_error(tmp_path, small_set):
    line = one_line_error(cli("run", "--images", small_set, "--out", tmp_path / "out", "--only", "tnse"))
    assert line.startswith("Error: unknown stage 'tnse'; stages: ingest, extract, pca,")
    out = tmp_path / "out"
    assert not (out / "run.json").exists() and not list(out.rglob("*.npy")), "refused before any stage ran"
