"""Stage ``parametric``: a parametric UMAP and a t-SNE-approximating MLP, judged on images they never saw.

Inputs: ``ingest`` (labels), ``extract`` (embeddings), ``tsne`` (the t-SNE of all images), ``umap``
(its settings, and its time for comparison). Params: ``parametric``, ``fidelity``. Outputs: ``param_umap``
and ``tsne_mlp`` (N, 2; every image projected by the trained network), ``heldout`` (the held-out mask),
the two networks' weights (``*_weights``: state dicts, read back with ``weights_only=True``) and ``heads``
(their shapes), and the two maps (``*_map``) with held-out images marked.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ..artifacts import StageError
from ..manifest import manifest_labels, read_manifest
from ..sampling import holdout_split, sample_of
from ..stage import Stage, StageContext

if TYPE_CHECKING:
    import torch

    from ..config import Config

PROJECTION_DIMS = 50
LAYERS = {"param_umap": 2, "tsne_mlp": 1}  # the t-SNE MLP is the seed's: in -> 256 -> ReLU -> 2


def judge(embeddings, coords, heldout, trained_rows, k: int, seed: int) -> dict:
    """Fidelity on held-out images and on as many training images (a seeded sample).

    Both measures depend on how many points share the map, so the training side is sampled to the
    held-out count: otherwise the comparison would favour whichever side has more points.
    """
    from ..quality import map_fidelity

    sample = sample_of(trained_rows, int(heldout.sum()), seed)
    return {"train": map_fidelity(embeddings[sample], coords[sample], k, seed),
            "heldout": map_fidelity(embeddings[heldout], coords[heldout], k, seed)}


def timed_projection(head, embeddings) -> tuple[np.ndarray, float]:
    from ..map_heads import project

    project(head, embeddings[:8])  # warm-up
    started = time.perf_counter()
    coords = project(head, embeddings)
    return coords, (time.perf_counter() - started) / len(embeddings)


def train_heads(embeddings: np.ndarray, tsne: np.ndarray, heldout: np.ndarray, cfg: "Config",
                n_neighbors: int | None = None, device: "torch.device | None" = None) -> dict:
    """Both map networks, trained on non-held-out images; each head carries ``fit_facts`` and ``trained_rows``.

    The t-SNE MLP learns from every training image (a cheap regression); the parametric UMAP, whose graph
    objective costs per image, from at most ``umap_max_train_images`` of them (a seeded sample: past some
    thousands of images more training images cost time in proportion and add little; the bench shows
    held-out fidelity against the cap).
    """
    import torch

    from ..map_heads import MapHead, train_tsne_regressor, train_umap_encoder
    from ..pca_fit import scaled_projection

    p = cfg.parametric
    device = device or torch.device("cpu")
    everyone = np.flatnonzero(~heldout)
    if heldout.sum() < 3 or len(everyone) < 5:
        raise StageError(f"parametric maps need at least 5 training and 3 held-out images; got {len(everyone)} and "
                         f"{int(heldout.sum())} (lower parametric.holdout or add images)")
    centre, projection = scaled_projection(embeddings[everyone], PROJECTION_DIMS, p.seed)
    heads = {}
    for name in ("param_umap", "tsne_mlp"):
        rows = sample_of(everyone, p.umap_max_train_images, p.seed) if name == "param_umap" else everyone
        head = MapHead(projection, centre, p.hidden, LAYERS[name], seed=p.seed)
        started = time.perf_counter()
        if name == "param_umap":
            k = min(n_neighbors or cfg.umap.n_neighbors, len(rows) - 1)
            history = train_umap_encoder(head, embeddings[rows], k, cfg.umap.min_dist, p.umap_epochs,
                                         p.edge_batch, p.negative_samples, p.learning_rate, p.seed, device)
        else:
            history = train_tsne_regressor(head, embeddings[rows], tsne[rows], p.tsne_epochs, p.batch_size,
                                           p.learning_rate, p.seed, device)
        head.cpu()  # projected, timed and saved on the CPU, whichever device trained it
        head.fit_facts = {"train_seconds": round(time.perf_counter() - started, 3), "final_loss": round(history[-1], 5),
                          "train_images": int(len(rows))}
        head.trained_rows = rows
        heads[name] = head
    return heads


def run(ctx: StageContext) -> dict:
    import torch

    from .. import figures

    from ..devices import pick_device

    cfg, k = ctx.cfg.parametric, ctx.cfg.fidelity.k
    device = pick_device(cfg.device, "parametric.device")
    # MPS lacks deterministic versions of some kernels: there torch warns instead of refusing to run.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "mps")
    embeddings = ctx.load_npy("extract", "embeddings")
    tsne = ctx.load_npy("tsne", "coords")
    labels = manifest_labels(read_manifest(ctx)[0])
    heldout = holdout_split(labels, cfg.holdout, cfg.seed)
    trained = train_heads(embeddings, tsne, heldout, ctx.cfg, ctx.summary("umap")["n_neighbors"], device)
    projection = next(iter(trained.values())).projection

    results, heads = {}, {}
    for name, head in trained.items():
        coords, seconds_per_image = timed_projection(head, embeddings)
        ctx.save_npy(name, coords)
        torch.save(head.state_dict(), ctx.output(f"{name}_weights"))
        heads[name] = {"layers": LAYERS[name], "hidden": cfg.hidden, "projection": list(projection.shape)}
        refit = ctx.summary("umap" if name == "param_umap" else "tsne")["seconds"]
        results[name] = {
            **judge(embeddings, coords, heldout, head.trained_rows, k, ctx.cfg.fidelity.seed),
            **head.fit_facts,
            "ms_per_image": round(seconds_per_image * 1000, 5),
            "refit_ms_per_image": round(refit / len(embeddings) * 1000, 4),
            "speedup_vs_refit": round(refit / len(embeddings) / max(seconds_per_image, 1e-12), 1),
        }
    errors = np.linalg.norm(tsne - np.load(ctx.output("tsne_mlp")), axis=1)
    spread = float(np.sqrt((tsne ** 2).sum(axis=1).mean()))
    results["tsne_mlp"]["error"] = {
        split: {"rmse": round(float(np.sqrt((errors[mask] ** 2).mean())), 4),
                "relative_rmse": round(float(np.sqrt((errors[mask] ** 2).mean()) / spread), 4)}
        for split, mask in (("train", trained["tsne_mlp"].trained_rows), ("heldout", heldout))
    }
    ctx.save_npy("heldout", heldout)
    ctx.save_json("heads", heads)
    for name, title in (("param_umap", "Parametric UMAP (PyTorch)"), ("tsne_mlp", "t-SNE approximated by an MLP")):
        figures.scatter_by_label(np.load(ctx.output(name)), labels, title,
                                 ctx.output(f"{name}_map"), highlight=heldout,
                                 highlight_label="held out (never trained on)")
    return {"heldout": int(heldout.sum()), "train": results["param_umap"]["train_images"], "device": str(device),
            "train_available": int((~heldout).sum()), "projection_dims": int(projection.shape[1]),
            **results}


STAGE = Stage(
    name="parametric",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "tsne.coords", "tsne.summary",
            "umap.summary"),
    params=("parametric", "fidelity"),
    outputs={"param_umap": "param_umap.npy", "tsne_mlp": "tsne_mlp.npy", "heldout": "heldout.npy",
             "param_umap_weights": "param_umap.pt", "tsne_mlp_weights": "tsne_mlp.pt", "heads": "heads.json",
             "param_umap_map": "param_umap_map.png", "tsne_mlp_map": "tsne_mlp_map.png"},
)
