"""The issue's targets, each read off the bench's own figures: met, not met (with the measured bound), or not
measured in this run (a part was skipped, or no GPU was present)."""

from __future__ import annotations

COLD_RATIO_TARGET = 60 / 66  # the demo's cold pipeline: 60 s aimed for, the first release's 66 s then


def _get(data: dict, *keys, default=None):
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def dependants(name: str) -> set[str]:
    """``name`` and every stage that reads its outputs, directly or not (from the stage declarations)."""
    from pipeline.registry import STAGES

    found = {name}
    for stage in STAGES:  # listed in dependency order
        if found & set(stage.deps):
            found.add(stage.name)
    return found


def readers(override: str) -> set[str]:
    """The stages whose cache key a ``section.field=value`` override changes: those that declare the section
    among their params, and those whose derived settings move with it (the neighbour graph's PCA-space k is
    3 x ``tsne.perplexity``)."""
    from pipeline.engine.config import load_config
    from pipeline.registry import STAGES

    base, changed = load_config(None, []), load_config(None, [override])
    section = override.split("=", 1)[0].split(".", 1)[0]
    return {stage.name for stage in STAGES
            if section in stage.params or (stage.derived and stage.derived(base) != stage.derived(changed))}


def evaluate(results: dict) -> list[dict]:
    rows = []

    def add(name, value, target, met, note=""):
        rows.append({"target": name, "measured": value, "wanted": target,
                     "status": "not measured" if met is None else ("met" if met else "NOT met"), "note": note})

    extract = results.get("extract")
    if extract and extract.get("device") == "cpu":
        vit = extract["backbones"]["vit"]
        frac = vit["fp32"]["model_only"]["fraction_of_peak"]
        add("ViT-S/16 fp32: fraction of fp32 GEMM peak", frac, ">= 0.70", frac >= 0.70)
        dtype, quality = extract["default_dtype"], extract["quality"]["bf16 default size"]
        equal = quality["cosine_to_fp32_min"] >= 0.99 and abs(quality["knn_delta_vs_fp32"]) <= 0.005
        peak = extract["gemm_peak_gflop_per_s"]["fp32"]
        for name in ("vit", "bundled"):
            b = extract["backbones"][name]
            ratio = round(b[dtype]["pipeline"]["images_per_s"] / b["seed_way"]["images_per_s"], 2)
            # The bound: the seed's loop already does the model's arithmetic at some GFLOP/s; no fp32 path can
            # beat it by more than the fp32 GEMM peak allows.
            seed_gflops = b["seed_way"]["images_per_s"] * b["fp32"]["model_only"]["gflop_per_image"]
            bf16 = round(b["bf16"]["pipeline"]["images_per_s"] / b["seed_way"]["images_per_s"], 2)
            note = (f"bound: the seed's loop runs at {seed_gflops / peak:.2f} of the fp32 GEMM peak, so fp32 can be "
                    f"at most {peak / seed_gflops:.2f}x it; bf16 gives {bf16}x"
                    + (", at equal quality" if equal else " but misses the equal-quality bar"))
            add(f"{name}: default CPU path ({dtype}) vs the seed deck's way", ratio, ">= 2.5", ratio >= 2.5,
                note if dtype == "fp32" and ratio < 2.5 else "")
        add("bf16 vs fp32: lowest cosine (bundled, demo set)", quality["cosine_to_fp32_min"], ">= 0.99",
            quality["cosine_to_fp32_min"] >= 0.99)
        add("bf16 vs fp32: k-NN accuracy difference", quality["knn_delta_vs_fp32"], "|d| <= 0.005",
            abs(quality["knn_delta_vs_fp32"]) <= 0.005)
        add("the CPU default is bf16 only at equal quality", dtype, "bf16 if equal, else fp32",
            dtype == ("bf16" if equal else "fp32"))
        share = extract["backbones"]["bundled"][dtype]["pipeline"]["model_share"]
        add("decoding never starves the model (model's share of extraction time)", share, ">= 0.9", share >= 0.9)
    elif extract:
        b = extract["backbones"]["vit"]
        ratio = round(b["bf16"]["pipeline"]["images_per_s"] / b["seed_way"]["images_per_s"], 2)
        add("GPU: ViT-S/16 bf16 vs the seed deck's way", ratio, ">= 10", ratio >= 10)
    maps = results.get("maps")
    if maps:
        sizes = maps["sizes"]
        slower = [n for n, r in sizes.items() if r["tsne"]["speedup"] < 1.0]
        add("t-SNE never slower than scikit-learn", {n: r["tsne"]["speedup"] for n, r in sizes.items()}, ">= 1 at every N",
            not slower, f"slower at N={', '.join(slower)}" if slower else "")
        full = sizes.get("70000")
        if full:
            add("t-SNE at 70k vs scikit-learn", full["tsne"]["speedup"], ">= 2.5", full["tsne"]["speedup"] >= 2.5)
        gaps = {n: round(r["tsne"]["embdeck"]["trustworthiness"] - r["tsne"]["sklearn"]["trustworthiness"], 4)
                for n, r in sizes.items()}
        for n, r in sizes.items():
            compared = r.get("kmeans_sweep", {}).get("sample_vs_full")
            if compared:
                add(f"k-means sweep on a {compared['sample']:,} sample vs all {compared['of']:,}: chosen k",
                    f"{compared['chosen_k_sample']} vs {compared['chosen_k_full']}", "equal",
                    compared["chosen_k_sample"] == compared["chosen_k_full"],
                    f"largest silhouette difference {compared['max_abs_silhouette_delta']}, Davies-Bouldin "
                    f"{compared['max_abs_davies_bouldin_delta']}")
        add("t-SNE trustworthiness vs scikit-learn", gaps, "within 0.01", all(abs(g) <= 0.01 for g in gaps.values()))
    scale = results.get("scale")
    if scale:
        add("70,000 images: whole run (embdeck deck)", scale["wall_s"], "<= 300 s", scale["wall_s"] <= 300,
            f"reference {scale['reference']['commit']}: {scale['reference']['wall_s']} s" if scale.get("reference") else "")
        peak = scale["peak_rss_mb"]
        add("70,000 images: peak memory (MiB)", peak, "<= 3072", None if peak is None else peak <= 3072)
        for key, delta in scale.get("quality_delta", {}).items():
            add(f"70,000 images: {key} against the reference", delta, "within 0.005", abs(delta) <= 0.005)
    report = results.get("report")
    if report:
        where = f"{report['points']:,} points"
        add(f"report opens, map drawn ({where}; ms)", report["open_ms"]["median"], "< 3000", report["open_ms"]["median"] < 3000)
        hover = report["hover_ms"]
        add(f"hover answers ({where}; ms, max)", hover["max"], "< 100",
            hover["max"] < 100 and hover["answered"] == hover["of"], f"{hover['answered']} of {hover['of']} answered")
        add(f"report folder ({where}; MB)", report["folder_mb"], "<= 30", report["folder_mb"] <= 30)
    deck = results.get("deck")
    if deck:
        p = deck["pipeline"]
        ref = deck.get("reference_cold")
        add("demo pipeline cold (s)", p["cold"]["seconds"], "<= 60", p["cold"]["seconds"] <= 60,
            f"reference {ref['commit']}: {ref['seconds']} s in this run" if ref else "")
        if ref:  # the 60 s against the first release's 66 s then, as a ratio on today's machine
            add(f"demo pipeline cold / reference {ref['commit']}'s, side by side", deck["cold_ratio_to_reference"],
                f"<= {COLD_RATIO_TARGET:.3f} (60 / 66)", deck["cold_ratio_to_reference"] <= COLD_RATIO_TARGET)
        add("demo warm rerun (s), nothing recomputed", p["warm"]["median_s"], "< 3, no stage ran",
            p["warm"]["median_s"] < 3 and not p["warm"]["stages_ran"])
        changed = p["tsne_perplexity_changed"]["stages_ran"]
        from .deck import TSNE_CHANGE

        touched = readers(TSNE_CHANGE)
        expected = set().union(*(dependants(name) for name in touched))
        add(f"{TSNE_CHANGE} set: only the stages it reaches rerun", ", ".join(changed),
            f"{', '.join(sorted(touched))} + dependants", set(changed) <= expected and "tsne" in changed)
        fresh = deck.get("fresh_clone_make_deck")
        if fresh:
            add("demo deck from a fresh clone, install included (s)", fresh["seconds"], "< 300", fresh["seconds"] < 300)
    ray = results.get("ray")
    if ray:
        ratio = ray["ray_vs_local"]["images_per_s"]
        engines = ray["engines"]
        add("Ray engine's images/s vs the local engine's, one machine (start-up included)", ratio, ">= 0.75",
            ratio >= 0.75, f"{engines['ray']['images_per_s']} vs {engines['local']['images_per_s']} images/s; "
            f"{engines['ray']['startup_s']} s of Ray start-up, {ray['ray_vs_local']['steady_images_per_s']} once running")
    if results.get("photos"):
        from .photos import targets as photo_targets

        rows += photo_targets(results["photos"])
    if results.get("update"):
        from .update import targets as update_targets

        rows += update_targets(results["update"])
    million = results.get("million")
    if million:
        rows += million_targets(million)
    return rows


def million_targets(million: dict) -> list[dict]:
    """The million-point scaling test's targets; below a million points they are shown but not judged."""
    rows = []
    points, at_million = million["points"], million["points"] == 1_000_000
    note = "" if at_million else f"measured at N = {points:,}, not the million the target is for"

    def add(name, value, wanted, met, extra=""):
        rows.append({"target": name, "measured": value, "wanted": wanted,
                     "status": "not measured" if met is None or not at_million else ("met" if met else "NOT met"),
                     "note": "; ".join(part for part in (note, extra) if part)})

    exponents, grown = million["growth"]["exponents"], million["growth"]["from_points"]
    cached = million["growth"].get("cached", {})
    judged = {name: e for name, e in exponents.items() if name not in cached}
    if exponents:
        worst = max(judged or exponents, key=exponents.get)
        above = {name: e for name, e in judged.items() if e > 1.2}
        unjudged = (f"not judged, a time from an earlier run (cached): "
                    + ", ".join(f"{n} {exponents[n]} ({side})" for n, side in cached.items()) + "; ") if cached else ""
        rows.append({"target": f"growth {grown:,} -> {points:,} points: every stage's time exponent",
                     "measured": f"{exponents[worst]} ({worst})", "wanted": "<= 1.2",
                     "status": "not measured" if not judged else "met" if not above else "NOT met",
                     "note": (f"above: {', '.join(f'{n} {e}' for n, e in above.items())}; " if above else "")
                     + unjudged + f"baseline: {million['growth']['from']}"})
    failed = million.get("failed") or {}
    add("a million points: retrieval + k-NN accuracy (s)", million["retrieval_knn"]["seconds"], "<= 300",
        None if million["retrieval_knn"]["seconds"] is None else million["retrieval_knn"]["seconds"] <= 300,
        million["retrieval_knn"]["counted"])
    only = million.get("only")
    add("a million points: the whole analysis (s)", million["analysis_seconds"], "<= 3600",
        None if only else million["analysis_seconds"] <= 3600 and not failed,
        f"only these stages ran: {', '.join(only)}" if only
        else f"failed or skipped: {', '.join(failed)}" if failed else "every analysis stage ran")
    add("a million points: peak memory of any analysis stage (MiB)", million["peak_rss_mb"], "<= 16384",
        None if million["peak_rss_mb"] is None else million["within_16_gib"])
    return rows
