"""Stage ``export``: the feature extractor, the map heads and image -> point models, in a Triton layout.

Inputs: ``ingest``, ``extract`` (the embeddings, for parity), ``parametric`` (the map heads). Params:
``export``, ``backbone``. Outputs, under ``model_repository/``: ``dino_model`` (image -> global embedding; the
folder name is the one the deployment expects, whatever backbone made this run, and ``config.pbtxt`` names
the real one), ``tsne_map`` and ``umap_map`` (image -> 2-D point: backbone and map head in one file) and
``tsne_head`` and ``umap_head`` (embedding -> 2-D point: what ``embdeck place`` runs after ``dino_model``,
so a new image goes through the backbone once). Image models take float32 RGB in [0, 1], shape
(B, 3, S, S), already resized; normalisation happens inside. Each model is written twice, ``1/model.pt``
(TorchScript, which Triton's PyTorch backend loads) and ``1/model.pt2`` (a torch.export program, its batch
dimension dynamic), with one ``config.pbtxt``. The check loads every saved file back and compares it with the
eager model on real images: the largest difference, and each image alone against the batch.
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
  {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {input_dims} ] }}
]
output [
  {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {dims} ] }}
]
parameters {{ key: "backbone" value: {{ string_value: "{backbone}" }} }}
parameters {{ key: "input" value: {{ string_value: "{input}" }} }}
"""
FILES = (("torchscript", "model.pt"), ("export", "model.pt2"))


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


def check(path: Path, eager, inputs) -> dict:
    """Load the saved file back; compare with the eager module; each input alone against the batch; time a batch."""
    import torch

    from ..model_files import load

    loaded = load(path)
    with torch.inference_mode():
        want, got = eager(inputs), loaded(inputs)
        alone = torch.cat([loaded(inputs[i:i + 1]) for i in range(len(inputs))])
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            loaded(inputs)
            timings.append(time.perf_counter() - started)
    return {"max_abs_diff": float((want - got).abs().max()), "batch_independence_max_diff":
            float((alone - got).abs().max()), "batch": len(inputs), "ms_per_batch": round(float(np.median(timings)) * 1000, 2),
            "bytes": path.stat().st_size, "output": got.numpy()}


def models_to_export(ctx: StageContext, extractor, images, dims: int) -> dict:
    """folder -> (module, its check inputs, what it takes, output dims): the extractor and, with the map heads,
    each head alone and behind the extractor."""
    import torch

    from ..map_heads import MapHead

    _, ImageToPoint = wrappers()
    with torch.inference_mode():
        embeddings = extractor(images)
    models = {"dino_model": (extractor, images, "image", dims)}
    heads_info = ctx.load_json("parametric", "heads") if ctx.has("parametric") else {}
    for name, kind in (("tsne_mlp", "tsne"), ("param_umap", "umap")):
        if name not in heads_info:
            continue
        info = heads_info[name]
        head = MapHead(np.zeros(info["projection"], np.float32), np.zeros(info["projection"][0], np.float32),
                       info["hidden"], info["layers"])
        head.load_state_dict(torch.load(ctx.path("parametric", f"{name}_weights"), weights_only=True))
        models[f"{kind}_map"] = (ImageToPoint(extractor, head.eval()).eval(), images, "image", 2)
        models[f"{kind}_head"] = (head.eval(), embeddings.clone(), "embedding", 2)
    return models


def write_model(folder: Path, module, inputs, config: dict, tolerance: float) -> dict:
    """Both files of one model and its config.pbtxt, each checked against the eager module."""
    import torch

    from ..model_files import export_program, script

    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        compiled, how = script(module, inputs)
    compiled.save(str(folder / "model.pt"))
    export_program(module, inputs, folder / "model.pt2")
    (folder.parent / "config.pbtxt").write_text(PBTXT.format(**config))
    results = {kind: check(folder / name, module, inputs) for kind, name in FILES}
    for kind, name in FILES:
        if results[kind]["max_abs_diff"] > tolerance:
            raise StageError(f"exported {config['name']}/1/{name} differs from the eager model by "
                             f"{results[kind]['max_abs_diff']:.2e} (tolerance {tolerance:g})")
    return {"compiled_with": how, **results}


def run(ctx: StageContext) -> dict:
    import torch

    from .. import backbone as backbones
    from ..features import preprocess_for
    from ..images import read_rgb
    from ..model_files import MAX_BATCH

    cfg = ctx.cfg.export
    choice = backbones.resolve(ctx.cfg.backbone)
    model = backbones.build(choice, seed=ctx.cfg.extract.seed)
    prep = preprocess_for(model, ctx.cfg)
    manifest, root = read_manifest(ctx)
    picks = spread_indices(len(manifest), min(cfg.check_images, cfg.batch_size * 4))[: cfg.batch_size]
    batch = np.stack([prep.resize(read_rgb(root / manifest[i]["path"])) for i in picks])
    images = prep.to_unit(batch, torch.device("cpu"))
    FeatureExtractor, _ = wrappers()
    extractor = FeatureExtractor(model, prep.mean, prep.std).eval()
    dims = int(ctx.summary("extract")["embedding_dim"])
    size = prep.input_size
    takes = {"image": (f"3, {size}, {size}", f"RGB float32 in [0, 1], resized to {size}x{size}; normalised inside"),
             "embedding": (str(dims), f"the {dims}-d embedding that dino_model gives")}
    results = {}
    for folder, (module, inputs, kind, out_dims) in models_to_export(ctx, extractor, images, dims).items():
        config = {"name": folder, "max_batch": 64, "input_dims": takes[kind][0], "dims": out_dims,
                  "backbone": choice.display_name, "input": takes[kind][1]}
        written = write_model(ctx.out_dir / REPOSITORY / folder / "1", module, inputs, config, cfg.tolerance)
        output = written["torchscript"].pop("output")
        written["export"].pop("output")
        result = {**written["torchscript"], "takes": kind, "compiled_with": written["compiled_with"],
                  "pt2": written["export"]}
        if folder == "dino_model":
            stored = ctx.load_npy("extract", "embeddings", mmap=True)[picks]
            result["max_abs_diff_vs_pipeline"] = float(np.abs(stored - output).max())
        results[folder] = result
    ctx.save_npy("check_images", np.asarray(picks, np.int64))
    return {"models": results, "input_size": size, "backbone": choice.display_name, "max_batch_pt2": MAX_BATCH,
            "layout": f"{REPOSITORY}/<name>/1/model.pt and model.pt2, <name>/config.pbtxt", "tolerance": cfg.tolerance}


STAGE = Stage(
    name="export",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.summary", "parametric.heads",
            "parametric.param_umap_weights", "parametric.tsne_mlp_weights"),
    params=("export", "backbone"),
    optional=("parametric",),  # without the map heads, the feature extractor is still exported
    outputs={"model": f"{REPOSITORY}/dino_model/1/model.pt", "program": f"{REPOSITORY}/dino_model/1/model.pt2",
             "model_config": f"{REPOSITORY}/dino_model/config.pbtxt", "check_images": "check_images.npy"},
)
