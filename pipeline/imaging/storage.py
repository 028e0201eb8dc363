"""Where the images are: a local folder, or a folder named by a URI on shared storage or an object store.

A plain path is a local folder, walked with ``os.walk`` (symlinked folders are never followed) and read with
``open``. A URI (``s3://bucket/photos``, ``gs://bucket/photos``, ``hdfs://...``, ``file:///mnt/nfs/photos``)
is opened with ``pyarrow.fs.FileSystem.from_uri`` once per process and folder, listed with a ``FileSelector``
and read with ``open_input_stream``; credentials come from the environment as pyarrow reads them (AWS's and
Google's usual variables and files). Either way a file inside the folder is ``folder / relative_path``, so
the stages that read images need not know which kind it is, and a Ray worker on another machine opens the
same file by the same name.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..engine.artifacts import StageError

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(text: str) -> bool:
    return bool(URI.match(str(text)))


@functools.lru_cache(maxsize=8)
def filesystem(root: str):
    """(pyarrow filesystem, path of ``root`` on it); opened once per process and folder (an S3 client finds
    its region, a GCS client its credentials: too slow to repeat per file)."""
    try:
        from pyarrow import fs
    except ImportError:
        raise StageError(f"reading {root} needs pyarrow: pip install 'embdeck[ray]'") from None
    return fs.FileSystem.from_uri(root)


@dataclass(frozen=True)
class StoredPath:
    """A file or folder under ``root`` (a URI) on a pyarrow filesystem; joins with ``/`` as a Path does."""

    root: str
    rel: str = ""

    def __truediv__(self, part: str) -> "StoredPath":
        return StoredPath(self.root, f"{self.rel}/{part}".strip("/"))

    def __str__(self) -> str:
        return f"{self.root}/{self.rel}" if self.rel else self.root

    @property
    def name(self) -> str:
        return (self.rel or self.root.rstrip("/")).rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1]

    def fs_path(self) -> str:
        _, base = filesystem(self.root)
        return f"{base.rstrip('/')}/{self.rel}" if self.rel else base

    def read_bytes(self) -> bytes:
        fs, _ = filesystem(self.root)
        with fs.open_input_stream(self.fs_path()) as stream:
            return stream.read()

    def is_dir(self) -> bool:
        from pyarrow.fs import FileType

        fs, _ = filesystem(self.root)
        return fs.get_file_info(self.fs_path()).type == FileType.Directory

    def relative_to(self, other: "StoredPath") -> str:
        if other.root != self.root or not self.rel.startswith(other.rel):
            raise ValueError(f"{self} is not inside {other}")
        return self.rel[len(other.rel):].lstrip("/")


Location = Path | StoredPath


def location(text: str) -> Location:
    """A folder or file as given by the user: a URI stays a URI (trailing slash dropped), a path is resolved."""
    text = str(text)
    return StoredPath(text.rstrip("/")) if is_uri(text) else Path(text).expanduser().resolve()


def read_bytes(where: Location | str) -> bytes:
    """The file's bytes; ``OSError`` (pyarrow's errors are ``OSError`` too) when it cannot be read."""
    if isinstance(where, StoredPath):
        return where.read_bytes()
    with open(where, "rb") as handle:
        return handle.read()


def relative(path: Location, root: Location) -> str:
    """``path`` inside ``root``, as the manifest writes it (forward slashes)."""
    if isinstance(path, StoredPath):
        return path.relative_to(root)
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Entry:
    """A file found under a folder, with what the folder listing (a cache fingerprint) records of it."""

    path: Location
    size: int
    mtime_ns: int


def hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def walk(root: Location) -> list[Entry]:
    """Every file under ``root``, hidden files and folders left out, sorted by relative path."""
    found = walk_local(root) if isinstance(root, Path) else walk_stored(root)
    return sorted(found, key=lambda e: relative(e.path, root))


def walk_local(root: Path) -> list[Entry]:
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                stat = path.stat()
                found.append(Entry(path, stat.st_size, stat.st_mtime_ns))
            except OSError:  # a dangling link, a file gone since the listing: ingest reports it
                found.append(Entry(path, -1, -1))
    return found


def walk_stored(root: StoredPath) -> list[Entry]:
    """Folder by folder, so hidden folders are never listed. On a local filesystem named by a ``file://`` URI,
    symlinked folders are skipped as ``os.walk`` skips them (pyarrow would follow a link loop)."""
    from pyarrow.fs import FileSelector, FileType, LocalFileSystem

    fs, base = filesystem(root.root)
    local = isinstance(fs, LocalFileSystem)
    found, pending = [], [root.fs_path()]
    while pending:
        folder = pending.pop()
        for info in fs.get_file_info(FileSelector(folder, recursive=False)):
            if info.base_name.startswith("."):
                continue
            rel = info.path[len(base.rstrip("/")):].lstrip("/")
            if info.type == FileType.Directory and not (local and os.path.islink(info.path)):
                pending.append(info.path)
            elif info.type == FileType.File:
                found.append(Entry(StoredPath(root.root, rel), int(info.size or 0), int(info.mtime_ns or 0)))
    return found


def discover(root: Location, extensions: tuple[str, ...]) -> tuple[list[Location], list[dict]]:
    """Image files under ``root`` (sorted, hidden entries skipped), and files passed over with a reason."""
    entries, passed_over = image_entries(root, extensions)
    return [e.path for e in entries], passed_over


def image_entries(root: Location, extensions: tuple[str, ...]) -> tuple[list, list[dict]]:
    """``storage.Entry`` of each image file under ``root``, and the other files, each with the reason."""
    if not root.is_dir():
        raise StageError(f"image folder not found: {root}")
    wanted = {ext.lower() for ext in extensions}
    entries = walk(root)
    passed_over = [{"path": relative(e.path, root), "reason": "not an image file extension"}
                   for e in entries if e.path.suffix.lower() not in wanted]
    return [e for e in entries if e.path.suffix.lower() in wanted], passed_over

