"""Stage ``export``: the feature extractor and the two map models as TorchScript, in a Triton layout.

Inputs: ``ingest``, ``extract`` (the embeddings, for parity), ``parametric`` (the map heads). Params:
``export``, ``backbone``. Outputs, under ``model_repository/``: ``dino_model/1/model.pt`` (image -> global
embedding; the folder name is the one the deployment expects, whatever backbone made this run, and
``config.pbtxt`` names the real one), ``tsne_map/1/model.pt`` and ``umap_map/1/model.pt`` (image -> 2-D
point: backbone and map head in one file), each with its ``config.pbtxt``. Every model takes float32
RGB in [0, 1], shape (B, 3, S, S), already resized; normalisation happens inside. The check loads each saved
file back and compares it with the eager model on real images.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..artifacts import StageError
from ..manifest import read_manifest
from ..sampling import spread_indices
from ..stage import Stage, StageContext

REPOSITORY = "model_repository"
PBTXT = """name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch}
input [
  {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3, {size}, {size} ] }}
]
output [
  {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {dims} ] }}
]
parameters {{ key: "backbone" value: {{ string_value: "{backbone}" }} }}
parameters {{ key: "input" value: {{ string_value: "RGB float32 in [0, 1], resized to {size}x{size}; normalised inside" }} }}
"""


def scripted(module, example):
    """torch.jit.script, or trace where script cannot; returns (module, how)."""
    import torch

    try:
        return torch.jit.script(module), "script"
    except Exception:  # noqa: BLE001 - scripting fails on some timm blocks; tracing is the documented fallback
        return torch.jit.trace(module, example, check_trace=False), "trace"


def wrappers():
    import torch
    from torch import nn

    class FeatureExtractor(nn.Module):
        """RGB in [0, 1] -> the backbone's global embedding."""

        def __init__(self, model: nn.Module, mean, std):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            x = (images - self.mean) / self.std
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    class ImageToPoint(nn.Module):
        """RGB in [0, 1] -> a 2-D map point."""

        def __init__(self, extractor: nn.Module, head: nn.Module):
            super().__init__()
            self.extractor = extractor
            self.head = head

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.head(self.extractor(images))

    return FeatureExtractor, ImageToPoint


def check(path: Path, eager, images) -> dict:
    """Load the saved file back; compare with the eager module; time a batch; test batch independence."""
    import torch

    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        want, got = eager(images), loaded(images)
        alone = torch.cat([loaded(images[i:i + 1]) for i in range(len(images))])
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            loaded(images)
            timings.append(time.perf_counter() - started)
    return {"max_abs_diff": float((want - got).abs().max()), "batch_independence_max_diff":
            float((alone - got).abs().max()), "batch": len(images), "ms_per_batch": round(float(np.median(timings)) * 1000, 2),
            "bytes": path.stat().st_size, "output": got.numpy()}


def run(ctx: StageContext) -> dict:
    import torch

    from .. import backbone as backbones
    from ..features import preprocess_for
    from ..images import read_rgb
    from ..map_heads import MapHead

    cfg = ctx.cfg.export
    choice = backbones.resolve(ctx.cfg.backbone)
    model = backbones.build(choice, seed=ctx.cfg.extract.seed)
    prep = preprocess_for(model, ctx.cfg)
    manifest, root = read_manifest(ctx)
    picks = spread_indices(len(manifest), min(cfg.check_images, cfg.batch_size * 4))[: cfg.batch_size]
    batch = np.stack([prep.resize(read_rgb(root / manifest[i]["path"])) for i in picks])
    images = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0)
    FeatureExtractor, ImageToPoint = wrappers()
    extractor = FeatureExtractor(model, prep.mean, prep.std).eval()
    dims = int(ctx.summary("extract")["embedding_dim"])
    models = {"dino_model": (extractor, dims)}
    heads_info = ctx.load_json("parametric", "heads") if ctx.has("parametric") else {}
    for name, folder in (("tsne_mlp", "tsne_map"), ("param_umap", "umap_map")):
        if name not in heads_info:
            continue
        info = heads_info[name]
        head = MapHead(np.zeros(info["projection"], np.float32), np.zeros(info["projection"][0], np.float32),
                       info["hidden"], info["layers"])
        head.load_state_dict(torch.load(ctx.path("parametric", f"{name}_weights"), weights_only=True))
        models[folder] = (ImageToPoint(extractor, head.eval()).eval(), 2)

    results = {}
    for folder, (module, out_dims) in models.items():
        target = ctx.out_dir / REPOSITORY / folder / "1" / "model.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        with torch.inference_mode():
            compiled, how = scripted(module, images)
        compiled.save(str(target))
        (target.parent.parent / "config.pbtxt").write_text(PBTXT.format(
            name=folder, max_batch=64, size=prep.input_size, dims=out_dims, backbone=choice.display_name))
        result = check(target, module, images)
        output = result.pop("output")
        result["compiled_with"] = how
        if result["max_abs_diff"] > cfg.tolerance:
            raise StageError(f"exported {folder} differs from the eager model by {result['max_abs_diff']:.2e} "
                             f"(tolerance {cfg.tolerance:g})")
        if folder == "dino_model":
            stored = ctx.load_npy("extract", "embeddings", mmap=True)[picks]
            result["max_abs_diff_vs_pipeline"] = float(np.abs(stored - output).max())
        results[folder] = result
    ctx.save_npy("check_images", np.asarray(picks, np.int64))
    return {"models": results, "input_size": prep.input_size, "backbone": choice.display_name,
            "layout": f"{REPOSITORY}/<name>/1/model.pt + config.pbtxt", "tolerance": cfg.tolerance}


STAGE = Stage(
    name="export",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.summary", "parametric.heads",
            "parametric.param_umap_weights", "parametric.tsne_mlp_weights"),
    params=("export", "backbone"),
    optional=("parametric",),  # without the map heads, the feature extractor is still exported
    outputs={"model": f"{REPOSITORY}/dino_model/1/model.pt", "model_config": f"{REPOSITORY}/dino_model/config.pbtxt",
             "check_images": "check_images.npy"},
)
