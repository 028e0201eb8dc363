"""The config's machinery, apart from its fields: a field declared with its rule (allowed values or range, and
whether it enters cache keys), the check of a value against it, reading a TOML or ``--set`` value as the
field's type, and the differences between two configs that a status report names."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field


class ConfigError(ValueError):
    """A user error in the config: the message says what to change."""


def rule(default, *, choices: tuple | None = None, low: float | None = None, high: float | None = None,
         above: float | None = None, keyed: bool = True):
    """A field with its rule: one of ``choices``, or within [low, high] (``above``: strictly greater).

    ``keyed=False`` marks a setting that says how a stage runs, never what it computes (the extraction engine,
    how long to wait for the hub, which other backbones to compare): cache keys leave it out."""
    return field(default=default, metadata={"choices": choices, "low": low, "high": high, "above": above,
                                            "keyed": keyed})


def to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def broken_rule(value, meta: dict) -> str:
    """Why ``value`` breaks its field's rule, or "" when it keeps it."""
    if value is None:
        return ""
    if meta.get("choices") and value not in meta["choices"]:
        return f"must be one of: {', '.join(map(str, meta['choices']))}"
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    if low is not None and value < low:
        return f"must be at least {low:g}" + (f" and at most {high:g}" if high is not None else "")
    if above is not None and value <= above:
        return f"must be greater than {above:g}" + (f" and at most {high:g}" if high is not None else "")
    if high is not None and value > high:
        return f"must be at most {high:g}"
    return ""


def coerce(raw, type_hint, key: str):
    """Turn a TOML value or a --set string into the field's declared type, or say why not."""
    origin = typing.get_origin(type_hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None or str(raw).strip().lower() in ("", "none"):
            return None
        type_hint = next(arg for arg in typing.get_args(type_hint) if arg is not type(None))
        origin = typing.get_origin(type_hint)
    value = raw
    try:
        if type_hint is bool:
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if type_hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if type_hint is float:
            return float(value)
        if type_hint is str:
            return str(value)
        if origin is tuple:
            items = value if isinstance(value, (list, tuple)) else [s for s in str(value).split(",") if s]
            return tuple(str(s).strip() for s in items)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: cannot read {raw!r} as {getattr(type_hint, '__name__', type_hint)}")


def diff_params(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences such as ``pca.n_components 50 -> 20``."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            changes += diff_params(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key} {a} -> {b}")
    return changes


@dataclasses.dataclass(frozen=True)
class CrossRule:
    """A rule between settings that may each be valid alone but contradict together (scikit-learn keeps these
    apart from its per-parameter constraints too). ``holds`` takes the ``keys``' values in order; ``says``
    completes "<first key> = <value> ..." and may name the others' values as ``{0}``, ``{1}``, ..."""

    keys: tuple[str, ...]
    holds: typing.Callable[..., bool]
    says: str


def _gpu_engine(engine: str, device: str) -> bool:
    return engine != "cuml" or device in ("auto", "cuda")


# Every pair of settings that can contradict each other, checked when the config is built (before any stage).
# Checks that need the data (perplexity below the number of images, k_max below it) stay in the stages.
CROSS_RULES = (
    CrossRule(("clusters.k_max", "clusters.k_min"), lambda k_max, k_min: k_max == 0 or k_max >= k_min,
              "must be 0 (scaled to the set) or at least clusters.k_min = {1}"),
    CrossRule(("tsne.engine", "device"), _gpu_engine,
              "runs on an NVIDIA GPU: it needs device = cuda or auto, not {1!r}"),
    CrossRule(("umap.engine", "device"), _gpu_engine,
              "runs on an NVIDIA GPU: it needs device = cuda or auto, not {1!r}"),
    CrossRule(("extract.workers", "extract.engine"), lambda workers, engine: workers == 0 or engine == "ray",
              "is the number of Ray model actors: it needs extract.engine = ray, not {1!r} (or workers = 0)"),
    CrossRule(("backbone.weights", "backbone.model"), lambda weights, model: not weights or model != "bundled",
              "would be ignored: backbone.model = {1!r} ships its own weights (name a timm model, or auto)"),
)


def broken_cross_rule(values: typing.Callable[[str], typing.Any], rules=CROSS_RULES) -> str:
    """The first cross-field rule broken, as one line naming the settings, or "" (``values``: key -> value)."""
    for cross in rules:
        found = [values(key) for key in cross.keys]
        if not cross.holds(*found):
            return f"{cross.keys[0]} = {found[0]!r} " + cross.says.format(*found)
    return ""
