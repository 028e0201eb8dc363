"""Stage ``parametric``: a parametric UMAP and a t-SNE-approximating MLP, judged on images they never saw.

Inputs: ``ingest`` (labels), ``extract`` (embeddings), ``tsne`` (the t-SNE of all images), ``umap``
(its settings, and its time for comparison), ``neighbours`` (the embedding graph: the parametric UMAP's
fuzzy graph is built from it). Params: ``parametric``, ``fidelity``. Outputs: ``param_umap``
and ``tsne_mlp`` (N, 2; every image projected by the trained network), ``heldout`` (the held-out mask),
the two networks' weights (``*_weights``: state dicts, read back with ``weights_only=True``) and ``heads``
(their shapes), and the two maps (``*_map``) with held-out images marked.
With an earlier run of the same settings in this output folder (``keep_place``), both heads continue from its
weights for ``parametric.resume_*_epochs``; images keep the side of the split they were on (a new image is
split as a fresh run would split it), so no image judged as unseen was trained on; ``since_last`` says how far
each map's old images moved.
"""

from __future__ import annotations

import logging

import numpy as np

from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_ids, manifest_labels, read_manifest
from ..methods import layout_update
from ..methods.map_head_training import LAYERS, judge, timed_projection, train_heads
from ..methods.sampling import holdout_split

HEADS = ("param_umap", "tsne_mlp")
log = logging.getLogger("embdeck")


def kept_split(ctx: StageContext, match: layout_update.Carried, labels: list[str]) -> np.ndarray:
    """The held-out mask when resuming: each old image on its earlier side, new ones split among themselves."""
    heldout = np.zeros(match.total, bool)
    heldout[match.now] = ctx.earlier_npy("heldout")[match.before]
    new = np.setdiff1d(np.arange(match.total), match.now)
    heldout[new] = holdout_split([labels[i] for i in new], ctx.cfg.parametric.holdout, ctx.cfg.parametric.seed)
    return heldout


def run(ctx: StageContext) -> dict:
    import torch

    from ..imaging.devices import pick_device
    from ..pictures import figures

    cfg, k = ctx.cfg.parametric, ctx.cfg.fidelity.k
    torch.use_deterministic_algorithms(True)
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    tsne = ctx.load_npy("tsne", "coords")
    manifest = read_manifest(ctx)[0]
    labels, ids = manifest_labels(manifest), manifest_ids(manifest)
    match = layout_update.carried(ctx.earlier_npy("row_ids"), ids) if ctx.earlier is not None else None
    heldout = holdout_split(labels, cfg.holdout, cfg.seed) if match is None else kept_split(ctx, match, labels)
    train = np.flatnonzero(~heldout)
    knn = ctx.load_npy("neighbours", "embedding_idx"), ctx.load_npy("neighbours", "embedding_values")
    device = pick_device(ctx.cfg.device, "device")
    earlier = None if match is None else {
        name: torch.load(ctx.earlier_path(f"{name}_weights"), map_location="cpu", weights_only=True) for name in HEADS}
    trained = train_heads(embeddings, tsne, heldout, ctx.cfg, knn, ctx.summary("umap")["n_neighbors"], device,
                          earlier)
    projection = next(iter(trained.values())).projection

    results, heads = {}, {}
    for name, head in trained.items():
        coords, seconds_per_image = timed_projection(head, embeddings)
        ctx.save_npy(name, coords)
        torch.save(head.state_dict(), ctx.output(f"{name}_weights"))
        heads[name] = {"layers": LAYERS[name], "hidden": cfg.hidden, "projection": list(projection.shape)}
        refit = ctx.summary("umap" if name == "param_umap" else "tsne")["seconds"]
        results[name] = {
            **judge(embeddings, coords, heldout, train, k, ctx.cfg.fidelity.seed),
            **head.fit_facts,
            "ms_per_image": round(seconds_per_image * 1000, 5),
            "refit_ms_per_image": round(refit / len(embeddings) * 1000, 4),
            "speedup_vs_refit": round(refit / len(embeddings) / max(seconds_per_image, 1e-12), 1),
            "since_last": None if match is None else layout_update.moved(ctx.earlier_npy(name), coords, match),
        }
        if match is not None:
            log.info(layout_update.said(name, results[name]["since_last"]))
    errors = np.linalg.norm(tsne - np.load(ctx.output("tsne_mlp")), axis=1)
    spread = float(np.sqrt((tsne ** 2).sum(axis=1).mean()))
    results["tsne_mlp"]["error"] = {
        split: {"rmse": round(float(np.sqrt((errors[mask] ** 2).mean())), 4),
                "relative_rmse": round(float(np.sqrt((errors[mask] ** 2).mean()) / spread), 4)}
        for split, mask in (("train", train), ("heldout", heldout))
    }
    ctx.save_npy("heldout", heldout)
    ctx.save_npy("row_ids", ids)
    ctx.save_json("heads", heads)
    for name, title in (("param_umap", "Parametric UMAP (PyTorch)"), ("tsne_mlp", "t-SNE approximated by an MLP")):
        figures.scatter_by_label(np.load(ctx.output(name)), labels, title,
                                 ctx.output(f"{name}_map"), highlight=heldout,
                                 highlight_label="held out (never trained on)")
    return {"heldout": int(heldout.sum()), "train": int(len(train)), "projection_dims": int(projection.shape[1]),
            "resumed": match is not None, **results}


STAGE = Stage(
    name="parametric",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "tsne.coords", "tsne.summary",
            "umap.summary", "neighbours.embedding_idx", "neighbours.embedding_values"),
    params=("parametric", "umap", "fidelity", "device"),
    outputs={"param_umap": "param_umap.npy", "tsne_mlp": "tsne_mlp.npy", "heldout": "heldout.npy",
             "param_umap_weights": "param_umap.pt", "tsne_mlp_weights": "tsne_mlp.pt", "heads": "heads.json",
             "row_ids": "row_ids.npy",
             "param_umap_map": "param_umap_map.png", "tsne_mlp_map": "tsne_mlp_map.png"},
    resumes=("param_umap", "tsne_mlp", "param_umap_weights", "tsne_mlp_weights", "heldout", "row_ids"),
)
