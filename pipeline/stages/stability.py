"""Stage ``stability``: how far each map's points move when it is fitted again with other seeds.

Inputs: ``ingest`` (labels, for the parametric maps' held-out split), ``extract`` (embeddings), ``pca``
(PCA-50, what t-SNE maps), and the summaries of ``tsne``, ``umap`` and ``parametric`` (a map that did not run
is not refitted). Params: ``stability`` (the sample, how many other seeds, k) and the maps' own sections.
On a seeded sample of ``stability.sample`` images each map is fitted with its own seed and with
``stability.refits`` others (seed + 1, seed + 2, ...), with the run's settings; each refit is compared with
the first by ``methods.stability`` (movement after Procrustes as a share of the RMS radius, median and 99th
percentile; neighbours that survive). The t-SNE MLP at another seed regresses the sample's t-SNE at that seed:
the whole pipeline run again, as a user changing ``seed`` would. The parametric maps are summarised apart on
the sample's training and held-out images, as the fidelity table judges them. Output: ``table``.
"""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import manifest_labels, read_manifest
from ..methods import stability
from ..methods.gpu_maps import tsne_map, use_cuml
from ..methods.sampling import holdout_split, sample_indices
from ..methods.tsne_fit import fit_tsne, gradient_method, valid_perplexity
from ..methods.umap_fit import fit_umap, valid_neighbours


def tsne_layouts(ctx: StageContext, sample: np.ndarray, seeds: list[int]) -> list[np.ndarray]:
    cfg = ctx.cfg.tsne
    points = np.asarray(ctx.load_npy("pca", "coords")[sample])
    perplexity, _ = valid_perplexity(cfg.perplexity, len(points))
    if use_cuml(cfg.engine, ctx.cfg.device):
        return [tsne_map(points, perplexity, cfg.n_iter, seed) for seed in seeds]
    method = gradient_method(cfg.method, len(points), cfg.fft_from)
    # One thread: on a sample this small, threads cost more than they save (1,000 demo points, 1,000 iterations,
    # 2 busy cores: 3.6-3.9 s on one thread, 33.6 s on two). tsne.n_jobs says how to run, not what comes out.
    return [np.asarray(fit_tsne(points, perplexity, cfg.n_iter, method, seed, 1), np.float32) for seed in seeds]


def umap_layouts(ctx: StageContext, embeddings: np.ndarray, seeds: list[int]) -> list[np.ndarray]:
    cfg = ctx.cfg.umap
    n_neighbors, _ = valid_neighbours(cfg.n_neighbors, len(embeddings))
    on_gpu = use_cuml(cfg.engine, ctx.cfg.device)
    return [fit_umap(embeddings, n_neighbors, cfg.min_dist, seed, None, on_gpu, cfg.init) for seed in seeds]


def head_layouts(ctx: StageContext, embeddings: np.ndarray, heldout: np.ndarray, seeds: list[int],
                 tsne: list[np.ndarray] | None) -> dict[str, list[np.ndarray]]:
    """Both parametric maps of the sample, trained once per seed (the t-SNE MLP on that seed's t-SNE)."""
    import torch

    from ..imaging.devices import pick_device
    from ..methods.map_head_training import train_heads
    from ..methods.map_heads import project

    torch.use_deterministic_algorithms(True)
    device = pick_device(ctx.cfg.device, "device")
    n_neighbors, _ = valid_neighbours(ctx.cfg.umap.n_neighbors, len(embeddings))
    layouts: dict[str, list[np.ndarray]] = {"param_umap": [], "tsne_mlp": []}
    for i, seed in enumerate(seeds):
        cfg = SimpleNamespace(parametric=dataclasses.replace(ctx.cfg.parametric, seed=seed), umap=ctx.cfg.umap)
        target = tsne[i] if tsne else np.zeros((len(embeddings), 2), np.float32)
        for name, head in train_heads(embeddings, target, heldout, cfg, None, n_neighbors, device).items():
            layouts[name].append(project(head, embeddings))
    return layouts if tsne else {"param_umap": layouts["param_umap"]}


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg.stability
    embeddings = ctx.load_npy("extract", "embeddings", mmap=True)
    sample = sample_indices(len(embeddings), cfg.sample, cfg.seed)
    sampled = np.asarray(embeddings[sample], np.float32)
    labels = np.asarray(manifest_labels(read_manifest(ctx)[0]))[sample].tolist()
    maps: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def measure(name: str, layouts: list[np.ndarray], splits: dict[str, np.ndarray | None]) -> None:
        moved, kept = stability.compare_refits(layouts[0], layouts[1:], cfg.k)
        maps[name] = {split: stability.summary(moved, kept, rows) for split, rows in splits.items()}

    def seeds(base: int) -> list[int]:
        return [base + i for i in range(cfg.refits + 1)]

    tsne = None
    for name in ("tsne", "umap", "parametric"):
        if not ctx.has(name):
            skipped[name] = f"{name} did not run"
            continue
        started = time.perf_counter()
        try:
            if name == "tsne":
                tsne = tsne_layouts(ctx, sample, seeds(ctx.cfg.tsne.seed))
                measure("tsne", tsne, {"all": None})
            elif name == "umap":
                measure("umap", umap_layouts(ctx, sampled, seeds(ctx.cfg.umap.seed)), {"all": None})
            else:
                p = ctx.cfg.parametric
                heldout = holdout_split(labels, p.holdout, p.seed)
                both = head_layouts(ctx, sampled, heldout, seeds(p.seed), tsne)
                for head, layouts in both.items():
                    measure(head, layouts, {"train": ~heldout, "heldout": heldout})
                if "tsne_mlp" not in both:
                    skipped["tsne_mlp"] = "t-SNE did not run on the sample"
        except StageError as error:
            skipped[name] = str(error)
        seconds[name] = round(time.perf_counter() - started, 3)
    ctx.save_json("table", maps)
    return {"sample": len(sample), "refits": cfg.refits, "k": cfg.k, "maps": maps, "skipped": skipped,
            "seconds": seconds}


STAGE = Stage(
    name="stability",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "pca.coords", "tsne.summary",
            "umap.summary", "parametric.summary"),
    optional=("tsne", "umap", "parametric"),
    params=("stability", "tsne", "umap", "parametric", "device"),
    outputs={"table": "stability.json"},
)
