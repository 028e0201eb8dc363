"""Stand-ins for the ``ingest`` and ``extract`` stages that make N synthetic points out of a finished run: a
scaling test for the analysis stages, not a data set.

Point i copies a seeded-random real image j of the source run: its label and file path (so thumbnails and
figures still load the real file), its kept pixels and thumbnail. Its embedding is the real one plus seeded
Gaussian noise whose expected length is ``noise_fraction`` of the real embeddings' median nearest-neighbour
distance; the mean of patch tokens gets the same draw scaled to its own median distance (so where the two
coincide, as for a CNN, the copies coincide too and the clusters stage runs one sweep, as on the real run).
Each point has its own synthetic sha256, so the set reads as N distinct files whose copies are near-duplicates,
not byte-identical ones. The stand-ins keep the real stages' names and declared outputs, so the real runner
keys, hashes and measures every stage after them as in a normal run. Every per-point array is written in
chunks into the run's embedding store, and the extract entry refers to its rows as the real one does: nothing
of N rows is held in memory here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.engine import stored_rows
from pipeline.engine.artifacts import hash_json
from pipeline.engine.embedding_store import Appender, EmbeddingStore, store_root
from pipeline.engine.stored_rows import load_array
from pipeline.engine.stage import Stage, StageContext
from pipeline.methods.knn import flat_search
from pipeline.methods.sampling import sample_indices
from pipeline.registry import declared

CHUNK = 16_384  # points made at a time: about 80 MB of 1280-d float32 per array
SEGMENT = 2 * CHUNK  # points per store segment (about 650 MB of all four at 1280-d, 48-px thumbs, held until written)
FEATURES = ("embeddings", "patch_mean", "pixels", "thumbs")  # the per-point arrays (rows of the store)
NN_SAMPLE = 2000  # seeded real points whose nearest real neighbour gives the median distance
LINKED = ("patch_tokens", "patch_pixels", "patch_images")  # not per point: the source's files, hard-linked
LABEL = "a scaling test, not a data set"


@dataclass(frozen=True)
class Source:
    """The finished run the synthetic points are made from: its ingest and extract cache entries."""

    run: Path
    ingest_dir: Path
    extract_dir: Path
    ingest_summary: dict
    extract_summary: dict
    extract_hash: str  # the source extract entry's output hash: a changed source reruns the stand-ins

    @property
    def images(self) -> int:
        return int(self.ingest_summary["images"])


def read_source(run: Path) -> Source:
    """The source run's cache entries, as its ``run.json`` lists them."""
    record_path = run / "run.json"
    if not record_path.is_file():
        raise FileNotFoundError(f"no run record at {record_path}: run the scale part (or `embdeck deck`) first")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    dirs = {name: Path(record["stages"][name]["dir"]) for name in ("ingest", "extract")}
    meta = json.loads((dirs["extract"] / "meta.json").read_text(encoding="utf-8"))
    return Source(run, dirs["ingest"], dirs["extract"], record["summaries"]["ingest"], record["summaries"]["extract"],
                  meta["output_hash"])


def source_rows(points: int, images: int, seed: int) -> np.ndarray:
    """The real image each synthetic point copies (seeded, with replacement)."""
    return np.random.default_rng(seed).integers(0, images, size=points)


def median_nn_distance(x: np.ndarray, seed: int) -> float:
    """Median Euclidean distance from a seeded sample of rows to their nearest other row (exact search)."""
    picks = sample_indices(len(x), NN_SAMPLE, seed)
    squared, found = flat_search(x, x[picks], 2)
    nearest_other = np.where(found[:, 0] == picks, squared[:, 1], squared[:, 0])
    return float(np.median(np.sqrt(np.maximum(nearest_other, 0.0))))


def noise_scale(x: np.ndarray, fraction: float, seed: int) -> dict:
    """Per-dimension sigma whose noise vectors are ``fraction`` of the median nearest-neighbour distance long."""
    median = median_nn_distance(x, seed)
    return {"median_nn_distance": round(median, 5), "sigma_per_dim": fraction * median / np.sqrt(x.shape[1]),
            "expected_noise_length": round(fraction * median, 5)}


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of the row-wise cosines of two blocks (summed so blocks add up)."""
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(((a * b).sum(axis=1) / norms).sum())


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copyfile(source, target)


def synthetic_manifest(manifest: list[dict], rows: np.ndarray) -> list[dict]:
    """Each point's record: its source image's (path, label, size), with a sha256 of its own."""
    from tqdm import tqdm

    return [{**manifest[j], "sha256": hashlib.sha256(f"{manifest[j]['sha256']}:{i}".encode()).hexdigest()}
            for i, j in enumerate(tqdm(rows.tolist(), desc="synthetic manifest", unit="pt", disable=None))]


def write_points(ctx: StageContext, source: Source, rows: np.ndarray, scales: dict, seed: int, shas: list[str],
                 about: dict) -> float:
    """Every per-point array, chunk by chunk, into a namespace of the run's embedding store of the synthetic set's
    own (``about``), then referred to as the real extract does (``stored_rows``); returns the mean cosine between
    a copy's embedding and its source's. The store's segments are written once, ``SEGMENT`` points at a time, so
    what is held stays bounded; a rerun appends only the points the store lacks (none, or a killed run's rest)."""
    from tqdm import tqdm

    real = {key: load_array(source.extract_dir / declared("extract").outputs[key], mmap=True) for key in FEATURES}
    in_memory = {key: np.asarray(real[key]) for key in ("embeddings", "patch_mean")}  # gathered at random rows
    store = EmbeddingStore(store_root(ctx.cfg.out, ctx.cfg.store), f"synthetic-{hash_json(about)[:12]}", about)
    missing = store.lookup(shas).missing  # every point on a first run, none on a rerun, a killed run's rest
    appender = Appender(store, SEGMENT)
    rng = np.random.default_rng(seed + 1)
    cosines = 0.0
    with tqdm(total=len(rows), desc="synthetic points", unit="pt", disable=None) as bar:
        for start in range(0, len(rows), CHUNK):
            picked = rows[start:start + CHUNK]
            draw = rng.standard_normal((len(picked), in_memory["embeddings"].shape[1]), dtype=np.float32)
            block = {key: in_memory[key][picked] + np.float32(scales[key]["sigma_per_dim"]) * draw
                     for key in ("embeddings", "patch_mean")}
            cosines += mean_cosine(block["embeddings"], in_memory["embeddings"][picked])
            new = np.flatnonzero(missing[start:start + CHUNK])
            if len(new):
                block = {key: array[new] for key, array in block.items()}
                block.update({key: np.asarray(real[key][picked[new]]) for key in ("pixels", "thumbs")})
                appender.add([shas[start + i] for i in new.tolist()], block)
            bar.update(len(picked))
    appender.flush()
    stored_rows.write_rows(ctx.out_dir, store, shas,
                           {key: (array.shape[1:], array.dtype) for key, array in real.items()})
    return cosines / len(rows)


def stand_ins(source: Source, points: int, seed: int, noise_fraction: float) -> dict[str, Stage]:
    """``ingest`` and ``extract`` as stages of the same names and declared outputs, writing the synthetic set."""

    def fingerprint(cfg) -> dict:
        """The source run's extract outputs, and how the synthetic points are made from them."""
        return {"source": str(source.extract_dir), "source_output_hash": source.extract_hash, "points": points,
                "seed": seed, "noise_fraction": noise_fraction}

    def ingest(ctx: StageContext) -> dict:
        manifest = json.loads((source.ingest_dir / declared("ingest").outputs["manifest"]).read_text(encoding="utf-8"))
        records = synthetic_manifest(manifest, source_rows(points, len(manifest), seed))
        ctx.save_json("manifest", records)
        ctx.save_json("skipped", [])
        return {"folder": source.ingest_summary["folder"], "images": len(records), "skipped": 0, "ignored": 0,
                "skipped_files": [], "duplicates": [], "labels": source.ingest_summary["labels"],
                "manifest_hash": hash_json([(r["path"], r["sha256"]) for r in records]),
                "synthetic": {"label": LABEL, "source_run": str(source.run), "source_images": len(manifest)}}

    def extract(ctx: StageContext) -> dict:
        embeddings = load_array(source.extract_dir / declared("extract").outputs["embeddings"], mmap=True)
        patch_mean = load_array(source.extract_dir / declared("extract").outputs["patch_mean"], mmap=True)
        scales = {"embeddings": noise_scale(np.asarray(embeddings), noise_fraction, seed)}
        same = bool(np.array_equal(embeddings, patch_mean))
        scales["patch_mean"] = scales["embeddings"] if same else noise_scale(np.asarray(patch_mean), noise_fraction, seed)
        rows = source_rows(points, len(embeddings), seed)
        shas = [record["sha256"] for record in ctx.load_json("ingest", "manifest")]
        cosine = write_points(ctx, source, rows, scales, seed, shas, fingerprint(ctx.cfg))
        for key in LINKED:
            link_or_copy(source.extract_dir / declared("extract").outputs[key], ctx.output(key))
        facts = {"label": LABEL, "points": points, "source_images": int(len(embeddings)), "seed": seed,
                 "noise_fraction_of_median_nn_distance": noise_fraction,
                 "noise": {key: {**s, "sigma_per_dim": round(float(s["sigma_per_dim"]), 7)} for key, s in scales.items()},
                 "patch_mean_equals_embeddings": same, "mean_cosine_copy_to_source": round(cosine, 5),
                 "distinct_sources_used": int(len(np.unique(rows)))}
        return {**source.extract_summary, "images": points, "synthetic": facts}

    real_i, real_e = declared("ingest"), declared("extract")
    return {"ingest": Stage(name="ingest", run=ingest, params=real_i.params, outputs=dict(real_i.outputs),
                            essential=True, fingerprint=fingerprint),
            "extract": Stage(name="extract", run=extract, inputs=real_e.inputs, params=real_e.params,
                             outputs=dict(real_e.outputs), essential=True, fingerprint=fingerprint)}
