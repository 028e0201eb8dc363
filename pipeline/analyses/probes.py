"""How well frozen features predict labels: the k-NN probe and the linear probe, cross-validated, and the
raw-pixel baseline's features.

The DINO papers report these two side by side. Both are torch-free and take features and labels only, so
any stage (retrieval, findings, a backbone comparison) can use them.
"""

from __future__ import annotations

import numpy as np

from ..methods.knn import PixelRows, flat_search, normalise


def usable_folds(codes: np.ndarray, folds: int) -> int:
    """Folds for a stratified split, bounded by the smallest class (below 2: no cross-validation)."""
    return min(folds, int(np.bincount(codes).min()))


def knn_predict(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """Majority label of each test row's k nearest training rows by cosine (exact search); a tie goes to the
    smallest label, as in scikit-learn's ``KNeighborsClassifier``."""
    _, found = flat_search(normalise(train), normalise(test), k, metric="ip")
    votes = train_labels[found]
    return vote(votes, np.ones(votes.shape, bool), int(train_labels.max()) + 1)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> tuple[float, int]:
    """Cross-validated k-NN accuracy (cosine, exact search per fold, on the same seeded stratified folds as
    ``fold_of``) and the number of folds used (bounded by the smallest class)."""
    _, codes = np.unique(labels, return_inverse=True)
    used = usable_folds(codes, folds)
    if used < 2:
        return float("nan"), used
    fold = fold_of(codes, used, seed)
    scores = []
    for number in range(used):
        train, test = np.flatnonzero(fold != number), np.flatnonzero(fold == number)
        scores.append(float((knn_predict(features[train], codes[train], features[test], k) == codes[test]).mean()))
    return float(np.mean(scores)), used


def vote(neighbour_codes: np.ndarray, usable: np.ndarray, classes: int) -> np.ndarray:
    """Majority class of each row's usable neighbours; a tie goes to the smallest class (as scikit-learn's)."""
    counts = np.stack([((neighbour_codes == c) & usable).sum(axis=1) for c in range(classes)], axis=1)
    return counts.argmax(axis=1)


def first_usable(allowed: np.ndarray, k: int) -> np.ndarray:
    """Mask of each row's first ``k`` allowed neighbours (the graph lists them nearest first)."""
    return allowed & (np.cumsum(allowed, axis=1) <= k)


def fold_of(codes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold in a seeded stratified split (the same split for every probe of a run)."""
    from sklearn.model_selection import StratifiedKFold

    fold = np.empty(len(codes), np.int64)
    for number, (_, test) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(codes, codes)):
        fold[test] = number
    return fold


def knn_from_graph(idx: np.ndarray, labels: np.ndarray, k: int, folds: int, seed: int) -> dict:
    """k-NN accuracy read from the neighbour graph (cosine), two ways:

    - ``leave_one_out``: each image's k nearest others vote (the usual k-NN probe, one search);
    - ``folds``: stratified ``folds``-fold cross-validation: each image's k nearest neighbours outside its own
      fold vote, exactly what searching the other folds would give, as long as the graph lists k of them
      (``short_rows`` counts images where it did not and fewer voted).
    """
    names, codes = np.unique(labels, return_inverse=True)
    neighbour_codes = codes[idx]
    everyone = np.ones(idx.shape, bool)
    result = {"leave_one_out": float((vote(neighbour_codes, first_usable(everyone, k), len(names)) == codes).mean()),
              "k": k}
    used = usable_folds(codes, folds)
    if used < 2:
        return {**result, "folds": float("nan"), "folds_used": used, "short_rows": 0}
    fold = fold_of(codes, used, seed)
    usable = first_usable(fold[idx] != fold[:, None], k)
    predicted = vote(neighbour_codes, usable, len(names))
    return {**result, "folds": float((predicted == codes).mean()), "folds_used": used,
            "short_rows": int((usable.sum(axis=1) < k).sum()), "predicted": predicted}


def out_of_fold_probabilities(idx: np.ndarray, codes: np.ndarray, classes: int, k: int, fold: np.ndarray) -> np.ndarray:
    """Each image's class probabilities from its ``k`` nearest neighbours outside its own fold (their label
    shares, lightly smoothed so no class is impossible): the out-of-fold predictions cleanlab expects."""
    usable = first_usable(fold[idx] != fold[:, None], k)
    neighbour_codes = codes[idx]
    counts = np.stack([((neighbour_codes == c) & usable).sum(axis=1) for c in range(classes)], axis=1)
    smoothed = counts + 1.0 / classes
    return smoothed / smoothed.sum(axis=1, keepdims=True)


def linear_probe(features: np.ndarray, codes: np.ndarray, fold: np.ndarray, max_train: int, seed: int,
                 c: float = 1.0, max_iter: int = 1000) -> dict:
    """Cross-validated accuracy of logistic regression on the frozen, standardised features (the DINO papers'
    linear probe), on the same folds as the k-NN probe. Each fold trains on at most ``max_train`` of its
    training images (a seeded sample) and is tested on all of its own; the predictions come back per image."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..methods.sampling import sample_of

    predicted = np.empty(len(codes), np.int64)
    trained, converged = [], True
    for number in range(int(fold.max()) + 1):
        train = sample_of(np.flatnonzero(fold != number), max_train, seed + number)
        test = np.flatnonzero(fold == number)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(np.asarray(features[train], np.float32), codes[train])
        converged &= not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        predicted[test] = model.predict(np.asarray(features[test], np.float32))
        trained.append(len(train))
    return {"accuracy": float((predicted == codes).mean()), "predicted": predicted, "train_images": max(trained),
            "converged": converged}


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int, seed: int, c: float = 1.0,
                          max_iter: int = 1000) -> dict:
    """The linear probe on labels as given: accuracy over seeded stratified folds (bounded by the smallest
    class), the folds used and whether every fit converged within ``max_iter``."""
    _, codes = np.unique(labels, return_inverse=True)
    used = usable_folds(codes, folds)
    if used < 2:
        return {"accuracy": float("nan"), "folds": used, "converged": True}
    found = linear_probe(features, codes, fold_of(codes, used, seed), len(codes), seed, c, max_iter)
    return {"accuracy": found["accuracy"], "folds": used, "converged": found["converged"]}


def raw_pixels(pixels: np.ndarray) -> np.ndarray:
    """Each image's kept small copy (N, p, p, 3) uint8, flattened to [0, 1]; one channel when every image is grey
    (``neighbours.PixelRows``)."""
    return PixelRows(pixels)[:]
