"""The extractor's passes on real images: bf16 measured against fp32, the CNN channels-last in micro-batches
whose cut does not change the features, and the frozen TorchScript pass equal to the eager one."""

import numpy as np
import pytest

from pipeline.engine.config import Config, load_config


@pytest.mark.full
def test_bf16_is_measured_against_fp32_and_cnns_run_channels_last(small_set):
    import torch

    from pipeline.imaging import backbone
    from pipeline.stages.extract import check_dtype
    from pipeline.imaging.features import Extractor, pick_dtype, preprocess_for

    cfg = Config()
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    model = backbone.build(backbone.resolve(cfg.backbone)).eval()
    paths = sorted(small_set.rglob("*.png"))
    prep = preprocess_for(model, cfg)
    bf16 = Extractor(model, prep, torch.device("cpu"), torch.bfloat16, cfg.ingest.max_pixels)
    manifest = [{"path": str(p.relative_to(small_set))} for p in paths]
    check = check_dtype(bf16, manifest, small_set, load_config(None, ["extract.dtype_check_images=8"]))
    assert check["images"] == 8 and 0.97 <= check["min_cosine_to_fp32"] <= 1.0 + 1e-6
    # The CNN runs channels-last in micro-batches; the features must not depend on how a batch is cut.
    fp32 = Extractor(model, prep, torch.device("cpu"), torch.float32, cfg.ingest.max_pixels)
    assert fp32.convolutional and fp32.micro_batch == 8
    batch = np.stack([fp32.load(p) for p in paths[:12]])
    whole = fp32.features(batch)[0]
    fp32.micro_batch = 12
    assert torch.allclose(fp32.features(batch)[0], whole, atol=1e-4)


@pytest.mark.full
def test_the_frozen_cnn_pass_gives_the_eager_features_on_real_images(small_set):
    """The CPU CNN runs as a frozen TorchScript graph (BatchNorm folded); its features must be eager's."""
    import torch

    from pipeline.imaging import backbone
    from pipeline.imaging.features import FROZEN_TOLERANCE, Extractor, preprocess_for

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
