"""Maps, clustering and retrieval at growing N on real features (Fashion-MNIST, all 70,000 images).

Each row times embdeck's own function (the one its stage calls) next to a named reference where one
exists: scikit-learn's t-SNE with the same perplexity and iterations, brute-force exact search for FAISS.
Quality rides along in the same row (trustworthiness, neighbour agreement), so a faster row that is worse
shows it. Subsets of 2k and 10k are seeded random draws of the full set's embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pipeline.engine.stored_rows import load_array

from .common import growth_exponent, timed


def subsets(embeddings: np.ndarray, sizes: list[int], seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: embeddings[np.sort(rng.choice(len(embeddings), size=n, replace=False))] if n < len(embeddings)
            else embeddings for n in sizes if n <= len(embeddings)}


def pca50(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=50, svd_solver="covariance_eigh", random_state=0).fit_transform(x).astype(np.float32)


def sklearn_tsne(points: np.ndarray, perplexity: float, n_iter: int, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=perplexity, max_iter=n_iter, init="pca", learning_rate="auto",
                random_state=seed, n_jobs=os.cpu_count()).fit_transform(points)


def tsne_rows(points: np.ndarray, reps: int) -> tuple[dict, np.ndarray]:
    """embdeck's t-SNE (method picked by N as the stage does) beside scikit-learn's; also embdeck's map."""
    from pipeline.engine.config import Config
    from pipeline.methods.quality import trustworthiness
    from pipeline.methods.tsne_fit import fit_tsne, gradient_method

    cfg = Config().tsne
    method = gradient_method(cfg.method, len(points), cfg.fft_from)
    ours, ours_map = timed(lambda: np.asarray(fit_tsne(points, cfg.perplexity, cfg.n_iter, method, cfg.seed,
                                                       os.cpu_count() or 1)), reps)
    ref, ref_map = timed(lambda: sklearn_tsne(points, cfg.perplexity, cfg.n_iter, cfg.seed), reps)
    return {"embdeck": {**ours, "method": f"openTSNE {method}", "trustworthiness": round(trustworthiness(points, ours_map), 4)},
            "sklearn": {**ref, "method": "scikit-learn barnes_hut", "trustworthiness": round(trustworthiness(points, ref_map), 4)},
            "speedup": round(ref["median_s"] / ours["median_s"], 2)}, ours_map


def umap_row(x: np.ndarray, reps: int) -> dict:
    from pipeline.engine.config import Config
    from pipeline.methods.quality import trustworthiness
    from pipeline.methods.umap_fit import fit_umap

    cfg = Config().umap
    timing, coords = timed(lambda: fit_umap(x, cfg.n_neighbors, cfg.min_dist, cfg.seed), reps)
    return {**timing, "trustworthiness": round(trustworthiness(x, coords), 4)}


def parametric_row(x: np.ndarray, tsne_map: np.ndarray) -> dict:
    """Training time of both map networks and how many new images per second they place."""
    import time

    from pipeline.engine.config import Config
    from pipeline.methods.map_head_training import train_heads

    cfg = Config()
    started = time.perf_counter()
    heldout = np.random.default_rng(0).random(len(x)) < cfg.parametric.holdout  # as the stage holds images out
    heads = train_heads(x, tsne_map, heldout, cfg)
    seconds = time.perf_counter() - started
    from pipeline.methods.map_heads import project

    out = {"train_s_both": round(seconds, 2)}
    for name, head in heads.items():
        timing, _ = timed(lambda head=head: project(head, x), 3, warmup=1)
        out[name] = {"infer_images_per_s": round(len(x) / timing["median_s"], 0), **head.fit_facts}
    return out


def kmeans_row(x: np.ndarray) -> dict:
    """The stage's sweep on one variant, with the restarts it picks for this N; where that is one restart,
    SSE and silhouette of one vs four restarts at three k of the grid (the quality the choice gives up)."""
    from pipeline.engine.config import Config
    from pipeline.methods.kmeans import prepare, restarts
    from pipeline.methods.kmeans_sweep import choose_k, k_grid, kneedle, sweep

    cfg = Config().clusters
    ks, _ = k_grid(len(x), cfg.k_min, cfg.k_max, cfg.steps)
    prepared = prepare(x, cfg.pca_dims)
    n_init = restarts(cfg.n_init, len(x), cfg.n_init_one_from)
    timing, rows = timed(lambda: sweep(prepared, ks, n_init, cfg.silhouette_sample, cfg.seed), 1)
    best = int(np.nanargmax(rows["silhouette"]))
    elbow = kneedle(ks, rows["sse"])
    chosen, reason = choose_k(ks, rows["silhouette"], rows["davies_bouldin"], elbow)
    out = {**timing, "n_init": n_init, "ks": f"{ks[0]}..{ks[-1]} ({len(ks)} values)", "best_silhouette_k": ks[best],
           "best_silhouette": round(rows["silhouette"][best], 4), "elbow_k": elbow, "chosen_k": chosen, "reason": reason,
           "per_k": {str(k): {"silhouette": round(rows["silhouette"][i], 4), "davies_bouldin": round(rows["davies_bouldin"][i], 4),
                              "sse": round(rows["sse"][i], 1)} for i, k in enumerate(ks)},
           "note": "one of the stage's three variants"}
    if len(x) > cfg.sweep_sample:
        out["sample_vs_full"] = sample_vs_full(prepared, ks, rows, chosen, cfg)
    if n_init == 1:
        probe = [ks[1], ks[len(ks) // 2], ks[-1]]
        four = sweep(prepared, probe, 4, cfg.silhouette_sample, cfg.seed)
        out["one_vs_four_restarts"] = {
            str(k): {"sse_ratio": round(rows["sse"][ks.index(k)] / four["sse"][i], 5),
                     "silhouette_delta": round(rows["silhouette"][ks.index(k)] - four["silhouette"][i], 4)}
            for i, k in enumerate(probe)}
    return out


def sample_vs_full(prepared: np.ndarray, ks: list[int], full: dict, full_chosen: int, cfg) -> dict:
    """The stage's sweep on its seeded sample (``clusters.sweep_sample`` images) against the same sweep on all
    images: each k's silhouette and Davies-Bouldin difference, the SSE per image ratio, and the k each picks."""
    from pipeline.methods.kmeans import restarts
    from pipeline.methods.kmeans_sweep import choose_k, kneedle, sweep
    from pipeline.methods.sampling import sample_indices

    picks = sample_indices(len(prepared), cfg.sweep_sample, cfg.seed)
    timing, rows = timed(lambda: sweep(prepared[picks], ks, restarts(cfg.n_init, len(picks), cfg.n_init_one_from),
                                       cfg.silhouette_sample, cfg.seed), 1)
    chosen, _ = choose_k(ks, rows["silhouette"], rows["davies_bouldin"], kneedle(ks, rows["sse"]))
    per_k = {str(k): {"silhouette_delta": round(rows["silhouette"][i] - full["silhouette"][i], 4),
                      "davies_bouldin_delta": round(rows["davies_bouldin"][i] - full["davies_bouldin"][i], 4),
                      "sse_per_image_ratio": round((rows["sse"][i] / len(picks)) / (full["sse"][i] / len(prepared)), 4)}
             for i, k in enumerate(ks)}
    return {"sample": len(picks), "of": len(prepared), **timing, "chosen_k_sample": chosen, "chosen_k_full": full_chosen,
            "max_abs_silhouette_delta": max(abs(v["silhouette_delta"]) for v in per_k.values()),
            "max_abs_davies_bouldin_delta": max(abs(v["davies_bouldin_delta"]) for v in per_k.values()),
            "per_k": per_k}


def retrieval_row(x: np.ndarray, reps: int, k: int = 5) -> dict:
    from pipeline.methods.knn import cosine_neighbours, normalise

    faiss_t, (found, _) = timed(lambda: cosine_neighbours(x, k), reps)

    def brute():
        unit = normalise(x)
        rows = []
        for start in range(0, len(unit), 4096):
            sims = unit[start:start + 4096] @ unit.T
            sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
            top = np.argpartition(-sims, k, axis=1)[:, :k]
            rows.append(np.take_along_axis(top, np.argsort(-np.take_along_axis(sims, top, 1), 1), 1))
        return np.concatenate(rows)

    brute_t, reference = timed(brute, reps)
    agree = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(found, reference)])
    return {"faiss": faiss_t, "brute_force_numpy": brute_t, "speedup": round(brute_t["median_s"] / faiss_t["median_s"], 2),
            "neighbour_agreement": round(float(agree), 4)}


def run(embeddings_path: Path, sizes: list[int], reps: int, full_reps: int = 1) -> dict:
    embeddings = np.asarray(load_array(embeddings_path))  # the extract entry's reference to the store's rows
    from pipeline.methods.umap_fit import fit_umap

    warm, _ = timed(lambda: fit_umap(embeddings[:300], 15, 0.1, 0), 1)  # numba compiles once per process
    out: dict = {"source": str(embeddings_path), "dims": int(embeddings.shape[1]), "umap_first_call_s": warm["median_s"],
                 "sizes": {}}
    for n, x in subsets(embeddings, sizes).items():
        r = reps if n < 50_000 else full_reps
        points = pca50(x)
        tsne_row, tsne_map = tsne_rows(points, r)
        row = {"reps": r, "tsne": tsne_row}
        row["umap"] = umap_row(x, r)
        row["parametric"] = parametric_row(x, tsne_map)
        row["kmeans_sweep"] = kmeans_row(x)
        row["retrieval"] = retrieval_row(x, r)
        out["sizes"][str(n)] = row
        print(f"maps: N={n} done", flush=True)
    ns = [int(n) for n in out["sizes"]]
    pick = {"tsne (embdeck)": lambda r: r["tsne"]["embdeck"]["median_s"], "tsne (sklearn)": lambda r: r["tsne"]["sklearn"]["median_s"],
            "umap": lambda r: r["umap"]["median_s"], "parametric training": lambda r: r["parametric"]["train_s_both"],
            "kmeans sweep": lambda r: r["kmeans_sweep"]["median_s"], "faiss retrieval": lambda r: r["retrieval"]["faiss"]["median_s"]}
    out["exponents"] = {name: growth_exponent(ns, [f(out["sizes"][str(n)]) for n in ns]) for name, f in pick.items()}
    return out
