"""The bench's figures as a Markdown table (printed and written beside the JSON)."""

from __future__ import annotations


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def extraction_lines(extract: dict) -> list[str]:
    peaks = extract["gemm_peak_gflop_per_s"]
    out = [f"### Extraction ({extract['device']}; GEMM peak fp32 {peaks['fp32']} GFLOP/s, bf16 {peaks['bf16']} GFLOP/s;"
           f" {extract['speed_images']} demo images, batch {extract['batch_size']})", ""]
    rows = []
    for name, b in extract["backbones"].items():
        seed = b["seed_way"]["images_per_s"]
        rows.append([b["model"], b["input_size"], "seed deck's way (1 image, 32 px upsampled, fp32)", seed, "", "", "", 1.0])
        for dtype in ("fp32", "bf16"):
            p, m = b[dtype]["pipeline"], b[dtype]["model_only"]
            rows.append([b["model"], b["input_size"], f"embdeck {dtype}, batched", p["images_per_s"], p["model_share"],
                         m["images_per_s"], m["fraction_of_peak"], round(p["images_per_s"] / seed, 2)])
    out += table(["model", "px", "way", "images/s (decode+model)", "model share", "model-only images/s",
                  "fraction of the dtype's GEMM peak", "x seed way"], rows)
    q = extract["quality"]
    rows = [[name, v["input_size"], v["knn_accuracy"], v.get("cosine_to_fp32_min", ""), v.get("cosine_to_fp32_mean", ""),
             v.get("knn_delta_vs_fp32", "")] for name, v in q.items() if isinstance(v, dict)]
    out += [f"Quality, bundled backbone on all {q['images']} demo images ({q['folds']}-fold 5-NN accuracy):", ""]
    out += table(["features", "px", "5-NN accuracy", "lowest cosine to fp32", "mean cosine", "accuracy - fp32"], rows)
    return out


def maps_lines(maps: dict) -> list[str]:
    out = [f"### Maps, clustering, retrieval on Fashion-MNIST features ({maps['dims']}-d; medians)", ""]
    rows = []
    for n, r in maps["sizes"].items():
        t = r["tsne"]
        rows.append([n, r["reps"], t["embdeck"]["method"], t["embdeck"]["median_s"], t["embdeck"]["trustworthiness"],
                     t["sklearn"]["median_s"], t["sklearn"]["trustworthiness"], t["speedup"]])
    out += table(["N", "reps", "embdeck t-SNE", "s", "trust", "scikit-learn s", "trust", "speed-up"], rows)
    rows = []
    for n, r in maps["sizes"].items():
        p = r["parametric"]
        rows.append([n, r["umap"]["median_s"], r["umap"]["trustworthiness"], p["train_s_both"],
                     p["param_umap"]["train_images"], p["param_umap"]["infer_images_per_s"], p["tsne_mlp"]["infer_images_per_s"],
                     r["kmeans_sweep"]["median_s"], r["kmeans_sweep"]["ks"],
                     f"{r['kmeans_sweep'].get('chosen_k', '')} (elbow {r['kmeans_sweep'].get('elbow_k', '')}, best silhouette "
                     f"{r['kmeans_sweep']['best_silhouette_k']}: {r['kmeans_sweep']['best_silhouette']})",
                     r["retrieval"]["faiss"]["median_s"],
                     r["retrieval"]["brute_force_numpy"]["median_s"], r["retrieval"]["neighbour_agreement"]])
    out += table(["N", "UMAP s", "trust", "parametric training s (both)", "trained on", "param UMAP images/s",
                  "t-SNE MLP images/s", "k-means sweep s", "k grid", "chosen k", "FAISS 5-NN s", "brute force s", "agreement"], rows)
    out += [f"UMAP's first call in a process (numba): {maps['umap_first_call_s']} s. Growth exponents (time ~ N^e): "
            + fmt(maps["exponents"]), ""]
    return out


def deck_lines(deck: dict) -> list[str]:
    p = deck["pipeline"]
    out = ["### Demo deck", ""]
    rows = [["pipeline + render, cold (empty output folder)", p["cold"]["seconds"], "all"],
            ["warm rerun, nothing changed (median)", p["warm"]["median_s"], ", ".join(p["warm"]["stages_ran"]) or "none"],
            ["tsne.perplexity changed", p["tsne_perplexity_changed"]["seconds"], ", ".join(p["tsne_perplexity_changed"]["stages_ran"])]]
    fresh = deck.get("fresh_clone_make_deck")
    if fresh:
        rows.insert(0, ["fresh clone: make deck (install, pipeline, Slidev build, PDF)", fresh["seconds"], "all"])
    stages, ref = p["cold"]["stages"], deck.get("reference_cold")
    if ref:
        rows.insert(1, [f"reference {ref['commit']}: pipeline + render, cold, just before", ref["seconds"], "all"])
    out += table(["run", "s", "stages that ran"], rows)
    theirs = ref["stages"] if ref else {}
    names = list(dict.fromkeys([*stages, *theirs]))
    out += table(["stage (cold)", "s", "peak RSS MiB", *([f"reference {ref['commit']} s"] if ref else [])],
                 [[n, stages.get(n, {}).get("seconds", ""), stages.get(n, {}).get("peak_rss_mb", ""),
                   *([theirs.get(n, {}).get("seconds", "")] if ref else [])] for n in names])
    return out


def scale_lines(scale: dict) -> list[str]:
    out = [f"### All of Fashion-MNIST: {scale['images']:,} images, `{scale['command']}`", ""]
    ref = scale.get("reference")
    runs = {"this code": scale, **({f"reference {ref['commit']}": ref} if ref else {})}
    out += table(["run", "wall s", "peak RSS MiB", "extraction images/s", *scale["quality"]],
                 [[name, r["wall_s"], r["peak_rss_mb"], r["images_per_s_extract"],
                   *[r["quality"].get(key, "") for key in scale["quality"]]] for name, r in runs.items()])
    names = list(dict.fromkeys([*scale["stages"], *(ref["stages"] if ref else {})]))
    out += table(["stage", *[f"{name} s" for name in runs], *[f"{name} MiB" for name in runs]],
                 [[n, *[r["stages"].get(n, {}).get("seconds", "") for r in runs.values()],
                   *[r["stages"].get(n, {}).get("peak_rss_mb", "") for r in runs.values()]] for n in names])
    if ref:
        out += [f"Speed-up against the reference: {scale['speedup_vs_reference']}x; quality, this code minus the "
                f"reference: {fmt(scale['quality_delta'])}", ""]
    return out


def ray_lines(ray: dict) -> list[str]:
    out = [f"### Ray engine against the local engine, one machine ({ray['set']})", ""]
    rows = [[r["engine"], r["workers"], r["torch_threads"], r["images_per_s"], r.get("steady_images_per_s", ""),
             r.get("startup_s", ""), r["pass_s"], r["stage_s"]] for r in ray["engines"].values()]
    out += table(["engine", "model workers", "torch threads each", "images/s (start-up included)",
                  "images/s once running", "start-up s", "pass s", "extract stage s"], rows)
    out += ["Ray / local: " + fmt(ray["ray_vs_local"]), ""]
    return out


def compare_lines(compare: dict) -> list[str]:
    out = ["### What `make compare` adds to the demo deck", "",
           f"`make deck` {compare['deck_s']} s; then `--compare demo` into the same folder {compare['added_s']} s "
           f"(ran: {', '.join(compare['stages_ran'])}).", ""]
    out += table(["stage", "s"], [[name, s] for name, s in compare["per_stage_s"].items()])
    rows = compare.get("rows") or []
    if rows:
        keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float)) and not isinstance(rows[0][k], bool)]
        out += table(["backbone", "pooling", *keys], [[r.get("backbone", ""), r.get("pooling", ""),
                                                      *[r.get(k, "") for k in keys]] for r in rows])
    return out


def report_lines(report: dict) -> list[str]:
    out = [f"### The report's map ({report['points']:,} points, `{report['run']}`)", ""]
    rows = [["report folder (MB)", report["folder_mb"], fmt({k: round(v / 1e6, 2) for k, v in list(report["bytes_by_kind"].items())[:5]})],
            ["open, cold, to the map drawn with every point (ms, median)", report["open_ms"]["median"],
             ", ".join(str(o["ready_ms"]) for o in report["open_ms"]["runs"])],
            ["hover: mousemove to the tooltip's frame (ms, median / max)", f"{report['hover_ms']['median']} / {report['hover_ms']['max']}",
             f"{report['hover_ms']['answered']} of {report['hover_ms']['of']} hovers answered"],
            ["hover to its thumbnail shown, wall (ms, median / max)", f"{report['thumbnail_ms_wall']['median']} / "
             f"{report['thumbnail_ms_wall']['max']}", "sheets fetched lazily"]]
    return out + table(["measure", "value", "detail"], rows)


def place_lines(place: dict) -> list[str]:
    out = [f"### `embdeck place`: {place['held_out']} held-out images on a run of {place['images']:,} "
           f"({place['held_out_kind']})", ""]
    rows = [["t-SNE: placed vs a refit that includes them, RMS error / map's RMS radius", place["tsne_error_share_of_radius"]],
            ["... median error / radius", place["tsne_error_median_share"]],
            ["floor: the run's own images, refit vs run, RMS / radius", place["floor_share_of_radius"]],
            ["images/s (models loaded): pt2, TorchScript", fmt(place["images_per_s"])],
            ["images/s with loading the models", fmt(place["images_per_s_with_loading"])],
            ["largest difference pt2 vs TorchScript (map units)", place["pt2_vs_torchscript_max_diff"]]]
    return out + table(["measure", "value"], rows)




def million_lines(million: dict) -> list[str]:
    synthetic = million.get("synthetic") or {}
    noise = synthetic.get("noise", {}).get("embeddings", {})
    through = (f"these analysis stages and what they read: {', '.join(million['only'])}" if million.get("only")
               else "every analysis stage")
    out = [f"### {million['points']:,} synthetic points through {through}: {million['label']}", "",
           f"Made from {million['source']['images']:,} real images ({million['source']['run']}): each point copies a "
           f"seeded-random real image (label, file, pixels, thumbnail) and adds seeded Gaussian noise to its embedding "
           f"(sigma {noise.get('sigma_per_dim')} per dimension, {synthetic.get('noise_fraction_of_median_nn_distance')} "
           f"of the median nearest-neighbour distance {noise.get('median_nn_distance')}; mean cosine of a copy to its "
           f"source {synthetic.get('mean_cosine_copy_to_source')}). Config: {', '.join(million['config'])}. Left out: "
           + "; ".join(f"{name} ({why})" for name, why in million["left_out"].items()) + ".", ""]
    growth = million["growth"]
    base, base_states, cached = growth["baseline_seconds"], growth.get("baseline_states", {}), growth.get("cached", {})
    rows = [[name, s["state"], s["seconds"], s["peak_rss_mb"],
             f"{base[name]} (cached)" if base_states.get(name) == "cached" else base.get(name, ""),
             f"{growth['exponents'][name]} (not judged: cached {cached[name]})" if name in cached
             else growth["exponents"].get(name, ""),
             s.get("reason") or ("stand-in" if name in ("ingest", "extract") else "")]
            for name, s in million["stages"].items()]
    out += table(["stage", "state", "s", "peak RSS MiB", f"s at {growth['from_points']:,}" if growth["from_points"]
                  else "s at a baseline (none)", "growth exponent", "note"],
                 rows)
    knn = million["retrieval_knn"]
    out += [f"Stand-ins {million['stand_in_seconds']} s; analysis {million['analysis_seconds']} s; wall "
            f"{million['wall_s']} s; peak {million['peak_rss_mb']} MiB (within 16 GiB: {million['within_16_gib']}). "
            f"Retrieval + k-NN accuracy: {knn['seconds']} s = {knn['counted']} ({fmt(knn['parts'])}); not counted: "
            f"{fmt(knn['not_counted'])}. Growth baseline: {growth['from']}.", ""]
    out += table(["space", "method", "index", "k", "recall@k", "recall queries", "s"],
                 [[space, f["method"], f.get("index", ""), f.get("k", ""), f.get("recall", ""),
                   f.get("recall_queries", ""), f["seconds"]] for space, f in million["neighbours"].items()])
    return out


def acceptance_lines(results: dict) -> list[str]:
    out = ["### Acceptance: findings on real sets with planted problems", ""]
    header = ["set", "images", "near-dup recall", "near-dup precision (groups)", "called", "look-alikes grouped",
              "label errors recall (flagged / top 2x)", "foreign in top 2x outliers", "chance / largest class share"]
    body = []
    for name, m in results.items():
        if not isinstance(m, dict) or "images" not in m:
            continue
        body.append([name, m["images"], f"{m['copies_found']}/{m['planted_copies']}",
                     f"{m['groups_with_a_planted_copy']}/{m['groups']}", f"{m['called_share']:.1%}",
                     f"{m['lookalikes_grouped']}/{m['lookalike_pairs']}",
                     f"{m.get('label_recall', '–')} / {m.get('label_recall_top2x', '–')}",
                     m.get("outlier_recall_top2x", "–"), f"{m.get('chance', '–')} / {m.get('largest_class_share', '–')}"])
    return out + table(header, body)


def photos_lines(result: dict) -> list[str]:
    out = [f"### Photographs ({result['set']}; batch {result['batch_size']})", ""]
    rows = []
    for name, ways in result["backbones"].items():
        for way in ("full decode (today)", "decoded at the needed size"):
            rows.append([name, way, ways[way]["images_per_s"], ways[way]["model_share"],
                         ways["speedup"] if way.startswith("decoded") else ""])
    out += table(["backbone", "decoding", "images/s", "model's share", "speed-up"], rows)
    rows = [[name, a["images"], a["embedding_cosine_min"], a["embedding_cosine_median"], a["patch_mean_cosine_min"],
             a.get("knn_accuracy_full", ""), a.get("knn_accuracy_fast", "")]
            for name, a in (("26 MP set", result["agreement_26mp"]), ("demo as 2048 px JPEGs", result["agreement_demo_2048"]))]
    out += table(["fast vs full decode", "images", "cosine min", "cosine median", "patch-mean cosine min",
                  "5-NN full (mean of 6 fold seeds)", "5-NN fast"], rows)
    return out


def render(results: dict, targets: list[dict]) -> str:
    m = results["machine"]
    lines = [f"## embdeck bench — {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB"
             + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"), ""]
    for part, fn in (("extract", extraction_lines), ("photos", photos_lines), ("maps", maps_lines),
                     ("scale", scale_lines), ("report", report_lines), ("place", place_lines), ("deck", deck_lines),
                     ("ray", ray_lines), ("compare", compare_lines),
                     ("acceptance", acceptance_lines), ("million", million_lines)):
        if part in results:
            lines += fn(results[part])
    lines += ["### Targets", ""]
    lines += table(["target", "measured", "wanted", "status", "note"],
                   [[t["target"], t["measured"], t["wanted"], t["status"], t["note"]] for t in targets])
    return "\n".join(lines)
