"""Judge what map_checks.mjs observed in the browser against the pipeline's own arrays: the hovered point's
file name and thumbnail, the colour under it, the map switch, the legends, search and the neighbour lists.
Kept apart from check_render.py so that the pytest-level check reads the same rules."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.engine.stored_rows import load_array

COLOUR_TOLERANCE = 12  # per channel: the canvas blends a point's edge with its neighbours'


def stage_file(record: dict, stage: str, name: str) -> Path:
    return Path(record["stages"][stage]["dir"]) / name


def tile_is_right(png: str, thumbs: np.ndarray, row: int, seed: int) -> tuple[bool, float]:
    """Is the screenshotted tile closer to image ``row``'s thumbnail than to any of 300 others? (and its error)"""
    shot = cv2.cvtColor(cv2.imread(png), cv2.COLOR_BGR2RGB).astype(np.float32)
    def distance(r):
        return float(np.abs(cv2.resize(np.asarray(thumbs[r]), shot.shape[1::-1], interpolation=cv2.INTER_LINEAR)
                            .astype(np.float32) - shot).mean())
    others = np.random.default_rng(seed).choice(len(thumbs), size=min(300, len(thumbs)), replace=False)
    mine = distance(row)
    rivals = [distance(r) for r in others if r != row]
    return mine < 30 and (not rivals or mine < min(rivals)), mine


def hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def judge_view(kind: str, seen: dict, record: dict) -> list[str]:
    problems = []
    order = np.load(stage_file(record, "gallery", "order.npy"))
    manifest = json.loads(stage_file(record, "ingest", "manifest.json").read_text(encoding="utf-8"))
    thumbs = load_array(stage_file(record, "extract", "thumbs.rows.json"), mmap=True)
    if seen["count"] != len(manifest):
        problems.append(f"{kind}: the map has {seen['count']} points for {len(manifest)} images")
    maps_hovered = {h["map"] for h in seen["hovers"]}
    if maps_hovered != set(seen["maps"]) or len(seen["maps"]) < 2:
        problems.append(f"{kind}: hovered on maps {sorted(maps_hovered)} of {seen['maps']}")
    for h in seen["hovers"]:
        row = int(order[h["index"]])
        want = manifest[row]["path"]
        if h["shownName"] != want:
            problems.append(f"{kind}: hovering point {h['index']} on {h['map']} showed {h['shownName']!r}, not {want!r}")
        right, error = tile_is_right(h["tilePng"], thumbs, row, h["index"])
        if not right:
            problems.append(f"{kind}: the thumbnail shown for {want!r} on {h['map']} is not its image (error {error:.1f})")
    for c in seen["colours"] + seen["hovers"]:
        if np.abs(np.array(c["pixel"]) - hex_rgb(c["colour"])).max() > COLOUR_TOLERANCE:
            problems.append(f"{kind}: point {c['index']} ({c['map']}, by {c['mode']}) is drawn {c['pixel']}, "
                            f"not its colour {c['colour']}")
    if len(seen["colours"]) < 3 * len(seen["modes"]):
        problems.append(f"{kind}: only {len(seen['colours'])} colour checks over modes {seen['modes']}")
    if seen.get("positionsMoved", 0) < 0.5:
        problems.append(f"{kind}: switching maps moved only {seen.get('positionsMoved', 0):.0%} of the points")
    legends = seen["legends"]
    if "label" in legends and not all(label in legends["label"] for label in {m["label"] for m in manifest}):
        problems.append(f"{kind}: the label legend does not list every label")
    if "cluster" in legends and "cluster" not in legends["cluster"]:
        problems.append(f"{kind}: the cluster legend does not name clusters")
    if "outlier score" not in legends.get("outlier", ""):
        problems.append(f"{kind}: the outlier legend does not say what it shows")
    return problems


def judge_neighbours(listed: list[dict], index: int, record: dict, what: str) -> list[str]:
    order = np.load(stage_file(record, "gallery", "order.npy"))
    manifest = json.loads(stage_file(record, "ingest", "manifest.json").read_text(encoding="utf-8"))
    idx = np.load(stage_file(record, "neighbours", "embedding_idx.npy"))
    sims = np.load(stage_file(record, "neighbours", "embedding_values.npy"))
    row, k = int(order[index]), record["summaries"]["gallery"]["neighbours"]
    want = [(manifest[j]["path"], float(s)) for j, s in zip(idx[row, :k], sims[row, :k])]
    got = [(n["name"], n["similarity"]) for n in listed]
    if [name for name, _ in got] != [name for name, _ in want]:
        return [f"report: {what}: neighbours of {manifest[row]['path']!r} listed as {got}, graph says {want}"]
    if any(abs(a - b) > 0.0011 for (_, a), (_, b) in zip(got, want)):
        return [f"report: {what}: similarities {got} differ from the graph's {want}"]
    return []


def judge(result: dict, record: dict) -> list[str]:
    """Every problem found in the browser's observations of the deck's and the report's maps."""
    problems = []
    for kind in ("deck", "report"):
        if kind in result.get("map", {}):
            problems += judge_view(kind, result["map"][kind], record)
    extras = result.get("map", {}).get("reportExtras")
    if extras:
        searched = extras["searched"]
        if searched["index"] not in [r["index"] for r in searched["results"]]:
            problems.append(f"report: searching {searched['query']!r} did not list it")
        problems += judge_neighbours(searched["neighbours"], searched["index"], record, "after a search")
        problems += judge_neighbours(extras["clicked"]["neighbours"], extras["clicked"]["index"], record, "after a click")
        probed = extras.get("probed")
        if probed:
            manifest = json.loads(stage_file(record, "ingest", "manifest.json").read_text(encoding="utf-8"))
            wanted = [m["path"] for m in manifest if probed["query"].lower() in m["path"].lower()]
            texts = probed["texts"]
            if not wanted or not set(texts) <= set(wanted) or len(texts) != min(50, len(wanted)):
                problems.append(f"report: searching {probed['query']!r} listed {texts}, not {wanted[:50]}")
        placed = extras.get("placed")
        if placed and placed.get("hoveredName") not in placed["names"]:
            problems.append(f"report: hovering a placed image showed {placed.get('hoveredName')!r}")
    return problems
