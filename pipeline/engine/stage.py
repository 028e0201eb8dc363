"""What a stage declares (inputs, parameters, outputs) and what it is handed when it runs.

A stage names its outputs once, as ``key -> file name``; its code, the stages after it and the report refer
to them by ``stage.key``. A name with a ``*`` is a series (``map/tiles-*.webp``: as many files as the data
needs). Every file a stage writes is one of its declared outputs: the runner keeps nothing else. Its inputs are
declared the same way (``"extract.embeddings"``, or ``"umap.summary"`` for another stage's summary), and its
config sections as ``params``; the context refuses to hand it anything it did not declare (an input, a
section), so the declarations (and ``embdeck graph``) stay true.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import artifacts, stored_rows

if TYPE_CHECKING:
    from .config import Config

SUMMARY = "summary"
# Settings that say where things are, not what is computed: every stage may read them. What a stage reads
# there enters its key through its fingerprint (the image folder's listing), not through the path.
PLACES = ("images", "out", "slides", "store")


def is_series(name: str) -> bool:
    """An output named with a ``*`` is a series of files, however many the stage writes."""
    return "*" in name


def matches(rel: str, name: str) -> bool:
    """Whether a file (relative to its cache entry) is the declared output ``name`` or one of its series."""
    return fnmatch.fnmatchcase(rel, name) if is_series(name) else rel == name


def series_files(folder: Path, name: str) -> list[Path]:
    """The files of the series output ``name`` in a cache entry, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and matches(p.relative_to(folder).as_posix(), name))


def written(folder: Path, name: str) -> bool:
    """Whether the output ``name`` is in ``folder`` (for a series: at least one of its files)."""
    return bool(series_files(folder, name)) if is_series(name) else (folder / name).is_file()


class UndeclaredRead(KeyError):
    """A stage read an input or a config section it does not declare."""

    def __str__(self) -> str:
        return str(self.args[0])


class DeclaredConfig:
    """The run's config as a stage sees it: the sections (and top-level keys) it declares in ``params``, and
    the places (``PLACES``). Reading any other is an error naming it, as reading an undeclared input is: what a
    stage reads must be in its key."""

    def __init__(self, cfg: "Config", stage: "Stage"):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_stage", stage)

    def __getattr__(self, name: str):
        if name in self._stage.params or name in PLACES:
            return getattr(self._cfg, name)
        raise UndeclaredRead(f"stage {self._stage.name} reads config section {name!r} but does not declare it in "
                             f"its params ({', '.join(self._stage.params) or 'none'})")

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("the config is frozen")


@dataclass(frozen=True)
class Variants:
    """Upstream outputs a stage reads once per variant of the config (a backbone comparison reads ``extract``
    once per backbone). ``configs`` derives the variant configs from the run's, by label; the runner runs the
    upstream stages for each under the same cache (so each variant is cached apart, and one equal to the run's
    own config reuses its entry) and keys the stage on their output hashes."""

    configs: Callable[["Config"], dict[str, "Config"]]
    inputs: tuple[str, ...]  # "stage.output" or "stage.summary", read per variant

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.split(".", 1)[0] for item in self.inputs))


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline, declared: what it reads, which settings, what it writes."""

    name: str
    run: Callable[["StageContext"], dict]
    inputs: tuple[str, ...] = ()  # "stage.output" or "stage.summary"
    params: tuple[str, ...] = ()  # config sections (or top-level keys) it reads
    derived: Callable[["Config"], dict] | None = None  # settings it computes from other sections (in its key)
    outputs: dict[str, str] = field(default_factory=dict)  # key -> file name inside its cache entry
    optional_outputs: tuple[str, ...] = ()  # output keys it writes only when it can (the rest are checked)
    fingerprint: Callable[["Config"], dict] | None = None  # what it reads from outside the pipeline
    extra_code: tuple[str, ...] = ()  # files (relative to the repository) that shape its numbers but are not imports
    essential: bool = False  # its failure stops the run; any other stage's failure is reported and skipped
    optional: tuple[str, ...] = ()  # upstream stages it can do without (it checks ``ctx.has``)
    variants: Variants | None = None
    off_when: Callable[["Config"], str] | None = None  # why the stage does not apply to a config ("" when it does)
    # Outputs of its own earlier entry it starts from (a map keeping its place when images are added): when
    # the lock names an earlier finished entry with the same params, and ``keep_place`` is on, the
    # runner hands it over as ``ctx.earlier`` and keys this run on that entry too (``runner.Runner.keyed``).
    resumes: tuple[str, ...] = ()

    @property
    def deps(self) -> tuple[str, ...]:
        """Upstream stages, in the order their inputs are first named."""
        return tuple(dict.fromkeys(item.split(".", 1)[0] for item in self.inputs))

    @property
    def module(self) -> str:
        return self.run.__module__

    @property
    def figures(self) -> dict[str, str]:
        return {key: name for key, name in self.outputs.items() if name.endswith(".png")}

    @property
    def required_outputs(self) -> list[str]:
        return [name for key, name in self.outputs.items() if key not in self.optional_outputs]

    def undeclared(self, files: list[str]) -> list[str]:
        """Of the files written (relative to the entry), those that are no declared output."""
        return [rel for rel in files if not any(matches(rel, name) for name in self.outputs.values())]


@dataclass
class StageContext:
    """What a stage function gets: config (its declared sections), its fresh output folder, its declared upstream
    results, and ``derived``: the settings its declaration derives from other sections (in its key)."""

    cfg: "Config"
    stage: Stage
    out_dir: Path
    upstream: dict[str, Path]  # stage -> its finished cache entry (only those that ran)
    declared: dict[str, Stage]  # stage -> declaration, for resolving ``stage.key`` to a file
    summaries: dict[str, dict]
    fingerprint: dict = field(default_factory=dict)
    variant_dirs: dict[str, dict[str, Path]] = field(default_factory=dict)  # label -> {stage: cache entry}
    variant_summaries: dict[str, dict[str, dict]] = field(default_factory=dict)
    derived: dict = field(default_factory=dict)
    earlier: Path | None = None  # the stage's own earlier entry it resumes from (declared ``resumes``), or None

    def __post_init__(self):
        if not isinstance(self.cfg, DeclaredConfig):
            self.cfg = DeclaredConfig(self.cfg, self.stage)

    def has(self, stage: str) -> bool:
        """Whether an (optional) upstream stage ran and its outputs can be read."""
        return stage in self.upstream

    def _check(self, stage: str, key: str) -> None:
        if f"{stage}.{key}" not in self.stage.inputs:
            raise UndeclaredRead(f"stage {self.stage.name} reads {stage}.{key} but does not declare it as an input")

    def path(self, stage: str, key: str) -> Path:
        self._check(stage, key)
        return self.upstream[stage] / self.declared[stage].outputs[key]

    def series(self, stage: str, key: str) -> list[Path]:
        """The files of an upstream series output."""
        self._check(stage, key)
        return series_files(self.upstream[stage], self.declared[stage].outputs[key])

    def summary(self, stage: str) -> dict:
        self._check(stage, SUMMARY)
        return self.summaries[stage]

    def load_npy(self, stage: str, key: str, mmap: bool = False) -> np.ndarray:
        return stored_rows.load_array(self.path(stage, key), mmap=mmap)

    def load_json(self, stage: str, key: str):
        import json

        return json.loads(self.path(stage, key).read_text(encoding="utf-8"))

    def earlier_path(self, key: str) -> Path:
        """An output of the earlier entry this run resumes from (only one the stage declares in ``resumes``)."""
        if key not in self.stage.resumes or self.earlier is None:
            raise UndeclaredRead(f"stage {self.stage.name} reads its earlier {key} but does not declare it in resumes"
                                 if key not in self.stage.resumes else f"stage {self.stage.name} has no earlier entry")
        return self.earlier / self.stage.outputs[key]

    def earlier_npy(self, key: str) -> np.ndarray:
        return artifacts.load_npy(self.earlier_path(key))

    def variant_labels(self) -> list[str]:
        return list(self.variant_dirs)

    def _check_variant(self, stage: str, key: str) -> None:
        if self.stage.variants is None or f"{stage}.{key}" not in self.stage.variants.inputs:
            raise UndeclaredRead(f"stage {self.stage.name} reads {stage}.{key} per variant but does not declare it")

    def variant_summary(self, label: str, stage: str) -> dict:
        self._check_variant(stage, SUMMARY)
        return self.variant_summaries[label][stage]

    def load_variant_npy(self, label: str, stage: str, key: str, mmap: bool = False) -> np.ndarray:
        self._check_variant(stage, key)
        return stored_rows.load_array(self.variant_dirs[label][stage] / self.declared[stage].outputs[key], mmap=mmap)

    def variant_json(self, label: str, stage: str, key: str):
        import json

        self._check_variant(stage, key)
        path = self.variant_dirs[label][stage] / self.declared[stage].outputs[key]
        return json.loads(path.read_text(encoding="utf-8"))

    def output(self, key: str, part: str | None = None) -> Path:
        """Where this stage writes its declared output ``key`` (of a series: the file whose ``*`` is ``part``)."""
        name = self.stage.outputs[key]
        if is_series(name) != (part is not None):
            raise KeyError(f"stage {self.stage.name}'s output {key} ({name}) " +
                           ("is a series: name the part" if part is None else "is one file, not a series"))
        target = self.out_dir / (name.replace("*", part, 1) if part is not None else name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def save_npy(self, key: str, array: np.ndarray) -> None:
        artifacts.save_npy(self.output(key), array)

    def open_npy(self, key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        return artifacts.open_npy(self.output(key), shape, dtype)

    def save_json(self, key: str, data) -> None:
        artifacts.write_json(self.output(key), data)
