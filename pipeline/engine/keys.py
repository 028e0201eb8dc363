"""A stage's cache key: what it is computed from, and why it changed since the lock file last recorded it.

The key hashes the stage's config sections (less the settings declared ``keyed=False``: how a stage runs, not
what it computes, such as the extraction engine) and what it derives from other sections, its code (the source
of every project module it runs, found from the import graph by ``codegraph``), what it read from outside (its
fingerprint: the image folder listing, the backbone weights) and the hashes of the upstream outputs it declares
as inputs (each file, or an upstream summary). Keying on upstream outputs rather than upstream keys means a
stage that reruns but produces the same bytes in the files a stage reads does not invalidate what follows (as
DVC does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from . import codegraph
from .artifacts import hash_json
from .config_rules import diff_params
from .stage import SUMMARY, Stage, is_series, matches

if TYPE_CHECKING:
    from .config import Config


def code_hash(stage: Stage, root: Path = codegraph.DEFAULT_ROOT) -> dict[str, str]:
    """{file: sha256} of the stage's module, every project module it imports (directly or transitively) and
    its declared extra files, read from disk (nothing is imported)."""
    return codegraph.code_hashes(stage.module, root, stage.extra_code)


def key_record(cfg: "Config", stage: Stage, code: dict, fingerprint: dict, upstream: dict[str, str]) -> dict:
    """Everything a stage's key hashes (``hash_json`` of it is the key)."""
    return {
        "stage": stage.name,
        "params": {section: cfg.key_section(section) for section in stage.params}
        | ({"derived": stage.derived(cfg)} if stage.derived else {}),
        "code": code,
        "fingerprint": fingerprint,
        "upstream": upstream,
    }


def input_hashes(stage: Stage, stages: dict[str, Stage], metas: dict[str, dict | None]) -> dict[str, str]:
    """The hash of each declared input: an upstream file's (a series': of all its files), or an upstream
    summary's ("absent" for an optional stage that could not run)."""
    found = {}
    for item in stage.inputs:
        dep, key = item.split(".", 1)
        meta = metas.get(dep)
        if meta is None:
            found[item] = "absent"
        elif key == SUMMARY:
            found[item] = hash_json(meta["summary"])
        elif is_series(name := stages[dep].outputs[key]):
            found[item] = hash_json({rel: digest for rel, digest in meta["files"].items() if matches(rel, name)})
        else:
            found[item] = meta["files"].get(name, "absent")
    return found


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
