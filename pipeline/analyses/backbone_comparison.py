"""The backbone comparison: which backbones ``backbone.compare`` names, the config each is extracted under, and
how each backbone and pooling is judged.

An entry is a timm model name (its hub weights), ``bundled`` (the offline EfficientNet-Lite0), ``pixels`` (the
raw-pixel baseline: the small copies extraction keeps, no network), ``NAME:random`` (random weights: what
pretraining buys) or ``NAME:FILE`` (a weights file). ``demo`` stands for the offline three (bundled, pixels,
a random ViT-S/16) and, where the hub answers, DINO ViT-S/16 and DINOv2 ViT-S/14; when it does not, the run says
so. Every network is extracted by the ``extract`` stage under its own derived config, in the same cache: each
is cached apart, and one equal to the run's own backbone reuses the run's extraction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..engine.artifacts import StageError
from ..imaging import backbone as backbones
from ..methods.knn import normalise

if TYPE_CHECKING:
    from ..engine.config import Config

PIXELS = "pixels"
DEMO = "demo"
RANDOM_VIT = "vit_small_patch16_224:random"
OFFLINE_DEMO = ("bundled", PIXELS, RANDOM_VIT)
HUB_DEMO = (backbones.DINO, backbones.DINOV2)
# The same names as the clusters stage's variants, so the comparison and the sweep speak of one thing.
GLOBAL, MEAN, CONCAT = "CLS / global", "mean of patch tokens", "concatenation"


@dataclass(frozen=True)
class Entry:
    """One item of ``backbone.compare``: ``label`` as written, the network and weights it stands for."""

    label: str
    model: str  # "" for the raw pixels
    weights: str = ""  # "", "random" or a file

    @property
    def is_pixels(self) -> bool:
        return not self.model


def parse(label: str) -> Entry:
    if label == PIXELS:
        return Entry(label, "")
    model, _, weights = label.partition(":")
    if not model:
        raise StageError(f"backbone.compare: {label!r} names no model")
    return Entry(label, model, weights)


def expand(cfg: "Config") -> tuple[list[Entry], list[str]]:
    """The entries to compare, in order, and notes on what ``demo`` left out and why (shown on the slide)."""
    labels, notes = [], []
    for label in cfg.backbone.compare:
        if label != DEMO:
            labels.append(label)
            continue
        labels += OFFLINE_DEMO
        for model in HUB_DEMO:
            why = backbones.hub_unreachable(model, cfg.backbone.hub_timeout_s)
            if why:
                notes.append(f"{backbones.DISPLAY_NAMES[model]} left out: {why}")
            else:
                labels.append(model)
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise StageError(f"backbone.compare lists {', '.join(repeated)} more than once")
    return [parse(label) for label in labels], notes


def short_name(display_name: str) -> str:
    """A backbone's name without its parenthesised detail, for figure labels ("ViT-S/16, random weights")."""
    return display_name.split(" (")[0]


def variant_config(cfg: "Config", entry: Entry) -> "Config":
    """The run's config with this entry's network and weights: what ``extract`` runs under for it."""
    backbone = dataclasses.replace(cfg.backbone, model=entry.model, weights=entry.weights, compare=())
    return dataclasses.replace(cfg, backbone=backbone)


def variant_configs(cfg: "Config") -> dict[str, "Config"]:
    """One per network in backbone.compare, each its own cache entry; the raw pixels need none."""
    return {entry.label: variant_config(cfg, entry) for entry in expand(cfg)[0] if not entry.is_pixels}


def check(cfg: "Config") -> list[Entry]:
    """Every entry named rightly and its weights to be had, before any work: a one-line error naming the first
    that is not (none is dropped silently)."""
    entries, _ = expand(cfg)
    for entry in entries:
        if entry.is_pixels:
            continue
        backbones.check_model_name(entry.model, what=f"backbone.compare ({entry.label})")
        try:
            backbones.resolve(variant_config(cfg, entry).backbone)
        except StageError as exc:
            raise StageError(f"backbone.compare ({entry.label}): {exc}") from None
    return entries


def fingerprint(cfg: "Config") -> dict:
    """The entries compared, in order (each network's weights are in its extraction's key)."""
    entries, notes = expand(cfg)
    return {"entries": [entry.label for entry in entries], "notes": notes}


def off_when(cfg: "Config") -> str:
    """Only when backbone.compare names backbones (--compare, make compare)."""
    return "" if cfg.backbone.compare else "no backbones to compare (backbone.compare is empty)"


def poolings(cls: np.ndarray, mean: np.ndarray) -> dict[str, np.ndarray]:
    """The three poolings of seed 003, as the clusters stage forms them; one when they coincide (a CNN's global
    embedding is the mean of its last feature map)."""
    if np.allclose(cls, mean, atol=1e-5):
        return {GLOBAL: cls}
    return {GLOBAL: cls, MEAN: mean, CONCAT: np.hstack([normalise(cls), normalise(mean)])}


def judge(features: np.ndarray, labels: np.ndarray, k: int, cfg: "Config") -> dict:
    """One backbone and pooling on every measure: k-NN and linear-probe accuracy (cross-validated, when there are
    labels), t-SNE trustworthiness, and k-means at the sweep's chosen k (silhouette; ARI and NMI against labels).
    Also returns the t-SNE map, for the side-by-side figure."""
    import os

    from ..methods.kmeans import kmeans_at, prepare, restarts
    from ..methods.pca_fit import reduce
    from ..methods.quality import trustworthiness
    from ..methods.tsne_fit import fit_tsne, gradient_method, valid_perplexity
    from .probes import knn_accuracy, linear_probe_accuracy

    seed = cfg.compare.seed
    result: dict = {"dims": int(features.shape[1])}
    labelled = len(set(labels.tolist())) > 1
    if labelled:
        result["knn_accuracy"], result["folds"] = knn_accuracy(features, labels, cfg.retrieval.knn_k,
                                                               cfg.retrieval.folds, seed)
        probe = linear_probe_accuracy(features, labels, cfg.retrieval.folds, seed, cfg.compare.linear_probe_c,
                                      cfg.compare.linear_probe_max_iter)
        result["linear_probe_accuracy"], result["linear_probe_converged"] = probe["accuracy"], probe["converged"]
    perplexity, _ = valid_perplexity(cfg.tsne.perplexity, len(features))
    points = reduce(features, cfg.pca.n_components).astype(np.float64)
    coords = np.asarray(fit_tsne(points, perplexity, cfg.tsne.n_iter,
                                 gradient_method(cfg.tsne.method, len(points), cfg.tsne.fft_from), seed,
                                 cfg.tsne.n_jobs or os.cpu_count() or 1), dtype=np.float32)
    result["trustworthiness"] = trustworthiness(features, coords, cfg.fidelity.k, seed)
    clustered = kmeans_at(prepare(features, cfg.clusters.pca_dims), k,
                          restarts(cfg.clusters.n_init, len(features), cfg.clusters.n_init_one_from),
                          cfg.clusters.silhouette_sample, seed)
    result["silhouette"] = clustered["silhouette"]
    if labelled:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        result["ari"] = float(adjusted_rand_score(labels, clustered["labels"]))
        result["nmi"] = float(normalized_mutual_info_score(labels, clustered["labels"]))
    rounded = {key: round(value, 4) if isinstance(value, float) else value for key, value in result.items()}
    return {**rounded, "map": coords}
