"""The parametric map heads in PyTorch: networks that map an embedding to a 2-D point, so new images land on the map.

``MapHead`` = a fixed linear projection (PCA fitted on the training images, ``pca_fit.scaled_projection``,
folded in as a layer) and an MLP. Two ways to train it:

* ``train_umap_encoder``: the parametric-UMAP objective (Sainburg et al. 2021): umap-learn's fuzzy k-NN
  graph of the training embeddings gives edge memberships; the low-dimensional membership of two points is
  1 / (1 + a d^(2b)); edges sampled by weight are pulled together and random pairs (negative sampling)
  pushed apart, by binary cross-entropy.
* ``train_tsne_regressor``: the seed's MLP (in -> 256 -> ReLU -> 2), regressing t-SNE coordinates.

Both train on ``device`` (the CPU, CUDA or Apple's MPS). Their random draws (edges, negatives, shuffles) are
made on the CPU with one seeded generator whatever the device, so a seed draws the same samples everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MapHead(nn.Module):
    """embedding (B, D) -> point (B, 2): projection, standardisation, MLP, output scale."""

    def __init__(self, projection: np.ndarray, centre: np.ndarray, hidden: int, layers: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # the initial weights are part of what the seed fixes
        dims = projection.shape[1]
        self.register_buffer("centre", torch.as_tensor(centre, dtype=torch.float32))
        self.register_buffer("projection", torch.as_tensor(projection, dtype=torch.float32))
        self.register_buffer("scale", torch.ones(2))
        blocks: list[nn.Module] = []
        width = dims
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        blocks.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*blocks)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.from_projected(self.project(embedding))

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """The fixed part; training computes it once, not at every step."""
        return (embedding - self.centre) @ self.projection

    def from_projected(self, projected: torch.Tensor) -> torch.Tensor:
        return self.net(projected) * self.scale


def load_head(path, projection: tuple[int, int], hidden: int, layers: int) -> MapHead:
    """A trained head from the weights file its training saved, in eval mode. Read with ``weights_only``: a
    crafted file in the cache is refused, never unpickled."""
    head = MapHead(np.zeros(projection, np.float32), np.zeros(projection[0], np.float32), hidden, layers)
    head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return head.eval()


def umap_graph(knn_indices: np.ndarray, knn_dists: np.ndarray, n_neighbors: int, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heads, tails, weights) of umap-learn's fuzzy simplicial set, from k-NN arrays that list each point
    first (distance 0); a missing neighbour is index -1 at distance inf (umap-learn skips it)."""
    from umap.umap_ import fuzzy_simplicial_set

    from .numba_cache import cache_umap_kernels

    cache_umap_kernels()
    placeholder = np.empty((len(knn_indices), 1), np.float32)  # the data itself is not needed given the k-NN
    graph, _, _ = fuzzy_simplicial_set(placeholder, n_neighbors, np.random.RandomState(seed), "euclidean",
                                       knn_indices=knn_indices, knn_dists=knn_dists)
    graph = graph.tocoo()
    keep = graph.data > 0
    return graph.row[keep], graph.col[keep], graph.data[keep].astype(np.float32)


def umap_ab(min_dist: float) -> tuple[float, float]:
    from umap.umap_ import find_ab_params

    a, b = find_ab_params(1.0, min_dist)
    return float(a), float(b)


def umap_loss(points_a, points_b, negatives_a, negatives_b, a: float, b: float) -> torch.Tensor:
    """Cross-entropy between graph memberships (1 for edges, 0 for random pairs) and map memberships."""
    eps = 1e-4

    def membership(x, y):
        squared = ((x - y) ** 2).sum(dim=1)
        return 1.0 / (1.0 + a * squared.clamp_min(1e-12) ** b)

    attract = -torch.log(membership(points_a, points_b).clamp(eps, 1.0))
    repel = -torch.log((1.0 - membership(negatives_a, negatives_b)).clamp(eps, 1.0))
    return attract.mean() + repel.mean() * (negatives_a.shape[0] / max(points_a.shape[0], 1))


def seeded(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_umap_encoder(head: MapHead, x: torch.Tensor, graph: tuple[np.ndarray, np.ndarray, np.ndarray],
                       min_dist: float, epochs: int, batch_size: int, negatives: int, lr: float, seed: int,
                       edges_per_epoch: int = 0, device: torch.device = torch.device("cpu")) -> list[float]:
    """Fit ``head`` with the UMAP objective on ``graph`` (heads, tails, weights over the rows of ``x``, the
    training images already through ``head.project``); returns the loss per epoch.

    An epoch samples as many edges as the graph has, or ``edges_per_epoch`` when that is smaller, so the
    training time stops growing with the set while every image's edges can still be drawn.
    """
    generator = seeded(seed)
    heads, tails, weights = graph
    a, b = umap_ab(min_dist)
    head.to(device)
    x = x.to(device)
    # Edges drawn in proportion to their weight, by inverse transform on the cumulative weights: computed once,
    # where torch.multinomial would rebuild it over every edge of the graph at each step.
    cumulative = torch.cumsum(torch.as_tensor(weights, dtype=torch.float64), 0)
    cumulative /= cumulative[-1].clone()
    heads_t, tails_t = torch.as_tensor(heads, dtype=torch.long), torch.as_tensor(tails, dtype=torch.long)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    per_epoch = min(len(heads), edges_per_epoch) if edges_per_epoch > 0 else len(heads)
    steps = max(1, per_epoch // batch_size)
    history = []
    for _ in range(epochs):
        total = 0.0
        for _ in range(steps):
            draws = torch.rand(batch_size, generator=generator, dtype=torch.float64)
            edges = torch.searchsorted(cumulative, draws, right=True).clamp_max(len(heads) - 1)
            i, j = heads_t[edges], tails_t[edges]
            # Map each image once per step, however many pairs it is in.
            rows, where = torch.unique(torch.cat([i, j]), return_inverse=True)
            points = head.from_projected(x[rows.to(device)])
            where = where.to(device)
            wi, wj = where[: len(i)], where[len(i):]
            # Negatives from the batch's own images (as parametric UMAP, Sainburg et al. 2021, does): the network
            # then maps each step's edges only, not ``negatives`` times as many random images besides.
            wn = torch.randint(0, len(rows), (len(i) * negatives,), generator=generator).to(device)
            loss = umap_loss(points[wi], points[wj], points[wi.repeat(negatives)], points[wn], a, b)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        history.append(total / steps)
    return history


def train_tsne_regressor(head: MapHead, x: torch.Tensor, targets: np.ndarray, epochs: int, batch_size: int,
                         lr: float, seed: int, images_per_epoch: int = 0, device: torch.device = torch.device("cpu")
                         ) -> list[float]:
    """Fit ``head`` to reproduce ``targets`` (t-SNE coordinates of the rows of ``x``, the training images
    already through ``head.project``) by mean squared error; an epoch is a seeded shuffle of all of them, or of
    ``images_per_epoch`` of them when that is smaller (the time then stops growing with the set)."""
    generator = seeded(seed)
    scale = float(np.sqrt((targets ** 2).sum(axis=1).mean()))  # train on unit-scale targets, map back
    head.to(device)
    head.scale.fill_(scale)
    x = x.to(device)
    y = torch.as_tensor(targets, dtype=torch.float32, device=device)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    per_epoch = min(len(x), images_per_epoch) if images_per_epoch > 0 else len(x)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)[:per_epoch]
        total = 0.0
        for start in range(0, per_epoch, batch_size):
            batch = order[start:start + batch_size].to(device)
            loss = (((head.from_projected(x[batch]) - y[batch]) / scale) ** 2).sum(dim=1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        history.append(total / per_epoch)
    return history


BLOCK = 65_536


@torch.no_grad()  # not inference mode: training takes these as inputs
def projected(head: MapHead, embeddings: np.ndarray, rows: np.ndarray | None = None) -> torch.Tensor:
    """The fixed part of ``head`` (centring and PCA projection) applied to ``embeddings`` (or its ``rows``),
    block by block, so a memory-mapped set is never read whole."""
    count = len(embeddings) if rows is None else len(rows)
    parts = []
    for start in range(0, count, BLOCK):
        chosen = slice(start, start + BLOCK) if rows is None else rows[start:start + BLOCK]
        # A copy of the block: torch warns on (and must not share) a read-only memory map's pages.
        parts.append(head.project(torch.from_numpy(np.array(embeddings[chosen], dtype=np.float32))))
    return torch.cat(parts) if parts else torch.zeros((0, head.projection.shape[1]))


@torch.inference_mode()
def project(head: MapHead, embeddings: np.ndarray) -> np.ndarray:
    """Map points of ``embeddings`` (block by block)."""
    head.eval()
    return head.from_projected(projected(head, embeddings)).numpy()
