"""How well frozen features predict labels: the k-NN probe and the linear probe, cross-validated.

The DINO papers report these two side by side. Both are torch-free and take features and labels only, so
any stage (retrieval, findings, a backbone comparison) can use them.
"""

from __future__ import annotations

import numpy as np

from .neighbours import knn_predict


def usable_folds(codes: np.ndarray, folds: int) -> int:
    """Folds for a stratified split, bounded by the smallest class (below 2: no cross-validation)."""
    return min(folds, int(np.bincount(codes).min()))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> tuple[float, int]:
    """Cross-validated k-NN accuracy (cosine) and the number of folds used (bounded by the smallest class)."""
    from sklearn.model_selection import StratifiedKFold

    _, codes = np.unique(labels, return_inverse=True)
    folds = usable_folds(codes, folds)
    if folds < 2:
        return float("nan"), folds
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = [float((knn_predict(features[train], codes[train], features[test], k) == codes[test]).mean())
              for train, test in splitter.split(features, codes)]
    return float(np.mean(scores)), folds
