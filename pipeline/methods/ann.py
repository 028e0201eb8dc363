"""A k-nearest-neighbour graph at any size: exact where that is fast, a FAISS approximate index above, and
the recall of every graph measured against exact search.

The approximate indexes are FAISS's own: IVF (an inverted file over k-means cells; compressed codes re-ranked
exactly for high-dimensional data, see ``ivf_spec``) and HNSW. Their search
depth (``nprobe``, ``efSearch``) is raised on a seeded tuning sample until recall@k reaches the target, then
the whole graph is searched with it, and recall is measured again on a separate seeded sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engine.artifacts import StageError
from .knn import exact_graph, exact_search, finish, query_blocks, recall_with_ties, rows_as_float32

TUNING_QUERIES = 1000
FLAT_DIMS = 64  # up to this many dimensions an IVF cell stores the vectors themselves
CELLS_PER_ROOT = {"vectors": 4, "codes": 2}  # IVF cells per sqrt(N), by what the cells hold (see ivf_spec)
DIMS_PER_CODE = 4  # above it, one 4-bit product-quantizer code per 4 dimensions ...
RERANK = 16  # ... and each query's best 16 x k candidates (at least; see tune_rerank) re-ranked by exact distance
MAX_RERANK = 256
HNSW_LINKS, HNSW_BUILD_DEPTH = 32, 40  # FAISS's defaults for M and efConstruction
MARGIN = 0.004  # the tuning sample aims this far above the target, so the check sample lands above it too


@dataclass
class Graph:
    idx: np.ndarray  # (N, k) int64, each row's own point left out, nearest first
    values: np.ndarray  # (N, k) float32: cosine similarity ("ip") or Euclidean distance ("l2")
    facts: dict = field(default_factory=dict)  # method, index, recall and how it was measured


def pick_method(method: str, n: int, exact_up_to: int) -> str:
    """``auto``: exact up to ``exact_up_to`` points; above, IVF (over compressed codes or the vectors, see
    ``ivf_spec``). Not HNSW, though it was faster on raw pixels up to 280,000 points (121 s against 196 s):
    exact copies break its graph. On a million points holding 14 copies of each image it needed efSearch 2,048
    for recall 0.989 and searched for over 50 minutes, where IVF puts the copies in one cell (the same 280,000
    points with 4 copies: nprobe 16)."""
    if method != "auto":
        return method
    return "exact" if n <= exact_up_to else "ivf"


def seeded_rows(n: int, count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))


def metric_type(metric: str):
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def ivf_spec(n: int, d: int, compress: bool = True) -> tuple[str, int]:
    """(FAISS factory string, cells) of the IVF index for ``n`` points of ``d`` dimensions.

    Up to ``FLAT_DIMS`` dimensions (or with ``compress`` False) the cells hold the vectors, about 4 sqrt(N)
    cells: scanning a cell's vectors is the cost, so more, smaller cells pay. Above, the cells hold 4-bit
    product-quantizer codes (one sub-quantizer per ``DIMS_PER_CODE`` dimensions, scanned with FAISS's fast-scan
    SIMD kernels) and the ``RERANK`` x k best of them (or more, ``tune_rerank``) are re-ranked by exact
    distances (``RFlat``), so the values in the graph are exact. There the scan is cheap and the cells'
    centroids are the cost (training, and assigning every point and every query), so about 2 sqrt(N) cells.
    Measured on a million 1280-d stand-ins (k = 20, 20,000 queries): codes per 4 dimensions reach recall 0.994
    re-ranking 16 x k candidates where codes per 8 needed 64 x k (6.3 s against 15.8 s); 2,000 cells trained
    in 36 s and took the points in 39 s, against 147 s and 69 s for 4,000, at the same search time and recall.
    ``compress`` False keeps the vectors: raw pixels (strongly correlated neighbouring dimensions) ranked by
    4-bit codes needed 256 x k candidates for recall 0.99 (74 s on the 70,000 images, against 20 s
    uncompressed).
    """
    holds = "vectors" if not compress or d <= FLAT_DIMS or d % DIMS_PER_CODE else "codes"
    cells = int(min(max(16, CELLS_PER_ROOT[holds] * np.sqrt(n)), n // 39 or 1))
    return (f"IVF{cells},Flat" if holds == "vectors" else f"IVF{cells},PQ{d // DIMS_PER_CODE}x4fs,RFlat"), cells


def ivf_index(x: np.ndarray, metric: str, unit: bool, block: int, seed: int, compress: bool = True):
    """An IVF index over the rows of ``x`` (see ``ivf_spec``), trained on a seeded sample."""
    import faiss

    n, d = x.shape
    spec, cells = ivf_spec(n, d, compress)
    index = faiss.index_factory(d, spec, metric_type(metric))
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.seed = seed
    if "PQ" in spec:
        ivf.pq.cp.seed = seed
        index.k_factor = RERANK
    train = seeded_rows(n, min(n, 64 * cells), seed)
    index.train(rows_as_float32(x, train, unit))
    for rows in query_blocks(n, block):
        index.add(rows_as_float32(x, rows, unit))
    described = spec if "PQ" not in spec else f"{spec} (4-bit PQ fast-scan, the best candidates re-ranked exactly)"
    return index, described, "nprobe", cells


def hnsw_index(x: np.ndarray, metric: str, unit: bool, block: int):
    """An HNSW graph index over the rows of ``x``, built on one thread: FAISS inserts points in parallel in an
    order that depends on the threads' timing, so only a one-thread build gives the same graph every run."""
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], HNSW_LINKS, metric_type(metric))
    index.hnsw.efConstruction = HNSW_BUILD_DEPTH
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for rows in query_blocks(len(x), block):
            index.add(rows_as_float32(x, rows, unit))
    finally:
        faiss.omp_set_num_threads(threads)
    return index, f"IndexHNSWFlat(M={HNSW_LINKS}, efConstruction={HNSW_BUILD_DEPTH}, built on one thread)", "efSearch", 4096


def set_depth(index, knob: str, value: int) -> None:
    if knob == "nprobe":
        import faiss

        faiss.extract_index_ivf(index).nprobe = value
    else:
        index.hnsw.efSearch = value


def approximate_search(index, x, rows, k, metric, unit) -> tuple[np.ndarray, np.ndarray]:
    values, found = index.search(rows_as_float32(x, rows, unit), k + 1)
    return finish(found, values, k, metric, rows)


@dataclass
class Sample:
    """Seeded query rows and their exact neighbours' values, searched once: the tuning sample is read by every
    tuning step, the check sample by the final check of the whole graph."""

    rows: np.ndarray
    truth: np.ndarray

    @classmethod
    def searched_together(cls, x, counts_and_seeds, k, metric, unit, block) -> list["Sample"]:
        """Seeded samples, one per (count, seed), whose exact neighbours come from one pass over the data (each
        pass reads all of it: at a million 1280-d points, 5 GB)."""
        picks = [seeded_rows(len(x), count, seed) for count, seed in counts_and_seeds]
        rows = np.unique(np.concatenate(picks))
        truth = exact_search(x, rows, k, metric, unit, block)[1]
        return [cls(pick, truth[np.searchsorted(rows, pick)]) for pick in picks]

    def recall(self, index, x, k, metric, unit) -> float:
        return recall_with_ties(approximate_search(index, x, self.rows, k, metric, unit)[1], self.truth, metric)


def tune_rerank(index, cells: int, x, sample: Sample, k, metric, unit, target: float) -> int | None:
    """For an index that re-ranks compressed candidates: the smallest power-of-two re-ranking factor (from
    ``RERANK``) whose recall@k on the tuning sample reaches ``target`` when every cell is scanned, so that the
    codes are not what holds recall back (None for an index without re-ranking). Raw pixels need more
    candidates than embeddings: their 8-d sub-vectors are strongly correlated, so 4-bit codes rank them
    coarsely."""
    if not hasattr(index, "k_factor"):
        return None
    set_depth(index, "nprobe", cells)
    factor = RERANK
    while True:
        index.k_factor = factor
        if sample.recall(index, x, k, metric, unit) >= target or factor >= MAX_RERANK:
            return factor
        factor *= 2


def deeper(depth: int) -> int:
    """The next search depth: 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (powers of two and the midpoints between), so
    the depth found is at most 1.5 times the smallest that would do, where doubling could give twice it."""
    if depth >= 2 and depth & (depth - 1) == 0:
        return depth + depth // 2
    return depth // 3 * 4 if depth % 3 == 0 and depth >= 3 else depth * 2


def tune_depth(index, knob: str, ceiling: int, x, sample: Sample, k, metric, unit, target: float,
               depth: int = 0) -> tuple[int, float]:
    """The smallest search depth on the ``deeper`` ladder (from ``depth``) whose recall@k on the tuning sample
    reaches ``target``."""
    depth = depth or (1 if knob == "nprobe" else max(16, k))
    while True:
        set_depth(index, knob, depth)
        recall = sample.recall(index, x, k, metric, unit)
        if recall >= target or depth >= ceiling:
            return depth, recall
        depth = min(ceiling, deeper(depth))


def build_graph(x: np.ndarray, k: int, metric: str, unit: bool, method: str, exact_up_to: int, min_recall: float,
                recall_queries: int, block: int, seed: int, progress=None, compress: bool = True) -> Graph:
    """Every row's ``k`` nearest other rows, exact or approximate, with its measured recall@k (``compress``:
    see ``ivf_spec``)."""
    chosen = pick_method(method, len(x), exact_up_to)
    if chosen == "exact":
        idx, values = exact_graph(x, k, metric, unit, block, progress)
        return Graph(idx, values, {"method": "exact", "index": "FAISS flat search, streamed in blocks",
                                   "recall": 1.0, "recall_queries": 0, "recall_note": "exact search"})
    if len(x) < 64:
        raise StageError(f"neighbours.method = {method} needs at least 64 images, got {len(x)}; use exact")
    try:
        index, description, knob, ceiling = (ivf_index(x, metric, unit, block, seed, compress) if chosen == "ivf"
                                             else hnsw_index(x, metric, unit, block))
    except RuntimeError as exc:  # FAISS refuses to train (too few points for the cells, say)
        raise StageError(f"the {chosen} index could not be built on {len(x)} images: {exc}") from None
    check, tuning = Sample.searched_together(x, ((recall_queries, seed + 2), (TUNING_QUERIES, seed + 1)), k, metric,
                                             unit, block)  # recall by value: ties all count
    target = min(1.0, min_recall + MARGIN)
    rerank = tune_rerank(index, ceiling, x, tuning, k, metric, unit, target)
    depth, passes = 0, 0
    while True:  # a depth the check sample finds short of the target is deepened and the graph searched again
        depth, tuned_recall = tune_depth(index, knob, ceiling, x, tuning, k, metric, unit, target, depth)
        idx, values = search_all(index, x, k, metric, unit, block, progress if passes == 0 else None)
        recall, passes = recall_with_ties(values[check.rows], check.truth, metric), passes + 1
        if recall >= min_recall or depth >= ceiling:
            break
        depth = min(ceiling, deeper(depth))
    facts = {"method": chosen, "index": description, knob: depth, "passes": passes}
    if knob == "nprobe":
        facts["cells"] = ceiling
    if rerank is not None:
        facts["rerank_factor"] = rerank
    return Graph(idx, values, {**facts,
                               "tuning_recall": round(tuned_recall, 4), "recall": round(recall, 4),
                               "recall_queries": int(len(check.rows))})


def search_all(index, x, k, metric, unit, block, progress=None) -> tuple[np.ndarray, np.ndarray]:
    idx = np.empty((len(x), k), np.int64)
    values = np.empty((len(x), k), np.float32)
    for rows in query_blocks(len(x), block):
        idx[rows], values[rows] = approximate_search(index, x, np.arange(rows.start, rows.stop), k, metric, unit)
        if progress is not None:
            progress(rows.stop - rows.start)
    return idx, values
