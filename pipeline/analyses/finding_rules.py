"""The findings: each a sentence made from this run's figures by a stated rule, or nothing when the rule
does not apply. Nothing here computes a figure; every number a sentence prints is passed in.

A rule returns ``None`` rather than a sentence that says nothing (a difference too small to mention is said
as such only where that is itself the finding). ``findings`` applies them in order of what matters most to a
reader and keeps at most ``MOST``.
"""

from __future__ import annotations

LEVEL = 0.02  # two accuracies closer than this are called level
BULK = 0.5  # near-duplicates on more than this share of the images: the rule cannot tell copies here
MOST = 8


def standing(first: float, second: float) -> str:
    """``ahead``, ``behind`` or ``level``: how ``first`` compares with ``second`` (level: within LEVEL)."""
    if first - second >= LEVEL:
        return "ahead"
    return "behind" if second - first >= LEVEL else "level"


def pixels_vs_backbone(embedding: float, pixels: float, k: int) -> str:
    """Rule: compare the k-NN accuracy of the embeddings with that of raw pixels (cross-validated)."""
    gap, e, p = round(abs(embedding - pixels), 2), f"{embedding:.2f}", f"{pixels:.2f}"
    return {"behind": f"Raw pixels beat the backbone's embeddings at {k}-NN by {gap:.2f} ({p} vs {e}): "
                      f"the backbone is a poor fit for these images.",
            "ahead": f"The backbone's embeddings beat raw pixels at {k}-NN by {gap:.2f} ({e} vs {p}): "
                     f"they capture more than the pixels do.",
            "level": f"The backbone's embeddings are level with raw pixels at {k}-NN ({e} vs {p}): "
                     f"they add little here."}[standing(embedding, pixels)]


def probe_vs_knn(probe: float, knn: float, k: int) -> str:
    """Rule: compare a linear probe with k-NN on the same folds."""
    gap = round(abs(probe - knn), 2)
    return {"ahead": f"A linear probe on the frozen embeddings reaches {probe:.2f}, {gap:.2f} above {k}-NN "
                     f"({knn:.2f}): the classes are separable by direction more than by nearest neighbours.",
            "behind": f"{k}-NN ({knn:.2f}) beats a linear probe ({probe:.2f}) by {gap:.2f}: the classes come in "
                      f"local clumps more than in linearly separable regions.",
            "level": f"A linear probe ({probe:.2f}) and {k}-NN ({knn:.2f}) agree within {LEVEL}."}[standing(probe, knn)]


def hardest_class(per_class: dict[str, float], overall: float, k: int, class_images: dict[str, int],
                  floor: int) -> str | None:
    """Rule: name the class with the lowest k-NN accuracy when it trails the overall accuracy by >= 0.05,
    with its image count. Classes under ``floor`` images are not ranked (one error on 5 images is 0.20):
    they are named as too small to judge."""
    small = sorted(name for name in per_class if class_images[name] < floor)
    judged = {name: value for name, value in per_class.items() if name not in small}
    tail = (f" Too small to judge per class (under {floor} images): "
            f"{', '.join(f'{name} ({class_images[name]})' for name in small[:4])}{' and others' * (len(small) > 4)}."
            if small else "")
    if len(judged) < 2:
        return tail.strip() or None
    name, worst = min(judged.items(), key=lambda item: (item[1], item[0]))
    if overall - worst < 0.05:
        return tail.strip() or None
    return (f"{name} is the hardest class: {k}-NN accuracy {worst:.2f} on its {class_images[name]:,} images, "
            f"against {overall:.2f} over all images.{tail}")


def chance_baseline(accuracy: float, chance: float, majority: str, balanced: float | None, classes: int,
                    k: int) -> str | None:
    """Rule: where classes are imbalanced (``balanced`` given), say what chance is (always answering the
    largest class) and the balanced accuracy; anywhere, say when the k-NN accuracy is no better than that."""
    if accuracy - chance < LEVEL:
        return (f"{k}-NN accuracy ({accuracy:.2f}) is no better than always answering {majority}, the largest "
                f"class ({chance:.2f} of the images).")
    if balanced is None:
        return None
    return (f"The classes are imbalanced: always answering {majority} scores {chance:.2f}, against {k}-NN's "
            f"{accuracy:.2f}; its balanced accuracy (the mean recall per class, chance {1 / classes:.2f}) is "
            f"{balanced:.2f}.")


def confused_pair(a: str, b: str, share: float) -> str | None:
    """Rule: the two classes whose images most often neighbour each other, when that share is >= 5 %."""
    if share < 0.05:
        return None
    return f"{a} and {b} are each other's nearest class for {share:.0%} of their neighbours."


def cluster_split(k: int, level: str, groups: list[dict], labels: int) -> str | None:
    """Rule: with at most half as many clusters as labels, say which labels each cluster holds (each label
    counted in the cluster holding most of its images) and how much of them it holds. With more clusters
    the split is a long list; ``cluster_purity`` says it better."""
    if not groups or k > labels // 2:
        return None
    if len(groups) == 1:
        return f"At k = {k} ({level}), the clusters do not follow the labels: one cluster holds most images of every label."
    parts = []
    for group in sorted(groups, key=lambda g: (len(g["labels"]), g["labels"]))[:-1]:
        parts.append(f"{', '.join(group['labels'])} ({group['share']:.0%} of their images)")
    rest = sorted(groups, key=lambda g: (len(g["labels"]), g["labels"]))[-1]
    return (f"At k = {k} ({level}), the backbone sets apart {'; '.join(parts)} from the other "
            f"{len(rest['labels'])} labels ({rest['share']:.0%} of their images together).")


def cluster_purity(k: int, level: str, purities: list[float], threshold: float = 0.8) -> str | None:
    """Rule: with at least as many clusters as labels, how many clusters are mostly one label."""
    if not purities:
        return None
    pure = sum(p >= threshold for p in purities)
    return f"At k = {k} ({level}), {pure} of {len(purities)} clusters are at least {threshold:.0%} one label."


def duplicates(groups: int, images: int, total: int, rule: dict, byte_groups: int, byte_images: int,
               lookalikes: int) -> str:
    """Rule: count near-duplicates (one picture, edited) and exact byte duplicates, saying what the call rests
    on. When more than ``BULK`` of the images pass, the rule sits inside the bulk of this set's neighbours and
    cannot tell copies from look-alikes: that is said instead of a count."""
    exact = (f"; {byte_groups} group{'s' * (byte_groups != 1)} of byte-identical files ({byte_images} images)"
             if byte_groups else "; no byte-identical files")
    # The whole rule, with every threshold, is on the Near-duplicates slide; the sentence names its two tests.
    basis = (f"grey pixels correlating >= {rule['floor']:g}, at most {rule['ratio']:g}x as far as the image's "
             f"{rule['scale_k']}th neighbour")
    if images > BULK * total:
        return (f"{images} images ({images / total:.0%}) pass the near-duplicate rule ({basis}): too many to be "
                f"edited copies, so this set's ordinary neighbours are that alike and no count is given{exact}.")
    alike = f"; {lookalikes} look-alike pairs, not copies, listed apart" if lookalikes else ""
    if not groups:
        return f"No near-duplicates (edited copies of one picture: {basis}){exact}{alike}."
    return (f"{groups} group{'s' * (groups != 1)} of near-duplicates (edited copies of one picture: {basis}), "
            f"{images} images{exact}{alike}.")


def outliers(top: int, top_share: float, top_mean: float, median: float, k: int) -> str | None:
    """Rule: how much farther the most isolated images are from their neighbours than the median image."""
    if median <= 0 or top == 0:
        return None
    return (f"The {top} most isolated images ({top_share:.0%} of the set) sit {top_mean / median:.1f}x as far from "
            f"their {k} nearest neighbours as the median image (cosine distance {top_mean:.2f} vs {median:.2f}).")


def label_errors(flagged: int, total: int, change: tuple[str, str, int] | None) -> str:
    """Rule: cleanlab's count of likely label errors and the most common suggested change."""
    if not flagged:
        return "cleanlab flags no image as likely mislabelled."
    common = f"; the most common suggested change is {change[0]} -> {change[1]} ({change[2]})" if change else ""
    return f"cleanlab flags {flagged} images ({flagged / total:.1%}) as likely mislabelled{common}."


def findings(sentences: list[str | None]) -> list[str]:
    """The sentences that apply, in the order given, at most ``MOST``."""
    return [s for s in sentences if s][:MOST]
