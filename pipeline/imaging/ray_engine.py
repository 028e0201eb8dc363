"""Extraction on Ray Data (``extract.engine = "ray"``): the local engine's decode and model, spread over a cluster.

- Where: the cluster at ``RAY_ADDRESS``, else the one ``ray start`` made on this machine, else a local one
  started here (Ray's own order, ``ray.init()``). The driver's ``pipeline`` package travels with the job
  (``py_modules``), so every worker runs the driver's code even where another embdeck is installed.
- Decoding: the manifest (row number, relative path) is a Ray Dataset; CPU tasks read each file (a local
  path, shared storage or an object store: ``storage``) and decode it with ``decoding.decode``, giving the
  model input plus the small copies the stage keeps, byte for byte as the local engine keeps them.
- The model: a fixed pool of actors (``map_batches`` with a callable class), one backbone each, ``num_gpus=1``
  each where the cluster has GPUs. The backbone is built once, on the driver, and shipped through the object
  store, so workers need neither the weights file nor the hub. Decode tasks and model actors ask for
  different Ray options, so Ray Data keeps them apart (it would otherwise fuse decoding into the actors).
- Order: results come back in any order with their row numbers and are written in place, so the stage's
  outputs are in the manifest's order; every row must come back, or the stage fails.
- A lost worker: Ray restarts a dead actor (``max_restarts``) and resubmits its batches (``max_task_retries``);
  a lost decode task is retried (``max_retries``). Ray Data keeps only the output of the attempt that finished.
- Progress: one bar, images/s across the cluster; Ray Data's own bars and logs are silenced.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..engine.artifacts import StageError
from . import decoding, storage

log = logging.getLogger("embdeck")

MAX_BLOCKS = 2000  # the manifest is cut into at most this many blocks (each a whole number of batches)


@dataclass
class Cluster:
    """The Ray cluster a pass ran on, as the run record shows it."""

    address: str
    started_here: bool
    nodes: int
    cpus: float
    gpus: float
    connect_seconds: float


@dataclass
class RayStats:
    """How a Ray pass went: the figures the log, the run record and the slides show."""

    pool: int = 0
    actor_resources: dict = field(default_factory=dict)
    torch_threads: int = 0
    images: int = 0
    seconds: float = 0.0
    first_result_s: float = 0.0  # start-up: until the first batch came back (actors built, model loaded)
    model_seconds: float = 0.0
    served_by: set = field(default_factory=set)  # host:pid of each actor process that returned a batch
    devices: set = field(default_factory=set)
    rows_twice: int = 0

    @property
    def images_per_s(self) -> float:
        return self.images / max(self.seconds, 1e-12)

    @property
    def steady_images_per_s(self) -> float:
        """The rate once the first batch is back: what the cluster sustains, start-up left out."""
        return self.images / max(self.seconds - self.first_result_s, 1e-12)

    @property
    def model_share(self) -> float:
        """Share of the pool's time (actors x wall time) spent in the model."""
        return self.model_seconds / max(self.seconds * max(self.pool, 1), 1e-12)


def quiet_ray(verbose: bool) -> None:
    """One progress bar for the user: Ray Data's bars off, and its console log lines below errors (its log
    file in Ray's session folder keeps them all)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    if not verbose:
        # Read when this process joins the cluster. Ray 2.60's core logs an error line for every Ray Data actor
        # pool ("constructor arguments in the object store and max_restarts > 0", ray-project/ray#53727: the
        # pool's arguments are owned by this driver, which outlives the pool); at "fatal" it logs one info line.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        for handler in logging.getLogger("ray.data").handlers:
            if handler.name == "console":
                handler.setLevel(logging.ERROR)


def connect(verbose: bool = False) -> Cluster:
    """Join ``RAY_ADDRESS``, or the cluster ``ray start`` made here, or start a local one."""
    try:
        import ray
    except ImportError:
        raise StageError("extract.engine=ray needs Ray Data: pip install 'embdeck[ray]'") from None

    quiet_ray(verbose)
    started = time.perf_counter()
    started_here = False
    if not ray.is_initialized():
        # This very package (pipeline/, two folders up) travels with the job, so every worker runs the driver's code.
        options = {"runtime_env": {"py_modules": [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]},
                   "log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR}
        try:
            ray.init(address="auto", **options)
        except ConnectionError:
            if os.environ.get("RAY_ADDRESS"):
                address = os.environ["RAY_ADDRESS"]
                raise StageError(f"extract.engine=ray: no Ray cluster answers at RAY_ADDRESS={address}") from None
            ray.init(include_dashboard=False, **options)
            started_here = True
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    resources = ray.cluster_resources()
    return Cluster(ray.get_runtime_context().gcs_address, started_here, len(nodes), float(resources.get("CPU", 0)),
                   float(resources.get("GPU", 0)), round(time.perf_counter() - started, 3))


def pool_plan(cluster: Cluster, requested: int) -> tuple[int, dict, int]:
    """(actors, Ray resources per actor, torch threads per actor).

    With GPUs: one actor per GPU (``num_gpus=1``). On CPUs: one actor per node by default, each reserving one
    CPU in Ray's books and running torch on its share of the node's CPUs, as the local engine does on one
    machine; the other CPUs decode. Actors that would hold every CPU would leave no decode task room to run.
    """
    if cluster.gpus >= 1:
        size = requested or int(cluster.gpus)
        if size > cluster.gpus:
            raise StageError(f"extract.workers={size}: each model actor takes a GPU and the cluster has "
                             f"{cluster.gpus:g}; use at most {int(cluster.gpus)} (or 0: one per GPU)")
        return size, {"num_gpus": 1, "num_cpus": 1}, 1
    size = requested or max(1, min(cluster.nodes, int(cluster.cpus) - 1))
    if size >= cluster.cpus:
        raise StageError(f"extract.workers={size}: the cluster has {cluster.cpus:g} CPUs and no GPU; {size} model "
                         f"actors would leave no CPU to decode images (use at most {max(int(cluster.cpus) - 1, 0)})")
    cpus_per_node = cluster.cpus / max(cluster.nodes, 1)
    threads = max(1, int(cpus_per_node) // math.ceil(size / max(cluster.nodes, 1)))
    return size, {"num_cpus": 1}, threads


def ragged(items: list) -> np.ndarray:
    """A column of images that most rows lack: an empty (0, 0, 3) array stands for "not kept"."""
    column = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        column[i] = item if item is not None else np.zeros((0, 0, 3), np.uint8)
    return column


def decode_rows(batch: dict, root: str, keep: decoding.Keep, prep: decoding.Preprocess, max_pixels: int) -> dict:
    """A Ray Data batch function (a CPU task): read and decode each row's file.

    A file that cannot be read (it changed after ingest read it) becomes a blank row with its reason in
    ``error``: the driver stops the pass with that reason, as the local engine does, and Ray does not retry
    what would fail again."""
    from .images import ImageReadError

    folder = storage.location(root)
    decoded, errors = [], []
    for row, rel in zip(batch["row"], batch["path"]):
        try:
            decoded.append(decoding.decode(folder / str(rel), int(row), keep, prep, max_pixels))
            errors.append("")
        except ImageReadError as exc:
            decoded.append(None)
            errors.append(str(exc))
    shapes = decoding.kept_shapes(prep, keep)
    decoded = [d or {name: np.zeros(shape, np.uint8) for name, shape in shapes.items()} for d in decoded]
    out = {"row": np.asarray(batch["row"], np.int64), "error": np.asarray(errors, dtype=object)}
    out.update({name: np.stack([d[name] for d in decoded]) for name in shapes})
    out["crop"] = ragged([d.get("crop") for d in decoded])
    out["kept_input"] = ragged([d["input"] if int(row) in keep.input_rows else None
                                for row, d in zip(batch["row"], decoded)])
    return out


class ModelWorker:
    """One backbone per actor (a Ray Data callable class): the local engine's ``Extractor`` on this worker's
    device, fed decoded batches; the decoded copies pass through beside the features."""

    def __init__(self, shipped: list, prep: decoding.Preprocess, device: str, dtype: str, max_pixels: int,
                 threads: int, batch_size: int = 0):
        import ray
        import torch

        from .devices import pick_device, pick_dtype
        from .features import Extractor

        torch.set_num_threads(threads)
        model = ray.get(shipped[0])  # a reference inside a list: resolved here, not by Ray before the call
        chosen = pick_device(device)
        self.extractor = Extractor(model, prep, chosen, pick_dtype(dtype, chosen), max_pixels)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.batch_size = batch_size  # every call padded to this many rows, as the local engine's
        self.device = f"{chosen.type} {str(self.extractor.dtype).replace('torch.', '')}"

    def __call__(self, batch: dict) -> dict:
        started = time.perf_counter()
        pooled, mean, _ = self.extractor.features(batch["input"], rows_per_call=self.batch_size)
        seconds = time.perf_counter() - started
        n = len(batch["row"])
        out = {key: value for key, value in batch.items() if key != "input"}
        out.update(embeddings=pooled.numpy(), patch_mean=mean.numpy(), worker=np.full(n, self.name),
                   device=np.full(n, self.device), model_seconds=np.full(n, seconds / n))
        return out


def manifest_dataset(paths: list[str], batch_size: int):
    """The manifest as a Ray Dataset of (row, path), in blocks of whole batches (so the model's batches are
    the local engine's: rows [0, b), [b, 2b), ...)."""
    import pyarrow as pa
    import ray

    batches = math.ceil(len(paths) / batch_size)
    rows_per_block = batch_size * max(1, math.ceil(batches / MAX_BLOCKS))
    tables = [pa.table({"row": np.arange(start, min(start + rows_per_block, len(paths)), dtype=np.int64),
                        "path": paths[start:start + rows_per_block]})
              for start in range(0, len(paths), rows_per_block)]
    return ray.data.from_arrow(tables)


def unpack(column, rows: np.ndarray) -> dict:
    """{row: image} for the rows a ragged column holds an image for."""
    return {int(row): np.asarray(image) for row, image in zip(rows, column) if np.asarray(image).size}


def pipeline(paths: list[str], root: str, shipped: list, prep: decoding.Preprocess, keep: decoding.Keep, cfg,
             max_pixels: int, stats: RayStats):
    """The Ray Data pipeline: manifest -> decode tasks -> model actors, each with its retries."""
    import ray

    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for retries and calls ``**ray_remote_args`` deprecated (gone in 2.64).
        warnings.simplefilter("ignore", category=DeprecationWarning)
        data = manifest_dataset(paths, cfg.batch_size).map_batches(
            decode_rows, batch_size=cfg.batch_size, num_cpus=1, max_retries=cfg.retries,
            fn_kwargs={"root": root, "keep": keep, "prep": prep, "max_pixels": max_pixels})
        return data.map_batches(
            ModelWorker, batch_size=cfg.batch_size, compute=ray.data.ActorPoolStrategy(size=stats.pool),
            fn_constructor_kwargs={"shipped": shipped, "prep": prep, "device": cfg.device, "dtype": cfg.dtype,
                                   "max_pixels": max_pixels, "threads": stats.torch_threads,
                                   "batch_size": cfg.batch_size},
            max_restarts=cfg.retries, max_task_retries=cfg.retries, **stats.actor_resources)


def extract(paths: list[str], root: str, model, prep: decoding.Preprocess, keep: decoding.Keep, cfg,
            max_pixels: int, stats: RayStats, cluster: Cluster) -> Iterator[decoding.Batch]:
    """Features of the manifest's files (``paths`` relative to ``root``), batch by batch, in no set order.

    ``cfg`` is the ``extract`` section. ``stats`` is filled in as the pass goes."""
    import ray
    from tqdm import tqdm

    from .images import ImageReadError

    stats.pool, stats.actor_resources, stats.torch_threads = pool_plan(cluster, cfg.workers)
    shipped = [ray.put(copy.deepcopy(model).cpu())]  # a CPU copy: the driver's own may sit on its GPU
    started = time.perf_counter()
    data = pipeline(paths, root, shipped, prep, keep, cfg, max_pixels, stats)
    seen = np.zeros(len(paths), bool)
    bar = tqdm(total=len(paths), desc=f"extract (ray, {stats.pool} workers)", unit="img", disable=None)
    for batch in data.iter_batches(batch_size=None, batch_format="numpy"):
        rows = np.asarray(batch["row"], np.int64)
        failed = [str(e) for e in batch["error"] if e]
        if failed:
            raise ImageReadError(failed[0])
        if not stats.images:
            stats.first_result_s = time.perf_counter() - started
        stats.rows_twice += int(seen[rows].sum())
        seen[rows] = True
        stats.images += len(rows)
        stats.model_seconds += float(np.sum(batch["model_seconds"]))
        stats.served_by.update(map(str, np.unique(batch["worker"])))
        stats.devices.update(map(str, np.unique(batch["device"])))
        kept = {name: batch[name] for name in ("pixels", "thumb") if name in batch}
        kept["crop"], kept["input"] = unpack(batch["crop"], rows), unpack(batch["kept_input"], rows)
        yield decoding.Batch(rows, batch["embeddings"], batch["patch_mean"], None, kept)
        bar.update(len(rows))
    bar.close()
    stats.seconds = time.perf_counter() - started
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise StageError(f"extract.engine=ray: {len(missing)} of {len(paths)} images never came back "
                         f"(first: {paths[missing[0]]}); nothing was kept, run again")


def disconnect(cluster: Cluster) -> None:
    """Leave the cluster (and stop it, if this process started it)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
