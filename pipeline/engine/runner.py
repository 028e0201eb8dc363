"""A small stage runner: cache keys, atomic outputs, a lock file and a status report.

Each stage's key hashes its config sections (less the settings declared ``keyed=False``: how a stage
runs, not what it computes, such as the extraction engine), its code (the source of every project module
it runs, found from the import graph by ``codegraph``), what it read from outside (its fingerprint: the
image folder listing, the backbone weights) and the hashes of the upstream outputs it declares as inputs
(each file, or an upstream summary). Keying on upstream outputs rather than upstream keys means a stage that
reruns but produces the same bytes in the files a stage reads does not
invalidate what follows (as DVC does).

A finished stage lives in ``<out>/cache/<stage>/<key>/``. It is written to a ``.tmp-*`` sibling first,
``meta.json`` last, and then renamed into place; a directory without ``meta.json`` or outside its key name is
never trusted, so a run killed at any point leaves nothing that a later run reuses.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import codegraph, memory
from .artifacts import (
    StageError,
    file_sha256,
    hash_json,
    json_text,
    write_json,
    write_json_atomic,
)
from .config import diff_params
from .record import versions
from .stage import SUMMARY, Stage, StageContext

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger("embdeck")

LOCK_NAME = "embdeck.lock.json"


def code_hash(stage: Stage, root: Path = codegraph.DEFAULT_ROOT) -> dict[str, str]:
    """{file: sha256} of the stage's module, every project module it imports (directly or transitively) and
    its declared extra files, read from disk (nothing is imported)."""
    return codegraph.code_hashes(stage.module, root, stage.extra_code)


@dataclass
class Plan:
    """What the runner knows about one stage before running it."""

    stage: Stage
    key: str | None  # None while an upstream stage is stale (its outputs are not known yet)
    reasons: list[str]
    record: dict
    off: str = ""  # why the stage does not apply to this config


@dataclass
class VariantRun:
    """A stage's upstream outputs per variant config: what its key and its context need."""

    hashes: dict[str, str]  # "extract@label" -> output hash
    dirs: dict[str, dict[str, Path]]
    summaries: dict[str, dict[str, dict]]
    results: dict[str, dict]  # "extract@label" -> the sub-run's result for the run record


class Runner:
    """Runs stages in order, skipping those whose key matches a finished cache entry."""

    def __init__(self, cfg: "Config", stages: list[Stage], code_root: Path = codegraph.DEFAULT_ROOT,
                 record_lock: bool = True):
        self.cfg = cfg
        self.record_lock = record_lock  # a variant's sub-run shares the cache but must not rewrite the lock file
        self.stages = {stage.name: stage for stage in stages}
        self.order = [stage.name for stage in stages]
        for stage in stages:
            check_declaration(stage, self.stages, self.order)
        self.root = Path(cfg.out).resolve()
        self.cache = self.root / "cache"
        self.lock_path = self.root / LOCK_NAME
        self.code_root = code_root
        self._fingerprints: dict[str, dict] = {}
        self._code: dict[str, dict] = {}

    # -- keys and cache entries ---------------------------------------------------------------------------
    def fingerprint(self, stage: Stage) -> dict:
        if stage.fingerprint is None:
            return {}
        if stage.name not in self._fingerprints:
            self._fingerprints[stage.name] = stage.fingerprint(self.cfg)
        return self._fingerprints[stage.name]

    def entry_dir(self, name: str, key: str) -> Path:
        return self.cache / name / key[:20]

    def finished_meta(self, name: str, key: str) -> dict | None:
        """The meta of a complete cache entry for this key, or None (missing, partial or another key)."""
        entry = self.entry_dir(name, key)
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("key") != key:
            return None
        if not all((entry / out).is_file() for out in self.stages[name].required_outputs):
            return None
        return meta

    def code(self, stage: Stage) -> dict[str, str]:
        if stage.name not in self._code:
            self._code[stage.name] = code_hash(stage, self.code_root)
        return self._code[stage.name]

    def input_hashes(self, stage: Stage, metas: dict[str, dict | None]) -> dict[str, str]:
        """The hash of each declared input: an upstream file's, or an upstream summary's ("absent" for an
        optional stage that could not run)."""
        found = {}
        for item in stage.inputs:
            dep, key = item.split(".", 1)
            meta = metas.get(dep)
            if meta is None:
                found[item] = "absent"
            elif key == SUMMARY:
                found[item] = hash_json(meta["summary"])
            else:
                found[item] = meta["files"].get(self.stages[dep].outputs[key], "absent")
        return found

    def key_record(self, stage: Stage, upstream_hashes: dict[str, str]) -> dict:
        return {
            "stage": stage.name,
            "params": {section: self.cfg.key_section(section) for section in stage.params}
            | ({"derived": stage.derived(self.cfg)} if stage.derived else {}),
            "code": self.code(stage),
            "fingerprint": self.fingerprint(stage),
            "upstream": upstream_hashes,
        }

    def read_lock(self) -> dict:
        try:
            return json.loads(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"stages": {}}

    def plan(self) -> list[Plan]:
        """Keys and, for stale stages, the reasons, without running anything."""
        lock = self.read_lock().get("stages", {})
        plans: dict[str, Plan] = {}
        for name in self.order:
            stage = self.stages[name]
            off = stage.off_when(self.cfg) if stage.off_when else ""
            if off:
                plans[name] = Plan(stage, None, [], {}, off)
                continue
            reasons: list[str] = []
            metas = {}
            variant_hashes: dict[str, str] = {}
            if stage.variants:
                variant_hashes, reasons = self.plan_variants(stage)
            for dep in stage.deps:
                dep_plan = plans[dep]
                metas[dep] = self.finished_meta(dep, dep_plan.key) if dep_plan.key else None
                if metas[dep] is None:
                    reasons.append(f"upstream {dep} is stale")
            if reasons:  # its key waits on upstream outputs; its own changes can be named already
                own = explain_change(lock[name], self.key_record(stage, {})) if name in lock else []
                plans[name] = Plan(stage, None, own + reasons, {})
                continue
            record = self.key_record(stage, {**variant_hashes, **self.input_hashes(stage, metas)})
            key = hash_json(record)
            if self.finished_meta(name, key) is None:
                reasons = explain_change(lock.get(name), record) or ["no finished output for this key"]
            plans[name] = Plan(stage, key, reasons, record)
        return [plans[name] for name in self.order]

    # -- running --------------------------------------------------------------------------------------------
    def run(self, only: str | None = None, force: bool = False) -> dict:
        """Run stale stages (all, or ``only`` and what it needs); return per-stage results for the record."""
        if only is not None and only not in self.stages:
            raise StageError(f"unknown stage {only!r}; stages: {', '.join(self.order)}")
        wanted = self.order if only is None else self.ancestors(only)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.clean_partial()
        results: dict[str, dict] = {}
        metas: dict[str, dict] = {}
        summaries: dict[str, dict] = {}
        dirs: dict[str, Path] = {}
        off: dict[str, str] = {}
        for name in wanted:
            stage = self.stages[name]
            if stage.off_when and stage.off_when(self.cfg):
                off[name] = stage.off_when(self.cfg)
                continue
            blocked = [dep for dep in stage.deps if dep not in metas and dep not in stage.optional]
            if blocked:
                results[name] = {"state": "skipped", "reason": f"needs {blocked[0]}, which could not run"}
                log.warning("%-8s skipped: %s", name, results[name]["reason"])
                continue
            present = [dep for dep in stage.deps if dep in metas]
            try:
                variants = self.run_variants(stage) if stage.variants else VariantRun({}, {}, {}, {})
            except Exception as exc:  # noqa: BLE001 - as a failure of the stage itself
                if stage.essential:
                    raise
                results[name] = {"state": "failed", "reason": str(exc) if isinstance(exc, StageError)
                                 else f"{type(exc).__name__}: {exc}"}
                log.warning("%-8s could not run: %s", name, results[name]["reason"])
                continue
            results.update(variants.results)
            record = self.key_record(stage, {**variants.hashes, **self.input_hashes(stage, metas)})
            key = hash_json(record)
            meta = self.finished_meta(name, key)
            rerun = force and (only is None or name == only)
            if meta is None or rerun:
                declared = {d: self.stages[d] for d in (*stage.deps, *(stage.variants.deps if stage.variants else ()))}
                ctx = StageContext(self.cfg, stage, Path(), {d: dirs[d] for d in present}, declared,
                                   {d: summaries[d] for d in present}, self.fingerprint(stage),
                                   variants.dirs, variants.summaries)
                try:
                    meta = self.execute(stage, key, record, ctx)
                except Exception as exc:  # noqa: BLE001 - an analysis that fails must not take the deck with it
                    if stage.essential:
                        raise
                    reason = str(exc) if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"
                    results[name] = {"state": "failed", "reason": reason}
                    log.warning("%-8s could not run: %s", name, reason)
                    log.debug("%s failed", name, exc_info=True)
                    continue
                state = "ran"
            else:
                state = "cached"
                log.info("%-8s cached (%s)", name, key[:12])
            metas[name] = meta
            summaries[name] = meta["summary"]
            dirs[name] = self.entry_dir(name, key)
            results[name] = {"state": state, "key": key, "seconds": meta["seconds"], "finished_at": meta["finished_at"],
                             "peak_rss_mb": meta.get("peak_rss_mb"),
                             "dir": str(self.entry_dir(name, key))}
            self.update_lock(name, record, key, meta)
        return {"stages": results, "summaries": summaries, "off": off}

    # -- variants -------------------------------------------------------------------------------------------
    def variant_runner(self, stage: Stage, cfg: "Config") -> "Runner":
        """A runner over the stages a variant's inputs need, under the variant's config and this cache."""
        return self.needing(stage.variants.deps, cfg, record_lock=False)

    def needing(self, names, cfg: "Config | None" = None, record_lock: bool = True) -> "Runner":
        """A runner over ``names`` and every stage they read, directly or not, in this one's order (under
        ``cfg``, by default this runner's, and this cache)."""
        unknown = sorted(set(names) - set(self.stages))
        if unknown:
            raise StageError(f"unknown stages {unknown}; stages: {', '.join(self.order)}")
        needed = set().union(*(self.ancestors(name) for name in names))
        return Runner(cfg or self.cfg, [self.stages[n] for n in self.order if n in needed], self.code_root,
                      record_lock)

    def run_variants(self, stage: Stage) -> VariantRun:
        """Run (or find cached) the variant inputs' stages for every variant config of ``stage``."""
        found = VariantRun({}, {}, {}, {})
        for label, cfg in stage.variants.configs(self.cfg).items():
            log.info("%-8s variant %s", stage.name, label)
            result = self.variant_runner(stage, cfg).run()
            found.dirs[label], found.summaries[label] = {}, {}
            for dep in stage.variants.deps:
                ran = result["stages"][dep]
                found.results[f"{dep}@{label}"] = ran
                found.dirs[label][dep] = Path(ran["dir"])
                found.summaries[label][dep] = result["summaries"][dep]
                found.hashes[f"{dep}@{label}"] = self.finished_meta(dep, ran["key"])["output_hash"]
        return found

    def plan_variants(self, stage: Stage) -> tuple[dict[str, str], list[str]]:
        """Output hashes of the variants' finished inputs, and why the others are stale, without running."""
        hashes, reasons = {}, []
        for label, cfg in stage.variants.configs(self.cfg).items():
            plans = {plan.stage.name: plan for plan in self.variant_runner(stage, cfg).plan()}
            for dep in stage.variants.deps:
                meta = self.finished_meta(dep, plans[dep].key) if plans[dep].key else None
                if meta is None:
                    reasons.append(f"{dep}@{label} is stale")
                else:
                    hashes[f"{dep}@{label}"] = meta["output_hash"]
        return hashes, reasons

    def ancestors(self, name: str) -> list[str]:
        needed, stack = set(), [name]
        while stack:
            current = stack.pop()
            if current not in needed:
                needed.add(current)
                stack.extend(self.stages[current].deps)
        return [n for n in self.order if n in needed]

    def execute(self, stage: Stage, key: str, record: dict, ctx: StageContext) -> dict:
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
            missing = [out for out in stage.required_outputs if not (tmp / out).is_file()]
            if missing:
                raise RuntimeError(f"stage {stage.name} did not write {', '.join(missing)}")
            edited = codegraph.changed_files(record["code"], self.code_root)
            if edited:  # the key names code this process may not have run: keep nothing under it
                raise StageError(f"{', '.join(edited)} changed on disk during this run; {stage.name}'s output "
                                 "is not kept (run again)")
            seconds = time.perf_counter() - started
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
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

    def update_lock(self, name: str, record: dict, key: str, meta: dict) -> None:
        if not self.record_lock:
            return
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
        for leftover in self.cache.glob("*/.tmp-*"):
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


def explain_change(previous: dict | None, record: dict) -> list[str]:
    """Why a stage's key differs from the one the lock file last recorded."""
    if previous is None:
        return ["never run"]
    reasons = diff_params(previous.get("params", {}), record["params"])
    old_code, new_code = previous.get("code"), record["code"]
    if isinstance(old_code, dict):
        changed = sorted(f for f in set(old_code) | set(new_code) if old_code.get(f) != new_code.get(f))
        if changed:
            reasons.append(f"code changed: {', '.join(changed)}")
    elif old_code != new_code:
        reasons.append("code changed")
    old_fp, new_fp = previous.get("fingerprint", {}), record["fingerprint"]
    reasons += [f"input {change}" for change in diff_params(old_fp, new_fp)]
    for item, digest in record["upstream"].items():
        if previous.get("upstream", {}).get(item) != digest:
            reasons.append(f"upstream {item} changed")
    return reasons


def check_declaration(stage: Stage, stages: dict[str, Stage], order: list[str]) -> None:
    """Every input (per variant too) names an output (or the summary) of a stage that runs before this one."""
    for item in (*stage.inputs, *(stage.variants.inputs if stage.variants else ())):
        dep, _, key = item.partition(".")
        if dep not in stages or order.index(dep) > order.index(stage.name):
            raise ValueError(f"stage {stage.name} reads {item}, but {dep} is not a stage listed before it")
        if key != SUMMARY and key not in stages[dep].outputs:
            raise ValueError(f"stage {stage.name} reads {item}, but {dep} declares no output {key!r}")
