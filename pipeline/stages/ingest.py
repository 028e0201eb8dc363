"""Stage ``ingest``: find the images in a folder, check each one decodes, and write the manifest.

Inputs: the image folder (``images``: a local folder, or a URI such as ``s3://bucket/photos`` read through
pyarrow's filesystems, see ``storage``). Params: ``ingest``. Outputs: ``manifest`` (one record per usable
image: relative path, sha256, bytes, width, height, label) and ``skipped`` (path and reason for each file
that could not be used). The label is the first-level subfolder, when there is one.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..engine.artifacts import StageError, hash_json
from ..engine.stage import Stage, StageContext
from ..engine.embedding_store import store_root
from ..imaging.stat_cache import StatCache
from ..imaging.storage import discover  # noqa: F401 - tests find the folder's images through ingest
from ..imaging.storage import Location, image_entries, location, read_bytes, relative

if TYPE_CHECKING:
    from ..engine.config import Config

log = logging.getLogger("embdeck")


def image_root(cfg: "Config") -> Location:
    """The folder to analyse: the user's (a local path or a URI), or the demo set's data-set folder."""
    if cfg.images:
        return location(cfg.images)
    from ..demo import dataset_folder

    return dataset_folder(cfg).resolve()


def label_of(rel_path: str) -> str:
    parts = rel_path.split("/")
    return parts[0] if len(parts) > 1 else ""


def folder_listing(cfg: "Config") -> dict:
    """The image folder's listing (paths, sizes, mtimes): an unchanged folder is not read again."""
    root = image_root(cfg)
    entries, _ = image_entries(root, cfg.ingest.extensions)
    rows = [(relative(e.path, root), e.size, e.mtime_ns) for e in entries]
    return {"folder": str(root), "files": len(rows), "listing": hash_json(rows)}


def inspect_file(path: Location, root: Location, max_pixels: int) -> dict:
    from ..imaging import images

    rel = relative(path, root)
    try:
        data = read_bytes(path)
    except OSError as exc:
        return {"path": rel, "reason": f"unreadable: {exc.strerror or exc}"}
    try:
        width, height = images.checked_size(data, max_pixels, path.suffix)
    except images.ImageReadError as exc:
        return {"path": rel, "reason": str(exc)}
    return {
        "path": rel,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "width": int(width),
        "height": int(height),
        "label": label_of(rel),
    }


def worker_count(requested: int) -> int:
    return requested if requested > 0 else max(1, os.cpu_count() or 1)


def recorded(entry, root: Location, stats: StatCache, max_pixels: int) -> dict | None:
    """The manifest record of a file unchanged since the stat cache recorded it (and still small enough)."""
    facts = stats.get(relative(entry.path, root), entry.size, entry.mtime_ns)
    if facts is None or facts["width"] * facts["height"] > max_pixels:
        return None
    rel = relative(entry.path, root)
    return {"path": rel, **facts, "label": label_of(rel)}


def run(ctx: StageContext) -> dict:
    cfg = ctx.cfg
    from tqdm import tqdm

    root = image_root(cfg)
    entries, passed_over = image_entries(root, cfg.ingest.extensions)
    stats = StatCache(store_root(cfg.out, cfg.store), str(root))
    known = [None if cfg.ingest.rehash else recorded(e, root, stats, cfg.ingest.max_pixels) for e in entries]
    fresh = [e.path for e, record in zip(entries, known) if record is None]
    with ThreadPoolExecutor(worker_count(cfg.ingest.workers)) as pool:
        read = iter(tqdm(
            pool.map(lambda p: inspect_file(p, root, cfg.ingest.max_pixels), fresh),
            total=len(fresh), desc="ingest", unit="img", disable=None,
        ))
        results = [record if record is not None else next(read) for record in known]
    log.info("ingest: %d files read, %d unchanged since they were last read (stat cache)", len(fresh),
             len(entries) - len(fresh))
    stats.save([(r["path"], e.size, e.mtime_ns, r) for e, r in zip(entries, results) if "sha256" in r])
    manifest = [r for r in results if "sha256" in r]
    skipped = [r for r in results if "sha256" not in r]
    if not manifest:
        detail = f"; {len(skipped)} file(s) could not be read, e.g. {skipped[0]['path']}: {skipped[0]['reason']}" if skipped else ""
        raise StageError(f"no usable images in {root}{detail}")
    first_seen: dict[str, str] = {}
    duplicates = []
    for record in manifest:
        original = first_seen.setdefault(record["sha256"], record["path"])
        if original != record["path"]:
            duplicates.append({"path": record["path"], "same_as": original})
    ctx.save_json("manifest", manifest)
    ctx.save_json("skipped", skipped + passed_over)
    labels = sorted({r["label"] for r in manifest})
    return {
        "folder": str(root),
        "images": len(manifest),
        "skipped": len(skipped),
        "ignored": len(passed_over),
        "skipped_files": skipped,  # each with its reason; files passed over by extension are in skipped.json
        "duplicates": duplicates,
        "labels": labels if any(labels) else [],
        "manifest_hash": hash_json([(r["path"], r["sha256"]) for r in manifest]),
    }


STAGE = Stage(
    name="ingest",
    run=run,
    params=("ingest", "demo"),  # demo: the set read when no image folder is given
    outputs={"manifest": "manifest.json", "skipped": "skipped.json"},
    essential=True,
    fingerprint=folder_listing,
)
