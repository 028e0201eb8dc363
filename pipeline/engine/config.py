"""One typed config for the whole pipeline: the sections (``config_sections``), the run-wide settings, and how
a config is built.

A run's config is the defaults, then a TOML file (``--config``), then ``--set section.key=value``
overrides, in that order. Each field's allowed values or range is declared beside it, as data
(``rule(default, choices=...)`` / ``rule(default, low=..., high=...)``), and checked when the config is built,
with the rules between fields (``config_rules.CROSS_RULES``); the config is frozen from then on. One top-level
``seed`` gives every section's seed that is not set itself. Each stage declares which sections it reads, so a
change to one section only invalidates the stages that read it.
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import hash_json
from .config_rules import ConfigError, broken_cross_rule, broken_rule, coerce, diff_params, rule, to_plain  # noqa: F401
from .config_sections import (BackboneConfig, ClusterConfig, CompareConfig, DemoConfig, ExportConfig, ExtractConfig,
                              FidelityConfig, FindingsConfig, GalleryConfig, IngestConfig, NeighboursConfig,
                              ParametricConfig, PatchConfig, PcaConfig, RetrievalConfig, StabilityConfig, TsneConfig,
                              UmapConfig)


@dataclass(frozen=True)
class Config:
    """The whole run's settings; checked against every field's rule when it is built, then frozen."""

    images: str = ""  # the image folder; "" means the demo set
    out: str = "out"  # where the cache, run record, report and exports go (never the input folder)
    slides: str = "slides"  # the Slidev folder: slides.md and public/figures/ are written here
    # The embedding store and ingest's stat cache (pipeline/engine/embedding_store.py): "" = <out>/store, so a run
    # stays one folder that deleting removes whole; point runs with different --out at one folder (for instance
    # ~/.cache/embdeck/store) to share it. A place, in no cache key: the store only memoises extraction.
    store: str = ""
    seed: int = rule(0, low=0)  # every section's seed that is not set itself
    # Maps keep their place: when this output folder holds an earlier run's maps of the same settings, t-SNE,
    # UMAP and the parametric heads start from them (old images where they were, new ones among their
    # neighbours). false: every map starts fresh, as in a new folder.
    keep_place: bool = True
    # Where the analyses' linear algebra runs (exact k-NN, PCA, k-means): auto = CUDA or Apple's MPS when torch
    # sees one, else the CPU libraries (FAISS, scikit-learn). Extraction has its own extract.device.
    device: str = rule("auto", choices=("auto", "cpu", "cuda", "mps"))
    demo: DemoConfig = field(default_factory=DemoConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    neighbours: NeighboursConfig = field(default_factory=NeighboursConfig)
    pca: PcaConfig = field(default_factory=PcaConfig)
    tsne: TsneConfig = field(default_factory=TsneConfig)
    umap: UmapConfig = field(default_factory=UmapConfig)
    parametric: ParametricConfig = field(default_factory=ParametricConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    findings: FindingsConfig = field(default_factory=FindingsConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)

    def __post_init__(self):
        for name in sections():
            section = getattr(self, name)
            if getattr(section, "seed", 0) is None:  # derived from the run's seed
                object.__setattr__(self, name, dataclasses.replace(section, seed=self.seed))
        check_rules(self)

    def section(self, name: str) -> dict:
        """A section (or top-level key) as plain JSON-able data, for the run record."""
        return to_plain(getattr(self, name))

    def key_section(self, name: str) -> dict:
        """A section as it enters a cache key: without its ``keyed=False`` fields."""
        value = getattr(self, name)
        if not dataclasses.is_dataclass(value):
            return to_plain(value)
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.metadata.get("keyed", True)}

    def to_dict(self) -> dict:
        return to_plain(self)

    def digest(self) -> str:
        return hash_json(self.to_dict())


def sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config) if f.default_factory is not dataclasses.MISSING]


def check_rules(cfg: Config) -> None:
    for owner, prefix in [(cfg, "")] + [(getattr(cfg, name), f"{name}.") for name in sections()]:
        for f in dataclasses.fields(owner):
            why = broken_rule(getattr(owner, f.name), f.metadata) if f.metadata else ""
            if why:
                raise ConfigError(f"{prefix}{f.name} = {getattr(owner, f.name)!r} {why}")
    why = broken_cross_rule(lambda dotted: functools.reduce(getattr, dotted.split("."), cfg))
    if why:
        raise ConfigError(why)


def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def set_value(data: dict, dotted: str, raw) -> None:
    """Set ``section.key`` (or a top-level key) in the config's plain data, type-checked against Config."""
    parts = dotted.split(".")
    cls, target = Config, data
    for part in parts[:-1]:
        types_here = _field_types(cls)
        if part not in types_here or not dataclasses.is_dataclass(types_here[part]):
            raise ConfigError(f"unknown config section {part!r} in {dotted!r}; known: {', '.join(sections())}")
        cls, target = types_here[part], target[part]
    name = parts[-1]
    types_here = _field_types(cls)
    if name not in types_here or dataclasses.is_dataclass(types_here[name]):
        known = ", ".join(k for k, t in types_here.items() if not dataclasses.is_dataclass(t))
        raise ConfigError(f"unknown config key {dotted!r}; known keys here: {known}")
    target[name] = coerce(raw, types_here[name], dotted)


def _apply_mapping(data: dict, mapping: dict, prefix: str = "") -> None:
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _apply_mapping(data, value, dotted + ".")
        else:
            set_value(data, dotted, value)


def _unresolved_defaults() -> dict:
    """The defaults as plain data, section seeds still unset (so a top-level seed can reach them)."""
    return {f.name: (to_plain(f.default_factory()) if f.default_factory is not dataclasses.MISSING
                     else f.default) for f in dataclasses.fields(Config)}


def build(data: dict) -> Config:
    """A frozen, checked Config from plain data."""
    hints = _field_types(Config)
    values = {}
    for name, value in data.items():
        if dataclasses.is_dataclass(hints[name]):
            section_hints = _field_types(hints[name])
            value = hints[name](**{k: tuple(v) if typing.get_origin(section_hints[k]) is tuple else v
                                   for k, v in value.items()})
        values[name] = value
    return Config(**values)


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file, then ``key=value`` overrides; checked and frozen."""
    data = _unresolved_defaults()
    if path:
        path = Path(path)
        try:
            mapping = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        _apply_mapping(data, mapping)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set wants key=value, got {item!r}")
        key, raw = item.split("=", 1)
        set_value(data, key.strip(), raw.strip())
    return build(data)
