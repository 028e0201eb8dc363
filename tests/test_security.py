"""Nothing from the input reaches HTML or the deck unescaped; caches and exports are read without unpickling."""

import pickle

import numpy as np
import pytest
import torch

from report.render import escape_deck


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


def test_deck_escaping_neutralises_html_vue_and_markdown():
    text = escape_deck("<script>x</script> {{ 7*7 }} *bold* [link](http://x) `code` | a_b $x$")
    for raw in ("<", ">", "{{", "}}", "*", "[", "]", "`", "|", "_", "$"):
        assert raw not in text, raw


def test_cached_arrays_are_read_without_pickle(tmp_path):
    from pipeline.engine import stored_rows
    from pipeline.engine.config import Config
    from pipeline.engine.embedding_store import EmbeddingStore
    from pipeline.engine.stage import StageContext
    from pipeline.stages import extract, patches, pca

    folder = tmp_path / "extract"
    folder.mkdir()
    store = EmbeddingStore(tmp_path / "store", "ns", {"a": 1})
    segment = store.append([f"{0:064x}"], {"embeddings": np.zeros((1, 2), np.float32)})
    stored_rows.write_rows(folder, store, [f"{0:064x}"], {"embeddings": ((2,), np.float32)})
    ctx = StageContext(Config(), pca.STAGE, tmp_path, {"extract": folder}, {"extract": extract.STAGE}, {})
    crafted = np.array([Boom()], dtype=object)
    for path in (store.folder / f"{segment}.embeddings.npy", folder / "rows.npy"):  # a stored row, the row list
        np.save(path, crafted, allow_pickle=True)
        for mmap in (False, True):  # an object array is refused, never unpickled (Boom would exit the tests)
            with pytest.raises(ValueError, match="allow_pickle=False|Python objects"):
                np.asarray(ctx.load_npy("extract", "embeddings", mmap=mmap))  # mapped: refused when rows are read
    np.save(folder / "patch_tokens.npy", crafted, allow_pickle=True)  # a plain array output
    ctx = StageContext(Config(), patches.STAGE, tmp_path, {"extract": folder}, {"extract": extract.STAGE}, {})
    for mmap in (False, True):
        with pytest.raises(ValueError, match="allow_pickle=False|Python objects"):
            ctx.load_npy("extract", "patch_tokens", mmap=mmap)


def test_map_heads_are_read_with_weights_only(tmp_path):
    """The export stage's reader of a trained head: a real head's weights come back whole; a crafted file is
    refused (Boom would exit the tests if it were unpickled)."""
    from pipeline.methods.map_heads import MapHead, load_head

    rng = np.random.default_rng(0)
    head = MapHead(rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=16).astype(np.float32), 8, 2, seed=3)
    torch.save(head.state_dict(), tmp_path / "head.pt")
    x = torch.from_numpy(rng.normal(size=(5, 16)).astype(np.float32))
    with torch.inference_mode():
        assert torch.equal(load_head(tmp_path / "head.pt", (16, 4), 8, 2)(x), head.eval()(x))
    crafted = tmp_path / "crafted.pt"
    crafted.write_bytes(pickle.dumps({"weight": Boom()}))
    with pytest.raises(pickle.UnpicklingError):
        load_head(crafted, (16, 4), 8, 2)


def test_code_reads_caches_safely():
    """Every np.load and torch.load in the pipeline refuses pickles (a guard against a later careless edit)."""
    from pathlib import Path

    for source in Path(__file__).resolve().parent.parent.joinpath("pipeline").rglob("*.py"):
        for line in source.read_text().splitlines():
            if "np.load(" in line:
                assert "allow_pickle=True" not in line, (source.name, line)
            if "torch.load(" in line:
                assert "weights_only=True" in line, (source.name, line)
