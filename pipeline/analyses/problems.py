"""What is wrong with a collection, and what it is made of, read from the run's neighbour graph and clusters:
byte-identical files, outliers, likely label errors, the classes the backbone confuses, cluster composition
and representatives (edited copies are ``near_duplicates``'). Small torch-free functions, testable alone;
none searches neighbours again.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def byte_duplicates(manifest: list[dict]) -> list[list[int]]:
    """Groups of images whose files are byte for byte the same (same sha256), in manifest order."""
    by_hash: dict[str, list[int]] = {}
    for i, record in enumerate(manifest):
        by_hash.setdefault(record["sha256"], []).append(i)
    return [group for group in by_hash.values() if len(group) > 1]


def neighbour_class_shares(idx: np.ndarray, codes: np.ndarray, classes: int, k: int) -> np.ndarray:
    """shares[a, b]: of the k nearest neighbours of class-a images, the share labelled b (rows sum to 1)."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (np.repeat(codes, k), codes[idx[:, :k]].ravel()), 1)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def confused_pairs(shares: np.ndarray, top: int) -> list[tuple[int, int, float]]:
    """The class pairs whose images most often have each other as neighbours: (a, b, mean of the two shares)."""
    pairs = [(a, b, float((shares[a, b] + shares[b, a]) / 2)) for a in range(len(shares)) for b in range(a + 1, len(shares))]
    return sorted(pairs, key=lambda pair: -pair[2])[:top]


def cross_class_examples(idx: np.ndarray, similarity: np.ndarray, codes: np.ndarray, a: int, b: int,
                         count: int) -> list[tuple[int, int, float]]:
    """The closest cross-class pairs between classes a and b: (image, its nearest neighbour of the other class,
    cosine), most similar first, each image at most once."""
    found = []
    for source, other in ((a, b), (b, a)):
        rows = np.flatnonzero(codes == source)
        hits = codes[idx[rows]] == other
        first = hits.argmax(axis=1)
        has = hits.any(axis=1)
        found += [(int(r), int(idx[r, f]), float(similarity[r, f])) for r, f, h in zip(rows, first, has) if h]
    found.sort(key=lambda pair: -pair[2])
    chosen, used = [], set()
    for image, neighbour, cosine in found:
        if image not in used and neighbour not in used:
            chosen.append((image, neighbour, cosine))
            used |= {image, neighbour}
        if len(chosen) == count:
            break
    return chosen


def composition(assignment: np.ndarray, labels: list[str]) -> list[dict]:
    """Per cluster, largest first: size, majority label, purity (the majority's share) and its label counts."""
    rows = []
    for cluster in np.unique(assignment):
        members = [labels[i] for i in np.flatnonzero(assignment == cluster)]
        counts = Counter(members)
        majority, top = max(counts.items(), key=lambda item: (item[1], item[0] == "", item[0]))
        rows.append({"cluster": int(cluster), "size": len(members), "majority": majority,
                     "purity": round(top / len(members), 4), "labels": dict(sorted(counts.items()))})
    return sorted(rows, key=lambda row: (-row["size"], row["cluster"]))


def label_groups(assignment: np.ndarray, labels: list[str]) -> list[dict]:
    """Which labels the clusters put together: each label goes to the cluster holding most of its images.
    Returns, per cluster that is home to a label: its labels and the share of their images it holds."""
    names = sorted(set(labels))
    label_array = np.asarray(labels)
    homes: dict[int, list[str]] = {}
    for name in names:
        clusters, counts = np.unique(assignment[label_array == name], return_counts=True)
        homes.setdefault(int(clusters[counts.argmax()]), []).append(name)
    groups = []
    for cluster, members in homes.items():
        held = np.isin(label_array, members)
        groups.append({"cluster": cluster, "labels": members,
                       "share": round(float((assignment[held] == cluster).mean()), 4)})
    return sorted(groups, key=lambda group: (len(group["labels"]), group["labels"]))


def representatives(features: np.ndarray, assignment: np.ndarray) -> list[int]:
    """The image nearest each cluster's centroid (in the features the clusters were made in), one per cluster,
    largest cluster first."""
    chosen = []
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)
        centre = features[members].mean(axis=0)
        distance = np.linalg.norm(features[members] - centre, axis=1)
        chosen.append((len(members), int(members[np.argmin(distance)])))
    return [image for _, image in sorted(chosen, key=lambda item: (-item[0], item[1]))]


def label_issues(codes: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Images cleanlab finds likely mislabelled, given out-of-fold class probabilities; ranked, most likely
    first (by self-confidence: the probability of the given label)."""
    from cleanlab.filter import find_label_issues

    return find_label_issues(codes, probabilities, return_indices_ranked_by="self_confidence")
