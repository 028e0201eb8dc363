"""Stage ``fidelity``: one table of how faithful every map is to the embedding space.

Inputs: ``extract`` (embeddings), ``neighbours`` (the embedding graph and its measured recall), ``pca``,
``tsne``, ``umap``, ``parametric``. Params: ``fidelity``. For each map: trustworthiness (scikit-learn, on the
embeddings at unit length, i.e. cosine) and the share of each image's ``k`` nearest neighbours (cosine,
read from the graph) that are among its ``k`` nearest on the map. The parametric maps are judged
separately on their training images and on the held-out images they never saw. Beside them, from ``stability``
(when it ran): how far the map's points move, and which map neighbours stay, when it is fitted with other seeds.
Output: ``table`` (the rows of the table).
"""

from __future__ import annotations

from ..engine.stage import Stage, StageContext
from ..methods.quality import graph_fidelity

MAPS = (("PCA (2 components)", "pca"), ("t-SNE", "tsne"), ("UMAP", "umap"))
SEEDLESS = {"moved_median": 0.0, "moved_p99": 0.0, "neighbours_survive": 1.0}  # PCA has no seed to change


def across_seeds(stability: dict, key: str, split: str) -> dict:
    """A map's figures from the ``stability`` stage's summary for one split ({} when it was not measured)."""
    if key == "pca":
        return dict(SEEDLESS)
    found = stability.get("maps", {}).get(key, {}).get(split, {})
    return {name: found[name] for name in SEEDLESS if name in found}


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.fidelity
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    graph = ctx.load_npy("neighbours", "embedding_idx", mmap=True)
    stability = ctx.summary("stability") if ctx.has("stability") else {}
    rows = []
    for name, stage in MAPS:
        if not ctx.has(stage):
            continue
        coords = ctx.load_npy(stage, "coords")[:, :2]
        rows.append({"map": name, "split": "all", **graph_fidelity(embeddings, graph, coords, cfg.k, cfg.seed),
                     "seeds": across_seeds(stability, stage, "all")})
    parametric = ctx.summary("parametric") if ctx.has("parametric") else {}
    for name, key in (("parametric UMAP", "param_umap"), ("t-SNE MLP", "tsne_mlp")):
        if key not in parametric:
            continue
        for split in ("train", "heldout"):
            rows.append({"map": name, "split": "held out" if split == "heldout" else "training (sample)",
                         **parametric[key][split], "seeds": across_seeds(stability, key, split)})
    ctx.save_json("table", rows)
    spaces = {space: ctx.load_json("neighbours", f"{space}_facts") for space in ("embedding", "pca", "pixels")}
    return {"k": cfg.k, "rows": rows, "trust": {r["map"]: r["trustworthiness"] for r in rows if r["split"] == "all"},
            "seeds": {key: stability.get(key) for key in ("sample", "refits", "k")},
            "graph": {space: {key: facts.get(key) for key in ("method", "index", "recall", "recall_queries", "k")}
                      for space, facts in spaces.items() if facts}}


STAGE = Stage(
    name="fidelity",
    run=run,
    inputs=("extract.embeddings", "neighbours.embedding_idx", "neighbours.embedding_facts", "neighbours.pca_facts",
            "neighbours.pixels_facts", "pca.coords", "tsne.coords",
            "umap.coords", "parametric.summary", "stability.summary"),
    optional=("tsne", "umap", "parametric", "stability"),
    params=("fidelity",),
    outputs={"table": "fidelity.json"},
)
