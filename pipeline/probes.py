"""How well frozen features predict labels: the k-NN probe and the linear probe, cross-validated, and the
raw-pixel baseline's features.

The DINO papers report these two side by side. Both are torch-free and take features and labels only, so
any stage (retrieval, findings, a backbone comparison) can use them.
"""

from __future__ import annotations

import numpy as np

from .neighbours import knn_predict


def usable_folds(codes: np.ndarray, folds: int) -> int:
    """Folds for a stratified split, bounded by the smallest class (below 2: no cross-validation)."""
    return min(folds, int(np.bincount(codes).min()))


def folds_of(labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, list, int]:
    """(label codes, seeded stratified train/test splits, folds used); no splits below 2 usable folds."""
    from sklearn.model_selection import StratifiedKFold

    _, codes = np.unique(labels, return_inverse=True)
    folds = usable_folds(codes, folds)
    if folds < 2:
        return codes, [], folds
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return codes, list(splitter.split(np.zeros(len(codes)), codes)), folds


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> tuple[float, int]:
    """Cross-validated k-NN accuracy (cosine) and the number of folds used (bounded by the smallest class)."""
    codes, splits, folds = folds_of(labels, folds, seed)
    if not splits:
        return float("nan"), folds
    scores = [float((knn_predict(features[train], codes[train], features[test], k) == codes[test]).mean())
              for train, test in splits]
    return float(np.mean(scores)), folds


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int, seed: int, c: float = 1.0,
                          max_iter: int = 1000) -> dict:
    """Cross-validated accuracy of a logistic regression on the frozen features (standardised on each training
    fold), the linear probe of the DINO papers, on the same seeded folds as the k-NN probe.

    Returns the mean accuracy, the folds used and whether every fit converged within ``max_iter``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codes, splits, folds = folds_of(labels, folds, seed)
    if not splits:
        return {"accuracy": float("nan"), "folds": folds, "converged": True}
    scores, converged = [], True
    for train, test in splits:
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            probe.fit(features[train], codes[train])
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        scores.append(float(probe.score(features[test], codes[test])))
    return {"accuracy": float(np.mean(scores)), "folds": folds, "converged": converged}


def raw_pixels(pixels: np.ndarray) -> np.ndarray:
    """Each image's kept small copy (N, p, p, 3) uint8, flattened to [0, 1]; one channel when every image is grey.

    Repeating a grey channel three times scales every dot product and norm alike, so the cosines (and the
    k-NN result) are exactly those of the grey pixels, at a third of the search cost.
    """
    if (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 0] == pixels[..., 2]).all():
        pixels = pixels[..., :1]
    return pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
