"""The run record (pipeline/engine/record.py): what shaped the numbers (versions, config and its hash, the input's
hash, the backbone), which stages could not run and why, written atomically as strict JSON."""

import json

from pipeline.engine import record
from pipeline.engine.config import load_config


def result():
    return {"summaries": {"ingest": {"folder": "/x", "images": 3, "manifest_hash": "ab" * 32},
                          "extract": {"backbone": {"model": "m"}, "engine": "local", "workers": 1, "device": "cpu"}},
            "stages": {"ingest": {"state": "ran", "finished_at": "2026-12-02T10:00:00"},
                       "tsne": {"state": "not run", "reason": "t-SNE needs at least 4 images, got 3"},
                       "extract": {"state": "cached", "finished_at": "2026-12-01T09:00:00"}}}


def test_the_record_names_what_shaped_the_run_and_what_did_not_run():
    cfg = load_config(None, ["tsne.perplexity=12"])
    rec = record.build_record(cfg, result(), 1.23456)
    assert rec["config"]["tsne"]["perplexity"] == 12 and rec["config_hash"] == cfg.digest()
    assert rec["run_id"] == cfg.digest()[:8] + "-abababab"
    assert rec["input"] == {"folder": "/x", "images": 3, "manifest_hash": "ab" * 32}
    assert rec["not_run"] == {"tsne": "t-SNE needs at least 4 images, got 3"}
    assert rec["computed_at"] == "2026-12-02T10:00:00", "the latest stage's finish"
    assert rec["pipeline_seconds"] == 1.235
    for library in ("torch", "numpy", "scikit-learn", "openTSNE", "umap-learn", "faiss-cpu"):
        assert rec["versions"][library], library


def test_the_record_is_replaced_whole(tmp_path):
    path = tmp_path / "run.json"
    record.write_record(path, {"a": 1})
    record.write_record(path, {"a": 2, "b": [1.5]})
    assert json.loads(path.read_text()) == {"a": 2, "b": [1.5]}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"], "written beside it, then renamed: nothing left over"
