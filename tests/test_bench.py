"""The bench's own arithmetic: growth exponents, which stages a setting reaches, the targets' verdicts, and the
FLOPs it counts for a ViT (speed itself is measured by `make bench`, never asserted)."""

import pytest


def test_bench_arithmetic_and_targets():
    from bench.common import growth_exponent
    from bench.targets import dependants, evaluate, readers

    assert growth_exponent([1000, 2000, 4000], [1.0, 4.0, 16.0]) == pytest.approx(2.0)
    assert dependants("tsne") >= {"tsne", "parametric", "fidelity"} and "umap" not in dependants("tsne")
    # perplexity reaches the neighbour graph through its derived PCA-space k; a t-SNE iteration count does not
    assert {"tsne", "neighbours"} <= readers("tsne.perplexity=31") and "pca" not in readers("tsne.perplexity=31")
    assert "neighbours" not in readers("tsne.n_iter=500")
    rows = evaluate({"maps": {"sizes": {"2000": {"tsne": {"speedup": 0.9, "embdeck": {"trustworthiness": 0.98},
                                                         "sklearn": {"trustworthiness": 0.985}}}}}})
    never_slower = next(r for r in rows if r["target"].startswith("t-SNE never slower"))
    assert never_slower["status"] == "NOT met" and "2000" in never_slower["note"]


def test_bench_counts_every_flop_of_a_vit():
    # ViT-S/16 at 224: the patch convolution, then 12 blocks of qkv, attention, projection and MLP matmuls.
    from bench.extraction import build_extractor, model_flops

    tokens, width = 197, 384
    block = 2 * tokens * width * (3 * width + width + 2 * 4 * width) + 2 * 2 * tokens * tokens * width
    expected = 12 * block + 2 * 196 * width * 3 * 16 * 16
    assert model_flops(build_extractor("vit", "fp32")) == pytest.approx(expected, rel=1e-6)
