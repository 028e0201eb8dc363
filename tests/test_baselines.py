"""Every findings rule checks its premise: chance is the largest class's share, small classes are not ranked."""

import numpy as np

from pipeline.analyses import baselines, finding_rules as rules


def imbalanced_labels() -> list[str]:
    """17 classes, the largest holding 31 % (the set where 1/17 was given as chance), one of 5 images."""
    counts = [310, 5] + [43] * 15
    return [f"c{n:02d}" if n else "big" for n, count in enumerate(counts) for _ in range(count)]


def test_chance_is_the_largest_class_share_not_one_over_classes():
    labels = imbalanced_labels()
    found = baselines.chance(labels)
    assert found["chance"] == round(310 / len(labels), 4) and found["chance"] > 0.3, found
    assert found["majority_class"] == "big" and found["imbalanced"] and found["classes"] == 17
    shares = np.array([310, 5] + [43] * 15) / len(labels)
    assert found["precision_chance"] == round(float((shares ** 2).sum()), 4)
    balanced = baselines.chance(["a"] * 50 + ["b"] * 50)
    assert balanced["chance"] == 0.5 and not balanced["imbalanced"]


def test_balanced_accuracy_sees_through_always_answering_the_largest_class():
    codes = np.array([0] * 90 + [1] * 10)
    always_largest = np.zeros(100, int)
    assert baselines.balanced_accuracy(codes, always_largest) == 0.5
    assert baselines.balanced_accuracy(codes, codes) == 1.0


def test_small_classes_are_named_not_ranked():
    counts = {"medical": 5, "Shirt": 300, "Bag": 300}
    said = rules.hardest_class({"medical": 0.0, "Shirt": 0.52, "Bag": 0.95}, 0.82, 5, counts, 20)
    assert said.startswith("Shirt is the hardest class: 5-NN accuracy 0.52 on its 300 images"), said
    assert said.endswith("Too small to judge per class (under 20 images): medical (5)."), said
    assert "medical is the hardest" not in said
    only_small = rules.hardest_class({"medical": 0.0, "Bag": 0.95}, 0.9, 5, {"medical": 5, "Bag": 300}, 20)
    assert only_small == "Too small to judge per class (under 20 images): medical (5).", only_small
    assert baselines.too_small(counts) == ["medical"]


def test_chance_rule_speaks_on_imbalance_or_when_no_better_than_chance():
    said = rules.chance_baseline(0.78, 0.31, "big", 0.64, 17, 5)
    assert said == ("The classes are imbalanced: always answering big scores 0.31, against 5-NN's 0.78; its balanced "
                    "accuracy (the mean recall per class, chance 0.06) is 0.64."), said
    assert rules.chance_baseline(0.82, 0.10, "Bag", None, 10, 5) is None, "balanced classes: nothing to add"
    assert rules.chance_baseline(0.32, 0.31, "big", 0.2, 17, 5).startswith("5-NN accuracy (0.32) is no better than")
