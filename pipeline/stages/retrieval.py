"""Stage ``retrieval``: each image's nearest neighbours by cosine, and how well they agree with the labels.

Inputs: ``ingest`` (labels), ``extract`` (whether raw pixels were kept; the thumbnails it kept, for the
grid), ``neighbours`` (the graph of
the embedding space and, with labels, of the raw pixels: nothing is searched here). Params: ``retrieval``.
With labels: precision@k of retrieval over every image (itself excluded) and k-NN classification accuracy
(cosine, ``knn_k`` neighbours), read from the graph two ways: leave-one-out (each image's k nearest others
vote, the usual k-NN probe) and stratified ``folds``-fold cross-validation (its k nearest outside its own
fold), for the embeddings and, as the baseline, for raw pixels (each image squeezed to
``extract.keep_pixels`` square, as extraction kept it). Chance is the largest class's share (always answering
it); with imbalanced classes balanced accuracy stands beside accuracy (``pipeline.analyses.baselines``). Outputs: ``neighbours`` (N, top_k), ``scores`` and
the ``grid`` of queries and their neighbours.
"""

from __future__ import annotations

import numpy as np

from ..analyses.baselines import balanced_accuracy, chance
from ..analyses.probes import knn_from_graph
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.sampling import pick_queries


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray) -> float:
    return float((labels[neighbours] == labels[:, None]).mean())


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.retrieval
    labels = manifest_labels(read_manifest(ctx)[0])
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)  # kept at extraction: no image is read again
    graph = ctx.load_npy("neighbours", "embedding_idx")
    neighbours, scores = graph[:, :cfg.top_k], ctx.load_npy("neighbours", "embedding_values")[:, :cfg.top_k]
    ctx.save_npy("neighbours", neighbours)
    ctx.save_npy("scores", scores)
    queries = pick_queries(labels, cfg.queries, cfg.seed)
    tiles, captions = [], []
    # Captions short enough to print at 13 pt: the slide shows this grid ~0.37 times its size, and 13 pt keeps
    # them at 10 slide px (tests/browser/deck_judge.py); a neighbour's label is told by a tick or a cross.
    labelled = len(set(labels)) > 1
    for q in queries:
        tiles.append(thumbs[q])
        captions.append(labels[q][:10] if labelled else "query")
        for n, s in zip(neighbours[q], scores[q]):
            tiles.append(thumbs[n])
            captions.append(f"{s:.2f}" + ((" ✓" if labels[n] == labels[q] else " ✗") if labelled else ""))
    figures.image_grid(tiles, captions, f"Queries (left), their {neighbours.shape[1]} nearest neighbours: cosine"
                       + (", ✓ same label" if labelled else ""), ctx.output("grid"),
                       columns=neighbours.shape[1] + 1, cell=1.0, text_pt=13, gap=0.6)
    space = ctx.load_json("neighbours", "embedding_facts")
    summary = {"top_k": int(neighbours.shape[1]), "queries": len(queries), "graph": space["method"],
               "graph_recall": space["recall"]}
    label_array = np.asarray(labels)
    if len(set(labels)) > 1:
        found = knn_from_graph(graph, label_array, cfg.knn_k, cfg.folds, cfg.seed)
        summary.update({
            "precision_at_k": round(precision_at_k(neighbours, label_array), 4),
            "knn_accuracy": round(found["folds"], 4), "knn_accuracy_loo": round(found["leave_one_out"], 4),
            "knn_short_rows": found["short_rows"], "knn_k": cfg.knn_k, "folds": found["folds_used"],
            **chance(labels),
        })
        if summary["imbalanced"] and "predicted" in found:  # its chance is 1 / classes
            codes = np.unique(label_array, return_inverse=True)[1]
            summary["knn_balanced_accuracy"] = round(balanced_accuracy(codes, found["predicted"]), 4)
        pixels = ctx.load_npy("neighbours", "pixels_idx")
        if len(pixels):
            baseline = knn_from_graph(pixels, label_array, cfg.knn_k, cfg.folds, cfg.seed)
            summary.update({"knn_accuracy_raw_pixels": round(baseline["folds"], 4),
                            "knn_accuracy_raw_pixels_loo": round(baseline["leave_one_out"], 4),
                            "raw_pixels_side": ctx.summary("extract")["kept"]["pixels"]})
    return summary


STAGE = Stage(
    name="retrieval",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.summary", "extract.thumbs", "neighbours.embedding_idx",
            "neighbours.embedding_values", "neighbours.pixels_idx", "neighbours.embedding_facts"),
    params=("retrieval",),
    outputs={"neighbours": "neighbours.npy", "scores": "scores.npy", "grid": "retrieval.png"},
)
