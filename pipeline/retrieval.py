"""Stage ``retrieval``: cosine nearest neighbours with FAISS, and how well they agree with the labels.

Inputs: ``ingest`` (paths, labels), ``extract`` (embeddings). Params: ``retrieval``. Embeddings are
L2-normalised and searched with an exact inner-product index (``IndexFlatIP``), so scores are cosines.
With labels: precision@k of retrieval over every image (itself excluded) and k-NN classification accuracy
(cosine, ``knn_k`` neighbours, stratified ``folds``-fold cross-validation), for the embeddings and, as the
baseline, for raw pixels (each image as 32x32 RGB). Outputs: ``neighbours.npy`` (N, top_k),
``scores.npy`` and the grid ``retrieval.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .ingest import manifest_labels, read_manifest
from .runner import Stage, StageContext

PIXELS = 32


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def cosine_neighbours(embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of each image's k nearest other images."""
    import faiss

    unit = normalise(embeddings)
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    k = min(k, len(unit) - 1)
    scores, found = index.search(unit, k + 1)
    return without_self(found, scores, k)


def without_self(found: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` hits of each row's search that are not the row's own point, and their values (scores or
    distances). Self is normally the first hit; with exact duplicates it may come later."""
    order = np.argsort(found == np.arange(len(found))[:, None], axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, 1), np.take_along_axis(values, order, 1)


def precision_at_k(neighbours: np.ndarray, labels: np.ndarray) -> float:
    return float((labels[neighbours] == labels[:, None]).mean())


def knn_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """Majority label of each test row's k nearest training rows by cosine (exact FAISS search); a tie goes
    to the smallest label, as in scikit-learn's ``KNeighborsClassifier``."""
    import faiss

    index = faiss.IndexFlatIP(train.shape[1])
    index.add(normalise(train))
    _, found = index.search(normalise(test), k)
    votes = train_labels[found]
    counts = np.stack([(votes == c).sum(axis=1) for c in range(int(train_labels.max()) + 1)], axis=1)
    return counts.argmax(axis=1)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> tuple[float, int]:
    """Cross-validated k-NN accuracy (cosine) and the number of folds used (bounded by the smallest class)."""
    from sklearn.model_selection import StratifiedKFold

    _, codes = np.unique(labels, return_inverse=True)
    folds = min(folds, int(np.bincount(codes).min()))
    if folds < 2:
        return float("nan"), folds
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = [float((knn_predict(features[train], codes[train], features[test], k) == codes[test]).mean())
              for train, test in splitter.split(features, codes)]
    return float(np.mean(scores)), folds


def raw_pixels(paths: list[Path]) -> np.ndarray:
    """Each image as 32x32 RGB, flattened; one channel when every image is grey.

    Repeating a grey channel three times scales every dot product and norm alike, so the cosines (and the
    k-NN result) are exactly those of the grey pixels, at a third of the search cost.
    """
    import cv2

    from .images import read_rgb

    pixels = np.stack([cv2.resize(read_rgb(p), (PIXELS, PIXELS), interpolation=cv2.INTER_AREA) for p in paths])
    if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all():
        pixels = pixels[..., :1]
    return pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0


def pick_queries(labels: list[str], count: int, seed: int) -> list[int]:
    """One query per label (seeded), up to ``count``; spread over the set when unlabelled."""
    rng = np.random.default_rng(seed)
    names = sorted(set(labels))
    if len(names) > 1:
        return [int(rng.choice([i for i, label in enumerate(labels) if label == name])) for name in names[:count]]
    return sorted(int(i) for i in rng.choice(len(labels), size=min(count, len(labels)), replace=False))


def run(ctx: StageContext) -> dict:
    from . import figures

    cfg = ctx.cfg.retrieval
    manifest, root = read_manifest(ctx)
    labels = manifest_labels(manifest)
    embeddings = ctx.load_npy("extract", "embeddings.npy")
    neighbours, scores = cosine_neighbours(embeddings, cfg.top_k)
    ctx.save_npy("neighbours.npy", neighbours.astype(np.int64))
    ctx.save_npy("scores.npy", scores)
    queries = pick_queries(labels, cfg.queries, cfg.seed)
    tiles, captions = [], []
    for q in queries:
        tiles.append(figures.thumbnail(root / manifest[q]["path"], 72))
        captions.append(f"query: {labels[q][:12]}")
        for n, s in zip(neighbours[q], scores[q]):
            tiles.append(figures.thumbnail(root / manifest[n]["path"], 72))
            captions.append(f"{labels[n][:10]} {s:.2f}")
    figures.image_grid(tiles, captions, f"Query images and their {neighbours.shape[1]} nearest neighbours (cosine)",
                       ctx.out_dir / "retrieval.png", columns=neighbours.shape[1] + 1, cell=1.25)
    summary = {"top_k": int(neighbours.shape[1]), "queries": len(queries), "index": "faiss.IndexFlatIP (exact)"}
    label_array = np.asarray(labels)
    if len(set(labels)) > 1:
        pixels = raw_pixels([root / record["path"] for record in manifest])
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
    deps=("ingest", "extract"),
    params=("retrieval",),
    outputs=("neighbours.npy", "scores.npy", "retrieval.png"),
    code=("pipeline.figures", "pipeline.images", "pipeline.ingest"),
)
