"""Which torch device and dtype a network runs on: CUDA, Apple's MPS, or the CPU.

Shared by extraction and the parametric map heads. Only torch's documented calls are used
(``torch.cuda.is_available``, ``torch.backends.mps.is_available``); the MPS path cannot be tested on the
project's Linux machines, so it keeps to what torch documents for it.
"""

from __future__ import annotations

import os

import torch

from ..engine.artifacts import StageError

# cuBLAS is deterministic (torch.use_deterministic_algorithms) only with a fixed workspace, set before its first
# handle exists (torch's reproducibility notes); every module that runs a network on a device imports this one.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pick_device(name: str, setting: str = "extract.device") -> torch.device:
    """``auto``: CUDA when present, else Apple's MPS when torch reports it, else the CPU. A device asked for
    by name that is not there is an error naming ``setting``, never a silent fallback."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise StageError(f"{setting}=cuda but no CUDA device is available; use {setting}=auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise StageError(f"{setting}=mps but torch reports no MPS device (Apple silicon, macOS 12.3 or newer, "
                         f"an MPS build of torch); use {setting}=auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is computed natively here (CUDA, or a CPU with AVX512-BF16/AMX through oneDNN).

    Not claimed for MPS: its bf16 support depends on the macOS version, and nothing here can check it."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "mps":
        return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that has it; fp32 on a CPU and on MPS.

    On this project's CPUs bf16 is native and ~2.5x faster, but on the demo set its features fall just
    outside the bar set for equal quality (lowest cosine to fp32 0.990, 5-NN accuracy 0.006 lower;
    ``make bench``), so a CPU run stays fp32 unless ``extract.dtype = "bf16"`` is asked for.
    """
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and native_bf16(device) else torch.float32
    if name not in ("fp32", "bf16"):
        raise StageError(f"extract.dtype must be auto, fp32 or bf16, got {name!r}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
