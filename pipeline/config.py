"""One typed config for the whole pipeline; every default lives here.

A run's config is the defaults, then a TOML file (``--config``), then ``--set section.key=value``
overrides, in that order. Each stage declares which sections it reads, so a change to one section only
invalidates the stages that read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A user error in the config: the message says what to change."""


@dataclass
class DemoConfig:
    """The built-in demo set: a stratified subset of Fashion-MNIST's test split, plus real photos."""

    per_class: int = 200
    seed: int = 0
    folder: str = "data/demo"


@dataclass
class IngestConfig:
    """Which files count as images and how big an image may be before it is refused."""

    extensions: tuple[str, ...] = (
        ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pbm", ".pgm", ".ppm",
    )
    max_pixels: int = 100_000_000
    workers: int = 0  # 0: one per CPU core


@dataclass
class BackboneConfig:
    """Which network makes the embeddings, and how images are prepared for it.

    ``model = "auto"`` means DINO ViT-S/16 when its weights can be had (an explicit ``weights`` file or
    timm's hub cache), else the bundled ImageNet EfficientNet-Lite0; the run records which one and why.
    """

    model: str = "auto"
    weights: str = ""  # a local state-dict file (.pth/.safetensors) for air-gapped machines
    preprocess: str = "timm"  # "timm": the pretrained data config; "thumbnail": the seed's 32 px -> input size
    thumbnail_size: int = 32
    input_size: int = 0  # 0: the model's pretrained input size
    hub_timeout_s: float = 5.0


@dataclass
class ExtractConfig:
    """How extraction runs: batch size, device and dtype."""

    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 on a GPU, fp32 on a CPU: see features.pick_dtype) | fp32 | bf16
    dtype_check_images: int = 32  # under bf16, images spread over the set whose features are compared with fp32
    patch_images_from_set: int = 4  # data-set images whose spatial patch tokens are kept for patch maps
    patch_photos: str = "auto"  # extra photos for patch maps: auto (the demo photos on the demo set), a folder, or ""
    seed: int = 0


@dataclass
class PcaConfig:
    """PCA of the global embeddings: the 2-D map and the explained-variance curve."""

    n_components: int = 50
    whiten: bool = False
    seed: int = 0


@dataclass
class TsneConfig:
    """t-SNE on PCA-50 with openTSNE; the seed's perplexity 30 and 1,000 iterations."""

    perplexity: float = 30.0
    n_iter: int = 1000
    method: str = "auto"  # auto (Barnes-Hut below fft_from points, FFT from there) | bh | fft
    # Where openTSNE's FFT gradient overtakes its Barnes-Hut one on 2 cores (Fashion-MNIST features, PCA-50):
    # BH 43.8 s vs FFT 55.9 s at 20k, 82.1 s vs 66.0 s at 35k; at 70k FFT ~113 s.
    fft_from: int = 27_000
    n_jobs: int = 0  # 0: one per CPU core
    seed: int = 0


@dataclass
class UmapConfig:
    """umap-learn, 2-D, seeded (which makes it single-threaded and reproducible)."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0


@dataclass
class ParametricConfig:
    """Parametric maps in PyTorch: a UMAP-objective encoder and an MLP regressing the t-SNE map."""

    holdout: float = 0.2  # share of images never seen in training, projected afterwards
    # The parametric UMAP learns from at most this many training images (seeded sample; 0: all). Measured on
    # all of Fashion-MNIST: held-out trustworthiness 0.904 from 5,000 vs 0.906 from 10,000, in half the time.
    umap_max_train_images: int = 5000
    hidden: int = 256
    # Chosen on the demo set by held-out fidelity: longer training fits the training images better
    # (200 UMAP epochs: trustworthiness 0.945) but new images no better (0.89), i.e. it overfits.
    umap_epochs: int = 80
    tsne_epochs: int = 150
    learning_rate: float = 1e-3
    batch_size: int = 256  # images per step for the t-SNE MLP
    edge_batch: int = 4096  # graph edges per step for the parametric UMAP
    negative_samples: int = 5
    seed: int = 0


@dataclass
class ClusterConfig:
    """The k-means sweep (seed 003): metrics per k, an elbow, a chosen k with its reason."""

    k_min: int = 2
    k_max: int = 0  # 0: scaled to the set, 2 * sqrt(N) (at most N - 1)
    steps: int = 15
    # k-means restarts: 0 = 4 below n_init_one_from images, 1 from there (scikit-learn's own default with
    # k-means++); at 70,000 images one restart's SSE is within a fraction of a percent of four's (make bench).
    n_init: int = 0
    n_init_one_from: int = 10_000
    pca_dims: int = 50  # k-means runs on L2-normalised features reduced to this many components
    silhouette_sample: int = 5000
    seed: int = 0


@dataclass
class PatchConfig:
    """Patch maps (seed 004): PCA of patch tokens, foreground mask, RGB of three components."""

    threshold: float = 0.6


@dataclass
class RetrievalConfig:
    """Cosine nearest neighbours with FAISS; k-NN accuracy when there are labels."""

    top_k: int = 5
    queries: int = 6
    knn_k: int = 5
    folds: int = 5
    seed: int = 0


@dataclass
class ExportConfig:
    """The TorchScript export and its parity check."""

    check_images: int = 16
    tolerance: float = 1e-4
    batch_size: int = 8


@dataclass
class GalleryConfig:
    """The report's interactive map: thumbnails shown on hover."""

    thumb: int = 48
    max_points: int = 5000
    seed: int = 0


@dataclass
class FidelityConfig:
    """How faithful each map is: trustworthiness and neighbours kept, with this many neighbours."""

    k: int = 10
    seed: int = 0


@dataclass
class Config:
    """The whole run's settings."""

    images: str = ""  # the image folder; "" means the demo set
    out: str = "out"  # where the cache, run record, report and exports go (never the input folder)
    slides: str = "slides"  # the Slidev folder: slides.md and public/figures/ are written here
    demo: DemoConfig = field(default_factory=DemoConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    pca: PcaConfig = field(default_factory=PcaConfig)
    tsne: TsneConfig = field(default_factory=TsneConfig)
    umap: UmapConfig = field(default_factory=UmapConfig)
    parametric: ParametricConfig = field(default_factory=ParametricConfig)
    clusters: ClusterConfig = field(default_factory=ClusterConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)

    def section(self, name: str) -> dict:
        """A section (or top-level key) as plain JSON-able data, for cache keys and the run record."""
        return to_plain(getattr(self, name))

    def to_dict(self) -> dict:
        return to_plain(self)

    def digest(self) -> str:
        return hash_json(self.to_dict())


def to_plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def hash_json(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _coerce(text_or_value, type_hint, key: str):
    """Turn a TOML value or a --set string into the field's declared type, or say why not."""
    origin = typing.get_origin(type_hint)
    value = text_or_value
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
    raise ConfigError(f"{key}: cannot read {text_or_value!r} as {getattr(type_hint, '__name__', type_hint)}")


def _field_types(cls) -> dict:
    return typing.get_type_hints(cls)


def set_value(cfg: Config, dotted: str, raw) -> None:
    """Set ``section.key`` (or a top-level key) on ``cfg`` from a string or TOML value, type-checked."""
    parts = dotted.split(".")
    target = cfg
    for part in parts[:-1]:
        if not hasattr(target, part) or not dataclasses.is_dataclass(getattr(target, part)):
            raise ConfigError(f"unknown config section {part!r} in {dotted!r}; known: {', '.join(sections())}")
        target = getattr(target, part)
    name = parts[-1]
    types = _field_types(type(target))
    if name not in types or dataclasses.is_dataclass(getattr(target, name, None)):
        known = ", ".join(k for k in types if not dataclasses.is_dataclass(getattr(target, k)))
        raise ConfigError(f"unknown config key {dotted!r}; known keys here: {known}")
    setattr(target, name, _coerce(raw, types[name], dotted))


def sections() -> list[str]:
    return [f.name for f in dataclasses.fields(Config)]


def _apply_mapping(cfg: Config, data: dict, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _apply_mapping(cfg, value, dotted + ".")
        else:
            set_value(cfg, dotted, value)


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file, then ``key=value`` overrides."""
    cfg = Config()
    if path:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        _apply_mapping(cfg, data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set wants key=value, got {item!r}")
        key, raw = item.split("=", 1)
        set_value(cfg, key.strip(), raw.strip())
    return cfg


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
