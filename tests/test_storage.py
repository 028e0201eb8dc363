"""Image folders named by a URI go through pyarrow's filesystems (``file://`` here; ``s3://`` and ``gs://`` on a
cluster): the same files, labels, bytes and decoded pixels as the plain local path gives."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.imaging import images, storage
from pipeline.engine.stored_rows import load_array
from pipeline.engine.config import load_config
from pipeline.registry import STAGES
from pipeline.engine.runner import Runner
from pipeline.stages.ingest import discover, folder_listing


def test_a_uri_is_read_through_pyarrow_and_joins_like_a_path(small_set):
    root = storage.location(small_set.as_uri() + "/")
    assert isinstance(root, storage.StoredPath) and str(root) == small_set.as_uri()
    first = sorted(small_set.rglob("*.png"))[0]
    rel = first.relative_to(small_set).as_posix()
    found = root / rel
    assert found.name == first.name and found.suffix == ".png" and storage.relative(found, root) == rel
    assert storage.read_bytes(found) == first.read_bytes()
    assert np.array_equal(images.read_rgb(found), images.read_rgb(first))
    with pytest.raises(images.ImageReadError, match="unreadable"):
        images.read_rgb(root / "no such file.png")
    assert storage.location(str(small_set)) == small_set.resolve()


def test_discovery_through_pyarrow_skips_hidden_entries_and_never_follows_a_link_loop(tmp_path, small_set):
    folder = tmp_path / "set"
    (folder / "cls").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    png = next(small_set.rglob("*.png")).read_bytes()
    for name in ("cls/a.png", "cls/b.png", ".hidden/c.png", "cls/.d.png"):
        (folder / name).write_bytes(png)
    (folder / "notes.txt").write_text("not an image")
    os.symlink(folder, folder / "cls" / "loop")
    exts = load_config().ingest.extensions
    local_found, local_skipped = discover(folder, exts)
    uri_found, uri_skipped = discover(storage.location(folder.as_uri()), exts)
    assert [str(p) for p in uri_found] == [folder.as_uri() + "/cls/a.png", folder.as_uri() + "/cls/b.png"]
    assert [p.name for p in local_found] == [p.name for p in uri_found] and local_skipped == uri_skipped


@pytest.mark.full
def test_a_uri_folder_gives_the_same_manifest_and_features(tmp_path, small_set):
    results = {}
    for name, images_at in (("path", str(small_set)), ("uri", small_set.as_uri())):
        cfg = load_config(None, [f"images={images_at}", f"out={tmp_path / name}", "extract.batch_size=16"])
        listing = folder_listing(cfg)
        result = Runner(cfg, STAGES).run(only="extract")
        ingest, extract = (result["stages"][stage]["dir"] for stage in ("ingest", "extract"))
        manifest = json.loads((Path(ingest) / "manifest.json").read_text())
        results[name] = (listing["listing"], manifest, load_array(Path(extract) / "embeddings.rows.json"), load_array(Path(extract) / "pixels.rows.json"))
    assert results["uri"][0] == results["path"][0], "same listing fingerprint"
    assert results["uri"][1] == results["path"][1], "same manifest (paths, hashes, labels)"
    for array in (2, 3):  # embeddings, kept pixels
        assert np.array_equal(results["uri"][array], results["path"][array])


def test_a_missing_uri_folder_is_a_clear_error(tmp_path):
    from pipeline.engine.artifacts import StageError

    cfg = load_config(None, [f"images={(tmp_path / 'nowhere').as_uri()}", f"out={tmp_path / 'out'}"])
    with pytest.raises(StageError, match="image folder not found: file://"):
        folder_listing(cfg)
