"""What ingest recorded of each file, by (path, size, mtime): a file unchanged since then is not read again.

As git's index and DVC do: an entry is trusted while the file's size and modification time (in nanoseconds) are
those recorded. Git's racy-git rule holds too: a file modified less than ``RACY_NS`` before the recording began
is not recorded (its next change could keep the same mtime on a coarse clock), so it is read again next time.
``ingest.rehash = true`` reads every file whatever the cache says. One JSON file per image folder, under the
store folder (``store``), replaced atomically; losing it costs one full read, never a wrong hash.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from ..engine.artifacts import hash_json

RACY_NS = 2_000_000_000  # 2 s: FAT's mtime step, the coarsest a local file system here may have
KEPT = ("sha256", "bytes", "width", "height")


class StatCache:
    """The recorded entries of one image folder, read once; ``save`` writes the new ones."""

    def __init__(self, store: Path, folder: str):
        self.path = Path(store) / "stat" / f"{hash_json(folder)[:20]}.json"
        self.started_ns = time.time_ns()
        try:
            self.entries = json.loads(self.path.read_text(encoding="utf-8"))["files"]
        except (FileNotFoundError, ValueError, KeyError):
            self.entries = {}

    def get(self, rel: str, size: int, mtime_ns: int) -> dict | None:
        """The recorded facts of a file (sha256, bytes, width, height) if its size and mtime are unchanged."""
        entry = self.entries.get(rel)
        if entry is None or entry["size"] != size or entry["mtime_ns"] != mtime_ns:
            return None
        return {key: entry[key] for key in KEPT}

    def save(self, records: list[tuple[str, int, int, dict]]) -> None:
        """(path, size, mtime_ns, manifest record) of every usable file, less the racily clean ones."""
        files = {rel: {"size": size, "mtime_ns": mtime, **{key: record[key] for key in KEPT}}
                 for rel, size, mtime, record in records if mtime < self.started_ns - RACY_NS}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex}")
        tmp.write_text(json.dumps({"files": files}), encoding="utf-8")
        os.replace(tmp, self.path)
