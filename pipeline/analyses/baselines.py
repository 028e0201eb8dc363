"""What a label probe's accuracy is measured against, and which classes are big enough to judge.

Chance is not one over the number of classes: a classifier that always answers the largest class scores that
class's share. On a 17-class set whose largest class holds 31 %, 1/17 = 0.06 flatters any probe five-fold.
Where the classes are imbalanced, balanced accuracy (the mean of per-class recalls, whose chance is one over
the number of classes) is shown beside accuracy. A per-class accuracy on a handful of images is noise (on 5
images one error moves it by 0.20), so classes under ``SMALLEST_JUDGED`` images are named as too small,
never ranked.
"""

from __future__ import annotations

import numpy as np

IMBALANCE = 1.5  # largest class / smallest class above this: the set is called imbalanced
SMALLEST_JUDGED = 20  # a per-class figure on fewer images is not compared (5-NN on 20: one error = 0.05)


def chance(labels) -> dict:
    """The baselines of a labelled set: ``chance`` (accuracy of always answering the largest class),
    ``precision_chance`` (precision@k of neighbours drawn at random: the sum of squared class shares),
    the largest class and its share, and whether the classes are imbalanced."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    shares = counts / counts.sum()
    largest = int(np.argmax(counts))
    return {"chance": round(float(shares[largest]), 4), "chance_rule": "the largest class's share",
            "majority_class": str(names[largest]), "precision_chance": round(float((shares ** 2).sum()), 4),
            "classes": int(len(names)), "imbalanced": bool(counts.max() > IMBALANCE * counts.min()),
            "class_images": {str(n): int(c) for n, c in zip(names, counts)}}


def balanced_accuracy(codes: np.ndarray, predicted: np.ndarray) -> float:
    """The mean of per-class recalls (scikit-learn's ``balanced_accuracy_score``)."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(codes, predicted))


def too_small(class_images: dict[str, int], floor: int = SMALLEST_JUDGED) -> list[str]:
    """Classes with fewer than ``floor`` images: their per-class figures are shown, not judged."""
    return sorted(name for name, count in class_images.items() if count < floor)
