"""The feature extractor: timm preprocessing, batched forward passes, and the three kinds of features.

Kept apart from the ``extract`` stage so that planning a run (``embdeck status``, a warm rerun) never pays
for importing torch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import images
from .artifacts import StageError

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("embdeck")

CV2_INTERPOLATION = {"bicubic": cv2.INTER_CUBIC, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST,
                     "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


@dataclass(frozen=True)
class Preprocess:
    """How a decoded RGB image becomes the network's input, from timm's data config."""

    input_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mode: str = "timm"  # timm | thumbnail
    thumbnail_size: int = 32

    def resize(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 HxWx3 -> uint8 at the size the batch is assembled at (input size, or the thumbnail)."""
        if self.mode == "thumbnail":
            return cv2.resize(rgb, (self.thumbnail_size, self.thumbnail_size), interpolation=cv2.INTER_AREA)
        return resize_center_crop(rgb, self.input_size, self.crop_pct, self.interpolation)

    def to_unit(self, batch: np.ndarray, device: torch.device) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, S, S) float RGB in [0, 1] on the device, upsampled there when the batch
        was assembled smaller: what the exported models take (they normalise inside)."""
        x = torch.from_numpy(batch).to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.input_size:
            x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                                align_corners=False)
        return x

    def to_tensor(self, batch: np.ndarray, device: torch.device) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> normalised (B, 3, S, S) float on the device."""
        x = self.to_unit(batch, device)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return (x - mean) / std


def resize_center_crop(rgb: np.ndarray, size: int, crop_pct: float, interpolation: str) -> np.ndarray:
    """timm's eval transform: shorter side to size / crop_pct, then the centre size x size crop."""
    scale_size = int(np.floor(size / crop_pct))
    height, width = rgb.shape[:2]
    if height <= width:
        new_h, new_w = scale_size, max(scale_size, round(width * scale_size / height))
    else:
        new_h, new_w = max(scale_size, round(height * scale_size / width)), scale_size
    flag = CV2_INTERPOLATION.get(interpolation, cv2.INTER_CUBIC)
    if new_h < height and new_w < width and flag == cv2.INTER_CUBIC:
        flag = cv2.INTER_AREA  # shrinking: area averaging avoids aliasing that bicubic keeps
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=flag)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(resized[top:top + size, left:left + size])


def preprocess_for(model: torch.nn.Module, cfg: "Config") -> Preprocess:
    import timm.data

    data = timm.data.resolve_model_data_config(model)
    size = cfg.backbone.input_size or int(data["input_size"][-1])
    return Preprocess(size, float(data.get("crop_pct") or 1.0), str(data.get("interpolation", "bicubic")),
                      tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]),
                      cfg.backbone.preprocess, cfg.backbone.thumbnail_size)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError("extract.device=cuda but no CUDA device is available; use extract.device=auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is computed natively here (CUDA, or a CPU with AVX512-BF16/AMX through oneDNN)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that has it; fp32 on a CPU.

    On this project's CPUs bf16 is native and ~2.5x faster, but on the demo set its features fall just
    outside the bar set for equal quality (lowest cosine to fp32 0.990, 5-NN accuracy 0.006 lower;
    ``make bench``), so a CPU run stays fp32 unless ``extract.dtype = "bf16"`` is asked for.
    """
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else torch.float32
    if name not in ("fp32", "bf16"):
        raise StageError(f"extract.dtype must be auto, fp32 or bf16, got {name!r}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def split_features(model: torch.nn.Module, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(global, mean of patch tokens, spatial tokens (B, h, w, D)) from ``forward_features``' output."""
    pooled = model.forward_head(feats, pre_logits=True)
    if feats.ndim == 4:  # CNN: (B, C, H, W)
        spatial = feats.permute(0, 2, 3, 1)
    else:  # ViT: (B, prefix + h*w, D)
        patches = feats[:, getattr(model, "num_prefix_tokens", 1):]
        side = int(round(patches.shape[1] ** 0.5))
        if side * side != patches.shape[1]:
            raise ValueError(f"cannot lay {patches.shape[1]} patch tokens out on a square grid")
        spatial = patches.reshape(patches.shape[0], side, side, patches.shape[2])
    return pooled, spatial.mean(dim=(1, 2)), spatial


def prefetched(items: list, load: Callable, batch_size: int, workers: int) -> Iterator[list]:
    """Decode batches in worker threads, one batch ahead of the model, in input order, memory bounded."""
    chunks = iter([items[i:i + batch_size] for i in range(0, len(items), batch_size)])
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append([pool.submit(load, item) for item in chunk])
            if len(pending) == 2:
                break
        while pending:
            futures = pending.popleft()
            next_chunk = next(chunks, None)
            if next_chunk is not None:
                pending.append([pool.submit(load, item) for item in next_chunk])
            yield [f.result() for f in futures]


@dataclass(frozen=True)
class Keep:
    """What a pass keeps of each decoded image besides its features, so no later stage decodes it again.

    ``pixels``: side of the raw-pixel baseline's copy; ``thumb``: side of the map's letterboxed thumbnail;
    ``crop``: side of a centre crop, for the rows in ``crop_rows`` (the patch maps' figure). 0: not kept.
    """

    pixels: int = 0
    thumb: int = 0
    crop: int = 0
    crop_rows: frozenset = frozenset()


@dataclass
class Batch:
    """One batch of a pass: rows ``start:start + len(inputs)`` of the input list."""

    start: int
    inputs: np.ndarray  # the model's uint8 input images
    pooled: np.ndarray
    mean: np.ndarray
    spatial: np.ndarray | None
    kept: dict[str, np.ndarray]  # "pixels", "thumb": stacked; "crop": {row: image}


@dataclass
class PassStats:
    """How one pass went; the log, the run record and the slides all read these figures."""

    images: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def stop(self) -> "PassStats":
        self.seconds = time.perf_counter() - self.started
        return self

    @property
    def model_share(self) -> float:
        return self.model_seconds / max(self.seconds, 1e-12)

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-12)


# On a CPU a CNN is fastest fed a few images at a time: its activations then stay in cache (EfficientNet-Lite0
# at 224 px here: ~4x the images/s of batches of 64). Decoding still works a whole batch ahead.
CNN_CPU_MICRO_BATCH = 8


class Extractor:
    """A built backbone plus its preprocessing, ready to turn image files into features."""

    def __init__(self, model: torch.nn.Module, prep: Preprocess, device: torch.device, dtype: torch.dtype,
                 max_pixels: int, micro_batch: int = 0):
        self.model, self.prep, self.device, self.dtype, self.max_pixels = model.to(device), prep, device, dtype, max_pixels
        self.convolutional = self.probe_convolutional()
        if self.convolutional:
            self.model.to(memory_format=torch.channels_last)
        self.micro_batch = micro_batch or (CNN_CPU_MICRO_BATCH if self.convolutional and device.type == "cpu" else 0)

    @torch.inference_mode()
    def probe_convolutional(self) -> bool:
        """Whether the backbone's features are a (B, C, H, W) map: a CNN, which runs faster channels-last."""
        size = self.prep.input_size
        return self.model.forward_features(torch.zeros(1, 3, size, size, device=self.device)).ndim == 4

    def load(self, path: Path) -> np.ndarray:
        return self.prep.resize(images.read_rgb(path, self.max_pixels))

    def decode(self, row: int, item, keep: Keep) -> dict:
        """One input, decoded once: the model's input and what ``keep`` asks for. An array is an input that
        an earlier pass already decoded and resized."""
        if isinstance(item, np.ndarray):
            return {"input": item}
        rgb = images.read_rgb(item, self.max_pixels)
        found = {"input": self.prep.resize(rgb)}
        if keep.pixels:
            found["pixels"] = images.small_copy(rgb, keep.pixels)
        if keep.thumb:
            found["thumb"] = images.letterbox(rgb, keep.thumb)
        if keep.crop and row in keep.crop_rows:
            found["crop"] = resize_center_crop(rgb, keep.crop, 1.0, "bicubic")
        return found

    def agreement(self, paths: list[Path]) -> float:
        """Lowest cosine, over ``paths``, between this dtype's features (global and patch mean) and fp32's."""
        batch = np.stack([self.load(p) for p in paths])
        ours = self.features(batch)
        reference = self.features(batch, torch.float32)
        return float(min(cosine_rows(a.numpy(), b.numpy()).min() for a, b in zip(ours[:2], reference[:2])))

    @torch.inference_mode()
    def features(self, batch: np.ndarray, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prep.to_tensor(batch, self.device)
        if self.convolutional:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = dtype or self.dtype
        step = self.micro_batch or len(x)
        parts = []
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            for start in range(0, len(x), step):
                feats = self.model.forward_features(x[start:start + step])
                parts.append([t.float().cpu() for t in split_features(self.model, feats)])
        return tuple(torch.cat(column) for column in zip(*parts))

    def stream(self, items: list, batch_size: int, workers: int, keep: Keep = Keep(), keep_spatial: bool = False,
               stats: PassStats | None = None, desc: str = "extract") -> Iterator[Batch]:
        """Features of ``items`` (image paths, or already resized inputs), batch by batch, in order.

        ``stats`` collects the pass's time and the share spent in the model (the rest is waiting for decoded
        images), which shows whether decoding starves the model.
        """
        stats = stats if stats is not None else PassStats()
        bar = tqdm(total=len(items), desc=desc, unit="img", disable=None)
        start = 0
        rows = list(enumerate(items))
        for decoded in prefetched(rows, lambda row: self.decode(row[0], row[1], keep), batch_size, workers):
            inputs = np.stack([d["input"] for d in decoded])
            started = time.perf_counter()
            g, m, s = self.features(inputs)
            stats.model_seconds += time.perf_counter() - started
            kept = {name: np.stack([d[name] for d in decoded]) for name in ("pixels", "thumb") if name in decoded[0]}
            kept["crop"] = {start + i: d["crop"] for i, d in enumerate(decoded) if "crop" in d}
            yield Batch(start, inputs, g.numpy(), m.numpy(), s.numpy() if keep_spatial else None, kept)
            start += len(decoded)
            stats.images += len(decoded)
            bar.update(len(decoded))
        bar.close()
        stats.stop()

    def run(self, items: list, batch_size: int, workers: int, keep_spatial: bool = False, desc: str = "extract"):
        """(global, patch mean, spatial or None) of ``items`` as whole arrays: for small sets and tools."""
        batches = list(self.stream(items, batch_size, workers, keep_spatial=keep_spatial, desc=desc))
        stack = (lambda parts: np.concatenate(parts).astype(np.float32))
        return (stack([b.pooled for b in batches]), stack([b.mean for b in batches]),
                stack([b.spatial for b in batches]) if keep_spatial else None)
