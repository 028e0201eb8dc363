"""What every benchmark part needs: repeated timings with their median, the machine, a GEMM peak, a slope."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import numpy as np


def timed(fn: Callable[[], object], reps: int, warmup: int = 0) -> tuple[dict, object]:
    """Run ``fn`` ``warmup`` + ``reps`` times; the median and every run's seconds, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    runs = []
    for _ in range(reps):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return {"median_s": round(statistics.median(runs), 4), "runs_s": [round(r, 4) for r in runs]}, result


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma"})
    except OSError:
        pass
    return []


def machine() -> dict:
    import torch

    from pipeline.engine.record import versions

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(), "memory_gib": round(memory_gib, 1),
            "gpu": gpu, "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "versions": versions()}


def gemm_peak(dtype_name: str, device: str = "cpu", sizes: tuple[int, ...] = (1024, 2048, 4096), reps: int = 5) -> float:
    """GFLOP/s of large square matmuls in this dtype on this device: the ceiling a model's share is read against.

    A ceiling, so the best run of the best size counts (a median would let one slow spell of a shared
    machine lower the ceiling and flatter every fraction read against it).
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)

        def once():
            torch.mm(a, b)
            sync()

        timing, _ = timed(once, reps, warmup=2)
        best = max(best, 2 * size**3 / min(timing["runs_s"]) / 1e9)
    return round(best, 1)


def growth_exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """The slope of log(time) against log(N): 1 is linear, 2 quadratic."""
    if len(sizes) < 2:
        return None
    return round(float(np.polyfit(np.log(sizes), np.log(np.maximum(seconds, 1e-9)), 1)[0]), 2)
