"""Stage ``findings``: what is wrong with the collection, what it is made of, and what the run found, in words.

Inputs: ``ingest`` (files, labels, hashes), ``extract`` (thumbnails, the small pixel copies), ``neighbours``
(the embedding and raw-pixel graphs), ``clusters`` (assignments at the chosen and the elbow's k, and the
features they were made in), ``retrieval`` and ``classes`` (when there are labels). Params: ``findings``.
Nothing is searched here.
- Near-duplicates: one picture, edited (``pipeline.analyses.near_duplicates``): among each image's neighbours in the
  embedding and raw-pixel graphs, the pairs whose grey pixels correlate at ``duplicate_floor`` or more and
  stand out from the image's ordinary neighbours (``duplicate_ratio``), grouped as stars (no chaining);
  byte-identical files apart; look-alikes (very similar, not copies) listed apart.
- Outliers: each image's k-NN distance (mean cosine distance to its ``outlier_k`` nearest neighbours).
- Cluster composition at the chosen k and, when that k is below the elbow's, at the elbow's too: each
  cluster's size, majority label and purity, or without labels its most typical images.
- Representatives: the image nearest each k-means centroid at the elbow's k (``representatives`` = 0), as
  the seed's photo sampler does, written as a file list a user can copy.
- The findings: 4 to 8 sentences, each from this run's figures by a rule in ``pipeline.analyses.finding_rules``.
Outputs: ``report`` (all of it), CSVs ``duplicates``, ``outliers``, ``representatives`` and the file list
``representative_files``, figures ``duplicates_figure``, ``outliers_figure``, ``composition``, ``representatives_figure``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..analyses import finding_rules as rules
from ..analyses import near_duplicates
from ..analyses.problems import byte_duplicates, composition, label_groups, representatives
from ..engine.artifacts import write_csv
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods.knn import outlier_scores

GROUPS_SHOWN = 8
LOOKALIKES_LISTED = 200
OUTLIERS_SHOWN = 24


def duplicate_rule(cfg) -> "near_duplicates.Rule":
    return near_duplicates.Rule(floor=cfg.duplicate_floor, ratio=cfg.duplicate_ratio, scale_k=cfg.duplicate_scale_k,
                                candidates=cfg.duplicate_candidates, lookalike=cfg.duplicate_lookalike,
                                local_share=cfg.duplicate_local_share, local_level=cfg.duplicate_local_level)


def duplicates_part(ctx: StageContext, manifest, thumbs, graphs, pixels) -> dict:
    from ..pictures import figures

    exact = byte_duplicates(manifest)
    found = near_duplicates.find(graphs, pixels, duplicate_rule(ctx.cfg.findings))
    groups = [group for group in found["groups"]
              if len({manifest[i]["sha256"] for i in group}) > 1]  # byte-identical files are listed apart
    lookalikes = found["lookalikes"][:LOOKALIKES_LISTED]
    rows = [("near", g, manifest[i]["path"]) for g, group in enumerate(groups, 1) for i in group]
    rows += [("byte-identical", g, manifest[i]["path"]) for g, group in enumerate(exact, 1) for i in group]
    rows += [("look-alike, not a copy", g, manifest[i]["path"]) for g, (a, b, _) in enumerate(lookalikes, 1) for i in (a, b)]
    write_csv(ctx.output("duplicates"), ["kind", "group", "path"], rows)
    shown = groups[:GROUPS_SHOWN]
    columns = max([min(6, len(g)) for g in shown] + [2])
    tiles, captions = [], []
    for number, group in enumerate(shown, 1):
        for position in range(columns):
            if position < len(group):
                tiles.append(thumbs[group[position]])
                captions.append(f"group {number}" if position == 0 else Path(manifest[group[position]]["path"]).name[:14])
            else:
                tiles.append(np.full_like(thumbs[0], 255))
                captions.append("")
    title = (f"Near-duplicates (edited copies of a group's first image): {len(shown)} of {len(groups)} groups"
             if groups else "No near-duplicates (edited copies of one image)")
    figures.image_grid(tiles or [np.full((8, 8, 3), 255, np.uint8)], captions or [""], title,
                       ctx.output("duplicates_figure"), columns=columns, cell=1.2)
    images = sum(map(len, groups))
    return {"rule": found["rule"], "groups": len(groups), "images": images, "share": round(images / len(manifest), 4),
            "bulk": rules.BULK,
            "byte_groups": len(exact), "byte_images": sum(map(len, exact)),
            "lookalikes": len(found["lookalikes"]), "median_ordinary": found["median_ordinary"],
            "median_nearest": found["median_nearest"],
            "lowest_copy": found["lowest_copy"],
            "pairs": found["pairs"], "below_floor": found["below_floor"], "not_standing_out": found["not_standing_out"],
            "local_change": found["local_change"], "variants_split": found["variants_split"],
            "largest": [[manifest[i]["path"] for i in group] for group in shown],
            "lookalikes_shown": [[manifest[a]["path"], manifest[b]["path"], c] for a, b, c in lookalikes[:GROUPS_SHOWN]]}


def outliers_part(ctx: StageContext, manifest, labels, thumbs, similarity) -> dict:
    from ..pictures import figures

    k = min(ctx.cfg.findings.outlier_k, similarity.shape[1])
    scores = outlier_scores(similarity, k)
    order = np.argsort(-scores, kind="stable")
    write_csv(ctx.output("outliers"), ["rank", "path", "label", "knn_distance"],
              ((rank, manifest[i]["path"], labels[i], round(float(scores[i]), 5)) for rank, i in enumerate(order, 1)))
    shown = order[:OUTLIERS_SHOWN]
    figures.image_grid([thumbs[i] for i in shown], [f"{labels[i][:10]} {scores[i]:.2f}" for i in shown],
                       f"The {len(shown)} most isolated images (mean cosine distance to their {k} nearest neighbours)",
                       ctx.output("outliers_figure"), columns=8, cell=1.2)
    top = max(1, math.ceil(0.01 * len(scores)))
    return {"k": k, "score": f"mean cosine distance to the {k} nearest neighbours", "median": round(float(np.median(scores)), 4),
            "top": top, "top_share": round(top / len(scores), 4), "top_mean": round(float(scores[order[:top]].mean()), 4),
            "shown": [{"path": manifest[i]["path"], "score": round(float(scores[i]), 4)} for i in shown]}


def composition_part(ctx: StageContext, manifest, labels, thumbs) -> dict:
    from ..pictures import figures

    summary = ctx.summary("clusters")
    levels = [("chosen", summary["k"], ctx.load_npy("clusters", "assignment"))]
    elbow = summary["choices"][summary["variant"]]["elbow"]
    if elbow > summary["k"]:
        levels.append(("elbow", elbow, ctx.load_npy("clusters", "elbow_assignment")))
    labelled = len(set(labels)) > 1
    parts = {}
    for name, k, assignment in levels:
        rows = composition(assignment, labels)
        parts[name] = {"k": k, "clusters": rows,
                       "groups": label_groups(assignment, labels) if labelled else [],
                       "purities": [row["purity"] for row in rows] if labelled else []}
    if labelled:
        figures.composition(parts, sorted(set(labels)), ctx.output("composition"))
    else:
        features = ctx.load_npy("clusters", "features")
        figures.typical_images(levels[0][2], features, thumbs, ctx.output("composition"), levels[0][1])
    return {"levels": parts, "elbow": elbow, "reason": summary["reason"]}


def representatives_part(ctx: StageContext, manifest, labels, thumbs) -> dict:
    from ..pictures import figures

    features = ctx.load_npy("clusters", "features")
    wanted = ctx.cfg.findings.representatives
    if wanted:
        from sklearn.cluster import KMeans

        assignment = KMeans(n_clusters=min(wanted, len(features)), n_init=4, random_state=ctx.cfg.findings.seed).fit(features).labels_
        how = f"k-means with k = {wanted}"
    else:
        assignment = ctx.load_npy("clusters", "elbow_assignment")
        how = f"the elbow's k = {len(np.unique(assignment))}"
    picks = representatives(features, assignment)
    write_csv(ctx.output("representatives"), ["rank", "path", "label", "cluster_size"],
              ((rank, manifest[i]["path"], labels[i], int((assignment == assignment[i]).sum()))
               for rank, i in enumerate(picks, 1)))
    ctx.output("representative_files").write_text("".join(manifest[i]["path"] + "\n" for i in picks), encoding="utf-8")
    shown = picks[:64]
    figures.image_grid([thumbs[i] for i in shown], [labels[i][:12] for i in shown],
                       f"Representatives: the image nearest each centroid ({how}), {len(shown)} of {len(picks)}",
                       ctx.output("representatives_figure"), columns=min(16, max(4, math.ceil(math.sqrt(len(shown) * 2)))))
    return {"count": len(picks), "how": how}


def sentences(found: dict, labelled: bool) -> list[str]:
    """The findings, in order of what matters most; see pipeline.analyses.finding_rules for each rule."""
    retrieval, classes, parts = found.get("retrieval") or {}, found.get("classes") or {}, found["parts"]
    said: list[str | None] = []
    if "knn_accuracy_raw_pixels" in retrieval:
        said.append(rules.pixels_vs_backbone(retrieval["knn_accuracy"], retrieval["knn_accuracy_raw_pixels"],
                                             retrieval["knn_k"]))
    if "knn_accuracy" in retrieval and "majority_class" in retrieval:
        said.append(rules.chance_baseline(retrieval["knn_accuracy"], retrieval["chance"], retrieval["majority_class"],
                                          retrieval.get("knn_balanced_accuracy"), retrieval["classes"],
                                          retrieval["knn_k"]))
    if classes:
        said.append(rules.probe_vs_knn(classes["probe_accuracy"], classes["knn_accuracy"], classes["knn_k"]))
    composed = parts.get("composition")
    if isinstance(composed, dict) and labelled:
        for level, part in composed["levels"].items():
            why = "the chosen k" if level == "chosen" else "the SSE elbow"
            said.append(rules.cluster_split(part["k"], why, part["groups"], len(classes.get("classes", [])))
                        or rules.cluster_purity(part["k"], why, part["purities"]))
    if classes:
        pair = classes["confused_pairs"][0] if classes["confused_pairs"] else None
        said.append(rules.confused_pair(pair["a"], pair["b"], pair["share"]) if pair else None)
        said.append(rules.hardest_class(classes["per_class_knn"], classes["knn_accuracy"], classes["knn_k"],
                                        classes["class_images"], classes["smallest_judged"]))
    dup = parts["duplicates"]
    said.append(rules.duplicates(dup["groups"], dup["images"], found["images"], dup["rule"], dup["byte_groups"],
                                 dup["byte_images"], dup["lookalikes"]))
    if classes:
        change = tuple(classes["common_change"]) if classes["common_change"] else None
        said.append(rules.label_errors(classes["label_issues"], found["images"], change))
    out = parts["outliers"]
    said.append(rules.outliers(out["top"], out["top_share"], out["top_mean"], out["median"], out["k"]))
    return rules.findings(said)


def run(ctx: StageContext) -> dict:
    manifest = read_manifest(ctx)[0]
    labels = manifest_labels(manifest)
    thumbs = ctx.load_npy("extract", "thumbs", mmap=True)
    idx = ctx.load_npy("neighbours", "embedding_idx")
    similarity = ctx.load_npy("neighbours", "embedding_values")
    graphs = [idx, ctx.load_npy("neighbours", "pixels_idx")]
    parts: dict = {"duplicates": duplicates_part(ctx, manifest, thumbs, graphs, ctx.load_npy("extract", "pixels", mmap=True)),
                   "outliers": outliers_part(ctx, manifest, labels, thumbs, similarity)}
    missing = "" if ctx.has("clusters") else "clustering could not run on this set"
    for name, part in (("composition", composition_part), ("representatives", representatives_part)):
        parts[name] = missing or part(ctx, manifest, labels, thumbs)
    labelled = len(set(labels)) > 1
    found = {"images": len(manifest), "parts": parts,
             "retrieval": ctx.summary("retrieval") if ctx.has("retrieval") else None,
             "classes": ctx.load_json("classes", "report") if ctx.has("classes") else None}
    report = {"sentences": sentences(found, labelled), "parts": parts,
              "without_labels": "" if labelled else "no labels (no class subfolders): per-class accuracy, the "
                                                    "linear probe and label errors need them"}
    ctx.save_json("report", report)
    return report


STAGE = Stage(
    name="findings",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.thumbs", "extract.pixels", "neighbours.embedding_idx",
            "neighbours.pixels_idx",
            "neighbours.embedding_values", "clusters.summary", "clusters.assignment", "clusters.elbow_assignment",
            "clusters.features", "retrieval.summary", "classes.report"),
    optional=("clusters", "retrieval", "classes"),
    optional_outputs=("composition", "representatives", "representative_files", "representatives_figure"),
    params=("findings",),
    outputs={"report": "findings.json", "duplicates": "near_duplicates.csv", "outliers": "outliers.csv",
             "representatives": "representatives.csv", "representative_files": "representatives.txt",
             "duplicates_figure": "near_duplicates.png", "outliers_figure": "outliers.png",
             "composition": "composition.png", "representatives_figure": "representatives.png"},
)
