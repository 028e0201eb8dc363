"""The exported models' two file kinds: writing them, reading them back, and torch's deprecation of one.

``model.pt`` is TorchScript: Triton's PyTorch backend and the seed deck read it, so it stays. torch 2.14 calls
``torch.jit.script`` and ``torch.jit.load`` deprecated (a FutureWarning at every call); those warnings are
caught here and replaced by one line that says why the file is still written. ``model.pt2`` beside it is a
``torch.export`` program with a dynamic batch dimension, the format torch points to instead.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import warnings
from pathlib import Path

import torch

log = logging.getLogger("embdeck")

MAX_BATCH = 4096  # the largest batch the exported programs are traced for (any batch from 1 to this)
_explained = False


@contextlib.contextmanager
def torchscript_deprecation():
    """Run TorchScript calls with torch's deprecation warnings caught; say once per process why they run."""
    global _explained
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", category=FutureWarning, module=r"torch\.jit")
        yield
    deprecated = [w for w in caught if issubclass(w.category, FutureWarning) and "deprecated" in str(w.message)]
    for other in (w for w in caught if w not in deprecated):
        warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if deprecated and not _explained:
        _explained = True
        log.info("torch %s calls TorchScript deprecated; model.pt is still written and read as TorchScript because "
                 "Triton's PyTorch backend and the seed deck load it; model.pt2 beside it is the torch.export program",
                 torch.__version__.split("+")[0])


def script(module: torch.nn.Module, example: torch.Tensor) -> tuple[torch.jit.ScriptModule, str]:
    """torch.jit.script, or trace where script cannot; returns (module, how)."""
    with torchscript_deprecation():
        try:
            return torch.jit.script(module), "script"
        except Exception:  # noqa: BLE001 - scripting fails on some timm blocks; tracing is the documented fallback
            return torch.jit.trace(module, example, check_trace=False), "trace"


def export_program(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``module`` as a torch.export program whose first input takes any batch size."""
    name = next(iter(inspect.signature(module.forward).parameters))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    program = torch.export.export(module, (example,), dynamic_shapes={name: {0: batch}})
    torch.export.save(program, str(path))


def load(path: Path) -> torch.nn.Module:
    """A saved model, by its suffix: ``.pt2`` (torch.export) or ``.pt`` (TorchScript), on the CPU."""
    if path.suffix == ".pt2":
        return torch.export.load(str(path)).module()
    with torchscript_deprecation():
        return torch.jit.load(str(path), map_location="cpu").eval()
