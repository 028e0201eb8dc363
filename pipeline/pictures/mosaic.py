"""The collection as one picture: images on a grid of square cells, placed by their t-SNE position.

Each cell gets exactly one image and each image at most one cell, the assignment that moves the images least
in total (squared distance from an image's map position to its cell's centre), solved exactly by scipy's
``linear_sum_assignment``. On a set larger than the grid, a seeded sample of as many images as cells is
placed. The map is stretched to the grid's shape, each axis between its 1st and 99th percentile, so that a
few far-out points do not squeeze everything else into the middle.
"""

from __future__ import annotations

import math

import numpy as np

from ..methods.sampling import sample_indices


def grid_shape(n: int, columns: int, rows: int) -> tuple[int, int]:
    """(columns, rows): the requested grid, or one of about its shape with no more cells than images."""
    if n >= columns * rows:
        return columns, rows
    scale = math.sqrt(n / (columns * rows))
    fewer_rows = max(1, math.floor(rows * scale))
    return max(1, min(columns, n // fewer_rows)), fewer_rows


def to_grid(coords: np.ndarray, columns: int, rows: int) -> np.ndarray:
    """Map positions in grid units (x right, y down as in an image), robust to a few far-out points."""
    low, high = np.percentile(coords, 1, axis=0), np.percentile(coords, 99, axis=0)
    span = np.where(high > low, high - low, 1.0)
    unit = np.clip((coords - low) / span, 0.0, 1.0)
    return np.column_stack([unit[:, 0] * columns, (1.0 - unit[:, 1]) * rows])


def assign(coords: np.ndarray, columns: int, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(rows of ``coords`` placed, the cell of each (row-major), columns, rows)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    columns, rows = grid_shape(len(coords), columns, rows)
    picks = sample_indices(len(coords), columns * rows, seed)
    points = to_grid(coords[picks], columns, rows)
    cy, cx = np.divmod(np.arange(columns * rows), columns)
    centres = np.column_stack([cx + 0.5, cy + 0.5])
    placed, cells = linear_sum_assignment(cdist(points, centres, "sqeuclidean"))
    return picks[placed], cells, columns, rows


def picture(thumbs: np.ndarray, placed: np.ndarray, cells: np.ndarray, columns: int, rows: int,
            cell: int) -> np.ndarray:
    """The grid as an RGB image, ``cell`` pixels a side per image (white where a cell is empty)."""
    import cv2

    image = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for row, where in zip(placed, cells):
        r, c = divmod(int(where), columns)
        tile = np.asarray(thumbs[row])
        if tile.shape[0] != cell:
            shrink = tile.shape[0] > cell
            tile = cv2.resize(tile, (cell, cell), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        image[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = tile
    return image
