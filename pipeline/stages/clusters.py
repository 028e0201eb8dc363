"""Stage ``clusters``: the k-means sweep of seed 003, on three embedding variants, and a justified k.

Inputs: ``ingest`` (labels), ``extract`` (global embedding, mean of patch tokens, and the thumbnails it kept,
for the figures: no image is read again). Params:
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

import numpy as np

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.kmeans import UnitConcatenation, prepare, restarts
from ..methods.kmeans_sweep import choose_k, fitted_on_all, k_grid, kneedle, medoid_order, sweep
from ..methods.pca_fit import covariance, reduce
from ..methods.sampling import sample_indices, spread_indices


def run(ctx: StageContext) -> dict:
    from ..pictures import figures

    cfg = ctx.cfg.clusters
    labels = manifest_labels(read_manifest(ctx)[0])
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)  # kept at extraction: no image is read again
    cls = ctx.load_npy("extract", "embeddings", mmap=True)
    mean = ctx.load_npy("extract", "patch_mean", mmap=True)
    swept = sample_indices(len(cls), cfg.sweep_sample, cfg.seed)  # the images the sweep runs on
    ks, note = k_grid(len(swept), cfg.k_min, cfg.k_max, cfg.steps)
    # A CNN's global embedding is the mean of its last feature map: the three variants are then one set of
    # features (the concatenation only doubles it), so one sweep stands for all three.
    probe = spread_indices(len(cls), 1000)
    identical = bool(np.allclose(cls[probe], mean[probe], atol=1e-5))
    from ..methods.accel import device, moments  # on a GPU when there is one (``device``)

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
    figures.image_grid([thumbs[i] for i in examples],
                       [f"#{c} ({sizes[c]})" for c in order], f"One image per cluster (all {len(order)}, largest first)",
                       ctx.output("examples"), columns=min(16, max(4, math.ceil(math.sqrt(chosen_k * 16 / 9)))))
    largest = int(order[0])
    members = medoid_order(x, np.flatnonzero(assignment == largest))
    shown = members[:48]
    figures.image_grid([thumbs[i] for i in shown],
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
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.patch_mean", "extract.thumbs"),
    params=("clusters", "device"),
    outputs={"sweep": "sweep.json", "assignment": "cluster_labels.npy", "elbow_assignment": "elbow_labels.npy",
             "features": "cluster_features.npy", "metrics": "clusters_metrics.png",
             "sizes": "cluster_sizes.png", "examples": "cluster_examples.png", "largest": "largest_cluster.png"},
)
