"""The report of a finished run (by default the 70k run of the ``scale`` part) as a reader meets it: the folder's
size, the time it takes to open in Chromium until its map shows every point, and how fast a hover answers.

The folder is served from loopback (as a published site would be, minus the network) and opened by
``bench/report_page.mjs`` with Playwright: several cold opens, each in a fresh browser context, and hovers with
a real mouse, each timed in the page from the mousemove to the frame that paints the tooltip.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

from .deck import REPO

OPENS = 3
HOVERS = 20


def folder_size(folder: Path) -> tuple[int, dict[str, int]]:
    """Total bytes under ``folder`` and the bytes of each kind of file (by suffix)."""
    total, kinds = 0, {}
    for path in folder.rglob("*"):
        if path.is_file():
            size = path.stat().st_size
            total += size
            kinds[path.suffix or path.name] = kinds.get(path.suffix or path.name, 0) + size
    return total, dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def run(out: Path, opens: int = OPENS, hovers: int = HOVERS) -> dict:
    import sys

    sys.path.insert(0, str(REPO / "tests" / "browser"))
    from check_render import serve

    report = out / "report"
    if not (report / "index.html").is_file():
        raise RuntimeError(f"no report in {out}: run the scale part (or `embdeck deck --out {out}`) first")
    total, kinds = folder_size(report)
    server = serve(report)
    try:
        proc = subprocess.run(["node", str(REPO / "bench" / "report_page.mjs"),
                               f"http://127.0.0.1:{server.server_port}/index.html", str(opens), str(hovers)],
                              cwd=REPO, capture_output=True, text=True, timeout=900)
    finally:
        server.shutdown()
    if proc.returncode != 0:
        raise RuntimeError(f"the report's browser timing failed: {proc.stderr[-2000:]}")
    seen = json.loads(proc.stdout)
    frames = [h["frame_ms"] for h in seen["hovers"]]
    answered = [h for h in seen["hovers"] if h["shown"] and h["name"]]
    return {
        "run": str(out), "points": seen["points"], "folder_bytes": total, "folder_mb": round(total / 1e6, 2),
        "bytes_by_kind": kinds,
        "open_ms": {"median": statistics.median(o["ready_ms"] for o in seen["opens"]), "runs": seen["opens"]},
        "hover_ms": {"median": round(statistics.median(frames), 1), "max": round(max(frames), 1),
                     "answered": len(answered), "of": len(seen["hovers"])},
        "thumbnail_ms_wall": {"median": statistics.median(h["thumbnail_ms"] for h in seen["hovers"]),
                              "max": max(h["thumbnail_ms"] for h in seen["hovers"])},
        "page_errors": seen["errors"],
    }
