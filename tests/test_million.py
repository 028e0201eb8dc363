"""The million part's stand-in stages on a small fake source run: what they write, and that the real runner
keys and caches them like any stage. (The million itself is measured by `make bench ARGS="--parts million"`.)"""

from __future__ import annotations

import json

import numpy as np

from pipeline.engine import stored_rows
from pipeline.engine.stored_rows import load_array
from pipeline.engine.embedding_store import EmbeddingStore


def fake_source(root, images: int = 40, dims: int = 16):
    """A finished run's record and its ingest and extract entries, as the scale part leaves them."""
    rng = np.random.default_rng(0)
    ingest, extract = root / "cache" / "ingest" / "k1", root / "cache" / "extract" / "k2"
    ingest.mkdir(parents=True), extract.mkdir(parents=True)
    manifest = [{"path": f"c{i % 2}/img{i}.png", "sha256": f"{i:064x}", "bytes": 10, "width": 28, "height": 28,
                 "label": f"c{i % 2}"} for i in range(images)]
    (ingest / "manifest.json").write_text(json.dumps(manifest))
    embeddings = rng.normal(size=(images, dims)).astype(np.float32)
    arrays = {"embeddings": embeddings, "patch_mean": embeddings.copy(),
              "pixels": rng.integers(0, 255, (images, 4, 4, 3), dtype=np.uint8),
              "thumbs": rng.integers(0, 255, (images, 8, 8, 3), dtype=np.uint8),
              "patch_tokens": np.zeros((1, 2, 2, dims), np.float32), "patch_pixels": np.zeros((1, 8, 8, 3), np.uint8)}
    store = EmbeddingStore(root / "store", "ns", {"fake": 1})  # the per-image rows live in a store, as extract's
    per_image = ("embeddings", "patch_mean", "pixels", "thumbs")
    store.append([m["sha256"] for m in manifest], {key: arrays[key] for key in per_image})
    stored_rows.write_rows(extract, store, [m["sha256"] for m in manifest],
                           {key: (arrays[key].shape[1:], arrays[key].dtype) for key in per_image})
    for key in ("patch_tokens", "patch_pixels"):
        np.save(extract / f"{key}.npy", arrays[key])
    (extract / "patch_images.json").write_text(json.dumps([{"kind": "set", "path": manifest[0]["path"], "index": 0}]))
    (extract / "meta.json").write_text(json.dumps({"output_hash": "abc"}))
    summaries = {"ingest": {"folder": str(root / "images"), "images": images, "labels": ["c0", "c1"]},
                 "extract": {"embedding_dim": dims, "kept": {"pixels": 4, "thumb": 8}, "images": images}}
    (root / "run.json").write_text(json.dumps({"stages": {"ingest": {"dir": str(ingest)}, "extract": {"dir": str(extract)}},
                                               "summaries": summaries}))
    return manifest, arrays


def test_stand_ins_copy_real_rows_with_small_noise_and_cache(tmp_path, monkeypatch):
    from bench import synthetic
    from bench.synthetic import read_source, source_rows, stand_ins
    from pipeline.engine.config import load_config
    from pipeline.engine.runner import Runner

    monkeypatch.setattr(synthetic, "CHUNK", 32)
    monkeypatch.setattr(synthetic, "SEGMENT", 96)  # several store segments, the last one partial
    manifest, arrays = fake_source(tmp_path / "source")
    source = read_source(tmp_path / "source")
    stages = stand_ins(source, 300, seed=0, noise_fraction=0.5)
    cfg = load_config(None, [f"out={tmp_path / 'run'}"])
    result = Runner(cfg, list(stages.values())).run()
    assert [s["state"] for s in result["stages"].values()] == ["ran", "ran"]
    entry = {name: tmp_path / "run" / "cache" / name for name in ("ingest", "extract")}
    records = json.loads(next(entry["ingest"].glob("*/manifest.json")).read_text())
    rows = source_rows(300, 40, 0)
    assert [r["path"] for r in records] == [manifest[j]["path"] for j in rows]  # the real files, labels kept
    assert [r["label"] for r in records] == [manifest[j]["label"] for j in rows]
    assert len({r["sha256"] for r in records}) == 300  # distinct files, not byte-identical copies
    folder = next(entry["extract"].glob("*/embeddings.rows.json")).parent
    embeddings, mean = load_array(folder / "embeddings.rows.json"), load_array(folder / "patch_mean.rows.json")
    assert embeddings.shape == (300, 16) and np.array_equal(embeddings, mean)  # equal in the source: equal here
    np.testing.assert_array_equal(load_array(folder / "thumbs.rows.json"), arrays["thumbs"][rows])
    noise = np.linalg.norm(embeddings - arrays["embeddings"][rows], axis=1)
    facts = result["summaries"]["extract"]["synthetic"]
    assert abs(noise.mean() / facts["noise"]["embeddings"]["expected_noise_length"] - 1) < 0.2
    assert 0.8 < facts["mean_cosine_copy_to_source"] < 1.0 and result["summaries"]["extract"]["images"] == 300
    again = Runner(cfg, list(stand_ins(source, 300, seed=0, noise_fraction=0.5).values())).run()
    assert [s["state"] for s in again["stages"].values()] == ["cached", "cached"]


def test_growth_exponents_and_the_million_targets():
    from bench.million import growth
    from bench.table import million_lines
    from bench.targets import million_targets

    small = {"ingest": {"seconds": 1.0}, "pca": {"seconds": 10.0}, "umap": {"seconds": 10.0}}
    large = {"ingest": {"state": "ran", "seconds": 9.0}, "pca": {"state": "ran", "seconds": 100.0},
             "umap": {"state": "ran", "seconds": 1000.0}}
    exponents = growth(small, large, 100_000, 1_000_000)
    assert exponents == {"pca": 1.0, "umap": 2.0}  # the stand-ins are not the pipeline's: no exponent
    million = {"points": 1_000_000, "growth": {"exponents": exponents, "from_points": 100_000, "from": "a run",
                                               "baseline_seconds": {}},
               "retrieval_knn": {"seconds": 250.0, "counted": "x", "parts": {}, "not_counted": {}},
               "analysis_seconds": 4000.0, "failed": {}, "peak_rss_mb": 9000.0, "within_16_gib": True}
    status = [row["status"] for row in million_targets(million)]  # growth, retrieval + k-NN, analysis, memory
    assert status == ["NOT met", "met", "NOT met", "met"]
    below = million_targets({**million, "points": 100_000})
    assert [row["status"] for row in below[1:]] == ["not measured"] * 3
    lines = million_lines({**million, "label": "a scaling test", "source": {"images": 70_000, "run": "r"},
                           "config": [], "left_out": {}, "stages": {n: {**s, "peak_rss_mb": 1.0} for n, s in large.items()},
                           "stand_in_seconds": 9.0, "wall_s": 1.0, "neighbours": {}})
    assert any("| umap | ran | 1,000.0 |" in line for line in lines)


def test_growth_from_a_cached_time_is_shown_but_never_judged():
    """A cached stage keeps the seconds of the run that computed it: an exponent resting on one is not side by
    side, so it is listed apart and the target is judged from the others (or not at all)."""
    from bench.million import cached_sides, growth
    from bench.table import million_lines
    from bench.targets import million_targets

    small = {"pca": {"state": "ran", "seconds": 10.0}, "tsne": {"state": "cached", "seconds": 10.0}}
    large = {"pca": {"state": "ran", "seconds": 100.0}, "tsne": {"state": "ran", "seconds": 1000.0}}
    exponents = growth(small, large, 100_000, 1_000_000)
    cached = cached_sides(small, large, exponents)
    assert cached == {"tsne": "baseline"}
    assert cached_sides(small, {**large, "pca": {"state": "cached", "seconds": 1.0}}, exponents) == {
        "pca": "large", "tsne": "baseline"}
    million = {"points": 1_000_000, "growth": {"exponents": exponents, "cached": cached, "from_points": 100_000,
                                               "from": "a run", "baseline_seconds": {"pca": 10.0, "tsne": 10.0},
                                               "baseline_states": {"pca": "ran", "tsne": "cached"}},
               "retrieval_knn": {"seconds": 250.0, "counted": "x", "parts": {}, "not_counted": {}},
               "analysis_seconds": 4000.0, "failed": {}, "peak_rss_mb": 9000.0, "within_16_gib": True}
    row = million_targets(million)[0]
    assert row["status"] == "met" and row["measured"] == "1.0 (pca)"  # tsne's 2.0 would fail it, were it judged
    assert "not judged" in row["note"] and "tsne 2.0 (baseline)" in row["note"]
    all_cached = {**million["growth"], "cached": {"pca": "baseline", "tsne": "baseline"}}
    assert million_targets({**million, "growth": all_cached})[0]["status"] == "not measured"
    lines = million_lines({**million, "label": "a scaling test", "source": {"images": 70_000, "run": "r"},
                           "config": [], "left_out": {}, "stages": {n: {**s, "peak_rss_mb": 1.0} for n, s in large.items()},
                           "stand_in_seconds": 9.0, "wall_s": 1.0, "neighbours": {}})
    assert any("| tsne | ran | 1,000.0 |" in line and "(cached)" in line and "not judged" in line for line in lines)
    assert any("| pca | ran |" in line and "cached" not in line for line in lines)


def test_a_partial_million_run_takes_what_its_stages_read_and_judges_no_whole_analysis(tmp_path):
    from bench.targets import million_targets
    from pipeline.engine.config import load_config
    from pipeline.registry import STAGES
    from pipeline.engine.runner import Runner

    wanted = set(Runner(load_config(None, [f"out={tmp_path}"]), STAGES).needing(("neighbours", "retrieval", "classes"))
                 .order)
    assert {"ingest", "extract", "pca", "neighbours", "retrieval", "classes"} <= wanted
    assert not wanted & {"tsne", "umap", "parametric", "gallery", "export"}  # nothing they do not read
    million = {"points": 1_000_000, "growth": {"exponents": {}, "from_points": 0, "from": "none"},
               "retrieval_knn": {"seconds": 250.0, "counted": "x", "parts": {}, "not_counted": {}},
               "analysis_seconds": 500.0, "failed": {}, "peak_rss_mb": 9000.0, "within_16_gib": True,
               "only": sorted(wanted)}
    rows = {row["target"]: row for row in million_targets(million)}
    whole = rows["a million points: the whole analysis (s)"]
    assert whole["status"] == "not measured" and "only these stages ran" in whole["note"]
    assert rows["a million points: retrieval + k-NN accuracy (s)"]["status"] == "met"
