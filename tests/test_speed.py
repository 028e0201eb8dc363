"""The pieces the speed work rests on: the dtype check, peak memory, the capped parametric training, the exact
kNN graph, the t-SNE method by N, and the bench's own arithmetic. (Speed itself is measured by `make bench`.)"""

import numpy as np
import pytest

from pipeline import memory, neighbours, sampling
from pipeline.config import Config, load_config
from pipeline.stages import parametric, tsne


def test_bf16_is_measured_against_fp32_and_cnns_run_channels_last(small_set):
    import torch

    from pipeline import backbone
    from pipeline.stages.extract import check_dtype
    from pipeline.features import Extractor, pick_dtype, preprocess_for

    cfg = Config()
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    model = backbone.build(backbone.resolve(cfg.backbone)).eval()
    paths = sorted(small_set.rglob("*.png"))
    prep = preprocess_for(model, cfg)
    bf16 = Extractor(model, prep, torch.device("cpu"), torch.bfloat16, cfg.ingest.max_pixels)
    check = check_dtype(bf16, paths, load_config(None, ["extract.dtype_check_images=8"]))
    assert check["images"] == 8 and 0.97 <= check["min_cosine_to_fp32"] <= 1.0 + 1e-6
    # The CNN runs channels-last in micro-batches; the features must not depend on how a batch is cut.
    fp32 = Extractor(model, prep, torch.device("cpu"), torch.float32, cfg.ingest.max_pixels)
    assert fp32.convolutional and fp32.micro_batch == 8
    batch = np.stack([fp32.load(p) for p in paths[:12]])
    whole = fp32.features(batch)[0]
    fp32.micro_batch = 12
    assert torch.allclose(fp32.features(batch)[0], whole, atol=1e-4)


def test_the_frozen_cnn_pass_gives_the_eager_features_on_real_images(small_set):
    """The CPU CNN runs as a frozen TorchScript graph (BatchNorm folded); its features must be eager's."""
    import torch

    from pipeline import backbone
    from pipeline.features import FROZEN_TOLERANCE, Extractor, preprocess_for

    cfg = Config()
    model = backbone.build(backbone.resolve(cfg.backbone)).eval()
    prep = preprocess_for(model, cfg)
    cpu = torch.device("cpu")
    frozen = Extractor(model, prep, cpu, torch.float32, cfg.ingest.max_pixels)
    eager = Extractor(model, prep, cpu, torch.float32, cfg.ingest.max_pixels, freeze=False)
    assert frozen.frozen is not None and frozen.forward_pass["pass"].startswith("frozen")
    assert eager.frozen is None and eager.forward_pass == {"pass": "eager"}
    assert Extractor(model, prep, cpu, torch.bfloat16, cfg.ingest.max_pixels).frozen is None  # autocast: eager
    paths = sorted(small_set.rglob("*.png"))[:11]  # not a multiple of the micro-batch: a short last chunk
    batch = np.stack([frozen.load(p) for p in paths])
    for ours, reference in zip(frozen.features(batch), eager.features(batch)):
        assert ours.shape == reference.shape
        assert float((ours - reference).abs().max()) <= FROZEN_TOLERANCE * float(reference.abs().max())


def test_peak_memory_sees_an_allocation_and_resets():
    if not memory.reset_peak():
        pytest.skip("this kernel does not allow resetting the peak RSS")
    before = memory.peak_rss_mb()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
    during = memory.peak_rss_mb()
    del block
    memory.reset_peak()
    after = memory.peak_rss_mb()
    assert during - before >= 60 and after < during - 30


def test_release_still_frees_a_cycle_made_after_the_last_release():
    """``release`` freezes what survives it (so later collections skip it); a stage's own reference cycle,
    made after that, must still be freed by the next release."""
    memory.release()

    class Node:
        pass

    node = Node()
    node.itself, node.block = node, np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched, held by a cycle
    before = memory.rss_mb()
    del node
    memory.release()
    assert before - memory.rss_mb() >= 60


def test_exact_knn_graph_matches_brute_force(pixel_features):
    x, _ = pixel_features
    found, dists = neighbours.exact_knn(x, 6)
    brute = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    expected = np.sort(brute, axis=1)[:, :6]
    assert np.allclose(dists, expected, atol=1e-3)
    assert (found[:, 0] == np.arange(len(x))).mean() > 0.99  # itself first, as umap-learn expects


def test_parametric_training_is_capped_and_judged_on_what_it_saw(pixel_features):
    x, labels = pixel_features
    held = sampling.holdout_split([str(v) for v in labels], 0.2, seed=0)
    train = np.flatnonzero(~held)
    rows = sampling.sample_of(train, 150, seed=0)
    assert len(rows) == 150 and not held[rows].any() and np.array_equal(rows, sampling.sample_of(train, 150, 0))
    assert np.array_equal(sampling.sample_of(train, 0, 0), train)
    cfg = load_config(None, ["parametric.umap_edges_per_epoch=2000", "parametric.tsne_images_per_epoch=100",
                             "parametric.umap_epochs=5", "parametric.tsne_epochs=5"])
    heads = parametric.train_heads(x, x[:, :2], held, cfg)
    umap_facts, mlp_facts = heads["param_umap"].fit_facts, heads["tsne_mlp"].fit_facts
    assert umap_facts["train_images"] == mlp_facts["train_images"] == len(train), "every training image, none held out"
    assert umap_facts["edges_per_epoch"] == 2000 < umap_facts["graph_edges"], "the epoch's edges are capped"
    assert mlp_facts["images_per_epoch"] == 100


def test_tsne_neighbours_are_exact_and_exclude_the_point_itself(pixel_features):
    from openTSNE.affinity import MultiscaleMixture
    from openTSNE.nearest_neighbors import PrecomputedNeighbors
    from sklearn.neighbors import NearestNeighbors

    x, _ = pixel_features
    x = np.concatenate([x[:200], x[:3], x[:3]])  # each of the first three images three times over
    found, distances = neighbours.exact_graph(x, 90, "l2", False, 64)  # the PCA space's graph, as t-SNE reads it
    assert found.shape == (len(x), 90) and not (found == np.arange(len(x))[:, None]).any()
    assert np.array_equal(distances[[0, 200, 203], :2], np.zeros((3, 2)))  # its two copies come first
    _, reference = NearestNeighbors(n_neighbors=90).fit(x).kneighbors(x[3:200], 91)
    agree = np.mean([len(np.intersect1d(a, b[1:])) / 90 for a, b in zip(found[3:200], reference)])
    assert agree > 0.999
    # The affinities are those openTSNE computes itself with its exact neighbour search.
    unique = x[:200].astype(np.float64)
    graph = neighbours.exact_graph(unique, 90, "l2", False, 64)
    ours = MultiscaleMixture(perplexities=[30], knn_index=PrecomputedNeighbors(graph[0], graph[1].astype(np.float64)))
    theirs = MultiscaleMixture(unique, [30], method="exact")
    assert abs(ours.P - theirs.P).max() < 1e-5 and abs(ours.P.sum() - 1.0) < 1e-6


def test_tsne_method_by_n():
    assert tsne.gradient_method("auto", 2_000, 30_000) == "bh"
    assert tsne.gradient_method("auto", 70_000, 30_000) == "fft"
    assert tsne.gradient_method("bh", 70_000, 30_000) == "bh"
    with pytest.raises(Exception, match="auto, fft or bh"):
        tsne.gradient_method("exact", 10, 30_000)


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


def test_install_builds_opentsne_against_fftw():
    # make install builds openTSNE from source against Debian's FFTW; its wheel would fall back to a slower FFT.
    assert tsne.fft_library() == "FFTW"


def test_bench_counts_every_flop_of_a_vit():
    # ViT-S/16 at 224: the patch convolution, then 12 blocks of qkv, attention, projection and MLP matmuls.
    from bench.extraction import build_extractor, model_flops

    tokens, width = 197, 384
    block = 2 * tokens * width * (3 * width + width + 2 * 4 * width) + 2 * 2 * tokens * tokens * width
    expected = 12 * block + 2 * 196 * width * 3 * 16 * 16
    assert model_flops(build_extractor("vit", "fp32")) == pytest.approx(expected, rel=1e-6)
