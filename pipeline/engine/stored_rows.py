"""Per-image arrays that a stage output names instead of holding: rows of the embedding store, by content.

The extract stage's per-image outputs (embeddings, patch means, pixel copies, thumbnails) are already in the
embedding store, one row per image's sha256. Copying them into every run's cache entry cost a grown collection
more than embedding its new images (70,700 images at 112 px: 1.4 GB rewritten, hashed and synced for 700 new
rows). So the entry holds ``rows.npy`` (each row's sha256, in the run's order) and, per array, a small
``<name>.rows.json`` naming the store's namespace and part. ``load_array`` (what ``StageContext.load_npy``
calls) opens such a file as ``StoredRows``, which reads like the memory-mapped array it stands for (``shape``, ``dtype``, ``len``, indexing
by row, numpy conversion), gathering rows from the store's mapped segments, so memory stays bounded by what a
stage reads. An entry whose rows the store no longer has (``embdeck store --gc``) is not trusted
(``unresolved``): the runner runs the stage again.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .artifacts import load_npy, write_json
from .embedding_store import EmbeddingStore, Lookup, digests

SUFFIX = ".rows.json"
ITER_ROWS = 1024  # rows gathered at a time when a stage iterates over the array


def is_reference(path: Path) -> bool:
    return Path(path).name.endswith(SUFFIX)


def write_keys(path: Path, shas: list[str]) -> None:
    np.save(path, digests(shas), allow_pickle=False)


def write_reference(path: Path, store: EmbeddingStore, part: str, keys: str, rows: int,
                    row_shape: tuple[int, ...], dtype: np.dtype) -> None:
    """``path`` (``<name>.rows.json``): the array of ``rows`` rows of ``part`` that the store holds for the shas in
    the sibling file ``keys``. The store is named relative to the entry: the same run in a new output folder
    writes the same bytes (and keys the stages after it the same), and an output folder moved with its store
    still finds it."""
    where = os.path.relpath(store.folder.resolve(), Path(path).parent.resolve())  # so a new folder keys the same
    write_json(path, {"store": where, "namespace": store.folder.name, "part": part,
                      "keys": keys, "shape": [rows, *map(int, row_shape)], "dtype": np.dtype(dtype).str})


@lru_cache(maxsize=8)
def _lookup(folder: str, index_stamp: tuple, keys_file: str, keys_stamp: tuple) -> tuple[EmbeddingStore, Lookup]:
    """Where each row of a keys file is in a store namespace (cached while neither file changes)."""
    store = EmbeddingStore.existing(Path(folder))
    return store, store.lookup_digests(np.load(keys_file, allow_pickle=False))


def _stamp(path: Path) -> tuple:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _resolve(path: Path) -> tuple[dict, EmbeddingStore, Lookup]:
    about = json.loads(Path(path).read_text(encoding="utf-8"))
    folder = (Path(path).parent / about["store"]).resolve()
    keys = Path(path).parent / about["keys"]
    store, found = _lookup(str(folder), _stamp(folder / "index.json"), str(keys), _stamp(keys))
    return about, store, found


def unresolved(path: Path) -> str:
    """Why the rows a reference names cannot all be read now ("" when they can)."""
    try:
        _, store, found = _resolve(path)
    except (OSError, ValueError, KeyError) as exc:
        return f"{Path(path).name}: {exc}"
    if found.missing.any():
        return f"{Path(path).name}: {int(found.missing.sum())} of its rows are gone from the store {store.folder}"
    return ""


def renew_uses(entry: Path, outputs: list[str], user: str) -> None:
    """Record again that the output folder ``user`` reads the rows its cached ``entry`` names (as the stage did
    when it ran), so ``--gc`` keeps rows that runs still read from a cached entry."""
    renewed = set()
    for name in outputs:
        if not is_reference(name):
            continue
        about = json.loads((entry / name).read_text(encoding="utf-8"))
        folder, keys = (entry / about["store"]).resolve(), entry / about["keys"]
        if (folder, keys) not in renewed:
            renewed.add((folder, keys))
            EmbeddingStore.existing(folder).touch_digests(user, np.load(keys, allow_pickle=False))


class StoredRows:
    """A read-only (N, ...) array whose rows live in the embedding store; indexing gathers them."""

    def __init__(self, store: EmbeddingStore, found: Lookup, part: str, shape: tuple[int, ...], dtype):
        if found.missing.any():
            raise FileNotFoundError(f"{int(found.missing.sum())} rows of {part} are gone from the store {store.folder}")
        self.store, self.found, self.part = store, found, part
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._parts: dict[int, np.ndarray] = {}

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StoredRows({self.part}, shape={self.shape}, dtype={self.dtype}, store={self.store.folder})"

    def _segment(self, index: int) -> np.ndarray:
        if index not in self._parts:
            self._parts[index] = self.store.part(self.found.segments[index], self.part)
        return self._parts[index]

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The rows at ``positions`` (1-D, non-negative), in that order, as a new array."""
        segment, row = self.found.segment[positions], self.found.row[positions]
        out = np.empty((len(positions), *self.shape[1:]), self.dtype)
        if not len(positions):
            return out
        for index in np.unique(segment):
            mine = segment == index
            rows = row[mine]
            if mine.all() and rows[-1] - rows[0] + 1 == len(rows) and (np.diff(rows) == 1).all():
                out[:] = self._segment(int(index))[rows[0]:rows[-1] + 1]  # one run of rows: a plain read
            else:
                out[mine] = self._segment(int(index))[rows]
        return out

    def _positions(self, index) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            return np.arange(*index.indices(n), dtype=np.int64)
        picked = np.asarray(index)
        if picked.dtype == bool:
            if picked.shape != (n,):
                raise IndexError(f"a boolean index of shape {picked.shape} for {n} rows")
            return np.flatnonzero(picked)
        if not np.issubdtype(picked.dtype, np.integer):
            raise IndexError(f"rows are indexed by integers, slices or a boolean mask, not {picked.dtype}")
        if picked.size and (picked.min() < -n or picked.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return np.where(picked < 0, picked + n, picked).astype(np.int64)

    def __getitem__(self, index):
        if isinstance(index, tuple):  # rows first, then the rest applied to what they gave
            head, rest = (index[0], index[1:]) if index else (slice(None), ())
            taken = self[head]
            return taken[rest] if isinstance(head, (int, np.integer)) else taken[(slice(None), *rest)]
        if isinstance(index, (int, np.integer)):
            return self.take(self._positions([int(index)]))[0]
        if index is Ellipsis:
            index = slice(None)
        positions = self._positions(index)
        taken = self.take(positions.ravel())
        return taken.reshape(*positions.shape, *self.shape[1:])

    def __iter__(self):
        for start in range(0, len(self), ITER_ROWS):
            yield from self[start:start + ITER_ROWS]

    def __array__(self, dtype=None, copy=None):
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype, copy=False)


def open_rows(path: Path) -> StoredRows:
    about, store, found = _resolve(path)
    shape = tuple(about["shape"])
    if len(found.segment) != shape[0]:
        raise ValueError(f"{Path(path).name}: {len(found.segment)} keys for {shape[0]} rows")
    return StoredRows(store, found, about["part"], shape, about["dtype"])


def load_array(path: Path, mmap: bool = False):
    """A stage's array output: a ``.npy`` file (``artifacts.load_npy``), or a reference to rows of the store, opened
    as ``StoredRows`` that gathers rows as they are read (``mmap``) or read whole."""
    if not is_reference(path):
        return load_npy(path, mmap=mmap)
    rows = open_rows(path)
    return rows if mmap else np.asarray(rows)
