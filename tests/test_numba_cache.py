"""umap-learn's uncached graph kernels: compiled by the first process, loaded from numba's cache by the next,
and the graph is the same bytes either way."""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numba
    import numpy as np
    from umap import umap_
    from pipeline.methods.map_heads import umap_graph

    # Only the two kernels' cache goes to the test's folder: set after umap-learn's import, whose own cached
    # functions (pynndescent's) stay in the default cache, warm after the first import on this machine.
    numba.config.CACHE_DIR = sys.argv[1]

    rng = np.random.default_rng(0)
    n, k = 300, 10
    order = np.argsort(rng.random((n, n)), axis=1)[:, :k - 1]
    indices = np.hstack([np.arange(n)[:, None], order]).astype(np.int64)
    distances = np.hstack([np.zeros((n, 1)), np.sort(rng.random((n, k - 1)), axis=1)]).astype(np.float32)
    graph = umap_graph(indices, distances, k, 0)
    stats = {name: getattr(umap_, name).stats for name in ("smooth_knn_dist", "compute_membership_strengths")}
    print(json.dumps({"graph": hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in graph)).hexdigest(),
                      "hits": {name: sum(s.cache_hits.values()) for name, s in stats.items()},
                      "misses": {name: sum(s.cache_misses.values()) for name, s in stats.items()}}))
""")

pytestmark = pytest.mark.full  # two processes that compile numba kernels: the full suite


def graph_in_a_new_process(cache_dir) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_graph_kernels_compile_once_then_load_from_the_cache_with_the_same_graph(tmp_path):
    first = graph_in_a_new_process(tmp_path)
    assert all(first["misses"].values()) and not any(first["hits"].values())  # compiled, and written
    assert any(tmp_path.rglob("*.nbi")), "numba wrote no cache index"
    second = graph_in_a_new_process(tmp_path)
    assert all(second["hits"].values()) and not any(second["misses"].values())  # loaded, not compiled
    assert second["graph"] == first["graph"]
