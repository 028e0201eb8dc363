"""The feature extractor: timm preprocessing, batched forward passes, and the three kinds of features.

Kept apart from the ``extract`` stage so that planning a run (``embdeck status``, a warm rerun) never pays
for importing torch. Decoding (torch-free, shared with the Ray engine's decode tasks) is in ``decoding``,
the choice of device and dtype in ``devices``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from .decoding import Batch, Keep, Preprocess, decode, resize_center_crop  # noqa: F401 - the extractor's API
from .devices import native_bf16, pick_device, pick_dtype  # noqa: F401 - the extractor's API

if TYPE_CHECKING:
    from ..engine.config import Config

log = logging.getLogger("embdeck")


def preprocess_for(model: torch.nn.Module, cfg: "Config") -> Preprocess:
    import timm.data

    data = timm.data.resolve_model_data_config(model)
    size = cfg.backbone.input_size or int(data["input_size"][-1])
    return Preprocess(size, float(data.get("crop_pct") or 1.0), str(data.get("interpolation", "bicubic")),
                      tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]),
                      cfg.backbone.preprocess, cfg.backbone.thumbnail_size)


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


class FeatureSplit(torch.nn.Module):
    """``forward_features`` then ``split_features`` as one module, so the whole pass can be traced."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return split_features(self.model, self.model.forward_features(x))


FROZEN_TOLERANCE = 1e-4  # largest difference from eager allowed, relative to the largest feature


@torch.inference_mode()
def frozen_pass(model: torch.nn.Module, size: int, device: torch.device) -> tuple[torch.jit.ScriptModule | None, dict]:
    """The CNN's forward pass traced and frozen, which folds each BatchNorm into the convolution before it
    (~1.3x the images/s of eager for the bundled EfficientNet-Lite0 on 2 CPU cores), and how far it is from
    eager on a seeded batch; ``None`` (eager stays) when the two differ beyond ``FROZEN_TOLERANCE``.

    TorchScript is deprecated in torch 2.14 but still the one CPU path that folds BatchNorm without a C++
    toolchain and a compile of tens of seconds (``torch.compile``); its warnings are silenced here only."""
    split = FeatureSplit(model).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(CNN_CPU_MICRO_BATCH, 3, size, size, generator=generator).to(device)
    example = example.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.jit")
        frozen = torch.jit.freeze(torch.jit.trace(split, example, check_trace=False))
    odd = example[:3]  # another batch size than the traced one: the graph must not have fixed it
    difference = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                     for x in (example, odd) for a, b in zip(frozen(x), split(x)))
    facts = {"max_relative_diff_to_eager": difference, "tolerance": FROZEN_TOLERANCE}
    if difference > FROZEN_TOLERANCE:
        log.warning("the frozen forward pass differs from eager by %.1e (relative); extracting eagerly", difference)
        return None, {"pass": "eager", **facts}
    return frozen, {"pass": "frozen TorchScript (BatchNorm folded)", **facts}


class Extractor:
    """A built backbone plus its preprocessing, ready to turn image files into features."""

    def __init__(self, model: torch.nn.Module, prep: Preprocess, device: torch.device, dtype: torch.dtype,
                 max_pixels: int, micro_batch: int = 0, freeze: bool = True):
        self.model, self.prep, self.device, self.dtype, self.max_pixels = model.to(device), prep, device, dtype, max_pixels
        self.convolutional = self.probe_convolutional()
        if self.convolutional:
            self.model.to(memory_format=torch.channels_last)
        on_cpu = self.convolutional and device.type == "cpu"
        self.micro_batch = micro_batch or (CNN_CPU_MICRO_BATCH if on_cpu else 0)
        # fp32 only: the frozen graph would not follow autocast's bf16 choices.
        self.frozen, self.forward_pass = None, {"pass": "eager"}
        if freeze and on_cpu and dtype == torch.float32:
            self.frozen, self.forward_pass = frozen_pass(self.model, prep.input_size, device)

    @torch.inference_mode()
    def probe_convolutional(self) -> bool:
        """Whether the backbone's features are a (B, C, H, W) map: a CNN, which runs faster channels-last."""
        size = self.prep.input_size
        return self.model.forward_features(torch.zeros(1, 3, size, size, device=self.device)).ndim == 4

    def load(self, path: Path) -> np.ndarray:
        return decode(path, -1, Keep(), self.prep, self.max_pixels)["input"]

    def decode(self, row: int, item, keep: Keep) -> dict:
        """One input, decoded once: the model's input and what ``keep`` asks for. An array is an input that
        an earlier pass already decoded and resized."""
        if isinstance(item, np.ndarray):
            return {"input": item}
        if self.device.type == "cuda":  # JPEGs decoded by nvJPEG on the device; the rest, and refusals, on the CPU
            from .gpu_jpeg import decode as on_device

            found = on_device(item, row, keep, self.prep, self.max_pixels, self.device)
            if found is not None:
                return found
        return decode(item, row, keep, self.prep, self.max_pixels)

    def agreement(self, paths: list[Path]) -> float:
        """Lowest cosine, over ``paths``, between this dtype's features (global and patch mean) and fp32's."""
        batch = np.stack([self.load(p) for p in paths])
        ours = self.features(batch)
        reference = self.features(batch, torch.float32)
        return float(min(cosine_rows(a.numpy(), b.numpy()).min() for a, b in zip(ours[:2], reference[:2])))

    @torch.inference_mode()
    def features(self, batch: np.ndarray, dtype: torch.dtype | None = None, rows_per_call: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features of a batch, the network called on ``micro_batch`` rows at a time (else ``rows_per_call``,
        else the whole batch). A short last call is padded to that many rows (copies of its last), so every row
        goes through a call of the same shape: a row's bits then do not depend on which batch it came in, which
        the embedding store relies on. Measured with the bundled CNN at 112 px: rows shifted within 8-row calls
        are bit-identical; the same rows called one at a time differ by up to 1.2e-5 (2e-6 of the largest)."""
        x = self.prep.to_tensor(batch, self.device)
        if self.convolutional:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = dtype or self.dtype
        step = self.micro_batch or rows_per_call or len(x)
        parts = []
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32):
            for start in range(0, len(x), step):
                chunk = x[start:start + step]
                rows = len(chunk)
                if rows < step:
                    chunk = torch.cat([chunk, chunk[-1:].expand(step - rows, *chunk.shape[1:])])
                    if self.convolutional:
                        chunk = chunk.contiguous(memory_format=torch.channels_last)
                if self.frozen is not None and dtype == torch.float32:
                    outputs = self.frozen(chunk)
                else:
                    outputs = split_features(self.model, self.model.forward_features(chunk))
                parts.append([t[:rows].float().cpu() for t in outputs])
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
            g, m, s = self.features(inputs, rows_per_call=batch_size)
            stats.model_seconds += time.perf_counter() - started
            rows = np.arange(start, start + len(decoded))
            kept = {name: np.stack([d[name] for d in decoded]) for name in ("pixels", "thumb") if name in decoded[0]}
            kept["crop"] = {start + i: d["crop"] for i, d in enumerate(decoded) if "crop" in d}
            kept["input"] = {int(row): inputs[i] for i, row in enumerate(rows) if row in keep.input_rows}
            yield Batch(rows, g.numpy(), m.numpy(), s.numpy() if keep_spatial else None, kept)
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
