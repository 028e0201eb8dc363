"""The report map's layer of new images, from what ``embdeck place`` wrote (``<out>/placed/placed.json``).

Shown only while the run's exported models are the ones the images were placed with: after a rerun that
changed the maps, their coordinates would point at the wrong places, so the layer is left out and the log says
how to bring it back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from pipeline.engine.artifacts import load_npy
from pipeline.new_images import PLACED
from pipeline.pictures import map_data
from pipeline.registry import stage_output

from .files import copy_if_changed, write_if_changed

log = logging.getLogger("embdeck")


def placed_layer(out: Path, record: dict, folder: Path) -> dict | None:
    """Write ``placed.js`` and the new images' sheets into the report's ``map/`` folder; what the template says
    of them (and ``files``, the names written), or None when there are none for this run."""
    source = out / PLACED
    try:
        placed = json.loads((source / "placed.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if placed.get("export_key") != record["stages"].get("export", {}).get("key"):
        log.warning("the images in %s were placed on an earlier run's maps and are not shown; run `embdeck place "
                    "%s --out %s` again", source, placed.get("folder"), out)
        return None
    order = load_npy(stage_output(record, "gallery", "order"))
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    rows, similarity = np.asarray(placed["neighbours"]["rows"]), placed["neighbours"]["similarity"]
    payload = {"count": placed["count"], "names": placed["names"], "tile": placed["tile"],
               "sheetSide": map_data.SHEET_SIDE, "maps": {key: np.asarray(points).reshape(-1).tolist()
                                                          for key, points in placed["points"].items()},
               "neighbours": [[[int(position[r]), s] for r, s in zip(row, sims)]
                              for row, sims in zip(rows, similarity)]}
    folder.mkdir(parents=True, exist_ok=True)
    write_if_changed(folder / "placed.js", map_data.script("placed", payload))
    sheets = sorted(source.glob("placed-tiles-*.webp"))
    for sheet in sheets:
        copy_if_changed(sheet, folder / sheet.name)
    return {"count": placed["count"], "folder": Path(placed["folder"]).name, "skipped": len(placed["skipped"]),
            "files": {"placed.js", *(sheet.name for sheet in sheets)}}
