"""An append-only store of per-image features, keyed by each image's content (its sha256), so that a collection
that grows is embedded only where it is new.

One store folder holds one *namespace* per setting of everything that changes a row's numbers (network and
weights by content, preprocessing, input size, device and dtype, the code that computes a row): ``<ns>/``. A
namespace holds segments, each written once by one append and never changed: ``seg-<id>.keys.npy`` (the rows'
sha256 digests, ``S32``) and one ``seg-<id>.<array>.npy`` per feature array, and ``index.json``, the list of
committed segments. An append writes its segment's files under temporary names, fsyncs them, renames them into
place, and only then adds the segment to the index, under an exclusive ``fcntl.flock`` on ``index.lock`` (the
index is re-read under the lock and replaced atomically, so two runs appending at once both land). A run killed
at any point leaves either a committed segment or files that no index names (``gc`` removes them): a reader
trusts only what the index names. Reading maps segments (``mmap``), so assembling a million rows keeps memory
bounded: the keys (32 bytes a row) and their sort order are all that is held. Each output folder's last
extraction records which rows it read (``uses/<folder hash>.npy``), so ``gc`` can drop the rows no recent run read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import write_json_atomic

INDEX, LOCK, ABOUT, USED, USES = "index.json", "index.lock", "about.json", "used", "uses"
PAUSE_ENV = "EMBDECK_STORE_PAUSE_S"  # a test hook: seconds to sleep between a segment's rename and its commit
ORPHAN_AGE_S = 3600  # uncommitted segment files younger than this may belong to an append under way


def digests(shas: list[str]) -> np.ndarray:
    """Hex sha256 strings as a fixed-width byte array (32 bytes a row)."""
    return np.array([bytes.fromhex(s) for s in shas], dtype="S32")


def fsync_dir(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_synced(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def store_root(out: str, setting: str) -> Path:
    """The store folder a run uses: the ``store`` setting, or ``<out>/store``."""
    return Path(setting).expanduser() if setting else Path(out) / "store"


@dataclass
class Lookup:
    """Where each asked-for row is: its segment (-1: the store lacks it) and row there."""

    segment: np.ndarray  # (n,) int32 index into the segment list it was looked up in
    row: np.ndarray  # (n,) int64
    segments: list[str]

    @property
    def missing(self) -> np.ndarray:
        return self.segment < 0

    def at(self, positions: np.ndarray) -> "Lookup":
        """The lookup of the rows at ``positions`` alone, in that order."""
        return Lookup(self.segment[positions], self.row[positions], self.segments)


def unbroken(values: np.ndarray) -> bool:
    """Whether ``values`` (non-empty) count up by one."""
    return int(values[-1]) - int(values[0]) + 1 == len(values) and bool((np.diff(values) == 1).all())


class EmbeddingStore:
    """One namespace of a store folder: ``append`` rows, ``lookup`` and ``gather`` them by sha256."""

    def __init__(self, root: Path, namespace: str, about: dict | None = None):
        self.folder = Path(root) / namespace
        self.folder.mkdir(parents=True, exist_ok=True)
        if about is not None and not (self.folder / ABOUT).exists():
            write_json_atomic(self.folder / ABOUT, about)

    @classmethod
    def existing(cls, folder: Path) -> "EmbeddingStore":
        """A namespace folder as it is, for reports and ``gc`` (nothing is created)."""
        store = cls.__new__(cls)
        store.folder = Path(folder)
        return store

    # -- the index ------------------------------------------------------------------------------------------
    def segments(self) -> list[dict]:
        """The committed segments, in commit order ({"name", "rows"})."""
        try:
            return json.loads((self.folder / INDEX).read_text(encoding="utf-8"))["segments"]
        except FileNotFoundError:
            return []

    @contextmanager
    def locked(self):
        with open(self.folder / LOCK, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def write_index(self, segments: list[dict]) -> None:
        """Replace the index atomically, synced; only under ``locked``."""
        tmp = self.folder / f".{INDEX}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"segments": segments}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / INDEX)
        fsync_dir(self.folder)

    def commit(self, entry: dict) -> None:
        """Add a segment to the index: re-read under the lock, replaced atomically, synced."""
        with self.locked():
            self.write_index(self.segments() + [entry])

    # -- writing --------------------------------------------------------------------------------------------
    def write_segment(self, parts: dict[str, np.ndarray]) -> str:
        """A new segment's files (``keys`` and one per array), synced and renamed into place; its name. Nothing
        reads it until the index names it."""
        name = f"seg-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:12]}"
        temporary = {}
        for part, array in parts.items():
            temporary[part] = self.folder / f".{name}.{part}.npy.tmp"
            write_synced(temporary[part], array)
        for part, tmp in temporary.items():
            os.replace(tmp, self.folder / f"{name}.{part}.npy")
        fsync_dir(self.folder)
        return name

    def append(self, shas: list[str], arrays: dict[str, np.ndarray]) -> str:
        """One new segment holding ``arrays`` (each with one row per sha), committed last; its name."""
        if any(len(a) != len(shas) for a in arrays.values()):
            raise ValueError("every array needs one row per sha256")
        name = self.write_segment({"keys": digests(shas), **arrays})
        if os.environ.get(PAUSE_ENV):
            time.sleep(float(os.environ[PAUSE_ENV]))
        self.commit({"name": name, "rows": len(shas)})
        return name

    def touch(self, user: str = "", shas: list[str] | None = None) -> None:
        """Mark the namespace used now and, for a run's output folder ``user``, which rows its run read (its
        earlier record replaced): ``gc`` frees namespaces no run has used for a while, and rows no recent
        run read."""
        self.touch_digests(user, None if shas is None else digests(shas))

    def touch_digests(self, user: str = "", keys: np.ndarray | None = None) -> None:
        """``touch`` for sha256 digests as ``digests`` gives them."""
        (self.folder / USED).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n", encoding="utf-8")
        if user and keys is not None:
            uses = self.folder / USES
            uses.mkdir(exist_ok=True)
            name = hashlib.sha256(str(Path(user).resolve()).encode()).hexdigest()[:16]
            tmp = uses / f".{name}.npy.tmp-{uuid.uuid4().hex}"
            write_synced(tmp, np.unique(keys))
            os.replace(tmp, uses / f"{name}.npy")

    # -- reading --------------------------------------------------------------------------------------------
    def lookup(self, shas: list[str]) -> Lookup:
        """Where each sha's row is (the first committed one when two appends stored the same image)."""
        return self.lookup_digests(digests(shas))

    def lookup_digests(self, query: np.ndarray) -> Lookup:
        """``lookup`` for sha256 digests as ``digests`` gives them (``S32``)."""
        segments = [s["name"] for s in self.segments()]
        found = Lookup(np.full(len(query), -1, np.int32), np.zeros(len(query), np.int64), segments)
        if not segments or not len(query):
            return found
        keys = [np.load(self.folder / f"{name}.keys.npy", allow_pickle=False) for name in segments]
        owner = np.concatenate([np.full(len(k), i, np.int32) for i, k in enumerate(keys)])
        rows = np.concatenate([np.arange(len(k), dtype=np.int64) for k in keys])
        keys = np.concatenate(keys)
        order = np.argsort(keys, kind="stable")  # stable: among equal keys the earliest commit comes first
        keys = keys[order]
        where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        hit = keys[where] == query
        found.segment[hit] = owner[order[where[hit]]]
        found.row[hit] = rows[order[where[hit]]]
        return found

    def part(self, segment: str, name: str) -> np.ndarray:
        return np.load(self.folder / f"{segment}.{name}.npy", mmap_mode="r", allow_pickle=False)

    def shapes(self, found: Lookup, names: list[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each array's row shape and dtype, from the first segment a lookup found."""
        first = found.segments[int(found.segment[found.segment >= 0][0])]
        return {name: (self.part(first, name).shape[1:], self.part(first, name).dtype) for name in names}

    def gather(self, found: Lookup, name: str, target: np.ndarray, mapped: dict | None = None) -> None:
        """Fill ``target`` (one row per looked-up sha) from the mapped segments: one read per segment, a plain
        slice where its rows (and their places in ``target``) run on without a gap. ``mapped`` keeps the
        segments' maps between calls (segment index -> array), for a reader that gathers often."""
        if found.missing.any():
            raise KeyError(f"{int(found.missing.sum())} rows are not in the store")
        mapped = {} if mapped is None else mapped
        order = np.argsort(found.segment, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(found.segment[order])) + 1) if len(order) else ():
            index, rows = int(found.segment[group[0]]), found.row[group]
            if index not in mapped:
                mapped[index] = self.part(found.segments[index], name)
            block = mapped[index][rows[0]:rows[-1] + 1] if unbroken(rows) else mapped[index][rows]
            if unbroken(group):
                target[group[0]:group[-1] + 1] = block
            else:
                target[group] = block


class Appender:
    """Rows handed over in any order and any number, appended as segments of ``rows`` rows (and the rest at
    ``flush``): what a killed run keeps of its work is every full segment."""

    def __init__(self, store: EmbeddingStore, rows: int):
        self.store, self.rows = store, rows
        self.shas: list[str] = []
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, shas: list[str], arrays: dict[str, np.ndarray]) -> None:
        self.shas += shas
        for name, array in arrays.items():
            self.parts.setdefault(name, []).append(np.asarray(array))
        while len(self.shas) >= self.rows:
            self.flush(self.rows)

    def flush(self, rows: int | None = None) -> None:
        if not self.shas:
            return
        rows = len(self.shas) if rows is None else rows
        whole = {name: np.concatenate(parts) for name, parts in self.parts.items()}
        self.store.append(self.shas[:rows], {name: array[:rows] for name, array in whole.items()})
        self.shas = self.shas[rows:]
        self.parts = {name: [array[rows:]] for name, array in whole.items()}


# -- the store folder as a whole: its size, and freeing what no recent run uses ---------------------------------
def namespaces(root: Path) -> list[dict]:
    """Each namespace: name, rows, segments, bytes, last used (a time stamp, or "")."""
    found = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and (p / ABOUT).exists()) \
            if Path(root).is_dir() else []:
        segments = EmbeddingStore.existing(folder).segments()
        used = folder / USED
        found.append({"name": folder.name, "rows": sum(s["rows"] for s in segments), "segments": len(segments),
                      "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file()),
                      "used": used.read_text(encoding="utf-8").strip() if used.exists() else "",
                      "used_s": used.stat().st_mtime if used.exists() else folder.stat().st_mtime})
    return found


def orphans(folder: Path, now: float) -> list[Path]:
    """Segment files that no index names (a killed append's), old enough not to be an append under way."""
    committed = {s["name"] for s in EmbeddingStore.existing(folder).segments()}
    return [p for p in folder.iterdir() if p.is_file() and p.name.lstrip(".").startswith("seg-")
            and p.name.lstrip(".").split(".")[0] not in committed and now - p.stat().st_mtime > ORPHAN_AGE_S]


def compact(folder: Path, keep_days: float, now: float) -> dict:
    """Drop the rows of a namespace that no output folder's run read in the last ``keep_days`` (the ``uses``
    records): a segment with none of them goes, one with some is rewritten with those alone. Under the index
    lock, so no append lands meanwhile; a run extracting from this store at the same moment may find a segment
    gone and must be run again. A namespace without use records (made before they were kept) is left whole."""
    uses = [p for p in (folder / USES).glob("*.npy") if now - p.stat().st_mtime <= keep_days * 86400] \
        if (folder / USES).is_dir() else []
    freed = {"rows": 0, "bytes": 0}
    if not uses:
        return freed
    wanted = np.unique(np.concatenate([np.load(p, allow_pickle=False) for p in uses]))
    store = EmbeddingStore.existing(folder)
    with store.locked():
        kept, gone = [], []
        for segment in store.segments():
            used = np.isin(store.part(segment["name"], "keys"), wanted)
            if used.all():
                kept.append(segment)
                continue
            files = sorted(folder.glob(f"{segment['name']}.*.npy"))
            gone += files
            freed["rows"] += int((~used).sum())
            if used.any():
                names = [path.name.split(".")[1] for path in files]  # seg-<id>.<part>.npy
                parts = {part: np.asarray(store.part(segment["name"], part)[used]) for part in names}
                kept.append({"name": store.write_segment(parts), "rows": int(used.sum())})
        if gone:
            store.write_index(kept)
            for path in gone:
                freed["bytes"] += path.stat().st_size
                path.unlink()
    return freed


def collect(root: Path, keep_days: float, now: float | None = None) -> dict:
    """Free the namespaces no run has used for ``keep_days``, the rows of the others that no recent run read,
    and their orphaned files."""
    now = time.time() if now is None else now
    freed = {"namespaces": [], "orphans": 0, "rows": 0, "bytes": 0}
    for space in namespaces(root):
        folder = Path(root) / space["name"]
        if now - space["used_s"] > keep_days * 86400:
            shutil.rmtree(folder)
            freed["namespaces"].append(space["name"])
            freed["bytes"] += space["bytes"]
            continue
        for path in orphans(folder, now):
            freed["bytes"] += path.stat().st_size
            freed["orphans"] += 1
            path.unlink()
        rows = compact(folder, keep_days, now)
        freed["rows"] += rows["rows"]
        freed["bytes"] += rows["bytes"]
    return freed
