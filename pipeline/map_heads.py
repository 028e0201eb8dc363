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

from .neighbours import exact_knn


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


def umap_graph(train: np.ndarray, n_neighbors: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heads, tails, weights) of umap-learn's fuzzy simplicial set on the training embeddings."""
    from umap.umap_ import fuzzy_simplicial_set

    knn_indices, knn_dists = exact_knn(train, n_neighbors)
    graph, _, _ = fuzzy_simplicial_set(train, n_neighbors, np.random.RandomState(seed), "euclidean",
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


def train_umap_encoder(head: MapHead, train: np.ndarray, n_neighbors: int, min_dist: float, epochs: int,
                       batch_size: int, negatives: int, lr: float, seed: int,
                       device: torch.device = torch.device("cpu")) -> list[float]:
    """Fit ``head`` (moved to ``device``) with the UMAP objective; returns the loss per epoch."""
    generator = seeded(seed)
    heads, tails, weights = umap_graph(train, n_neighbors, seed)
    a, b = umap_ab(min_dist)
    head.to(device)
    with torch.no_grad():
        x = head.project(torch.as_tensor(train, dtype=torch.float32, device=device))
    probs = torch.as_tensor(weights / weights.sum())
    heads_t, tails_t = torch.as_tensor(heads, dtype=torch.long), torch.as_tensor(tails, dtype=torch.long)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    steps = max(1, len(heads) // batch_size)
    history = []
    for _ in range(epochs):
        total = 0.0
        for _ in range(steps):
            edges = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
            i, j = heads_t[edges], tails_t[edges]
            neg_i = i.repeat(negatives)
            neg_j = torch.randint(0, len(x), (len(neg_i),), generator=generator)
            # Map each image once per step, however many pairs it is in.
            rows, where = torch.unique(torch.cat([i, j, neg_j]), return_inverse=True)
            points = head.from_projected(x[rows.to(device)])
            where = where.to(device)
            wi, wj, wn = where[: len(i)], where[len(i): 2 * len(i)], where[2 * len(i):]
            loss = umap_loss(points[wi], points[wj], points[wi.repeat(negatives)], points[wn], a, b)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
        history.append(total / steps)
    return history


def train_tsne_regressor(head: MapHead, train: np.ndarray, targets: np.ndarray, epochs: int, batch_size: int,
                         lr: float, seed: int, device: torch.device = torch.device("cpu")) -> list[float]:
    """Fit ``head`` (moved to ``device``) to reproduce ``targets`` (t-SNE coordinates) by mean squared error."""
    generator = seeded(seed)
    scale = float(np.sqrt((targets ** 2).sum(axis=1).mean()))  # train on unit-scale targets, map back
    head.to(device)
    head.scale.fill_(scale)
    with torch.no_grad():
        x = head.project(torch.as_tensor(train, dtype=torch.float32, device=device))
    y = torch.as_tensor(targets, dtype=torch.float32, device=device)
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start:start + batch_size].to(device)
            loss = (((head.from_projected(x[batch]) - y[batch]) / scale) ** 2).sum(dim=1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
        history.append(total / len(x))
    return history


@torch.inference_mode()
def project(head: MapHead, embeddings: np.ndarray) -> np.ndarray:
    """(N, 2) points, on whichever device ``head`` is."""
    device = head.centre.device
    return head.eval()(torch.as_tensor(embeddings, dtype=torch.float32, device=device)).cpu().numpy()
