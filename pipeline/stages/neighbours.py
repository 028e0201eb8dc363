"""Stage ``neighbours``: the run's k-nearest-neighbour graph, searched once per space, read by every analysis.

Inputs: ``extract`` (embeddings, the raw-pixel copies), ``pca``
(the coordinates t-SNE runs on). Params: ``neighbours``, and ``k`` per space, derived from the settings of
the stages that read it (``needs``), so a change elsewhere reruns this stage only when it changes a ``k``.

Spaces (each searched once; the run record counts the searches):
- ``embedding``: the global embeddings at unit length; values are cosine similarities. Read by retrieval,
  k-NN accuracy, fidelity, UMAP, the parametric UMAP and the interactive map (neighbours, outlier score).
- ``pca``: the first ``pca.n_components`` principal components; values are Euclidean distances. Read by t-SNE.
- ``pixels``: the raw-pixel copies at unit length (one channel when every image is grey). Read by the k-NN
  probe's raw-pixel baseline (with labels) and by the near-duplicate finder, with or without labels: with the
  bundled CNN a 28 px garment saved brighter falls outside its original's 20 embedding neighbours, while its
  pixels keep it first.

Search (``neighbours.method``): ``exact`` streams the data through FAISS flat search block by block (on a
GPU, ``device``, a torch matmul and top-k, exact at any size); ``ivf`` and ``hnsw`` are FAISS approximate
indexes whose search depth is raised on a tuning sample until recall@k reaches ``min_recall``; ``auto`` is
exact up to ``exact_up_to`` points, above it IVF (see ``ann.pick_method``). Every run measures recall@k
against exact search on a seeded sample of ``recall_queries`` queries (the fidelity slide shows it).
Outputs: ``<space>_idx`` (N, k) int64 and ``<space>_values`` (N, k) float32, each row's own point left out,
nearest first, and ``<space>_facts`` (method, index, k, recall; the summary adds the seconds), each space
apart so that a stage reading one space is not rerun when another changes; ``row_ids`` (each row's sha256).

A collection that grew (``keep_place``, an earlier graph of the same settings in this output folder): the
embedding and pixel spaces keep the earlier graph's rows and search only the new ones
(``methods.graph_update``; the store hands back old rows bit for bit), and the recall is measured again on the
grown graph (below ``min_recall``, or when images were removed, all rows are searched again). The PCA space is
searched whole: PCA is fitted again, so every row's coordinates change.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_ids, read_manifest
from ..methods import graph_update, layout_update
from ..methods.knn import PixelRows

if TYPE_CHECKING:
    from ..engine.config import Config

SPACES = ("embedding", "pca", "pixels")
GROWN = ("embedding", "pixels")  # spaces whose rows an image keeps from run to run (PCA's are refitted)
FOLD_MARGIN = 3  # the k-NN probe's folds: a test image's k nearest neighbours outside its own fold


def needs(cfg: "Config") -> dict:
    """k per space: the largest any stage reading the graph asks for (the neighbours stage's derived params)."""
    retrieval, umap = cfg.retrieval, cfg.umap
    parametric_k = math.ceil((umap.n_neighbors - 1) / (1 - cfg.parametric.holdout)) + 2
    label_k = math.ceil(cfg.findings.label_k * retrieval.folds / (retrieval.folds - 1)) + FOLD_MARGIN
    embedding = max(retrieval.top_k, retrieval.knn_k * FOLD_MARGIN, cfg.fidelity.k, umap.n_neighbors - 1, parametric_k,
                    cfg.findings.outlier_k, label_k, cfg.gallery.neighbours, cfg.findings.duplicate_candidates)
    pixels = max(retrieval.knn_k * FOLD_MARGIN, cfg.findings.duplicate_candidates)  # k-NN baseline, near-duplicates
    return {"embedding": embedding, "pca": int(3 * cfg.tsne.perplexity), "pixels": pixels}


def space_input(ctx: StageContext, space: str) -> tuple[np.ndarray, str, bool] | None:
    """(data, metric, unit length) of a space, or None when the run has no such space."""
    if space == "embedding":
        return ctx.load_npy("extract", "embeddings", mmap=True), "ip", True
    if space == "pca":
        return (ctx.load_npy("pca", "coords", mmap=True), "l2", False) if ctx.has("pca") else None
    pixels = ctx.load_npy("extract", "pixels", mmap=True)
    if pixels.size == 0:
        return None
    return PixelRows(pixels), "ip", True


def grown(ctx: StageContext, match: layout_update.Carried, space: str, x, k: int, metric: str, unit: bool,
          progress) -> tuple["ann.Graph | None", str]:
    """The earlier run's graph of ``space`` with this run's new rows searched in, its recall measured again;
    or None and why not (it cannot be grown, or it falls short of ``min_recall``: all rows are searched then)."""
    from ..methods import ann
    from ..methods.knn import recall_with_ties

    cfg = ctx.cfg.neighbours
    if space not in GROWN:
        return None, ""
    earlier = ctx.earlier_npy(f"{space}_idx")
    why = graph_update.can_grow(match, earlier.shape[1] if earlier.size else 0, k, cfg.grow_up_to)
    if why:
        return None, why
    idx, values = graph_update.grown_graph(x, earlier, ctx.earlier_npy(f"{space}_values"), match, metric, unit,
                                           cfg.block, progress)
    facts = json.loads(ctx.earlier_path(f"{space}_facts").read_text(encoding="utf-8"))
    facts.pop("not_grown", None)
    if not match.added:  # the earlier graph itself (renumbered if files moved): its facts stand as they were
        return ann.Graph(idx, values, facts), ""
    if facts.get("method") != "exact":
        check = ann.Sample.searched_together(x, ((cfg.recall_queries, cfg.seed + 2),), k, metric, unit, cfg.block)[0]
        facts["recall"] = round(recall_with_ties(values[check.rows], check.truth, metric), 4)
        if facts["recall"] < cfg.min_recall:
            return None, f"the grown graph's recall {facts['recall']} fell below {cfg.min_recall}"
    facts["grown"] = {"kept": int(len(match.now)), "added": int(match.added)}
    return ann.Graph(idx, values, facts), ""


def run(ctx: StageContext) -> dict:
    from tqdm import tqdm

    from ..methods import accel, ann

    cfg = ctx.cfg.neighbours
    gpu = accel.device(ctx.cfg.device)
    wanted = ctx.derived  # needs(cfg): k per space, in the key
    ids = manifest_ids(read_manifest(ctx)[0])
    match = layout_update.carried(ctx.earlier_npy("row_ids"), ids) if ctx.earlier is not None else None
    report, seconds = {}, {}
    for space in SPACES:
        found = space_input(ctx, space)
        if found is None:
            ctx.save_npy(f"{space}_idx", np.zeros((0, 0), np.int64))
            ctx.save_npy(f"{space}_values", np.zeros((0, 0), np.float32))
            ctx.save_json(f"{space}_facts", {})
            continue
        x, metric, unit = found
        if len(x) < 2:
            raise StageError(f"a neighbour graph needs at least 2 images, got {len(x)}")
        k = min(wanted[space], len(x) - 1)
        started = time.perf_counter()
        with tqdm(total=len(x), desc=f"neighbours ({space})", unit="img", disable=None) as bar:
            graph, why = (grown(ctx, match, space, x, k, metric, unit, bar.update) if match is not None and gpu is None
                          else (None, ""))
            if graph is None and gpu is not None and cfg.method in ("auto", "exact"):  # exact at any size on a GPU
                idx, values = accel.exact_graph(x, k, metric, unit, gpu, accel.graph_block(len(x)), bar.update)
                graph = ann.Graph(idx, values, {"method": "exact", "index": f"torch matmul and top-k on {gpu.type}",
                                                "recall": 1.0, "recall_queries": 0, "recall_note": "exact search"})
            elif graph is None:
                graph = ann.build_graph(x, k, metric, unit, cfg.method, cfg.exact_up_to, cfg.min_recall,
                                        cfg.recall_queries, cfg.block, cfg.seed, progress=bar.update,
                                        compress=space != "pixels")
        ctx.save_npy(f"{space}_idx", graph.idx)
        ctx.save_npy(f"{space}_values", graph.values)
        report[space] = {**graph.facts, "k": k, "requested_k": wanted[space], "points": int(len(x)),
                         "dims": int(x.shape[1]), "metric": "cosine" if metric == "ip" else "euclidean",
                         **({"not_grown": why} if why else {})}
        seconds[space] = round(time.perf_counter() - started, 3)
        ctx.save_json(f"{space}_facts", report[space])  # the timings stay in the summary: they change every run
    ctx.save_npy("row_ids", ids)
    return {"spaces": {space: {**facts, "seconds": seconds[space]} for space, facts in report.items()},
            "searches": {space: 1 for space in report}}


STAGE = Stage(
    name="neighbours",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.pixels", "pca.coords"),
    params=("neighbours", "device"),
    derived=needs,
    optional=("pca",),  # too few images for PCA: the embedding graph is still made
    outputs={f"{space}_{part}": f"{space}_{part}.{'json' if part == 'facts' else 'npy'}"
             for space in SPACES for part in ("idx", "values", "facts")} | {"row_ids": "row_ids.npy"},
    resumes=tuple(f"{space}_{part}" for space in GROWN for part in ("idx", "values", "facts")) + ("row_ids",),
)
