"""``embdeck place DIR``: new images onto a finished run's maps through its exported models; nothing is refitted.

The exported extractor (``dino_model``) gives each image the run's embedding; the exported map heads
(``tsne_head``, ``umap_head``: embedding -> point) put it on the t-SNE map and on the parametric UMAP's map
(umap-learn's own map has no network to place with); its nearest images in the collection come from a
cosine search of the run's embeddings. Either file of each model works: the torch.export program
(``model.pt2``, the default) or TorchScript (``model.pt``). Files that cannot be read are skipped and listed.
Writes ``<out>/placed/``: ``placed.csv``, ``placed_map.png``, ``placed.json`` (what the report's layer reads,
tied to the run's export) and the new images' thumbnail sheets; the user's folder is only read.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .engine.artifacts import StageError, write_csv, write_json_atomic
from .registry import stage_output

PLACED = "placed"
FORMATS = {"pt2": "model.pt2", "torchscript": "model.pt"}
HEADS = {"tsne": ("tsne_head", "t-SNE"), "param_umap": ("umap_head", "parametric UMAP")}  # map -> exported head
MAPS = {"tsne": ("tsne", "coords"), "param_umap": ("parametric", "param_umap")}  # map -> the run's coordinates
MAKE_ONE = "make one with `embdeck deck` (or `make deck`) first"


def finished_run(out: Path, model_file: str) -> dict:
    """The run record of ``out``, checked to have what placing needs; one-line errors otherwise."""
    try:
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise StageError(f"no finished run in {out}: {MAKE_ONE}") from None
    stages = record.get("stages", {})
    for needed in ("ingest", "extract", "export", "gallery"):
        if "dir" not in stages.get(needed, {}):
            why = record.get("not_run", {}).get(needed, "it has not run")
            raise StageError(f"the run in {out} has no {needed} stage ({why}): {MAKE_ONE}")
    missing = [name for name, _ in HEADS.values() if name not in record["summaries"]["export"]["models"]]
    if missing:
        why = record.get("not_run", {}).get("parametric", "the map heads were not exported")
        raise StageError(f"the run in {out} has no map heads to place with ({why})")
    for name in ["dino_model", *(head for head, _ in HEADS.values())]:
        if not (out / "model_repository" / name / "1" / model_file).is_file():
            raise StageError(f"{out / 'model_repository' / name / '1' / model_file} is missing: {MAKE_ONE}")
    return record


def preprocess_of(record: dict):
    """The run's preprocessing, from its record (no backbone is built)."""
    from .imaging.features import Preprocess

    p = record["summaries"]["extract"]["preprocess"]
    return Preprocess(p["input_size"], p["crop_pct"], p["interpolation"], tuple(p["mean"]), tuple(p["std"]), p["mode"],
                      p.get("thumbnail_size") or 32)


def read_images(folder: Path, extensions: tuple[str, ...], max_pixels: int) -> tuple[list, list[dict]]:
    """([(relative path, RGB array)], skipped [{path, reason}]) for the image files under ``folder``."""
    from .imaging.images import ImageReadError, read_rgb
    from .imaging.storage import discover, relative

    found, skipped = discover(folder, extensions)
    readable = []
    for path in found:
        try:
            readable.append((relative(path, folder), read_rgb(path, max_pixels)))
        except ImageReadError as exc:
            skipped.append({"path": relative(path, folder), "reason": str(exc)})
    return readable, skipped


def run_models(out: Path, model_file: str, record: dict, images: list[np.ndarray], batch_size: int
               ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """(embeddings, {map: points}, seconds spent loading the models) of the images, batch by batch."""
    import torch

    from .imaging.model_files import load

    prep = preprocess_of(record)
    started = time.perf_counter()
    repository = out / "model_repository"
    extractor = load(repository / "dino_model" / "1" / model_file)
    heads = {key: load(repository / name / "1" / model_file) for key, (name, _) in HEADS.items()}
    loading = time.perf_counter() - started
    embeddings, points = [], {key: [] for key in heads}
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = prep.to_unit(np.stack([prep.resize(rgb) for rgb in images[start:start + batch_size]]),
                                 torch.device("cpu"))
            embedding = extractor(batch)
            embeddings.append(embedding.numpy())
            for key, head in heads.items():
                points[key].append(head(embedding).numpy())
    return np.concatenate(embeddings), {key: np.concatenate(p) for key, p in points.items()}, loading


def collection_neighbours(record: dict, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosine similarities) of each new image's ``k`` nearest images in the collection."""
    from .engine.stored_rows import load_array
    from .methods.knn import flat_search, normalise

    collection = load_array(stage_output(record, "extract", "embeddings"), mmap=True)
    k = min(k, len(collection))
    similarity, rows = flat_search(normalise(np.asarray(collection)), normalise(embeddings), k, metric="ip")
    return rows.astype(np.int64), similarity.astype(np.float32)


def placed_table(names: list[str], points: dict, rows: np.ndarray, similarity: np.ndarray, collection: list[str]
                 ) -> tuple[list[str], list[list]]:
    """placed.csv's header and rows: each new image's points on the maps, then its nearest images."""
    header = ["file"] + [f"{key}_{axis}" for key in points for axis in "xy"]
    header += [f"{what}_{j + 1}" for j in range(rows.shape[1]) for what in ("neighbour", "similarity")]
    table = []
    for i, name in enumerate(names):
        row = [name] + [f"{v:.4f}" for key in points for v in points[key][i]]
        row += [item for j in range(rows.shape[1]) for item in (collection[rows[i, j]], f"{similarity[i, j]:.4f}")]
        table.append(row)
    return header, table


def placed_on_maps(maps: dict[str, tuple[np.ndarray, np.ndarray]], labels: list[str], thumbs: np.ndarray,
                   path: Path, shown: int = 24) -> None:
    """New images over each map ({title: (the collection's coordinates, the new images')}): the collection
    faint, by label; every new image a red star; up to ``shown`` of them, spread over the list, as thumbnails."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from .pictures.figures import plt, save
    from .pictures.palette import colour_map

    fig, axes = plt.subplots(1, len(maps), figsize=(7 * len(maps), 6), squeeze=False)
    names = colour_map(labels)
    colours = [names[label] if len(names) > 1 else "#9aa9bb" for label in labels]
    picks = sorted({int(i) for i in np.linspace(0, len(thumbs) - 1, min(shown, len(thumbs))).round()})
    for ax, (title, (collection, new)) in zip(axes[0], maps.items()):
        ax.scatter(collection[:, 0], collection[:, 1], s=max(2.0, min(12.0, 12000.0 / len(collection))), c=colours,
                   alpha=0.45, linewidths=0)
        for i in picks:
            ax.add_artist(AnnotationBbox(OffsetImage(thumbs[i], zoom=0.75), tuple(new[i]), xybox=(0, 22),
                                         xycoords="data", boxcoords="offset points", pad=0.1,
                                         bboxprops={"edgecolor": "#d62728", "linewidth": 1.2}))
        ax.scatter(new[:, 0], new[:, 1], marker="*", s=90, c="#d62728", edgecolors="black", linewidths=0.6, zorder=5,
                   label=f"new images ({len(new)})")
        ax.set_title(f"{title}: {len(new)} new image(s) placed, map not refitted")
        ax.legend(loc="lower right", frameon=True)
        ax.set_xticks([])
        ax.set_yticks([])
    save(fig, path)


def place(out: Path, folder: Path, model_format: str, k: int, batch_size: int = 32, into: Path | None = None) -> dict:
    """Place the images of ``folder`` on the run in ``out``; returns what ``placed.json`` records. ``into``: write
    elsewhere than ``<out>/placed`` (the bench does, to leave the report's layer alone)."""
    from .engine.artifacts import load_npy
    from .imaging.images import letterbox
    from .pictures import map_data

    out, folder = out.resolve(), folder.resolve()
    if not folder.is_dir():
        raise StageError(f"image folder not found: {folder}")
    model_file = FORMATS[model_format]
    record = finished_run(out, model_file)
    target = (into or out / PLACED).resolve()
    if folder == target or folder in target.parents:
        raise StageError(f"{target} would be written inside the folder being placed; choose another --out")
    config = record["config"]
    readable, skipped = read_images(folder, tuple(config["ingest"]["extensions"]), config["ingest"]["max_pixels"])
    if not readable:
        raise StageError(f"no readable image in {folder}" + (f" ({len(skipped)} file(s) skipped)" if skipped else ""))
    names, images = [name for name, _ in readable], [rgb for _, rgb in readable]
    started = time.perf_counter()
    embeddings, points, loading = run_models(out, model_file, record, images, batch_size)
    rows, similarity = collection_neighbours(record, embeddings, k)
    seconds = time.perf_counter() - started

    manifest = json.loads(stage_output(record, "ingest", "manifest").read_text(encoding="utf-8"))
    collection = [item["path"] for item in manifest]
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_csv(staging / "placed.csv", *placed_table(names, points, rows, similarity, collection))
    tile = int(record["summaries"]["gallery"]["tile"])
    thumbs = np.stack([letterbox(rgb, tile) for rgb in images])
    for number, sheet in enumerate(map_data.sheet_images(thumbs, np.arange(len(thumbs)), tile)):
        (staging / f"placed-tiles-{number:04d}.webp").write_bytes(map_data.encode_webp(sheet, 80))
    maps = {key: load_npy(stage_output(record, *where)) for key, where in MAPS.items()}
    placed_on_maps({HEADS[key][1]: (maps[key], points[key]) for key in maps},
                           [item["label"] for item in manifest], thumbs, staging / "placed_map.png")
    summary = {
        "folder": str(folder), "format": model_format, "export_key": record["stages"]["export"]["key"],
        "run_id": record["run_id"], "count": len(names), "skipped": skipped, "names": names, "tile": tile,
        "points": {key: np.round(p, 4).tolist() for key, p in points.items()},
        "neighbours": {"rows": rows.tolist(), "similarity": np.round(similarity, 4).tolist()},
        "seconds": round(seconds, 3), "model_load_seconds": round(loading, 3),
        "images_per_s": round(len(names) / max(seconds - loading, 1e-9), 2),
        "images_per_s_with_loading": round(len(names) / max(seconds, 1e-9), 2),
    }
    write_json_atomic(staging / "placed.json", summary)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return summary
