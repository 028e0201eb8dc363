"""Stage ``export``: the feature extractor, the map heads and image -> point models, in a Triton layout.

Inputs: ``ingest``, ``extract`` (the embeddings, for parity), ``parametric`` (the map heads). Params:
``export``, ``backbone``. Outputs, under ``model_repository/``: ``dino_model`` (image -> global embedding; the
folder name is the one the deployment expects, whatever backbone made this run, and ``config.pbtxt`` names
the real one), ``tsne_head`` and ``umap_head`` (embedding -> 2-D point: what ``embdeck place`` runs after
``dino_model``, so a new image goes through the backbone once), and ``tsne_map`` and ``umap_map`` (image ->
2-D point): Triton ensembles of ``dino_model`` then a head, a ``config.pbtxt`` and no weights of their own,
so the backbone is stored, traced and checked once. Image models take float32 RGB in [0, 1], shape
(B, 3, S, S), already resized; normalisation happens inside. Each model with weights is written twice,
``1/model.pt`` (TorchScript, which Triton's PyTorch backend loads) and ``1/model.pt2`` (a torch.export program,
its batch dimension dynamic), with one ``config.pbtxt``. The check loads every saved file back and compares it
with the eager model on real images: the largest difference, and each image alone against the batch; an
ensemble is checked by running its two loaded files one after the other against the eager composition.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from ..engine.stage import Stage, StageContext
from ..imaging.manifest import read_manifest
from ..methods.sampling import spread_indices

if TYPE_CHECKING:
    from ..engine.config import Config

REPOSITORY = "model_repository"

PBTXT = """name: "{name}"
platform: "{platform}"
max_batch_size: {max_batch}
input [
  {{ name: "INPUT__0" data_type: TYPE_FP32 dims: [ {input_dims} ] }}
]
output [
  {{ name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ {dims} ] }}
]
{scheduling}parameters {{ key: "backbone" value: {{ string_value: "{backbone}" }} }}
parameters {{ key: "input" value: {{ string_value: "{input}" }} }}
"""
# An image -> point ensemble: dino_model's output, named "embedding" inside the ensemble, feeds the head.
ENSEMBLE_STEPS = """ensemble_scheduling {{
  step [
    {{
      model_name: "dino_model"
      model_version: -1
      input_map {{ key: "INPUT__0" value: "INPUT__0" }}
      output_map {{ key: "OUTPUT__0" value: "embedding" }}
    }},
    {{
      model_name: "{head}"
      model_version: -1
      input_map {{ key: "INPUT__0" value: "embedding" }}
      output_map {{ key: "OUTPUT__0" value: "OUTPUT__0" }}
    }}
  ]
}}
"""
FILES = (("torchscript", "model.pt"), ("export", "model.pt2"))


def feature_extractor_class():
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

    return FeatureExtractor


def run_loaded(loaded, inputs) -> dict:
    """A loaded model on the batch, on each input alone, and a batch timed (median of 3)."""
    import torch

    with torch.inference_mode():
        got = loaded(inputs)
        alone = torch.cat([loaded(inputs[i:i + 1]) for i in range(len(inputs))])
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            loaded(inputs)
            timings.append(time.perf_counter() - started)
    return {"batch": got, "alone": alone, "seconds": float(np.median(timings))}


def verdict(want, ran: dict, inputs, nbytes: int) -> dict:
    return {"max_abs_diff": float((want - ran["batch"]).abs().max()),
            "batch_independence_max_diff": float((ran["alone"] - ran["batch"]).abs().max()), "batch": len(inputs),
            "ms_per_batch": round(ran["seconds"] * 1000, 2), "bytes": nbytes}


def check(path: Path, want, inputs) -> tuple[dict, dict]:
    """Load the saved file back and compare it with the eager module's output ``want``; each input alone
    against the batch; time a batch. Returns the verdict and the loaded model's outputs."""
    from ..imaging.model_files import load

    ran = run_loaded(load(path), inputs)
    return verdict(want, ran, inputs, path.stat().st_size), ran


def check_ensemble(backbone_ran: dict, head_path: Path, want, inputs) -> dict:
    """An ensemble as Triton runs it: the loaded head on the loaded backbone's outputs (batch and alone),
    against the eager head on the eager backbone."""
    import torch

    from ..imaging.model_files import load

    head = load(head_path)
    head_ran = run_loaded(head, backbone_ran["batch"])
    with torch.inference_mode():  # each image alone through both steps: the head on each alone embedding
        alone = torch.cat([head(backbone_ran["alone"][i:i + 1]) for i in range(len(inputs))])
    ran = {"batch": head_ran["batch"], "alone": alone, "seconds": backbone_ran["seconds"] + head_ran["seconds"]}
    return verdict(want, ran, inputs, 0)


def heads_to_export(ctx: StageContext) -> dict:
    """kind -> the parametric stage's trained map head, eval mode (none when that stage did not run)."""
    from ..methods.map_heads import load_head

    heads_info = ctx.load_json("parametric", "heads") if ctx.has("parametric") else {}
    heads = {}
    for name, kind in (("tsne_mlp", "tsne"), ("param_umap", "umap")):
        if name not in heads_info:
            continue
        info = heads_info[name]
        heads[kind] = load_head(ctx.path("parametric", f"{name}_weights"), tuple(info["projection"]), info["hidden"],
                                info["layers"])
    return heads


def write_model(folder: Path, module, inputs, config: dict, tolerance: float) -> tuple[dict, dict, "torch.Tensor"]:
    """Both files of one model and its config.pbtxt, each checked against the eager module; returns the
    verdicts, per file kind the loaded model's outputs (an ensemble's first step), and the eager output."""
    import torch

    from ..imaging.model_files import export_program, script

    folder.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        compiled, how = script(module, inputs)
    compiled.save(str(folder / "model.pt"))
    export_program(module, inputs, folder / "model.pt2")
    (folder.parent / "config.pbtxt").write_text(PBTXT.format(platform="pytorch_libtorch", scheduling="", **config))
    with torch.inference_mode():
        want = module(inputs)  # once for both files
    checked = {kind: check(folder / name, want, inputs) for kind, name in FILES}
    results = {kind: verdict for kind, (verdict, _) in checked.items()}
    refuse_beyond(config["name"], results, tolerance)
    return {"compiled_with": how, **results}, {kind: ran for kind, (_, ran) in checked.items()}, want


def refuse_beyond(name: str, results: dict, tolerance: float) -> None:
    for kind, file in FILES:
        if results[kind]["max_abs_diff"] > tolerance:
            raise StageError(f"exported {name}/1/{file} differs from the eager model by "
                             f"{results[kind]['max_abs_diff']:.2e} (tolerance {tolerance:g})")


def write_ensemble(folder: Path, backbone_ran: dict, head_folder: Path, want, inputs, config: dict,
                   tolerance: float) -> dict:
    """An image -> point ensemble (``dino_model`` then the head): its config.pbtxt and the empty version
    folder Triton expects, checked file kind by file kind against the eager composition."""
    (folder / "1").mkdir(parents=True, exist_ok=True)
    steps = ENSEMBLE_STEPS.format(head=config["head"])
    (folder / "config.pbtxt").write_text(PBTXT.format(platform="ensemble", scheduling=steps, dims=2, **config))
    results = {kind: check_ensemble(backbone_ran[kind], head_folder / "1" / file, want, inputs) for kind, file in FILES}
    refuse_beyond(config["name"], results, tolerance)
    return {"compiled_with": f"Triton ensemble: dino_model, then {config['head']}", **results}


def network_seed(cfg: "Config") -> dict:
    """extract.seed: the seed a randomly initialised network is built with, as extraction built it"""
    return {"seed": cfg.extract.seed}


def run(ctx: StageContext) -> dict:
    import torch

    from ..imaging import backbone as backbones
    from ..imaging.features import preprocess_for
    from ..imaging.images import read_rgb
    from ..imaging.model_files import MAX_BATCH

    cfg = ctx.cfg.export
    choice = backbones.resolve(ctx.cfg.backbone)
    model = backbones.build(choice, seed=ctx.derived["seed"])
    prep = preprocess_for(model, ctx.cfg)
    manifest, root = read_manifest(ctx)
    picks = spread_indices(len(manifest), min(cfg.check_images, cfg.batch_size * 4))[: cfg.batch_size]
    batch = np.stack([prep.resize(read_rgb(root / manifest[i]["path"])) for i in picks])
    images = prep.to_unit(batch, torch.device("cpu"))
    extractor = feature_extractor_class()(model, prep.mean, prep.std).eval()
    dims = int(ctx.summary("extract")["embedding_dim"])
    size = prep.input_size
    image_takes = (f"3, {size}, {size}", f"RGB float32 in [0, 1], resized to {size}x{size}; normalised inside")
    repository = ctx.out_dir / REPOSITORY
    common = {"max_batch": 64, "backbone": choice.display_name}

    def summary(written: dict, kind: str) -> dict:
        return {**written["torchscript"], "takes": kind, "compiled_with": written["compiled_with"], "pt2": written["export"]}

    config = {"name": "dino_model", "input_dims": image_takes[0], "dims": dims, "input": image_takes[1], **common}
    written, backbone_ran, embeddings = write_model(repository / "dino_model" / "1", extractor, images, config,
                                                    cfg.tolerance)
    stored = ctx.load_npy("extract", "embeddings", mmap=True)[picks]
    results = {"dino_model": {**summary(written, "image"), "max_abs_diff_vs_pipeline":
                              float(np.abs(stored - backbone_ran["torchscript"]["batch"].numpy()).max())}}
    for kind, head in heads_to_export(ctx).items():
        config = {"name": f"{kind}_head", "input_dims": str(dims), "dims": 2,
                  "input": f"the {dims}-d embedding that dino_model gives", **common}
        written, _, want = write_model(repository / f"{kind}_head" / "1", head, embeddings.clone(), config,
                                       cfg.tolerance)
        results[f"{kind}_head"] = summary(written, "embedding")
        config = {"name": f"{kind}_map", "input_dims": image_takes[0], "input": image_takes[1], "head": f"{kind}_head",
                  **common}
        results[f"{kind}_map"] = summary(write_ensemble(repository / f"{kind}_map", backbone_ran,
                                                        repository / f"{kind}_head", want, images, config,
                                                        cfg.tolerance), "image")
    ctx.save_npy("check_images", np.asarray(picks, np.int64))
    return {"models": results, "input_size": size, "backbone": choice.display_name, "max_batch_pt2": MAX_BATCH,
            "layout": f"{REPOSITORY}/<name>/1/model.pt and model.pt2, <name>/config.pbtxt (ensembles: config.pbtxt and an "
                      "empty 1/)", "tolerance": cfg.tolerance}


STAGE = Stage(
    name="export",
    run=run,
    inputs=("ingest.manifest", "ingest.summary", "extract.embeddings", "extract.summary", "parametric.heads",
            "parametric.param_umap_weights", "parametric.tsne_mlp_weights"),
    params=("export", "backbone"),
    derived=network_seed,
    optional=("parametric",),  # without the map heads, the feature extractor is still exported
    outputs={"model": f"{REPOSITORY}/dino_model/1/model.pt", "program": f"{REPOSITORY}/dino_model/1/model.pt2",
             "model_config": f"{REPOSITORY}/dino_model/config.pbtxt", "check_images": "check_images.npy",
             "repository": f"{REPOSITORY}/*"},  # the whole Triton repository: the heads and ensembles too
)
