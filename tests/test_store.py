"""The embedding store (pipeline/engine/embedding_store.py) alone, then through the extract stage on real
Fashion-MNIST images: a collection that grows is embedded only where it is new, and what the store hands back
is what a cold run computes, whatever kills or races a run; and ingest's stat cache (pipeline/imaging/stat_cache.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import invoke, quick_settings, record, write_fashion_folder
from pipeline.engine import embedding_store
from pipeline.engine.stored_rows import load_array
from pipeline.engine.embedding_store import Appender, EmbeddingStore, collect, namespaces

FEATURES = ("embeddings", "patch_mean", "pixels", "thumbs")
DAY = 86400


def sha(i: int) -> str:
    return f"{i:064x}"


def rows(n: int, start: int = 0) -> dict:
    return {"embeddings": np.arange(start, start + n, dtype=np.float32)[:, None] * np.ones(3, np.float32),
            "pixels": np.full((n, 2, 2, 3), start % 251, np.uint8)}


# -- the store alone -------------------------------------------------------------------------------------------
def test_rows_come_back_by_content_from_any_segment(tmp_path):
    store = EmbeddingStore(tmp_path, "ns", {"about": 1})
    store.append([sha(i) for i in range(5)], rows(5))
    store.append([sha(i) for i in range(5, 8)], rows(3, 5))
    found = store.lookup([sha(7), sha(99), sha(0), sha(0)])
    assert found.missing.tolist() == [False, True, False, False]
    with pytest.raises(KeyError):
        store.gather(found, "embeddings", np.zeros((4, 3), np.float32))
    found = store.lookup([sha(7), sha(0), sha(3)])
    target = np.zeros((3, 3), np.float32)
    store.gather(found, "embeddings", target)
    assert target[:, 0].tolist() == [7, 0, 3]
    assert isinstance(store.part(found.segments[0], "embeddings"), np.memmap)  # mapped, not read whole


def test_the_appender_cuts_segments_and_keeps_every_row(tmp_path):
    store = EmbeddingStore(tmp_path, "ns")
    appender = Appender(store, 4)
    for start in (0, 3, 9):  # 3 + 6 + 2 rows: segments of 4, 4, then the rest
        n = {0: 3, 3: 6, 9: 2}[start]
        appender.add([sha(i) for i in range(start, start + n)], rows(n, start))
    appender.flush()
    assert [s["rows"] for s in store.segments()] == [4, 4, 3]
    target = np.zeros((11, 3), np.float32)
    store.gather(store.lookup([sha(i) for i in range(11)]), "embeddings", target)
    assert target[:, 0].tolist() == list(range(11))


def test_an_uncommitted_segment_is_not_trusted_and_gc_frees_it(tmp_path, monkeypatch):
    store = EmbeddingStore(tmp_path, "ns", {"about": 1})
    store.append([sha(0)], rows(1))
    monkeypatch.setattr(store, "commit", lambda entry: None)  # killed between the segment's rename and its commit
    store.append([sha(1)], rows(1, 1))
    (store.folder / ".seg-x.embeddings.npy.tmp").write_bytes(b"half")  # killed while writing
    assert store.lookup([sha(1)]).missing.all() and len(store.segments()) == 1
    store.touch()
    now = time.time()
    assert collect(tmp_path, keep_days=30, now=now) == {"namespaces": [], "orphans": 0, "rows": 0, "bytes": 0}  # under way?
    freed = collect(tmp_path, keep_days=30, now=now + 2 * embedding_store.ORPHAN_AGE_S)
    assert freed["orphans"] == 4 and freed["namespaces"] == []  # keys, embeddings, pixels, and the half file
    assert not store.lookup([sha(0)]).missing.any()
    assert sorted(p.name for p in store.folder.glob("seg-*")) == sorted(
        f"{store.segments()[0]['name']}.{part}.npy" for part in ("keys", "embeddings", "pixels"))


def test_gc_frees_a_namespace_no_run_has_used_lately(tmp_path):
    old, recent = EmbeddingStore(tmp_path, "old", {"a": 1}), EmbeddingStore(tmp_path, "recent", {"a": 2})
    for store in (old, recent):
        store.append([sha(0)], rows(1))
        store.touch()
    os.utime(old.folder / embedding_store.USED, (time.time() - 40 * DAY,) * 2)
    assert [s["rows"] for s in namespaces(tmp_path)] == [1, 1]
    freed = collect(tmp_path, keep_days=30)
    assert freed["namespaces"] == ["old"] and freed["bytes"] > 0
    assert [s["name"] for s in namespaces(tmp_path)] == ["recent"]


def test_gc_drops_the_rows_no_recent_run_read_and_keeps_the_others_bit_for_bit(tmp_path):
    store = EmbeddingStore(tmp_path, "ns", {"a": 1})
    store.append([sha(i) for i in range(6)], rows(6))  # rows 0-5: 0-2 read by one folder, 2-3 by another
    store.append([sha(i) for i in range(6, 9)], rows(3, 6))  # rows 6-8: read by no run
    store.touch(str(tmp_path / "out-a"), [sha(i) for i in range(3)])
    store.touch(str(tmp_path / "out-b"), [sha(2), sha(3)])
    before = store.lookup([sha(i) for i in range(4)])
    kept = np.zeros((4, 3), np.float32)
    store.gather(before, "embeddings", kept)
    assert collect(tmp_path, keep_days=30)["rows"] == 5  # 4, 5 and 6-8
    after = store.lookup([sha(i) for i in range(9)])
    assert after.missing.tolist() == [False] * 4 + [True] * 5
    again = np.zeros((4, 3), np.float32)
    store.gather(store.lookup([sha(i) for i in range(4)]), "embeddings", again)
    assert np.array_equal(again, kept)
    assert [s["rows"] for s in store.segments()] == [4]  # the second segment went whole
    os.utime(store.folder / embedding_store.USES / next(p.name for p in (store.folder / "uses").glob("*.npy")
                                                        if np.load(p).size == 3), (time.time() - 40 * DAY,) * 2)
    assert collect(tmp_path, keep_days=30)["rows"] == 2  # out-a's run is 40 days old: rows 0 and 1 go
    assert store.lookup([sha(2), sha(3)]).missing.tolist() == [False, False]


def test_gc_leaves_rows_alone_where_no_run_recorded_what_it_read(tmp_path):
    store = EmbeddingStore(tmp_path, "ns", {"a": 1})
    store.append([sha(0), sha(1)], rows(2))
    store.touch()
    assert collect(tmp_path, keep_days=30)["rows"] == 0 and not store.lookup([sha(0), sha(1)]).missing.any()


def append_many(root: str, start: int) -> None:
    store = EmbeddingStore(Path(root), "ns")
    for i in range(start, start + 15):
        store.append([sha(i)], rows(1, i))


def test_two_processes_appending_at_once_both_land(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=append_many, args=(str(tmp_path), start)) for start in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    store = EmbeddingStore(tmp_path, "ns")
    assert len(store.segments()) == 30
    wanted = [sha(i) for i in (*range(15), *range(100, 115))]
    target = np.zeros((30, 3), np.float32)
    store.gather(store.lookup(wanted), "embeddings", target)
    assert target[:, 0].tolist() == [*range(15), *range(100, 115)]


def test_a_row_has_the_same_bits_alone_as_in_a_batch(fashion):
    """What lets the store hand back a row embedded in another batch: every call has the same shape. Unpadded, a
    row called alone differed from itself in a batch of 8 by up to 1.2e-5 (bundled CNN, 112 px)."""
    import torch

    from pipeline.engine.config import load_config
    from pipeline.imaging import backbone as backbones
    from pipeline.imaging.features import Extractor, preprocess_for

    cfg = load_config(None, ["backbone.model=bundled", "backbone.input_size=112"])
    model = backbones.build(backbones.resolve(cfg.backbone), seed=0)
    prep = preprocess_for(model, cfg)
    extractor = Extractor(model, prep, torch.device("cpu"), torch.float32, cfg.ingest.max_pixels)
    batch = np.stack([prep.resize(np.repeat(image[..., None], 3, 2)) for image in fashion[0][:11]])
    together = extractor.features(batch, rows_per_call=16)
    for row in (0, 9):
        alone = extractor.features(batch[row:row + 1], rows_per_call=16)
        for a, b in zip(together, alone):
            assert torch.equal(a[row:row + 1], b)


# -- through the extract stage ---------------------------------------------------------------------------------
def extract(images: Path, out: Path, *settings: str) -> dict:
    invoke("run", "--images", images, "--out", out, "--only", "extract", *quick_settings(),
           *[arg for s in settings for arg in ("--set", s)])
    stage = record(out)["stages"]["extract"]
    arrays = {key: load_array(Path(stage["dir"]) / f"{key}.rows.json") for key in FEATURES}
    return {"summary": json.loads((Path(stage["dir"]) / "meta.json").read_text())["summary"], **arrays}


def manifest_paths(out: Path) -> list[str]:
    return [r["path"] for r in json.loads((Path(record(out)["stages"]["ingest"]["dir"]) / "manifest.json").read_text())]


def aged(folder: Path) -> Path:
    """Every file given an mtime a day old (not racily clean: the stat cache records it)."""
    for path in folder.rglob("*.png"):
        os.utime(path, (time.time() - DAY,) * 2)
    return folder


@pytest.fixture(scope="module")
def grown(tmp_path_factory, fashion):
    """A run on 30 images, the same collection grown to 50 run again in the same folder, and a cold run of the
    50 with its own store."""
    base = tmp_path_factory.mktemp("grown")
    images, out = base / "images", base / "out"
    write_fashion_folder(images, fashion, per_class=3)
    first = extract(images, out) | {"paths": manifest_paths(out)}
    extra = write_fashion_folder(base / "extra", fashion, per_class=2, seed=7)
    for path in extra.rglob("*.png"):
        shutil.copy(path, images / path.relative_to(extra).parent / f"extra_{path.name}")
    second = extract(images, out) | {"paths": manifest_paths(out)}
    cold = extract(images, base / "cold")
    return {"base": base, "images": images, "out": out, "first": first, "second": second, "cold": cold}


def test_adding_images_embeds_only_those_and_old_rows_stay_bit_identical(grown):
    first, second, cold = grown["first"], grown["second"], grown["cold"]
    added = len(second["paths"]) - len(first["paths"])
    assert added > 0
    assert (second["summary"]["embedded"], second["summary"]["reused"]) == (added, len(first["paths"]))
    assert (cold["summary"]["embedded"], cold["summary"]["reused"]) == (len(second["paths"]), 0)
    old = [second["paths"].index(path) for path in first["paths"]]
    for key in FEATURES:
        assert np.array_equal(second[key][old], first[key]), key
        assert np.array_equal(second[key], cold[key]), key  # the update's arrays are the cold run's, byte for byte


def test_the_store_command_reports_each_namespace(grown):
    output = invoke("store", "--out", grown["out"])
    (line,) = [line for line in output.splitlines() if "rows" in line]
    assert f"{len(grown['second']['paths'])} rows" in " ".join(line.split())
    assert "1 namespace(s)" in output
    assert "0 namespace(s) unused" in invoke("store", "--out", grown["out"], "--gc")
    (uses,) = (grown["out"] / "store").glob("*/uses/*.npy")  # what the folder's last run read: every row
    assert len(np.load(uses)) == len(set(grown["second"]["paths"])) and "0 row(s) no run read" in output + invoke(
        "store", "--out", grown["out"], "--gc")


def test_removing_images_embeds_nothing(grown, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(grown["images"], images)
    for path in sorted(images.rglob("extra_*.png"))[::2]:
        path.unlink()
    out = tmp_path / "out"
    shutil.copytree(grown["out"] / "store", out / "store")
    fewer = extract(images, out)
    assert fewer["summary"]["embedded"] == 0 and fewer["summary"]["reused"] == len(manifest_paths(out))
    kept = [grown["second"]["paths"].index(path) for path in manifest_paths(out)]
    assert np.array_equal(fewer["embeddings"], grown["second"]["embeddings"][kept])


def test_a_file_rewritten_under_its_name_gets_new_features(grown, tmp_path, fashion):
    images, out = tmp_path / "images", tmp_path / "out"
    shutil.copytree(grown["images"], images)
    shutil.copytree(grown["out"] / "store", out / "store")
    aged(images)
    before = extract(images, out)
    paths = manifest_paths(out)
    target, donor = images / paths[0], images / paths[-1]  # another class's picture, under the first's name
    target.write_bytes(donor.read_bytes())
    os.utime(target, (time.time() - DAY / 2,) * 2)  # a changed mtime: the stat cache must read it again
    after = extract(images, out)
    assert after["summary"]["embedded"] == 0  # its new content is an image the store holds already
    assert not np.array_equal(after["embeddings"][0], before["embeddings"][0])
    assert np.array_equal(after["embeddings"][0], before["embeddings"][-1])


def test_ingest_reads_only_files_it_has_not_seen_unchanged(small_set, tmp_path, monkeypatch):
    from pipeline.stages import ingest

    images = aged(shutil.copytree(small_set, tmp_path / "images"))
    reads = []
    real = ingest.read_bytes
    monkeypatch.setattr(ingest, "read_bytes", lambda path: reads.append(path) or real(path))

    def run(*settings):
        reads.clear()
        invoke("run", "--images", images, "--out", tmp_path / "out", "--only", "ingest",
               *[arg for s in settings for arg in ("--set", s)])
        return len(reads)

    count = len(list(images.rglob("*.png")))
    assert run() == count
    fresh = images / "Bag" / "fresh.png"
    shutil.copy(next(images.glob("Bag/*.png")), fresh)  # just written: racily clean, read again next time too
    assert run() == 1
    os.utime(fresh, (time.time() - DAY,) * 2)
    assert run() == 1  # its new mtime
    shutil.copy(next(images.glob("Coat/*.png")), images / "Coat" / "another.png")
    assert run() == 1
    assert run("ingest.rehash=true") == count + 2  # a new key: ingest runs, and reads everything


# -- runs as processes: killed mid-append, and two at once on one store ---------------------------------------
def start(images: Path, out: Path, store: Path, **env) -> subprocess.Popen:
    args = ["run", "--images", str(images), "--out", str(out), "--only", "extract", *quick_settings(),
            "--set", f"store={store}", "--set", "extract.store_segment_rows=8", "--set", "extract.batch_size=8"]
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def arrays(out: Path) -> dict:
    folder = Path(record(out)["stages"]["extract"]["dir"])
    return {key: load_array(folder / f"{key}.rows.json") for key in FEATURES}


@pytest.mark.full
def test_a_run_killed_mid_append_leaves_rows_a_rerun_trusts(small_set, tmp_path):
    store = tmp_path / "store"
    proc = start(small_set, tmp_path / "killed", store, **{embedding_store.PAUSE_ENV: "600"})
    deadline = time.time() + 180
    while not list(store.glob("*/seg-*.keys.npy")):  # a segment renamed into place, its commit not yet made
        assert proc.poll() is None and time.time() < deadline, "no append began"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (space,) = namespaces(store)
    assert space["rows"] == 0  # the segment is there, but no index names it
    for out in ("killed", "clean"):
        proc = start(small_set, tmp_path / out, store if out == "killed" else tmp_path / "clean-store")
        assert proc.wait(300) == 0, proc.stderr.read().decode()[-2000:]
    assert record(tmp_path / "killed")["stages"]["extract"]["state"] == "ran"
    killed, clean = arrays(tmp_path / "killed"), arrays(tmp_path / "clean")
    for key in FEATURES:
        assert np.array_equal(killed[key], clean[key]), key


@pytest.mark.full
def test_two_runs_on_one_store_at_once_both_finish_alike(small_set, tmp_path):
    store = tmp_path / "store"
    procs = [start(small_set, tmp_path / name, store) for name in ("a", "b")]
    for proc in procs:
        assert proc.wait(300) == 0, proc.stderr.read().decode()[-2000:]
    a, b = arrays(tmp_path / "a"), arrays(tmp_path / "b")
    for key in FEATURES:
        assert np.array_equal(a[key], b[key]), key
    (space,) = namespaces(store)
    assert space["rows"] >= len(a["embeddings"])  # both may have stored an image: each row is trusted alike
