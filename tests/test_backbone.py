"""The backbone: bundled weights mapped onto timm, the ViT code path, and honest weight resolution."""

import numpy as np
import pytest
import torch

from pipeline.imaging import backbone
from pipeline.engine.config import BackboneConfig, Config
from pipeline.imaging.features import Preprocess, preprocess_for, split_features
from pipeline.engine.artifacts import StageError


def test_bundled_weights_classify_a_real_photo(coffee):
    import timm.data

    model = backbone.build_bundled_classifier()
    cfg = Config()
    prep = preprocess_for(model, cfg)
    assert prep.mean == (0.5, 0.5, 0.5) and prep.input_size == 224
    x = prep.to_tensor(prep.resize(coffee)[None], torch.device("cpu"))
    with torch.inference_mode():
        probs = model(x).softmax(-1)[0]
    info = timm.data.ImageNetInfo()
    top5 = [info.index_to_description(int(i)).lower() for i in probs.topk(5).indices]
    assert any(word in name for name in top5 for word in ("espresso", "coffee", "cup")), top5


def test_weight_mapping_rejects_a_shape_mismatch():
    source = {"a.weight": torch.zeros(3, 2), "b.weight": torch.zeros(4)}
    target = {"x.weight": torch.zeros(3, 2), "y.weight": torch.zeros(5)}
    with pytest.raises(ValueError, match="shape mismatch"):
        backbone.map_lite0_state_dict(source, target)
    target["y.weight"] = torch.zeros(4)
    assert list(backbone.map_lite0_state_dict(source, target)) == ["x.weight", "y.weight"]


def test_vit_path_shapes_and_determinism(coffee):
    choice = backbone.resolve(BackboneConfig(model="vit_small_patch16_224.dino", weights="random"))
    assert choice.source == "random" and "random weights" in choice.display_name
    outputs = []
    for _ in range(2):
        model = backbone.build(choice, seed=0)
        prep = preprocess_for(model, Config())
        batch = np.stack([prep.resize(coffee), prep.resize(coffee[::-1].copy())])
        with torch.inference_mode():
            outputs.append(split_features(model, model.forward_features(prep.to_tensor(batch, torch.device("cpu")))))
    (cls, mean, spatial), again = outputs
    assert cls.shape == (2, 384) and mean.shape == (2, 384) and spatial.shape == (2, 14, 14, 384)
    assert torch.allclose(mean, spatial.mean(dim=(1, 2)))
    assert not torch.allclose(cls, mean), "CLS token and mean of patch tokens are different features"
    for first, second in zip(outputs[0], again):
        assert torch.equal(first, second)


def test_auto_without_weights_uses_the_bundled_backbone_and_says_why():
    choice = backbone.resolve(BackboneConfig(model="auto"))
    assert choice.source == "bundled" and choice.model == backbone.BUNDLED
    assert "HF_HUB_OFFLINE" in choice.reason and "DINO" not in choice.display_name
    assert len(choice.weights_sha256) == 64


def test_named_model_without_weights_is_an_error_not_a_fallback():
    with pytest.raises(StageError, match="no weights for vit_small_patch14_dinov2.lvd142m"):
        backbone.resolve(BackboneConfig(model="vit_small_patch14_dinov2.lvd142m"))
    with pytest.raises(StageError, match="no model named"):
        backbone.resolve(BackboneConfig(model="not_a_model"))
    with pytest.raises(StageError, match="file not found"):
        backbone.resolve(BackboneConfig(weights="/nonexistent/weights.pth"))


def test_explicit_weights_file_is_loaded(tmp_path):
    """The air-gapped path: a state-dict file for a named timm model, used and hashed as given."""
    import timm

    torch.manual_seed(3)
    source = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    choice = backbone.resolve(BackboneConfig(model="vit_small_patch16_224.dino", weights=str(path)))
    assert choice.source == "file"
    built = backbone.build(choice)
    for name, tensor in source.state_dict().items():
        assert torch.equal(built.state_dict()[name], tensor), name


def test_thumbnail_path_upsamples_on_the_device(coffee):
    prep = Preprocess(224, 0.875, "bicubic", (0.5,) * 3, (0.5,) * 3, mode="thumbnail", thumbnail_size=32)
    small = prep.resize(coffee)
    assert small.shape == (32, 32, 3)
    x = prep.to_tensor(small[None], torch.device("cpu"))
    assert x.shape == (1, 3, 224, 224) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
