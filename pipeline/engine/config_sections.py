"""The config's sections: one frozen dataclass per stage's settings (and the demo set's), every field with its
default and its rule beside it (``config_rules.rule``), and a comment where a default was measured.

``config.Config`` gathers them; a stage declares the sections it reads (``Stage.params``) and sees only those.
A section's ``seed`` left at None takes the run's top-level seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analyses.near_duplicates import Rule as DuplicateRule
from .config_rules import rule

DUPLICATES = DuplicateRule()  # the near-duplicate call's thresholds, measured in pipeline/analyses/near_duplicates.py

SEED = rule(None, low=0)  # None: the top-level seed


@dataclass(frozen=True)
class DemoConfig:
    """The built-in demo set: a stratified subset of Fashion-MNIST's test split, plus real photos."""

    per_class: int = rule(200, low=1)
    seed: int = rule(0, low=0)  # which images make the demo set: data, not an analysis, so not the run's seed
    folder: str = rule("data/demo", keyed=False)  # a place: what is read there is in ingest's fingerprint


@dataclass(frozen=True)
class IngestConfig:
    """Which files count as images and how big an image may be before it is refused."""

    extensions: tuple[str, ...] = (
        ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jp2", ".pbm", ".pgm", ".ppm",
        ".heic", ".heif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw",
    )
    max_pixels: int = rule(100_000_000, low=1)
    workers: int = rule(0, low=0, keyed=False)  # 0: one per CPU core; how ingest runs, not what it finds
    # A file whose path, size and mtime are those recorded last time keeps its recorded hash (as git's index does);
    # true re-reads every file. Keyed, so that setting it makes ingest run again (its manifest is the same bytes).
    rehash: bool = False


@dataclass(frozen=True)
class BackboneConfig:
    """Which network makes the embeddings, and how images are prepared for it.

    ``model = "auto"`` means DINO ViT-S/16 when its weights can be had (an explicit ``weights`` file, the hub
    cache or the hub), else, when the hub is switched off or unreachable, the bundled ImageNet
    EfficientNet-Lite0; the run records which one and why.
    """

    # Keyed by what they resolve to (extract's fingerprint: network and weights by content), not as written.
    model: str = rule("auto", keyed=False)  # a timm name, "auto", or "bundled" (the offline EfficientNet-Lite0)
    weights: str = rule("", keyed=False)  # a state-dict file (.pth/.safetensors) for air-gapped machines; "random"
    # "timm": the pretrained data config; "thumbnail": the seed's 32 px -> input size
    preprocess: str = rule("timm", choices=("timm", "thumbnail"))
    thumbnail_size: int = rule(32, low=1)
    input_size: int = rule(0, low=0)  # 0: the model's pretrained input size
    hub_timeout_s: float = rule(5.0, low=0, keyed=False)  # the longest wait for the hub's first answer
    # Backbones to compare (--compare): timm names, "bundled", "pixels", "NAME:random", "NAME:FILE" or "demo";
    # each is extracted and cached on its own (see ``comparison``).
    compare: tuple[str, ...] = rule((), keyed=False)


@dataclass(frozen=True)
class ExtractConfig:
    """How extraction runs (batch size, device, dtype) and what it keeps of each decoded image."""

    batch_size: int = rule(64, low=1)
    device: str = rule("auto", choices=("auto", "cpu", "cuda", "mps"))  # auto: CUDA, else Apple's MPS, else CPU
    # Not keyed: both engines give the same outputs. ray: Ray Data on the cluster at RAY_ADDRESS, or one that
    # `ray start` made here, or a local one (embdeck[ray]). workers: model actors, 0 = one per GPU, else per node.
    engine: str = rule("local", choices=("local", "ray"), keyed=False)
    workers: int = rule(0, low=0, keyed=False)
    retries: int = rule(3, low=0, keyed=False)  # Ray: restarts of a lost model actor, retries of a lost task's work
    dtype: str = rule("auto", choices=("auto", "fp32", "bf16"))  # auto: bf16 on a GPU, fp32 on a CPU
    dtype_check_images: int = rule(32, low=1)  # under bf16, images spread over the set compared with fp32
    patch_images_from_set: int = rule(4, low=0)  # data-set images whose spatial patch tokens are kept for patch maps
    patch_photos: str = "auto"  # extra photos for patch maps: auto (the demo photos on the demo set), a folder, or ""
    # Kept from the one decode of each image, for the stages that need pixels: the raw-pixel baseline's
    # small copy (side, in pixels) and the interactive map's thumbnail.
    keep_pixels: int = rule(32, low=4, high=256)
    keep_thumb: int = rule(48, low=8, high=256)
    # Rows the embedding store gets per segment (one append each): what a killed run keeps of its work.
    store_segment_rows: int = rule(4096, low=1, keyed=False)
    seed: int | None = SEED


@dataclass(frozen=True)
class NeighboursConfig:
    """The run's k-nearest-neighbour graph, searched once per space and read by every analysis.

    ``k`` is not set here: it is the largest that any stage reading the graph needs (see the stage).
    """

    method: str = rule("auto", choices=("auto", "exact", "ivf", "hnsw"))
    # auto: exact FAISS search up to this many points, an inverted-file index (IVF) above, tuned to min_recall
    exact_up_to: int = rule(50_000, low=1)
    min_recall: float = rule(0.99, above=0, high=1)
    recall_queries: int = rule(1000, low=10)  # seeded queries whose recall@k against exact search is measured
    block: int = rule(8192, low=1)  # query rows searched at a time (memory stays bounded)
    # A grown collection (keep_place) keeps the earlier graph's rows and searches only the new ones while they
    # are at most this share of the set (an exact search of added x N pairs; beyond it, one search of all).
    grow_up_to: float = rule(0.2, above=0, high=1)
    seed: int | None = SEED


@dataclass(frozen=True)
class PcaConfig:
    """PCA of the global embeddings: the 2-D map and the explained-variance curve."""

    n_components: int = rule(50, low=2)
    whiten: bool = False


@dataclass(frozen=True)
class TsneConfig:
    """t-SNE on PCA-50 with openTSNE; the seed's perplexity 30 and 1,000 iterations."""

    perplexity: float = rule(30.0, low=1)
    n_iter: int = rule(1000, low=4)
    method: str = rule("auto", choices=("auto", "bh", "fft"))  # auto: Barnes-Hut below fft_from points, FFT from there
    # Where openTSNE's FFT gradient overtakes its Barnes-Hut one on 2 cores (Fashion-MNIST features, PCA-50):
    # BH 43.8 s vs FFT 55.9 s at 20k, 82.1 s vs 66.0 s at 35k; at 70k FFT ~113 s.
    fft_from: int = rule(27_000, low=1)
    n_jobs: int = rule(0, low=0)  # 0: one per CPU core
    # auto: RAPIDS cuML on the GPU when it is installed (embdeck[cuml]) and `device` is CUDA, else openTSNE;
    # cuML's maps are seeded but not bit-for-bit reproducible (see pipeline/methods/gpu_maps.py)
    engine: str = rule("auto", choices=("auto", "cpu", "cuml"))
    # From an earlier map of the same settings (keep_place): iterations of the normal phase only, no early
    # exaggeration. The bench's update part measures the trustworthiness and the movement this gives.
    resume_iter: int = rule(100, low=1)
    seed: int | None = SEED


@dataclass(frozen=True)
class UmapConfig:
    """umap-learn, 2-D, seeded (which makes it single-threaded and reproducible)."""

    n_neighbors: int = rule(15, low=2)
    min_dist: float = rule(0.1, low=0, high=1)
    # The starting layout. "pca": the layout data's first two principal components, linear in N. "spectral":
    # umap-learn's Laplacian eigenmap, whose eigensolver grows far faster (45 s vs 25 s for the whole map at
    # 70,000 images; unfinished after 590 s for the init alone at 280,000) for the same trustworthiness.
    init: str = rule("pca", choices=("pca", "spectral"))
    engine: str = rule("auto", choices=("auto", "cpu", "cuml"))  # as tsne.engine
    # From an earlier map (keep_place): epochs of umap-learn's layout, and its starting learning rate (1.0
    # for a fresh map), low so the old layout is refined rather than shaken apart.
    resume_epochs: int = rule(50, low=1)
    resume_learning_rate: float = rule(0.05, above=0)
    seed: int | None = SEED


@dataclass(frozen=True)
class ParametricConfig:
    """Parametric maps in PyTorch: a UMAP-objective encoder and an MLP regressing the t-SNE map."""

    holdout: float = rule(0.2, above=0, high=0.9)  # share of images never seen in training, projected afterwards
    # Training budgets that stop the time growing with the set (0: no cap). The parametric UMAP samples this
    # many edges of the training images' fuzzy graph an epoch (the graph of 5,000 images has about 100,000);
    # the t-SNE MLP sees this many training images an epoch.
    umap_edges_per_epoch: int = rule(100_000, low=0)
    tsne_images_per_epoch: int = rule(60_000, low=0)
    hidden: int = rule(256, low=1)
    # Chosen on the demo set by held-out fidelity: longer training fits the training images better
    # (200 UMAP epochs: trustworthiness 0.945) but new images no better (0.89), i.e. it overfits.
    umap_epochs: int = rule(80, low=1)
    tsne_epochs: int = rule(150, low=1)
    # Epochs each head trains on from its earlier weights when the set changed (keep_place).
    resume_umap_epochs: int = rule(20, low=1)
    resume_tsne_epochs: int = rule(30, low=1)
    learning_rate: float = rule(1e-3, above=0)
    batch_size: int = rule(256, low=1)  # images per step for the t-SNE MLP
    edge_batch: int = rule(4096, low=1)  # graph edges per step for the parametric UMAP
    negative_samples: int = rule(5, low=1)
    seed: int | None = SEED


@dataclass(frozen=True)
class ClusterConfig:
    """The k-means sweep (seed 003): metrics per k, an elbow, a chosen k with its reason."""

    k_min: int = rule(2, low=2)
    k_max: int = rule(0, low=0)  # 0: scaled to the set, 2 * sqrt(N) (at most N - 1)
    steps: int = rule(15, low=1)
    # k-means restarts: 0 = 4 below n_init_one_from images, 1 from there (scikit-learn's own default with
    # k-means++); at 70,000 images one restart's SSE is within a fraction of a percent of four's (make bench).
    n_init: int = rule(0, low=0)
    n_init_one_from: int = rule(10_000, low=1)
    pca_dims: int = rule(50, low=2)  # k-means runs on L2-normalised features reduced to this many components
    sweep_sample: int = rule(20_000, low=100)  # above this many images the sweep runs on a seeded sample of them
    silhouette_sample: int = rule(5000, low=10)
    seed: int | None = SEED


@dataclass(frozen=True)
class PatchConfig:
    """Patch maps (seed 004): PCA of patch tokens, foreground mask, RGB of three components."""

    threshold: float = rule(0.6, low=0, high=1)


@dataclass(frozen=True)
class RetrievalConfig:
    """Cosine nearest neighbours with FAISS; k-NN accuracy when there are labels."""

    top_k: int = rule(5, low=1)
    queries: int = rule(6, low=0)
    knn_k: int = rule(5, low=1)
    folds: int = rule(5, low=2)
    seed: int | None = SEED


@dataclass(frozen=True)
class FindingsConfig:
    """What the findings call a problem: near-duplicates, outliers, likely label errors (the rules' settings)."""

    outlier_k: int = rule(10, low=1)  # outlier score: mean cosine distance to this many nearest neighbours
    # Near-duplicates: one picture, edited (pipeline/analyses/near_duplicates.py). Among each image's neighbours in the
    # embedding and raw-pixel graphs, a copy correlates in grey pixels (mean and contrast removed) at
    # duplicate_floor or more and stands out from the image's ordinary neighbours: 1 - its correlation is at
    # most duplicate_ratio times the image's scale (its duplicate_scale_k-th candidate's), at both ends.
    # Measured on real sets with planted edits (bench part acceptance): on 3,037 Fashion-MNIST images all 12
    # planted copies found, 1 group of no planted copy, none of 10 look-alike pairs grouped; on 1,812 8x8
    # digit scans no unplanted scan called (2 of 12 planted brighter copies missed: clipping).
    duplicate_floor: float = rule(DUPLICATES.floor, above=0, high=1)
    duplicate_ratio: float = rule(DUPLICATES.ratio, above=0, high=1)
    duplicate_scale_k: int = rule(DUPLICATES.scale_k, low=2)
    duplicate_candidates: int = rule(DUPLICATES.candidates, low=2)  # neighbours taken from each graph
    duplicate_lookalike: float = rule(DUPLICATES.lookalike, above=0, high=1)  # not copies, this correlated: listed apart
    # A pair with this share of its difference in one quarter-side window, at this RMS there (grey levels), is
    # one picture with a part changed (another print), not an edit.
    duplicate_local_share: float = rule(DUPLICATES.local_share, above=0, high=1)
    duplicate_local_level: float = rule(DUPLICATES.local_level, low=0, high=255)
    label_k: int = rule(10, low=1)  # neighbours (outside an image's fold) whose labels make its class probabilities
    probe_max_train: int = rule(10_000, low=10)  # the linear probe trains on at most this many images per fold
    representatives: int = rule(0, low=0)  # 0: one per cluster at the elbow's k (the seed's sampler); else this many
    seed: int | None = SEED


@dataclass(frozen=True)
class CompareConfig:
    """The linear probe of ``backbone.compare``; its other measures take the main analyses' settings."""

    linear_probe_c: float = rule(1.0, above=0)  # inverse strength of the logistic regression's L2 penalty
    linear_probe_max_iter: int = rule(1000, low=10)
    seed: int | None = SEED


@dataclass(frozen=True)
class ExportConfig:
    """The TorchScript export and its parity check."""

    check_images: int = rule(16, low=1)
    tolerance: float = rule(1e-4, above=0)
    batch_size: int = rule(8, low=1)


@dataclass(frozen=True)
class GalleryConfig:
    """The interactive maps (report and deck) with every image, and the collection as one picture.

    Thumbnails come from extraction (``extract.keep_thumb``) and go out as WebP sheets. ``tiles_mb`` caps the
    sheets' total: the largest tile side (of the kept one, 48, 40, 32, 24, 16 px) whose sheets fit is used.
    At 70,000 Fashion-MNIST images (28 px scans) the sheets came to 16.0 MB with 40 px tiles, and the report's
    other files to 16.5 MB (point data and neighbours 7.5, figures 5.5, the findings' CSV files 3.5): a 32.5 MB
    folder. The default budget takes 32 px tiles there (still above the scans' own 28 px), so the folder stays
    under 30 MB.
    """

    tiles_mb: float = rule(12.0, above=0)
    tile_quality: int = rule(65, low=1, high=100)  # WebP quality of the sheets
    neighbours: int = rule(8, low=1)  # nearest neighbours (from the run's graph) shown for a clicked image
    # The picture: a grid of square cells, 16:9 for the deck's cover; each cell gets one image by an optimal
    # assignment of t-SNE positions to cells (a seeded sample of columns x rows images on large sets).
    mosaic_columns: int = rule(48, low=1)
    mosaic_rows: int = rule(27, low=1)
    mosaic_cell: int = rule(40, low=8, high=256)  # pixels per cell
    seed: int | None = SEED


@dataclass(frozen=True)
class StabilityConfig:
    """Each map fitted again with other seeds on a seeded sample: how far its points move, which neighbours stay."""

    # Images refitted (every map, 1 + refits times), so the cost is bounded whatever N is. On the demo set at
    # 500 the stage took 77-84 s on 2 loaded cores (its maps' own stages, on all 2,000 images: about 190 s).
    sample: int = rule(500, low=10)
    refits: int = rule(2, low=1, high=10)  # other seeds (the map's seed + 1, + 2, ...)
    k: int = rule(10, low=1)  # map neighbours whose survival is counted
    seed: int | None = SEED  # which images are sampled


@dataclass(frozen=True)
class FidelityConfig:
    """How faithful each map is: trustworthiness and neighbours kept, with this many neighbours."""

    k: int = rule(10, low=1)
    seed: int | None = SEED

