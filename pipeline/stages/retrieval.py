"""Stage ``retrieval``: cosine nearest neighbours with FAISS, and how well they agree with the labels.

Inputs: ``ingest`` (paths, labels), ``extract`` (embeddings). Params: ``retrieval``. Embeddings are
L2-normalised and searched with an exact inner-product index (``IndexFlatIP``), so scores are cosines.
With labels: precision@k of retrieval over every image (itself excluded) and k-NN classification accuracy
(cosine, ``knn_k`` neighbours, stratified ``folds``-fold cross-validation), for the embeddings and, as the
baseline, for raw pixels (each image squeezed to ``extract.keep_pixels`` square, RGB, as extraction kept
it). Outputs: ``neighbours`` (N, top_k), ``scores`` and the ``grid`` of queries and their neighbours.
"""

from __future__ import annotations

import numpy as np

from ..manifest import manifest_labels, read_manifest
from ..neighbours import cosine_neighbours
from ..probes import knn_accuracy, raw_pixels
from ..sampling import pick_queries
from ..stage import Stage, StageContext


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray) -> float:
    return float((labels[neighbours] == labels[:, None]).mean())


def run(ctx: StageContext) -> dict:
    from .. import figures

    cfg = ctx.cfg.retrieval
    manifest, root = read_manifest(ctx)
    labels = manifest_labels(manifest)
    embeddings = ctx.load_npy("extract", "embeddings")
    neighbours, scores = cosine_neighbours(embeddings, cfg.top_k)
    ctx.save_npy("neighbours", neighbours.astype(np.int64))
    ctx.save_npy("scores", scores)
    queries = pick_queries(labels, cfg.queries, cfg.seed)
    tiles, captions = [], []
    for q in queries:
        tiles.append(figures.thumbnail(root / manifest[q]["path"], 72))
        captions.append(f"query: {labels[q][:12]}")
        for n, s in zip(neighbours[q], scores[q]):
            tiles.append(figures.thumbnail(root / manifest[n]["path"], 72))
            captions.append(f"{labels[n][:10]} {s:.2f}")
    figures.image_grid(tiles, captions, f"Query images and their {neighbours.shape[1]} nearest neighbours (cosine)",
                       ctx.output("grid"), columns=neighbours.shape[1] + 1, cell=1.25)
    summary = {"top_k": int(neighbours.shape[1]), "queries": len(queries), "index": "faiss.IndexFlatIP (exact)"}
    label_array = np.asarray(labels)
    if len(set(labels)) > 1:
        pixels = raw_pixels(ctx.load_npy("extract", "pixels", mmap=True))
        accuracy, folds = knn_accuracy(embeddings, label_array, cfg.knn_k, cfg.folds, cfg.seed)
        pixel_accuracy, _ = knn_accuracy(pixels, label_array, cfg.knn_k, cfg.folds, cfg.seed)
        summary.update({
            "precision_at_k": round(precision_at_k(neighbours, label_array), 4),
            "knn_accuracy": round(accuracy, 4), "knn_accuracy_raw_pixels": round(pixel_accuracy, 4),
            "knn_k": cfg.knn_k, "folds": folds, "chance": round(1.0 / len(set(labels)), 4),
        })
    return summary


STAGE = Stage(
    name="retrieval",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.pixels"),
    params=("retrieval",),
    outputs={"neighbours": "neighbours.npy", "scores": "scores.npy", "grid": "retrieval.png"},
)
