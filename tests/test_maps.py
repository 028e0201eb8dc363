"""The interactive map's data files, the collection picture and the exported programs, each on small real data
(no pipeline run): sheets fit their budget, the assignment is optimal, the export takes any batch and torch's
TorchScript deprecation reaches the user as one explained line. What web/map-core.js decodes from the data files
is checked by web's own tests (tests/web/, node --test), against values written here through map_data."""

import itertools
import logging
import warnings

import numpy as np
import pytest
import torch

from pipeline.pictures import map_data, mosaic
from pipeline.imaging import model_files


def test_map_order_keeps_neighbours_on_the_map_together(pixel_features):
    x, _ = pixel_features
    coords = x[:, :2]
    order = map_data.map_order(coords)
    assert sorted(order) == list(range(len(coords)))
    step = np.linalg.norm(np.diff(coords[order], axis=0), axis=1).mean()
    shuffled = np.linalg.norm(np.diff(coords, axis=0), axis=1).mean()
    assert step < shuffled / 3, "consecutive points of a sheet lie near each other on the map"


def test_sheets_shrink_until_they_fit_the_budget(fashion):
    from pipeline.imaging.images import letterbox

    images, _ = fashion
    thumbs = np.stack([letterbox(np.repeat(im[:, :, None], 3, 2), 48) for im in images[:300]])
    order = np.arange(300)
    sheets, tried, estimated = map_data.fit_sheets(thumbs, order, 1e9, 65)
    assert list(tried) == [48] and len(sheets) == 2 and estimated == {}, "a small set is encoded, not estimated"
    sheets, tried, _ = map_data.fit_sheets(thumbs, order, tried[48] * 0.6, 65)
    assert list(tried)[-1] < 48 and tried[list(tried)[-1]] <= tried[48] * 0.6
    import cv2

    sheet = cv2.imdecode(np.frombuffer(sheets[0], np.uint8), cv2.IMREAD_COLOR)
    side = list(tried)[-1]
    assert sheet.shape[:2] == (16 * side, 16 * side)
    tile = cv2.cvtColor(sheet[side:2 * side, 0:side], cv2.COLOR_BGR2RGB).astype(float)  # map position 16
    want = cv2.resize(thumbs[16], (side, side), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(tile - want).mean() < 12


@pytest.mark.full
def test_a_large_set_encodes_in_full_only_the_side_its_estimate_puts_within_the_budget(fashion):
    """Above 16,384 images each side's total is estimated from 16 sheets; the side chosen is the one the full
    search (every side encoded, largest first) would choose, and the larger sides are never encoded whole."""
    from pipeline.imaging.images import letterbox

    images, _ = fashion
    thumbs = np.stack([letterbox(np.repeat(im[:, :, None], 3, 2), 48) for im in images[:300]])
    order = np.random.default_rng(0).integers(0, 300, 17_000)  # 67 sheets
    full = {side: sum(len(map_data.encode_webp(p, 65)) for p in map_data.sheet_images(thumbs, order, side))
            for side in (48, 40, 32)}
    assert full[48] > full[40] > full[32]
    sheets, tried, estimated = map_data.fit_sheets(thumbs, order, full[32] * 1.02, 65)
    assert list(tried) == [32] and tried[32] == full[32] and len(sheets) == 67
    assert list(estimated) == [48, 40, 32]
    assert all(abs(estimated[side] / full[side] - 1) < 0.05 for side in estimated), (estimated, full)


def test_grid_shape_fits_the_images():
    assert mosaic.grid_shape(100_000, 48, 27) == (48, 27)
    columns, rows = mosaic.grid_shape(300, 48, 27)
    assert columns * rows <= 300 and columns * rows >= 250 and 1.5 < columns / rows < 2.2
    assert mosaic.grid_shape(1, 48, 27) == (1, 1)


def test_the_picture_is_an_optimal_assignment(pixel_features):
    """On 6 cells, the assignment's cost equals the best of all 720 permutations; each image one cell."""
    x, _ = pixel_features
    coords = x[:6, :2]
    placed, cells, columns, rows = mosaic.assign(coords, 3, 2, seed=0)
    assert (columns, rows) == (3, 2) and sorted(cells) == list(range(6)) and len(set(placed)) == 6
    points = mosaic.to_grid(coords, columns, rows)
    centres = np.array([[c % 3 + 0.5, c // 3 + 0.5] for c in range(6)])
    cost = lambda assignment: sum(((points[p] - centres[c]) ** 2).sum() for p, c in assignment)
    best = min(cost(zip(range(6), perm)) for perm in itertools.permutations(range(6)))
    assert cost(zip(placed, cells)) == pytest.approx(best)
    many = np.random.default_rng(0).normal(size=(5000, 2))
    placed, cells, columns, rows = mosaic.assign(many, 12, 8, seed=1)
    assert len(placed) == 96 == len(set(placed.tolist())) and sorted(cells) == list(range(96))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.layer(embedding) * 2.0


def test_exported_program_takes_any_batch(tmp_path):
    module = Tiny().eval()
    model_files.export_program(module, torch.randn(4, 6), tmp_path / "model.pt2")
    loaded = model_files.load(tmp_path / "model.pt2")
    for batch in (1, 7, 64):
        x = torch.randn(batch, 6)
        assert torch.allclose(loaded(x), module(x), atol=1e-6)


def test_torchscript_deprecation_is_one_explained_line(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(model_files, "_explained", False)
    with warnings.catch_warnings(record=True) as escaped, caplog.at_level(logging.INFO, logger="embdeck"):
        warnings.simplefilter("always")
        scripted, how = model_files.script(Tiny().eval(), torch.randn(2, 6))
        scripted.save(str(tmp_path / "model.pt"))
        model_files.load(tmp_path / "model.pt")
        model_files.load(tmp_path / "model.pt")
    assert how == "script"
    assert not [w for w in escaped if "deprecated" in str(w.message)], "no deprecation warning escapes"
    lines = [r.getMessage() for r in caplog.records if "TorchScript" in r.getMessage()]
    assert len(lines) == 1 and "Triton" in lines[0] and "model.pt2" in lines[0]
    with warnings.catch_warnings(record=True) as seen:  # the check can fail: torch does warn
        warnings.simplefilter("always")
        torch.jit.load(str(tmp_path / "model.pt"))
    assert any("deprecated" in str(w.message) for w in seen)
