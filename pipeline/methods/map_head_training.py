"""Training the parametric map heads (``map_heads.MapHead``) on a run's embeddings, and judging them on
images they never saw: the parametric UMAP on the run's neighbour graph, the t-SNE MLP on the t-SNE map.

The ``parametric`` stage calls ``train_heads`` and ``judge``; the bench calls them at growing N.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from .sampling import sample_of

if TYPE_CHECKING:
    import torch

    from ..engine.config import Config

PROJECTION_DIMS = 50


LAYERS = {"param_umap": 2, "tsne_mlp": 1}  # the t-SNE MLP is the seed's: in -> 256 -> ReLU -> 2


def judge(embeddings, coords, heldout, trained_rows, k: int, seed: int) -> dict:
    """Fidelity on held-out images and on as many training images (a seeded sample).

    Both measures depend on how many points share the map, so the training side is sampled to the
    held-out count: otherwise the comparison would favour whichever side has more points.
    """
    from .knn import normalise
    from .quality import map_fidelity

    sample = sample_of(trained_rows, int(heldout.sum()), seed)
    held = np.flatnonzero(heldout)
    return {"train": map_fidelity(normalise(embeddings[sample]), coords[sample], k, seed),
            "heldout": map_fidelity(normalise(embeddings[held]), coords[held], k, seed)}


def timed_projection(head, embeddings) -> tuple[np.ndarray, float]:
    from .map_heads import project

    project(head, embeddings[:8])  # warm-up
    started = time.perf_counter()
    coords = project(head, embeddings)
    return coords, (time.perf_counter() - started) / len(embeddings)


def training_knn(idx: np.ndarray, similarity: np.ndarray, train: np.ndarray, n_neighbors: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's k-NN arrays over the training images, read from the run's graph: each training image
    first, then its nearest other training images (held-out ones left out), numbered among the training
    images, at their distance on the unit sphere (sqrt(2 - 2 cos), as the UMAP stage gives umap-learn); -1 at
    distance inf where the graph has no more training neighbours."""
    position = np.full(len(idx), -1, np.int64)
    position[train] = np.arange(len(train))
    local = position[idx[train]]
    order = np.argsort(local < 0, axis=1, kind="stable")[:, :n_neighbors - 1]  # training neighbours first
    found = np.take_along_axis(local, order, 1)
    distances = np.sqrt(np.maximum(2.0 - 2.0 * np.take_along_axis(similarity[train], order, 1), 0.0)).astype(np.float32)
    distances[found < 0] = np.inf
    first = np.arange(len(train))[:, None]
    return np.hstack([first, found]), np.hstack([np.zeros((len(train), 1), np.float32), distances])


def train_heads(embeddings: np.ndarray, tsne: np.ndarray, heldout: np.ndarray, cfg: "Config",
                knn: tuple[np.ndarray, np.ndarray] | None = None, n_neighbors: int | None = None,
                device: "torch.device | None" = None, earlier: dict | None = None) -> dict:
    """Both map networks, trained on the non-held-out images; each head carries ``fit_facts``.

    The parametric UMAP learns the fuzzy graph of all training images, read from the run's neighbour graph
    ``knn`` (indices, cosine similarities; without it, searched here), sampling at most
    ``umap_edges_per_epoch`` edges an epoch; the t-SNE MLP regresses the t-SNE coordinates of at most
    ``tsne_images_per_epoch`` training images an epoch. Both caps keep the training time from growing with
    the set; the bench shows held-out fidelity at 70,000 and at a million points.

    ``earlier``: each head's state dict from an earlier run. The heads then continue from those weights (their
    projection included) for ``parametric.resume_*_epochs``, so images already on the map stay where they were.
    """
    from .knn import exact_graph
    from .map_heads import MapHead, projected, train_tsne_regressor, train_umap_encoder, umap_graph
    from .pca_fit import scaled_projection

    p = cfg.parametric
    train = np.flatnonzero(~heldout)
    if heldout.sum() < 3 or len(train) < 5:
        raise StageError(f"parametric maps need at least 5 training and 3 held-out images; got {len(train)} and "
                         f"{int(heldout.sum())} (lower parametric.holdout or add images)")
    k = min(n_neighbors or cfg.umap.n_neighbors, len(train) - 1)
    if knn is None:
        knn = exact_graph(embeddings, min(len(embeddings) - 1, 2 * k), "ip", True, 65_536)
    if earlier is None:
        centre, projection = scaled_projection(embeddings, PROJECTION_DIMS, train)
    else:
        centre, projection = (earlier["param_umap"][key].numpy() for key in ("centre", "projection"))
    heads, on_device = {}, ({"device": device} if device is not None else {})
    epochs = ({"param_umap": p.umap_epochs, "tsne_mlp": p.tsne_epochs} if earlier is None else
              {"param_umap": p.resume_umap_epochs, "tsne_mlp": p.resume_tsne_epochs})
    for name in ("param_umap", "tsne_mlp"):
        head = MapHead(projection, centre, p.hidden, LAYERS[name], seed=p.seed)
        if earlier is not None:
            head.load_state_dict(earlier[name])
        x = projected(head, embeddings, train)
        started = time.perf_counter()
        if name == "param_umap":
            graph = umap_graph(*training_knn(*knn, train, k), k, p.seed)
            history = train_umap_encoder(head, x, graph, cfg.umap.min_dist, epochs[name], p.edge_batch,
                                         p.negative_samples, p.learning_rate, p.seed, p.umap_edges_per_epoch,
                                         **on_device)
            extra = {"graph_edges": int(len(graph[0])), "edges_per_epoch": min(len(graph[0]), p.umap_edges_per_epoch)}
        else:
            history = train_tsne_regressor(head, x, tsne[train], epochs[name], p.batch_size, p.learning_rate,
                                           p.seed, p.tsne_images_per_epoch, **on_device)
            extra = {"images_per_epoch": min(len(train), p.tsne_images_per_epoch)}
        head.cpu()  # projected, timed and saved on the CPU, whichever device trained it
        head.fit_facts = {"train_seconds": round(time.perf_counter() - started, 3), "final_loss": round(history[-1], 5),
                          "train_images": int(len(train)), "epochs": epochs[name], "continued": earlier is not None,
                          **extra}
        heads[name] = head
    return heads

