"""What every part of the pipeline writes and reads: atomic JSON and NumPy files, CSV tables, content hashes,
StageError.

Kept apart from the runner so that the runner, the run record and the stages can all use it without
importing each other.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np


class StageError(RuntimeError):
    """A stage could not run for a reason the user can act on; the message says what to change."""


def hash_json(data) -> str:
    """sha256 of a JSON-able value, independent of dict order."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def finite(data):
    """``data`` with every NaN and infinity as None (null): strict JSON has no such numbers, and parsers that
    keep to it (JSON.parse, jq, Go, Rust) refuse a file that holds one."""
    if isinstance(data, (float, np.floating)):
        return float(data) if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def json_text(data) -> str:
    """Strict JSON: non-finite numbers become null, and ``allow_nan=False`` refuses any that slipped past."""
    return json.dumps(finite(data), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"


def write_json(path: Path, data) -> None:
    path.write_text(json_text(data), encoding="utf-8")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_json_atomic(path: Path, data) -> None:
    """Write beside the target, then rename: a reader sees the old file or the new one, never half of one."""
    tmp = _temporary(path)
    write_json(tmp, data)
    os.replace(tmp, path)


def save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = _temporary(path)
    with open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """An array file, never unpickled; ``mmap`` maps it read-only instead of reading it into memory."""
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)


def open_npy(path: Path, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A new array file mapped for writing row by row (memory stays bounded); the same bytes as ``np.save``."""
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def write_csv(path: Path, header: list[str], rows) -> None:
    """A table for the user (a header line, then ``rows``), as Python's csv module writes it."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
