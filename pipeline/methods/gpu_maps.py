"""UMAP and t-SNE on an NVIDIA GPU through RAPIDS cuML, the kept library that does them there (the optional
extra ``embdeck[cuml]``). Used when ``umap.engine`` / ``tsne.engine`` is ``cuml``, or ``auto`` with cuML
installed and the run's ``device`` on CUDA; otherwise umap-learn and openTSNE run on the CPU.

Reproducibility: cuML's documentation says a ``random_state`` makes its UMAP reproducible only to about three
digits, and users report maps that differ between runs; its t-SNE runs many threads at once. A map made here
is therefore recorded as ``engine: cuML``, and the slides say it is not bit-for-bit reproducible; the
neighbour graph, k-means and every accuracy figure stay exact and seeded.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..engine.artifacts import StageError

ENGINES = ("auto", "cpu", "cuml")
REPRODUCIBILITY = "cuML on the GPU: seeded, but not bit-for-bit reproducible between runs (about 3 digits)"


def installed() -> bool:
    return importlib.util.find_spec("cuml") is not None


def use_cuml(engine: str, device_setting: str) -> bool:
    """Whether this map runs on cuML: asked for by name (an error when it cannot), or ``auto`` with cuML
    installed and the analyses' device on CUDA."""
    if engine == "cpu" or (engine == "auto" and not installed()):
        return False
    from .accel import device

    found = device(device_setting)
    on_cuda = found is not None and found.type == "cuda"
    if engine == "cuml" and not (installed() and on_cuda):
        raise StageError("engine = cuml needs RAPIDS cuML (pip install 'embdeck[cuml]') and device = cuda on an "
                         "NVIDIA GPU" + ("" if installed() else "; cuML is not installed"))
    return on_cuda


def umap_map(layout: np.ndarray, knn: tuple[np.ndarray, np.ndarray], n_neighbors: int, min_dist: float,
             seed: int) -> np.ndarray:
    """cuML's UMAP from the run's graph (``knn``: indices with each point first, and distances), laid out
    from ``layout`` (the unit vectors' first principal components, as on the CPU)."""
    from cuml.manifold import UMAP

    reducer = UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed,
                   precomputed_knn=knn, output_type="numpy")
    return np.asarray(reducer.fit_transform(np.ascontiguousarray(layout, dtype=np.float32)), dtype=np.float32)


def tsne_map(points: np.ndarray, perplexity: float, n_iter: int, seed: int) -> np.ndarray:
    """cuML's FFT t-SNE of ``points`` (PCA-50), with the seed's settings; it finds its neighbours itself."""
    from cuml.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=perplexity, n_iter=n_iter, method="fft", random_state=seed,
                output_type="numpy")
    return np.asarray(tsne.fit_transform(np.ascontiguousarray(points, dtype=np.float32)), dtype=np.float32)
