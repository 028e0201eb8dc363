"""Per-image arrays that a stage output names instead of holding: rows of the embedding store, by content.

The extract stage's per-image outputs (embeddings, patch means, pixel copies, thumbnails) are already in the
embedding store, one row per image's sha256. Copying them into every run's cache entry cost a grown collection
more than embedding its new images (70,700 images at 112 px: 1.4 GB rewritten, hashed and synced for 700 new
rows). So the entry holds ``rows.npy`` (each row's sha256, in the run's order) and, per array, a small
``<name>.rows.json`` naming the store's namespace and part (``write_rows``). ``load_array`` (what
``StageContext.load_npy`` calls) opens such a file as ``StoredRows``, which reads as the memory-mapped array it
stands for does in the ways stages read one (``shape``, ``dtype``, ``len``, rows by index, slice, list or mask, then
integers or slices for the other axes, numpy conversion), gathering rows from the store's mapped segments, so
memory stays bounded by what a stage reads. An entry whose rows the store no longer has (``embdeck store --gc``)
is not trusted (``unresolved``): the runner runs the stage again.
"""

from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .artifacts import file_sha256, load_npy, write_json
from .embedding_store import EmbeddingStore, Lookup, digests

log = logging.getLogger("embdeck")

SUFFIX = ".rows.json"
KEYS, LOCATION = "rows.npy", "store.json"  # beside the references in a cache entry: the row list, the store's place
ITER_ROWS = 1024  # rows gathered at a time when a stage iterates over the array


def is_reference(path: Path) -> bool:
    return Path(path).name.endswith(SUFFIX)


def write_rows(entry: Path, store: EmbeddingStore, shas: list[str], parts: dict[str, tuple[tuple, np.dtype]]) -> None:
    """Into the cache entry being written: ``rows.npy`` (the shas' digests, in the run's order), ``store.json``
    (where the store is) and per part ``<part>.rows.json`` (what it is: the namespace, the part, the keys' sha256,
    shape and dtype), for ``parts`` {part: (row shape, dtype)}. A reference's bytes name its content alone, so
    the stages after it are keyed the same in a new output folder or with the store elsewhere; the location is
    kept apart, relative to the entry (an output folder moved with its store still finds it) and absolute."""
    np.save(entry / KEYS, digests(shas), allow_pickle=False)
    folder = store.folder.resolve()
    write_json(entry / LOCATION, {"relative": os.path.relpath(folder, entry.resolve()), "absolute": str(folder)})
    for part, (row_shape, dtype) in parts.items():
        write_json(entry / f"{part}{SUFFIX}", {
            "namespace": store.folder.name, "part": part, "keys": KEYS, "keys_sha256": file_sha256(entry / KEYS),
            "store": LOCATION, "shape": [len(shas), *map(int, row_shape)], "dtype": np.dtype(dtype).str})


def _store_folder(entry: Path, about: dict) -> Path:
    """The namespace folder a reference names: where its location file says (relative first), checked by name."""
    where = json.loads((entry / about["store"]).read_text(encoding="utf-8"))
    relative = (entry / where["relative"]).resolve()
    folder = relative if relative.is_dir() else Path(where["absolute"])
    if folder.name != about["namespace"]:
        raise ValueError(f"{folder} is not the store namespace {about['namespace']}")
    return folder


@lru_cache(maxsize=8)
def _lookup(folder: str, index_stamp: tuple, keys_file: str, keys_stamp: tuple) -> tuple[EmbeddingStore, Lookup]:
    """Where each row of a keys file is in a store namespace (cached while neither file changes)."""
    store = EmbeddingStore.existing(Path(folder))
    return store, store.lookup_digests(np.load(keys_file, allow_pickle=False))


def _stamp(path: Path) -> tuple:
    """What changes when a file is replaced or rewritten (``os.replace`` gives a new inode)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0, 0, 0)
    return (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)


def _resolve(path: Path) -> tuple[dict, EmbeddingStore, Lookup]:
    entry = Path(path).parent
    about = json.loads(Path(path).read_text(encoding="utf-8"))
    folder, keys = _store_folder(entry, about), entry / about["keys"]
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
        folder, keys = _store_folder(entry, about), entry / about["keys"]
        if (folder, keys) not in renewed:
            renewed.add((folder, keys))
            try:
                EmbeddingStore.existing(folder).touch_digests(user, np.load(keys, allow_pickle=False))
            except OSError as exc:  # a store this user cannot write (read-only, shared): gc is not theirs either
                log.warning("the store %s did not take this run's record of the rows it reads: %s", folder, exc)


class StoredRows:
    """A read-only (N, ...) array whose rows live in the embedding store; indexing gathers them."""

    def __init__(self, store: EmbeddingStore, found: Lookup, part: str, shape: tuple[int, ...], dtype):
        if found.missing.any():
            raise FileNotFoundError(f"{int(found.missing.sum())} rows of {part} are gone from the store {store.folder} "
                                    "(freed by embdeck store --gc): run the deck again, which embeds them anew")
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

    def take(self, positions: np.ndarray) -> np.ndarray:
        """The rows at ``positions`` (1-D, non-negative), in that order, as a new array (``EmbeddingStore.gather``,
        the segments' maps kept between calls)."""
        out = np.empty((len(positions), *self.shape[1:]), self.dtype)
        self.store.gather(self.found.at(positions), self.part, out, self._parts)
        return out

    def _positions(self, index) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            return np.arange(*index.indices(n), dtype=np.int64)
        picked = np.asarray(index)
        if picked.size == 0 and picked.ndim == 1:
            return np.zeros(0, np.int64)
        if picked.dtype == bool:
            if picked.shape != (n,):
                raise IndexError(f"a boolean index of shape {picked.shape} for {n} rows")
            return np.flatnonzero(picked)
        if not np.issubdtype(picked.dtype, np.integer) or picked.ndim == 0:
            raise IndexError(f"rows are taken by an integer, a slice, integers or a boolean mask, not {index!r:.40}")
        if picked.size and (picked.min() < -n or picked.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        return np.where(picked < 0, picked + n, picked).astype(np.int64)

    def __getitem__(self, index):
        if isinstance(index, tuple):  # rows first, then integers or slices for the other axes
            head, rest = (index[0], index[1:]) if index else (slice(None), ())
            if head is Ellipsis or not all(isinstance(r, (int, np.integer, slice)) for r in rest):
                raise IndexError("stored rows are indexed by rows first, then integers or slices")
            taken = self[head]
            return taken[rest] if isinstance(head, (int, np.integer)) else taken[(slice(None), *rest)]
        if isinstance(index, (bool, np.bool_)):
            raise IndexError("a single boolean is no row index")
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
        if copy is False:
            raise ValueError("stored rows are always gathered into a new array")
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
