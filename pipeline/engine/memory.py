"""Peak resident memory of this process over a stretch of code (per stage), from the kernel's own counter.

Linux keeps the high-water mark of a process's resident set (``VmHWM``) and resets it when ``5`` is written to
``/proc/self/clear_refs``; that measures every allocation (numpy, torch, numba, FAISS), not samples of it.
Where either file is missing the peak is reported as unknown (None), never guessed.

Stages run one after another in one process, so what one stage freed but the allocator kept would count in the
next stage's peak: ``release`` collects garbage and hands glibc's free heap back to the kernel first.
"""

from __future__ import annotations

import ctypes
import gc
import re
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def release() -> None:
    """Free what the last stage left unreachable and return the allocator's free pages to the kernel.

    What survives the collection between stages is the process's long-lived state (modules, torch's and
    numba's registries); ``gc.freeze`` sets it aside so that the next collection does not walk it again. A full
    collection of it took ~0.33 s once torch, timm and umap-learn were loaded, paid before every stage (5 s of a
    demo run); the stages' own leftovers are still collected, since they were not alive when it was frozen."""
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def reset_peak() -> bool:
    """Start a new measurement window; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return round(int(found.group(1)) / 1024, 1) if found else None


def peak_rss_mb() -> float | None:
    """The resident-set high-water mark since the last reset (or process start), in MiB."""
    return _status_mb("VmHWM")


def rss_mb() -> float | None:
    """The resident set now, in MiB (what a stage's peak started from)."""
    return _status_mb("VmRSS")
