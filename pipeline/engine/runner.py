"""A small stage runner: plans which stages are stale and why, runs them in order, and reports each one.

A stage's key (``keys``) hashes its settings, code, outside inputs and upstream outputs; a stage whose key has a
finished entry in the cache (``cache``) is not run again. A failed stage is reported and skipped, and so is
what needs it, unless it is ``essential`` (then the run stops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import codegraph, stored_rows
from .artifacts import StageError, hash_json
from .cache import Cache
from .keys import check_declaration, code_hash, explain_change, input_hashes, key_record
from .stage import Stage, StageContext

if TYPE_CHECKING:
    from .config import Config

__all__ = ["Plan", "Runner", "VariantRun", "explain_change"]

log = logging.getLogger("embdeck")


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


def failure(exc: Exception) -> str:
    """A failed stage's reason, as the run record and the log give it."""
    return str(exc) if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"


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
        self.cache = Cache(self.root, code_root)
        self.code_root = code_root
        self._fingerprints: dict[str, dict] = {}
        self._code: dict[str, dict] = {}

    # -- keys -----------------------------------------------------------------------------------------------
    def fingerprint(self, stage: Stage) -> dict:
        if stage.fingerprint is None:
            return {}
        if stage.name not in self._fingerprints:
            self._fingerprints[stage.name] = stage.fingerprint(self.cfg)
        return self._fingerprints[stage.name]

    def code(self, stage: Stage) -> dict[str, str]:
        if stage.name not in self._code:
            self._code[stage.name] = code_hash(stage, self.code_root)
        return self._code[stage.name]

    def key_record(self, stage: Stage, upstream_hashes: dict[str, str]) -> dict:
        return key_record(self.cfg, stage, self.code(stage), self.fingerprint(stage), upstream_hashes)

    def keyed(self, stage: Stage, upstream_hashes: dict[str, str], lock: dict) -> tuple[str, dict, Path | None]:
        """The stage's key, its record, and the earlier entry it resumes from (None: it starts fresh).

        A stage that ``resumes`` starts from its own entry the lock names when that entry is finished and was
        made with the same params; the record then names that entry, so the key covers what the run starts
        from. When nothing but that link differs, the earlier entry is this run's: a rerun with nothing changed
        recomputes nothing. With ``keep_place`` off, or no earlier entry, the key is the plain one (a fresh map,
        as in a new folder).
        """
        record = self.key_record(stage, upstream_hashes)
        earlier = lock.get(stage.name) if stage.resumes and self.cfg.keep_place else None
        meta = self.finished_meta(stage.name, earlier["key"]) if earlier else None
        if meta is None:
            return hash_json(record), record, None
        made = meta["record"]
        if hash_json({k: v for k, v in made.items() if k != "resumed_from"}) == hash_json(record):
            return earlier["key"], made, None
        if hash_json(made["params"]) != hash_json(record["params"]):
            return hash_json(record), record, None
        record = {**record, "resumed_from": {"key": earlier["key"], "output_hash": meta["output_hash"]}}
        return hash_json(record), record, self.entry_dir(stage.name, earlier["key"])

    def entry_dir(self, name: str, key: str) -> Path:
        return self.cache.entry_dir(name, key)

    def finished_meta(self, name: str, key: str) -> dict | None:
        return self.cache.finished_meta(self.stages[name], key)

    # -- planning -------------------------------------------------------------------------------------------
    def plan(self) -> list[Plan]:
        """Keys and, for stale stages, the reasons, without running anything."""
        lock = self.cache.read_lock().get("stages", {})
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
            key, record, earlier = self.keyed(stage, {**variant_hashes, **input_hashes(stage, self.stages, metas)},
                                              lock)
            if self.finished_meta(name, key) is None:
                reasons = explain_change(lock.get(name), record) or ["no finished output for this key"]
                if earlier is not None:
                    reasons.append("starts from its earlier layout")
            plans[name] = Plan(stage, key, reasons, record)
        return [plans[name] for name in self.order]

    # -- running --------------------------------------------------------------------------------------------
    def run(self, only: str | None = None, force: bool = False) -> dict:
        """Run stale stages (all, or ``only`` and what it needs); return per-stage results for the record."""
        if only is not None and only not in self.stages:
            raise StageError(f"unknown stage {only!r}; stages: {', '.join(self.order)}")
        wanted = self.order if only is None else self.ancestors(only)
        self.cache.folder.mkdir(parents=True, exist_ok=True)
        self.cache.clean_partial()
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
            try:
                key, record, meta, state = self.run_stage(stage, metas, summaries, dirs, results,
                                                          force and (only is None or name == only))
            except Exception as exc:  # noqa: BLE001 - an analysis that fails must not take the deck with it
                if stage.essential:
                    raise
                results[name] = {"state": "failed", "reason": failure(exc)}
                log.warning("%-8s could not run: %s", name, results[name]["reason"])
                log.debug("%s failed", name, exc_info=True)
                continue
            metas[name] = meta
            summaries[name] = meta["summary"]
            dirs[name] = self.entry_dir(name, key)
            results[name] = {"state": state, "key": key, "seconds": meta["seconds"], "finished_at": meta["finished_at"],
                             "peak_rss_mb": meta.get("peak_rss_mb"), "dir": str(dirs[name])}
            if self.record_lock:
                self.cache.update_lock(name, record, key, meta)
        return {"stages": results, "summaries": summaries, "off": off}

    def run_stage(self, stage: Stage, metas: dict, summaries: dict, dirs: dict, results: dict, rerun: bool
                  ) -> tuple[str, dict, dict, str]:
        """One stage: its variants' inputs, its key (and what it hashes), and its entry's meta (found in the
        cache, or made now), with the state to report."""
        present = [dep for dep in stage.deps if dep in metas]
        variants = self.run_variants(stage) if stage.variants else VariantRun({}, {}, {}, {})
        results.update(variants.results)
        lock = self.cache.read_lock().get("stages", {}) if stage.resumes else {}  # only a resuming stage reads it
        key, record, earlier = self.keyed(stage, {**variants.hashes, **input_hashes(stage, self.stages, metas)}, lock)
        meta = self.finished_meta(stage.name, key)
        if meta is not None and not rerun:
            log.info("%-8s cached (%s)", stage.name, key[:12])
            stored_rows.renew_uses(self.entry_dir(stage.name, key), stage.required_outputs, self.cfg.out)
            return key, record, meta, "cached"
        declared = {d: self.stages[d] for d in (*stage.deps, *(stage.variants.deps if stage.variants else ()))}
        ctx = StageContext(self.cfg, stage, Path(), {d: dirs[d] for d in present}, declared,
                           {d: summaries[d] for d in present}, self.fingerprint(stage),
                           variants.dirs, variants.summaries, stage.derived(self.cfg) if stage.derived else {},
                           earlier)
        return key, record, self.cache.execute(stage, key, record, ctx), "ran"

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
