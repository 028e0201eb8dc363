"""umap-learn's fuzzy-simplicial-set kernels, compiled once per machine instead of once per process.

umap-learn declares most of its numba functions with ``cache=True``, but not ``smooth_knn_dist`` and
``compute_membership_strengths`` (both ``parallel=True``): every process that builds a UMAP graph compiled
them again, about 6 s on this machine, paid by each cold run of the demo (the ``umap`` and ``parametric``
stages both build one). numba's ``Dispatcher.enable_caching`` is what ``cache=True`` does at declaration: the
machine code goes to numba's cache folder (``NUMBA_CACHE_DIR``, else beside the module), keyed by numba on
the function's source, its signature and the CPU. The code run is the same, so the graph is bit-for-bit the
one a fresh compile gives (``tests/test_numba_cache.py``).
"""

from __future__ import annotations

KERNELS = ("smooth_knn_dist", "compute_membership_strengths")


def cache_umap_kernels() -> None:
    """Turn on numba's on-disk cache for the kernels above (calling it again only renews the same cache); a
    umap-learn whose kernels are no longer numba dispatchers is left as it is."""
    from umap import umap_

    for name in KERNELS:
        kernel = getattr(umap_, name, None)
        if hasattr(kernel, "enable_caching"):
            kernel.enable_caching()
