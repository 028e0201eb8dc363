"""Peak resident memory of this process over a stretch of code (per stage), from the kernel's own counter.

Linux keeps the high-water mark of a process's resident set (``VmHWM``) and resets it when ``5`` is written to
``/proc/self/clear_refs``; that measures every allocation (numpy, torch, numba, FAISS), not samples of it.
Where either file is missing the peak is reported as unknown (None), never guessed.
"""

from __future__ import annotations

import re
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new measurement window; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """The resident-set high-water mark since the last reset (or process start), in MiB."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return round(int(found.group(1)) / 1024, 1) if found else None
