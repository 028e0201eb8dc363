"""Stage ``fidelity``: one table of how faithful every map is to the embedding space.

Inputs: ``extract`` (embeddings), ``pca``, ``tsne``, ``umap``, ``parametric``. Params: ``fidelity``.
For each map: trustworthiness (scikit-learn) and the share of each image's ``k`` nearest neighbours
(Euclidean, in the embedding space) that are among its ``k`` nearest on the map. The parametric maps are
judged separately on their training images and on the held-out images they never saw.
Output: ``table`` (the rows of the table).
"""

from __future__ import annotations

from ..quality import map_fidelity
from ..stage import Stage, StageContext

MAPS = (("PCA (2 components)", "pca"), ("t-SNE", "tsne"), ("UMAP", "umap"))


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.fidelity
    embeddings = ctx.load_npy("extract", "embeddings")
    rows = []
    for name, stage in MAPS:
        if not ctx.has(stage):
            continue
        coords = ctx.load_npy(stage, "coords")[:, :2]
        rows.append({"map": name, "split": "all", **map_fidelity(embeddings, coords, cfg.k, cfg.seed)})
    parametric = ctx.summary("parametric") if ctx.has("parametric") else {}
    for name, key in (("parametric UMAP", "param_umap"), ("t-SNE MLP", "tsne_mlp")):
        if key not in parametric:
            continue
        for split in ("train", "heldout"):
            rows.append({"map": name, "split": "held out" if split == "heldout" else "training (sample)",
                         **parametric[key][split]})
    ctx.save_json("table", rows)
    return {"k": cfg.k, "rows": rows, "trust": {r["map"]: r["trustworthiness"] for r in rows if r["split"] == "all"}}


STAGE = Stage(
    name="fidelity",
    run=run,
    inputs=("extract.embeddings", "pca.coords", "tsne.coords", "umap.coords", "parametric.summary"),
    optional=("tsne", "umap", "parametric"),
    params=("fidelity",),
    outputs={"table": "fidelity.json"},
)
