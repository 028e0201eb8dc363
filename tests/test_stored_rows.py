"""Arrays that name rows of the embedding store (pipeline/engine/stored_rows.py): they read as the array they
stand for, in any way a stage indexes it, and an entry whose rows a gc freed is not trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.engine import stored_rows
from pipeline.engine.stored_rows import load_array
from pipeline.engine.embedding_store import EmbeddingStore, collect, namespaces


def sha(i: int) -> str:
    return f"{i:064x}"


@pytest.fixture
def stored(tmp_path):
    """A (30, 4, 3) array whose rows lie in three segments of a store, in another order than the run's."""
    rng = np.random.default_rng(0)
    want = rng.normal(size=(30, 4, 3)).astype(np.float32)
    store = EmbeddingStore(tmp_path / "store", "ns", {"a": 1})
    order = rng.permutation(30)
    for part in np.array_split(order, 3):
        store.append([sha(i) for i in part], {"x": want[part]})
    entry = tmp_path / "out" / "cache" / "extract" / "k"
    entry.mkdir(parents=True)
    stored_rows.write_rows(entry, store, [sha(i) for i in range(30)], {"x": ((4, 3), np.float32)})
    return {"want": want, "path": entry / "x.rows.json", "store": store, "entry": entry}


def test_it_reads_as_the_array_it_names_however_it_is_indexed(stored):
    want, rows = stored["want"], load_array(stored["path"], mmap=True)
    assert isinstance(rows, stored_rows.StoredRows)
    assert (rows.shape, rows.dtype, rows.ndim, len(rows), rows.size, rows.nbytes) == \
        (want.shape, want.dtype, want.ndim, len(want), want.size, want.nbytes)
    mask = np.arange(30) % 4 == 1
    for index in (0, 29, -1, -30, np.int64(7), slice(None), slice(3, 17), slice(None, None, -3), slice(25, 5, -2),
                  slice(40, 50), [5, 5, 0, 29], [], np.array([[1, 2], [3, 28]]), np.array([-1, -2]), mask,
                  np.arange(30)[::-1], [0, 11, 1, 12, 2, 13], (slice(2, 9), 1), (4, slice(None), 0),
                  ([9, 1], slice(1, 3), 2), Ellipsis):
        got, expected = rows[index], want[index]
        assert isinstance(got, np.ndarray) and got.shape == expected.shape, index
        assert np.array_equal(got, expected), index
    assert np.array_equal(np.asarray(rows), want) and np.asarray(rows, np.float64).dtype == np.float64
    assert np.array_equal(np.stack(list(rows)), want)
    assert np.array_equal(load_array(stored["path"]), want)  # read whole when not mapped
    for bad in (30, -31, [0, 30], np.zeros(29, bool), np.array([0.5]), True, (Ellipsis, 0), ([1, 2], [0, 1])):
        with pytest.raises(IndexError):
            rows[bad]


def test_a_reference_names_its_content_and_finds_its_store_where_it_went(stored, tmp_path):
    """A reference's bytes (what keys the stages after it) name the rows alone: the same rows from a store
    elsewhere write the same reference. The store is found relative to the entry (an output folder moved with
    its store), else where it was."""
    elsewhere = EmbeddingStore(tmp_path / "shared" / "deep" / "store", "ns", {"a": 1})
    elsewhere.append([sha(i) for i in range(30)], {"x": stored["want"]})
    other = tmp_path / "other-out" / "cache" / "extract" / "k"
    other.mkdir(parents=True)
    stored_rows.write_rows(other, elsewhere, [sha(i) for i in range(30)], {"x": ((4, 3), np.float32)})
    assert (other / "x.rows.json").read_bytes() == stored["path"].read_bytes()
    assert (other / "store.json").read_bytes() != (stored["entry"] / "store.json").read_bytes()
    assert np.array_equal(load_array(other / "x.rows.json"), stored["want"])
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "out", moved / "out")
    shutil.copytree(tmp_path / "store", moved / "store")
    (tmp_path / "store").rename(tmp_path / "store-gone")
    assert np.array_equal(load_array(moved / "out" / "cache" / "extract" / "k" / "x.rows.json"), stored["want"])
    assert "store" in stored_rows.unresolved(stored["path"])  # neither where it was nor beside it
    (tmp_path / "store-gone").rename(tmp_path / "store")
    shutil.rmtree(moved / "store")
    assert np.array_equal(load_array(moved / "out" / "cache" / "extract" / "k" / "x.rows.json"), stored["want"])


def test_rows_a_gc_freed_make_the_reference_unresolved(stored, tmp_path):
    store = stored["store"]
    assert stored_rows.unresolved(stored["path"]) == ""
    store.touch(str(tmp_path / "other"), [sha(i) for i in range(20)])  # the only recent run read rows 0-19
    assert collect(tmp_path / "store", keep_days=30)["rows"] == 10
    why = stored_rows.unresolved(stored["path"])
    assert "10 of its rows are gone" in why
    with pytest.raises(FileNotFoundError, match="10 rows of x are gone .* run the deck again"):
        load_array(stored["path"], mmap=True)


def test_an_extract_entry_whose_rows_were_freed_runs_again(small_set, tmp_path):
    """The runner does not trust an entry naming rows the store no longer has: extract runs again, embeds them
    anew, and gives the same rows."""
    from helpers import QUICK
    from pipeline.engine.config import load_config
    from pipeline.engine.runner import Runner
    from pipeline.registry import STAGES

    cfg = load_config(None, [f"images={small_set}", f"out={tmp_path / 'out'}", "extract.batch_size=16", *QUICK])
    first = Runner(cfg, STAGES).run(only="extract")
    entry = Path(first["stages"]["extract"]["dir"])
    before = load_array(entry / "embeddings.rows.json")
    assert Runner(cfg, STAGES).run(only="extract")["stages"]["extract"]["state"] == "cached"
    (namespace,) = [tmp_path / "out" / "store" / space["name"] for space in namespaces(tmp_path / "out" / "store")]
    for use in (namespace / "uses").glob("*.npy"):  # as if this folder's last run were long ago
        np.save(use, np.zeros(0, "S32"))
    assert collect(tmp_path / "out" / "store", keep_days=30)["rows"] == len(before)
    again = Runner(cfg, STAGES).run(only="extract")
    assert again["stages"]["extract"]["state"] == "ran"
    assert again["summaries"]["extract"]["embedded"] == len(before)
    assert np.array_equal(load_array(Path(again["stages"]["extract"]["dir"]) / "embeddings.rows.json"), before)
    assert json.loads((entry / "embeddings.rows.json").read_text())["part"] == "embeddings"


def test_a_cached_extraction_renews_its_folder_s_record_of_the_rows_it_reads(small_set, tmp_path):
    """A run that reuses the extract entry still reads its rows: its folder's use record is written again, so a gc
    after the record's first writing keeps them."""
    import os
    import time

    from helpers import QUICK
    from pipeline.engine.config import load_config
    from pipeline.engine.runner import Runner
    from pipeline.registry import STAGES

    cfg = load_config(None, [f"images={small_set}", f"out={tmp_path / 'out'}", "extract.batch_size=16", *QUICK])
    Runner(cfg, STAGES).run(only="extract")
    (use,) = (tmp_path / "out" / "store").glob("*/uses/*.npy")
    rows = np.load(use)
    old = time.time() - 40 * 86400
    os.utime(use, (old, old))  # as if the extraction had run 40 days ago
    assert Runner(cfg, STAGES).run(only="extract")["stages"]["extract"]["state"] == "cached"
    assert use.stat().st_mtime > old + 86400 and np.array_equal(np.load(use), rows)
    assert collect(tmp_path / "out" / "store", keep_days=30)["rows"] == 0
