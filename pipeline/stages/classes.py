"""Stage ``classes``: what the backbone gets right and wrong per class, and which labels look wrong.

Inputs: ``ingest`` (labels), ``extract`` (embeddings, thumbnails), ``neighbours`` (the embedding graph).
Params: ``retrieval`` (the k-NN probe's k and folds), ``findings``. Needs labels (two classes or more);
without them it does not run and the deck says why.
- Per-class k-NN accuracy and a confusion matrix: the k-NN probe's cross-validated predictions, read from
  the graph (each image's k nearest neighbours outside its own fold vote), the same as the retrieval slide's.
- A linear probe beside it: logistic regression on the frozen, standardised embeddings, on the same folds
  (each fold trained on at most ``findings.probe_max_train`` images).
- The most confused class pairs (the share of each class's neighbours that carry the other label), each
  shown with its closest cross-class pairs of images.
- Likely label errors: cleanlab's ``find_label_issues`` on out-of-fold k-NN class probabilities (the
  ``findings.label_k`` nearest neighbours outside each image's fold), ranked, with the suggested label.
Each class's image count goes beside its figures; classes under ``baselines.SMALLEST_JUDGED`` images are
listed as too small to judge.
Outputs: ``report`` (every figure above), ``label_issues`` (CSV), figures ``confusion``, ``pairs``, ``issues``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..analyses.baselines import SMALLEST_JUDGED, too_small
from ..analyses.probes import fold_of, knn_from_graph, linear_probe, out_of_fold_probabilities, usable_folds
from ..analyses.problems import confused_pairs, cross_class_examples, label_issues, neighbour_class_shares
from ..engine.artifacts import StageError, write_csv
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest

PAIRS_SHOWN = 3
EXAMPLES_PER_PAIR = 4
ISSUES_SHOWN = 24


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg, knn_cfg = ctx.cfg.findings, ctx.cfg.retrieval
    manifest = read_manifest(ctx)[0]
    labels = np.asarray(manifest_labels(manifest))
    names, codes = np.unique(labels, return_inverse=True)
    if len(names) < 2:
        raise StageError("needs labels (images in two class folders or more); this set has "
                         f"{'none' if not names[0] else 'one class'}")
    folds = usable_folds(codes, knn_cfg.folds)
    if folds < 2:
        raise StageError(f"every class needs at least 2 images to cross-validate; the smallest has {np.bincount(codes).min()}")
    idx = ctx.load_npy("neighbours", "embedding_idx")
    similarity = ctx.load_npy("neighbours", "embedding_values")
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)
    fold = fold_of(codes, folds, knn_cfg.seed)

    knn = knn_from_graph(idx, labels, knn_cfg.knn_k, knn_cfg.folds, knn_cfg.seed)
    per_class = {str(name): round(float((knn["predicted"][codes == c] == c).mean()), 4) for c, name in enumerate(names)}
    probe = linear_probe(ctx.load_npy("extract", "embeddings", mmap=True), codes, fold, cfg.probe_max_train, cfg.seed)
    probe_per_class = {str(name): round(float((probe["predicted"][codes == c] == c).mean()), 4)
                       for c, name in enumerate(names)}
    figures.confusion_matrix(codes, knn["predicted"], list(names), ctx.output("confusion"),
                             f"{knn_cfg.knn_k}-NN predictions ({folds}-fold CV)")

    shares = neighbour_class_shares(idx, codes, len(names), knn_cfg.knn_k)
    pairs = confused_pairs(shares, PAIRS_SHOWN)
    tiles, captions, pair_rows = [], [], []
    for a, b, share in pairs:
        examples = cross_class_examples(idx, similarity, codes, a, b, EXAMPLES_PER_PAIR)
        pair_rows.append({"a": str(names[a]), "b": str(names[b]), "share": round(share, 4),
                          "examples": [{"image": manifest[i]["path"], "neighbour": manifest[j]["path"],
                                        "cosine": round(c, 4)} for i, j, c in examples]})
        for i, j, c in examples:
            tiles += [thumbs[i], thumbs[j]]
            captions += [labels[i][:14], f"{labels[j][:12]}\n{c:.2f}"]
    figures.image_grid(tiles, captions, "Most confused classes: an image beside its nearest neighbour of the other class",
                       ctx.output("pairs"), columns=2 * EXAMPLES_PER_PAIR, cell=1.2, text_pt=12,
                       gap=0.2)  # shown at ~0.4 of its size

    probabilities = out_of_fold_probabilities(idx, codes, len(names), cfg.label_k, fold)
    ranked = label_issues(codes, probabilities)
    suggested = probabilities.argmax(axis=1)
    write_csv(ctx.output("label_issues"),
              ["rank", "path", "label", "suggested", "label_probability", "suggested_probability"],
              ([rank, manifest[i]["path"], labels[i], names[suggested[i]], round(float(probabilities[i, codes[i]]), 4),
                round(float(probabilities[i, suggested[i]]), 4)] for rank, i in enumerate(ranked, 1)))
    shown = ranked[:ISSUES_SHOWN]
    figures.image_grid([thumbs[i] for i in shown], [f"{labels[i][:11]}\n> {names[suggested[i]][:11]}" for i in shown],
                       f"Likely label errors (cleanlab): label > suggested, {len(shown)} of {len(ranked)}",
                       ctx.output("issues"), columns=8, cell=1.2)
    class_images = {str(name): int(count) for name, count in zip(names, np.bincount(codes))}
    changes = Counter((str(labels[i]), str(names[suggested[i]])) for i in ranked)
    report = {
        "classes": [str(n) for n in names], "folds": folds, "knn_k": knn_cfg.knn_k,
        "knn_accuracy": round(knn["folds"], 4), "per_class_knn": per_class,
        "class_images": class_images, "smallest_judged": SMALLEST_JUDGED, "too_small": too_small(class_images),
        "probe_accuracy": round(probe["accuracy"], 4), "per_class_probe": probe_per_class,
        "probe_train_images": probe["train_images"], "probe": "logistic regression on standardised embeddings",
        "confused_pairs": pair_rows, "label_k": cfg.label_k,
        "label_issues": int(len(ranked)), "label_issue_share": round(len(ranked) / len(labels), 4),
        "common_change": (list(changes.most_common(1)[0][0]) + [changes.most_common(1)[0][1]]) if changes else None,
        "issues_shown": [{"path": manifest[i]["path"], "label": str(labels[i]), "suggested": str(names[suggested[i]])}
                         for i in shown],
    }
    ctx.save_json("report", report)
    return report


STAGE = Stage(
    name="classes",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.thumbs", "neighbours.embedding_idx",
            "neighbours.embedding_values"),
    params=("retrieval", "findings"),
    outputs={"report": "classes.json", "label_issues": "label_issues.csv", "confusion": "confusion.png",
             "pairs": "confused_pairs.png", "issues": "label_issues.png"},
)
