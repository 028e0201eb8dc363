"""The cache on disk: one folder per finished stage and key, written so that no half-written one is trusted,
and the lock file that records each stage's last key and what made it.

A finished stage lives in ``<out>/cache/<stage>/<key>/``. It is written to a ``.tmp-*`` sibling first,
``meta.json`` last, and then renamed into place; a directory without ``meta.json`` or outside its key name is
never trusted, so a run killed at any point leaves nothing that a later run reuses. A stage that wrote a file
it does not declare, or left a declared one out, keeps nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from . import codegraph, memory, stored_rows
from .artifacts import StageError, file_sha256, hash_json, json_text, write_json, write_json_atomic
from .record import versions
from .stage import Stage, StageContext, written

log = logging.getLogger("embdeck")

LOCK_NAME = "embdeck.lock.json"


class Cache:
    """``<out>/cache`` and ``<out>/embdeck.lock.json``."""

    def __init__(self, root: Path, code_root: Path = codegraph.DEFAULT_ROOT):
        self.root = root
        self.folder = root / "cache"
        self.lock_path = root / LOCK_NAME
        self.code_root = code_root

    def entry_dir(self, name: str, key: str) -> Path:
        return self.folder / name / key[:20]

    def finished_meta(self, stage: Stage, key: str) -> dict | None:
        """The meta of a complete cache entry for this key, or None (missing, partial or another key)."""
        entry = self.entry_dir(stage.name, key)
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key:
            return None
        if not all(written(entry, out) for out in stage.required_outputs):
            return None
        broken = [why for out in stage.required_outputs if stored_rows.is_reference(out)
                  and (why := stored_rows.unresolved(entry / out))]
        if broken:  # it names rows of the embedding store that gc has freed since
            log.info("%-8s its cached entry %s is not used: %s", stage.name, key[:12], broken[0])
            return None
        return meta

    def execute(self, stage: Stage, key: str, record: dict, ctx: StageContext) -> dict:
        """Run the stage into a fresh temporary folder and, when it wrote what it declares (and its code did
        not change on disk meanwhile), move that folder into place with its ``meta.json``."""
        final = self.entry_dir(stage.name, key)
        tmp = final.with_name(f".tmp-{key[:20]}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        ctx.out_dir = tmp
        log.info("%-8s running (%s)", stage.name, key[:12])
        memory.release()
        measured = memory.reset_peak()
        start_rss = memory.rss_mb()
        started = time.perf_counter()
        try:
            # Round-trip through JSON as meta.json stores it, so a fresh summary and a cached one are the
            # same object (key order included) and render the same deck.
            summary = json.loads(json_text(stage.run(ctx) or {}))
            missing = [out for out in stage.required_outputs if not written(tmp, out)]
            if missing:
                raise RuntimeError(f"stage {stage.name} did not write {', '.join(missing)}")
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
            undeclared = stage.undeclared(files)
            if undeclared:
                raise RuntimeError(f"stage {stage.name} wrote {', '.join(undeclared[:5])}"
                                   f"{' and more' if len(undeclared) > 5 else ''}, which it does not declare as "
                                   "outputs")
            edited = codegraph.changed_files(record["code"], self.code_root)
            if edited:  # the key names code this process may not have run: keep nothing under it
                raise StageError(f"{', '.join(edited)} changed on disk during this run; {stage.name}'s output "
                                 "is not kept (run again)")
            seconds = time.perf_counter() - started
            meta = {
                "key": key,
                "record": record,
                "summary": summary,
                "seconds": round(seconds, 3),
                "peak_rss_mb": memory.peak_rss_mb() if measured else None,
                "start_rss_mb": start_rss,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "files": {name: file_sha256(tmp / name) for name in files},
            }
            meta["output_hash"] = hash_json(meta["files"])
            write_json(tmp / "meta.json", meta)
            fsync_dir_files(tmp)
            if final.exists():  # a stale leftover of the same key without a valid meta
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("%-8s done in %.1f s (peak memory %s MiB)", stage.name, seconds, meta["peak_rss_mb"])
        return meta

    def read_lock(self) -> dict:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"stages": {}}

    def update_lock(self, name: str, record: dict, key: str, meta: dict) -> None:
        lock = self.read_lock()
        lock.setdefault("stages", {})[name] = {
            "key": key,
            "params": record["params"],
            "code": record["code"],
            "fingerprint": record["fingerprint"],
            "upstream": record["upstream"],
            "output_hash": meta["output_hash"],
            "seconds": meta["seconds"],
            "peak_rss_mb": meta.get("peak_rss_mb"),
        }
        lock["versions"] = versions()
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.lock_path, lock)

    def clean_partial(self) -> None:
        """Remove leftovers of killed runs; they are never read, this only frees space."""
        for leftover in self.folder.glob("*/.tmp-*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid():
                continue
            shutil.rmtree(leftover, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir_files(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
