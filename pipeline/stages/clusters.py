"""Stage ``clusters``: the k-means sweep of seed 003, on three embedding variants, and a justified k.

Inputs: ``ingest`` (paths, labels), ``extract`` (global embedding and mean of patch tokens). Params:
``clusters``. Each variant (the global embedding / CLS token, the mean of the patch tokens, and their
concatenation; only the first when the two coincide, as they do for a CNN) is L2-normalised per image (so that neither half of the concatenation dominates) and reduced
by PCA to ``pca_dims``; k-means (scikit-learn, seeded, ``n_init`` restarts) runs for every k of the grid.
Per k: silhouette (on a seeded sample when N is large), Davies-Bouldin, and SSE (inertia). Above
``sweep_sample`` images the sweep runs on a seeded sample of that many (its k grid scaled to the sample), so
its time stops growing with the set, and the chosen k is then fitted on every image (``make bench`` measures
how far the sample's figures are from the whole set's).
The elbow is the Kneedle point of the SSE curve (the k farthest below the chord joining the curve's ends,
both axes scaled to [0, 1]). The chosen k: where two of elbow, best silhouette and best Davies-Bouldin
agree, that k; otherwise the candidate nearest to both bests (``shortfalls``).
Outputs: ``sweep`` (metrics per k and variant), ``assignment`` (cluster of each image at the chosen k),
``elbow_assignment`` (at the elbow's k, for the findings), ``features`` (the reduced features of the chosen
variant, that the clusters were made in) and four figures: ``metrics``, ``sizes``, ``examples``, ``largest``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.kmeans import UnitConcatenation, kmeans, kmeans_at, prepare, restarts
from ..methods.pca_fit import covariance, reduce
from ..methods.sampling import sample_indices, spread_indices

if TYPE_CHECKING:
    from ..engine.config import ClusterConfig


def k_grid(n: int, k_min: int, k_max: int, steps: int) -> tuple[list[int], str]:
    """The k values to try for n images, and a note when the request had to shrink to fit."""
    if n < 3:
        raise StageError(f"clustering needs at least 3 images, got {n}")
    auto = k_max <= 0
    wanted = max(10, int(2 * math.sqrt(n))) if auto else k_max
    top = min(wanted, n - 1)
    note = "" if top == wanted or auto else f"k_max {wanted} is more clusters than {n} images allow; lowered to {top}"
    low = min(max(2, k_min), top)
    return sorted({int(round(k)) for k in np.linspace(low, top, max(1, steps))}), note


def sweep(x: np.ndarray, ks: list[int], n_init: int, sample: int, seed: int, gpu=None) -> dict:
    """Metrics per k; ``labels`` holds the assignment for every k."""
    rows = {"k": [], "silhouette": [], "davies_bouldin": [], "sse": [], "labels": {}}
    for k in ks:
        fit = kmeans_at(x, k, n_init, sample, seed, gpu)
        rows["k"].append(k)
        for key in ("silhouette", "davies_bouldin", "sse"):
            rows[key].append(fit[key])
        rows["labels"][k] = fit["labels"]
    return rows


def kneedle(ks: list[int], sse: list[float]) -> int:
    """The elbow of a decreasing SSE curve: the k farthest below the chord between its ends."""
    if len(ks) < 3:
        return ks[0]
    x = (np.asarray(ks, float) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(sse, float)
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    return int(ks[int(np.argmax((1.0 - y) - x))])


def choose_k(ks: list[int], silhouette: list[float], davies_bouldin: list[float], elbow: int) -> tuple[int, str]:
    if not np.isfinite(np.asarray(silhouette, float)).any():  # fewer than two clusters came out at every k
        return elbow, (f"silhouette and Davies-Bouldin are undefined at every k (k-means found a single cluster: "
                       f"the images are alike); k={elbow}, the elbow of the SSE curve")
    sil, db = np.nan_to_num(silhouette, nan=-1.0), np.nan_to_num(davies_bouldin, nan=np.inf)
    best_sil, best_db = ks[int(np.argmax(sil))], ks[int(np.argmin(db))]
    votes = {"elbow": elbow, "silhouette": best_sil, "Davies-Bouldin": best_db}
    said = f"elbow at k={elbow}, best silhouette at k={best_sil}, best Davies-Bouldin at k={best_db}"
    if elbow == best_sil == best_db:
        return elbow, f"all three agree: {said}"
    for k in (best_sil, best_db, elbow):
        agreeing = [name for name, v in votes.items() if v == k]
        if len(agreeing) >= 2:
            return k, f"{' and '.join(agreeing)} agree on k={k} ({said})"
    shortfall = dict(zip(ks, shortfalls(sil, db)))
    chosen = min(votes.values(), key=lambda k: (shortfall[k], k))
    return chosen, (f"no two agree ({said}); k={chosen} is the nearest to both bests (shortfall "
                    f"{shortfall[chosen]:.2f} of each score's range over the grid)")


def shortfalls(silhouette: np.ndarray, davies_bouldin: np.ndarray) -> np.ndarray:
    """Per k, how far it falls short of the best silhouette plus how far short of the best Davies-Bouldin,
    each as a share of that score's range over the grid. Ranks would turn a 1 % move of a Davies-Bouldin into
    as large a step as a 20 % gap in silhouette (on all 70,000 Fashion-MNIST images such a move flipped k
    from 2 to 22); shares of the range keep the gaps' sizes."""
    def share(gap: np.ndarray) -> np.ndarray:
        finite = gap[np.isfinite(gap)]
        spread = finite.max() - finite.min() if finite.size else 0.0
        return np.nan_to_num(gap / max(spread, 1e-12), nan=1.0, posinf=1.0)

    return share(silhouette.max() - silhouette) + share(davies_bouldin - davies_bouldin.min())


def fitted_on_all(x: np.ndarray, swept_rows: dict, swept: np.ndarray, k: int, cfg: "ClusterConfig", gpu=None
                  ) -> np.ndarray:
    """Every image's cluster at ``k``: the sweep's own assignment when it ran on all images, else k-means
    fitted on all of them (seeded, with the restarts their number calls for)."""
    if len(swept) == len(x):
        return swept_rows["labels"][k]
    return kmeans(x, k, restarts(cfg.n_init, len(x), cfg.n_init_one_from), cfg.seed, gpu)[0]


def medoid_order(x: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Members sorted by distance to their centroid, the most typical first."""
    centre = x[members].mean(axis=0)
    return members[np.argsort(np.linalg.norm(x[members] - centre, axis=1), kind="stable")]


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.clusters
    manifest, root = read_manifest(ctx)
    labels = manifest_labels(manifest)
    cls = ctx.load_npy("extract", "embeddings", mmap=True)
    mean = ctx.load_npy("extract", "patch_mean", mmap=True)
    swept = sample_indices(len(cls), cfg.sweep_sample, cfg.seed)  # the images the sweep runs on
    ks, note = k_grid(len(swept), cfg.k_min, cfg.k_max, cfg.steps)
    # A CNN's global embedding is the mean of its last feature map: the three variants are then one set of
    # features (the concatenation only doubles it), so one sweep stands for all three.
    probe = spread_indices(len(cls), 1000)
    identical = bool(np.allclose(cls[probe], mean[probe], atol=1e-5))
    from ..methods.accel import (  # on a GPU when there is one (``device``)
        device,
        moments,
    )

    gpu, moments_here = device(ctx.cfg.device), moments(ctx.cfg.device) or covariance
    prepared = {"CLS / global": prepare(cls, cfg.pca_dims, moments_here)}
    if not identical:
        prepared["mean of patch tokens"] = prepare(mean, cfg.pca_dims, moments_here)
        prepared["concatenation"] = reduce(UnitConcatenation(cls, mean), cfg.pca_dims, moments=moments_here)
    n_init = restarts(cfg.n_init, len(swept), cfg.n_init_one_from)
    sweeps = {name: sweep(x[swept], ks, n_init, cfg.silhouette_sample, cfg.seed, gpu) for name, x in prepared.items()}
    choices = {}
    for name, rows in sweeps.items():
        elbow = kneedle(rows["k"], rows["sse"])
        k, reason = choose_k(rows["k"], rows["silhouette"], rows["davies_bouldin"], elbow)
        choices[name] = {"elbow": elbow, "k": k, "reason": reason,
                         "silhouette": rows["silhouette"][rows["k"].index(k)]}
    variant = max(choices, key=lambda name: (choices[name]["silhouette"], name == "CLS / global"))
    chosen_k = choices[variant]["k"]
    x = prepared[variant]
    elbow_k = choices[variant]["elbow"]
    assignment = fitted_on_all(x, sweeps[variant], swept, chosen_k, cfg, gpu)
    ctx.save_npy("assignment", assignment)
    ctx.save_npy("elbow_assignment", assignment if elbow_k == chosen_k else fitted_on_all(x, sweeps[variant], swept,
                                                                                         elbow_k, cfg, gpu))
    ctx.save_npy("features", x)
    ctx.save_json("sweep", {name: {key: rows[key] for key in ("k", "silhouette", "davies_bouldin", "sse")}
                                 for name, rows in sweeps.items()})

    sizes = np.bincount(assignment, minlength=chosen_k)
    figures.draw_metrics(sweeps, choices, variant, ctx.output("metrics"), identical)
    figures.draw_sizes(sizes, chosen_k, ctx.output("sizes"))
    order = [int(c) for c in np.argsort(-sizes, kind="stable") if sizes[c] > 0]  # k-means can leave a cluster empty
    examples = [medoid_order(x, np.flatnonzero(assignment == c))[0] for c in order]
    figures.image_grid([figures.thumbnail(root / manifest[i]["path"], 64) for i in examples],
                       [f"#{c} ({sizes[c]})" for c in order], f"One image per cluster (all {len(order)}, largest first)",
                       ctx.output("examples"), columns=min(16, max(4, math.ceil(math.sqrt(chosen_k * 16 / 9)))))
    largest = int(order[0])
    members = medoid_order(x, np.flatnonzero(assignment == largest))
    shown = members[:48]
    figures.image_grid([figures.thumbnail(root / manifest[i]["path"], 64) for i in shown],
                       [labels[i][:12] for i in shown],
                       f"The largest cluster: #{largest}, {len(members)} images" + (" (48 most typical shown)" if len(members) > 48 else ""),
                       ctx.output("largest"), columns=12, text_pt=10)
    summary = {"ks": ks, "adjustment": note, "n_init": n_init, "pca_dims": int(x.shape[1]),
               "sweep_images": int(len(swept)), "sweep_sampled": len(swept) < len(cls),
               "silhouette_sampled": len(swept) > cfg.silhouette_sample, "silhouette_sample": cfg.silhouette_sample,
               "choices": choices, "variant": variant, "k": chosen_k, "reason": choices[variant]["reason"],
               "largest": {"cluster": largest, "size": int(sizes[largest])},
               "sizes": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
               "cls_equals_patch_mean": identical}
    if len(set(labels)) > 1:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        summary["ari"] = round(float(adjusted_rand_score(labels, assignment)), 4)
        summary["nmi"] = round(float(normalized_mutual_info_score(labels, assignment)), 4)
    return summary


STAGE = Stage(
    name="clusters",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.patch_mean"),
    params=("clusters", "device"),
    outputs={"sweep": "sweep.json", "assignment": "cluster_labels.npy", "elbow_assignment": "elbow_labels.npy",
             "features": "cluster_features.npy", "metrics": "clusters_metrics.png",
             "sizes": "cluster_sizes.png", "examples": "cluster_examples.png", "largest": "largest_cluster.png"},
)
