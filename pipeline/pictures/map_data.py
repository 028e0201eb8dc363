"""The interactive map's data files, in the form the browser code (``web/map-core.js``) reads them.

Every file is a classic script that hands its payload to ``EmbdeckMap.receive(name, payload)``: a page opened
from disk (``file://``) may load scripts but may not fetch files, so the report works double-clicked as well
as published. Arrays travel as base64 little-endian typed arrays (a third larger than binary, far smaller
than JSON numbers, and decoded in milliseconds).

Points are kept in *map order*: sorted along a Z-order curve of their t-SNE position, so the thumbnails of
points near each other on the map share a sheet and a hover over one region fetches few files. ``order[p]``
is the manifest row of the point at map position ``p``; neighbour indices in the files are map positions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..engine.artifacts import finite

FORMAT = 1
SHEET_SIDE = 16  # tiles per sheet row and column: 256 thumbnails a sheet
NEIGHBOUR_BLOCK = 4096  # points per neighbour file (fetched when a point in it is clicked)
TILE_SIDES = (48, 40, 32, 24, 16)  # tile sides tried, largest first, until the sheets fit their budget
ESTIMATE_SHEETS = 16  # sheets encoded to estimate a side's total on a large set ...
ESTIMATE_SLACK = 1.1  # ... which is encoded in full when the estimate is within this factor of the budget
DTYPES = {"u1": "<u1", "u2": "<u2", "u4": "<u4", "i2": "<i2", "f4": "<f4"}  # web/map-core.js knows these


def typed(array: np.ndarray, kind: str) -> dict:
    """An array as ``{"type", "data"}``: base64 of its little-endian bytes (a JS typed array's view)."""
    raw = np.ascontiguousarray(array, dtype=DTYPES[kind]).tobytes()
    return {"type": kind, "data": base64.b64encode(raw).decode("ascii")}


def index_kind(top: int) -> str:
    """The smallest unsigned type that holds 0..top (and the 'missing' value, the type's maximum)."""
    return "u1" if top < 0xFF else "u2" if top < 0xFFFF else "u4"


def script(name: str, payload) -> str:
    """A data file: JSON inside one call (ASCII only, so no byte can end the script or break the page)."""
    body = json.dumps(finite(payload), ensure_ascii=True, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return f"EmbdeckMap.receive({json.dumps(name)}, {body});\n"


def write_script(path: Path, name: str, payload) -> None:
    path.write_text(script(name, payload), encoding="ascii")


def spread_bits(values: np.ndarray) -> np.ndarray:
    """16-bit integers with a zero bit inserted after each bit (the halves of a Morton code)."""
    x = values.astype(np.uint64) & np.uint64(0xFFFF)
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def quantise(coords: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(N, 2) coordinates as uint16 over their bounding box, and the box [x0, y0, x1, y1]. An axis without
    a span (every point in one place) maps to 0; a NaN, which once came from the maps of identical images and
    reached the uint16 cast, is refused by name."""
    if not np.isfinite(coords).all():
        raise ValueError(f"{int((~np.isfinite(coords)).any(axis=1).sum())} map coordinates are not finite numbers")
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = high - low
    scaled = np.rint((coords - low) / np.where(span > 0, span, 1.0) * 65535.0).astype(np.uint16)
    return scaled, [float(low[0]), float(low[1]), float(high[0]), float(high[1])]


def map_order(coords: np.ndarray) -> np.ndarray:
    """Manifest rows sorted along a Z-order curve of ``coords`` (ties by row, so the order is stable)."""
    scaled, _ = quantise(coords)
    key = spread_bits(scaled[:, 0]) | (spread_bits(scaled[:, 1]) << np.uint64(1))
    return np.lexsort((np.arange(len(coords)), key))


def sheet(thumbs: np.ndarray, rows: np.ndarray, side: int) -> np.ndarray:
    """One sheet: the thumbnails of ``rows`` (at most ``SHEET_SIDE`` squared) in that order, each tile ``side``
    px, white where there are fewer rows. The sheet is shrunk whole: at these ratios tile edges fall on pixel
    edges, so no tile bleeds into the next."""
    import cv2

    thumb = thumbs.shape[1]
    tiles = np.asarray(thumbs[np.sort(rows)])[np.argsort(np.argsort(rows))]  # sorted reads of a memmap
    picture = np.full((SHEET_SIDE * thumb, SHEET_SIDE * thumb, 3), 255, np.uint8)
    for cell, tile in enumerate(tiles):
        r, c = divmod(cell, SHEET_SIDE)
        picture[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = tile
    if side != thumb:
        picture = cv2.resize(picture, (SHEET_SIDE * side, SHEET_SIDE * side), interpolation=cv2.INTER_AREA)
    return picture


def sheet_rows(order: np.ndarray) -> list[np.ndarray]:
    per = SHEET_SIDE * SHEET_SIDE
    return [order[start:start + per] for start in range(0, len(order), per)]


def sheet_images(thumbs: np.ndarray, order: np.ndarray, side: int) -> Iterator[np.ndarray]:
    """The thumbnails in map order, ``SHEET_SIDE`` x ``SHEET_SIDE`` to a sheet, one sheet at a time (all of
    them at once would hold every thumbnail in memory: 6.9 GB of 48 px tiles at a million images)."""
    for rows in sheet_rows(order):
        yield sheet(thumbs, rows, side)


def encode_webp(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, data = cv2.imencode(".webp", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode WebP")
    return data.tobytes()


def estimate_bytes(thumbs: np.ndarray, groups: list[np.ndarray], side: int, quality: int) -> int:
    """All sheets' encoded size at ``side`` (``groups``: each sheet's rows, ``sheet_rows``), from
    ``ESTIMATE_SHEETS`` evenly spaced sheets."""
    picks = np.unique(np.linspace(0, len(groups) - 1, ESTIMATE_SHEETS).round().astype(int))
    return int(np.mean([len(encode_webp(sheet(thumbs, groups[i], side), quality)) for i in picks]) * len(groups))


def fit_sheets(thumbs: np.ndarray, order: np.ndarray, budget_bytes: float, quality: int
               ) -> tuple[list[bytes], dict[int, int], dict[int, int]]:
    """(encoded sheets, {tile side: total bytes} for each side encoded, the one used last, {side: estimated
    bytes}): the largest side whose sheets fit ``budget_bytes``, or the smallest side when none does (the
    summary then says so). With many sheets, the sides whose sampled estimate is over ``ESTIMATE_SLACK`` times
    the budget are not encoded in full: that is what made a large set's gallery encode every thumbnail five
    times (143 s at 280,000 points)."""
    thumb = thumbs.shape[1]
    sides = [thumb] + [s for s in TILE_SIDES if s < thumb]
    estimated: dict[int, int] = {}
    if len(sides) > 1 and len(order) > 4 * ESTIMATE_SHEETS * SHEET_SIDE * SHEET_SIDE:
        start = len(sides) - 1  # the smallest side, when no larger side's estimate is near the budget
        groups = sheet_rows(order)
        for number, side in enumerate(sides[:-1]):
            estimated[side] = estimate_bytes(thumbs, groups, side, quality)
            if estimated[side] <= budget_bytes * ESTIMATE_SLACK:
                start = number
                break
        sides = sides[start:]
    tried: dict[int, int] = {}
    for side in sides:
        encoded = [encode_webp(picture, quality) for picture in sheet_images(thumbs, order, side)]
        tried[side] = sum(len(e) for e in encoded)
        if tried[side] <= budget_bytes:
            break
    return encoded, tried, estimated


def points_payload(order: np.ndarray, maps: dict[str, tuple[str, np.ndarray]], paths: list[str],
                   labels: list[str], clusters: np.ndarray | None, outlier: np.ndarray, outlier_k: int,
                   palettes: dict, tile: int, sheets: int, neighbours: dict | None) -> dict:
    """The one file every map view loads first: positions, labels, clusters, outlier scores, file names."""
    payload: dict = {"format": FORMAT, "count": int(len(order)), "tile": tile, "sheetSide": SHEET_SIDE,
                     "sheets": sheets, "maps": [], "palettes": palettes, "neighbours": neighbours}
    for key, (title, coords) in maps.items():  # a list: the views offer the maps in this order
        scaled, bounds = quantise(coords[order])
        payload["maps"].append({"key": key, "title": title, "bounds": bounds, "xy": typed(scaled.reshape(-1), "u2")})
    names = sorted(set(labels))
    if len(names) > 1:
        lookup = {name: i for i, name in enumerate(names)}
        payload["labels"] = {"names": names, "of": typed(np.array([lookup[labels[i]] for i in order]),
                                                         index_kind(len(names)))}
    if clusters is not None:
        k = int(clusters.max()) + 1
        payload["clusters"] = {"k": k, "of": typed(clusters[order], index_kind(k)),
                               "sizes": np.bincount(clusters, minlength=k).tolist()}
    score = outlier[order]
    payload["outlier"] = {"k": outlier_k, "score": typed(score, "f4"), "min": float(score.min()),
                          "p99": float(np.percentile(score, 99)), "max": float(score.max())}
    folders, bases = zip(*[(p.rsplit("/", 1) if "/" in p else ("", p)) for p in (paths[i] for i in order)])
    folder_names = sorted(set(folders))
    lookup = {name: i for i, name in enumerate(folder_names)}
    payload["names"] = {"folders": folder_names, "folder": typed(np.array([lookup[f] for f in folders]),
                                                                  index_kind(len(folder_names))),
                        "base": list(bases)}
    return payload


def neighbour_blocks(order: np.ndarray, idx: np.ndarray, similarity: np.ndarray, k: int) -> list[dict]:
    """Each point's ``k`` nearest neighbours (map positions, missing = the type's maximum) and their cosine
    similarity x 10,000 as int16, ``NEIGHBOUR_BLOCK`` points to a file."""
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    found = idx[order, :k]
    mapped = np.where(found >= 0, position[np.clip(found, 0, None)], -1)
    kind = index_kind(len(order))
    missing = np.iinfo(np.dtype(DTYPES[kind])).max
    mapped = np.where(mapped >= 0, mapped, missing)
    scores = np.rint(np.clip(similarity[order, :k], -1.0, 1.0) * 10_000).astype(np.int16)
    return [{"k": k, "start": start, "idx": typed(mapped[start:start + NEIGHBOUR_BLOCK].reshape(-1), kind),
             "sim": typed(scores[start:start + NEIGHBOUR_BLOCK].reshape(-1), "i2")}
            for start in range(0, len(order), NEIGHBOUR_BLOCK)]


def palettes(label_count: int) -> dict:
    """Colours as the static figures use them: the classes' from ``palette`` (one distinct colour per class),
    matplotlib's tab20 for clusters and viridis for outlier scores."""
    import matplotlib

    from .palette import class_colours

    def hexes(name: str, count: int) -> list[str]:
        cmap = matplotlib.colormaps[name]
        return [matplotlib.colors.to_hex(cmap(i / max(count - 1, 1) if cmap.N > 32 else i)) for i in range(count)]

    return {"label": class_colours(max(label_count, 1)), "cluster": hexes("tab20", 20), "outlier": hexes("viridis", 64)}
