"""The analyses' heavy linear algebra on a GPU, with torch, when one is there: exact k-NN search, the PCA
covariance and k-means. Each function also runs on the CPU (that is how the tests cover it); the stages call
them only when ``device()`` finds CUDA (or MPS), and fall back to FAISS and scikit-learn otherwise.

Exact search on a GPU is fast enough to stay exact far beyond where the CPU switches to an approximate index:
a million 1280-d embeddings is 2.6e15 multiply-adds, minutes on an H100 and days on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import torch

from ..imaging.devices import pick_device

BLOCK = 16_384


def device(setting: str = "auto") -> torch.device | None:
    """The accelerator the analyses may use (the top-level ``device``, picked as ``devices.pick_device`` does:
    CUDA, then Apple's MPS), else None: the CPU libraries run. One asked for by name and not there is an error."""
    found = pick_device(setting, "device")
    return None if found.type == "cpu" else found


def as_tensor(x: np.ndarray, rows, on: torch.device, unit: bool) -> torch.Tensor:
    block = torch.as_tensor(np.ascontiguousarray(x[rows], dtype=np.float32), device=on)
    return torch.nn.functional.normalize(block, dim=1) if unit else block


@torch.inference_mode()
def exact_graph(x: np.ndarray, k: int, metric: str, unit: bool, on: torch.device, block: int = BLOCK,
                progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Every row's ``k`` nearest other rows by exact search (fp32 matmul and top-k on the device), as
    ``neighbours.exact_graph`` returns them: cosine similarities (``ip``) or Euclidean distances (``l2``)."""
    n = len(x)
    data = torch.cat([as_tensor(x, slice(s, s + block), on, unit) for s in range(0, n, block)])
    squared = (data * data).sum(dim=1) if metric == "l2" else None
    found = np.empty((n, k), np.int64)
    values = np.empty((n, k), np.float32)
    for start in range(0, n, block):
        queries = data[start:start + block]
        scores = queries @ data.T
        if metric == "l2":  # larger is nearer: minus the squared distance
            scores = 2 * scores - squared[None, :] - squared[start:start + block, None]
        rows = torch.arange(start, start + len(queries), device=on)
        scores[torch.arange(len(queries), device=on), rows] = -torch.inf  # never the row itself
        top, where = torch.topk(scores, k, dim=1)
        if metric == "l2":
            top = torch.sqrt(torch.clamp(-top, min=0))
        found[start:start + len(queries)] = where.cpu().numpy()
        values[start:start + len(queries)] = top.cpu().numpy()
        if progress is not None:
            progress(len(queries))
    return found, values


@torch.inference_mode()
def covariance(x: np.ndarray, rows: np.ndarray | None, unit: bool, on: torch.device, block: int = 65_536
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, covariance, count) of the rows of ``x`` (or its ``rows``), in float64 on the device, two passes
    (the mean, then the centred scatter), as ``pca_fit.fit`` computes them on the CPU."""
    n = len(x) if rows is None else len(rows)

    def blocks():
        for start in range(0, n, block):
            part = slice(start, start + block) if rows is None else rows[start:start + block]
            yield as_tensor(x, part, on, unit).double()

    total = sum(b.sum(dim=0) for b in blocks())
    mean = total / n
    scatter = torch.zeros((x.shape[1], x.shape[1]), dtype=torch.float64, device=on)
    for b in blocks():
        centred = b - mean
        scatter += centred.T @ centred
    return mean.cpu().numpy(), (scatter / max(n - 1, 1)).cpu().numpy(), n


@torch.inference_mode()
def kmeans(x: np.ndarray, k: int, seed: int, on: torch.device, iterations: int = 300, tolerance: float = 1e-4
           ) -> tuple[np.ndarray, float]:
    """Lloyd's k-means from scikit-learn's seeded k-means++ start, the assignment steps on the device.
    Returns (labels, SSE). One start (``n_init = 1``), as the sweep uses from 10,000 images on."""
    from sklearn.cluster import kmeans_plusplus

    data = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=on)
    start, _ = kmeans_plusplus(np.asarray(x, np.float32), k, random_state=seed)
    centres = torch.as_tensor(start, device=on)
    scale = float(data.var(dim=0).mean()) * tolerance  # scikit-learn's tolerance: relative to the data's variance
    for _ in range(iterations):
        distance = torch.cdist(data, centres)
        labels = distance.argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, labels, data)
        counts = torch.bincount(labels, minlength=k).clamp(min=1).unsqueeze(1).float()
        moved = torch.where(torch.bincount(labels, minlength=k).unsqueeze(1) > 0, sums / counts, centres)
        shift = float(((moved - centres) ** 2).sum())
        centres = moved
        if shift <= scale:
            break
    labels = torch.cdist(data, centres).argmin(dim=1)
    sse = float(((data - centres[labels]) ** 2).sum())
    return labels.cpu().numpy().astype(np.int32), sse


def moments(setting: str):
    """``covariance`` bound to the accelerator, for ``pca_fit.fit``; None where there is none."""
    from functools import partial

    on = device(setting)
    return partial(covariance, on=on) if on is not None else None


def graph_block(n: int) -> int:
    """Query rows per block so that a block's score matrix stays near 1 GiB on the device."""
    return int(max(256, min(BLOCK, (1 << 28) // max(n, 1))))
