"""One distinct colour per class beyond tab10's ten, and the same colour for a class on every figure and map."""

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb

from pipeline.pictures import figures, map_data
from pipeline.pictures.palette import class_colours, colour_map

CLASSES = [f"class {chr(ord('a') + i)}" for i in range(17)]


@pytest.fixture
def drawn(monkeypatch):
    """The figures that ``figures.save`` would have written, kept open to read what they drew."""
    kept = []
    monkeypatch.setattr(figures, "save", lambda fig, path: kept.append(fig))
    return kept


def seventeen_classes(per_class: int = 5):
    rng = np.random.default_rng(0)
    labels = [name for name in CLASSES for _ in range(per_class)]
    return rng.normal(size=(len(labels), 2)), labels


def colours_by_label(ax) -> dict[str, str]:
    return {c.get_label(): to_hex(c.get_facecolor()[0], keep_alpha=False) for c in ax.collections}


def test_seventeen_classes_get_seventeen_distinct_colours():
    colours = class_colours(17)
    assert len(set(colours)) == 17
    rgb = np.array([to_rgb(c) for c in colours]) * 255
    gaps = np.abs(rgb[:, None] - rgb[None]).max(axis=2)[~np.eye(17, dtype=bool)]
    assert gaps.min() >= 40, "every two class colours differ by at least 40 of 255 in some channel"
    assert class_colours(10) == [to_hex(figures.plt.get_cmap("tab10")(i)) for i in range(10)], "ten keep tab10"


def test_a_class_has_one_colour_on_every_figure_and_in_the_map_data(drawn, tmp_path):
    coords, labels = seventeen_classes()
    figures.scatter_by_label(coords, labels, "map", tmp_path / "map.png")
    figures.map_panels([("a", coords), ("b", coords[::-1])], labels, "panels", tmp_path / "panels.png")
    scatter, panels = (colours_by_label(fig.axes[0]) for fig in drawn)
    assert len(scatter) == 17 and len(set(scatter.values())) == 17
    order = np.arange(len(labels))
    payload = map_data.points_payload(order, {"tsne": ("t-SNE", coords)}, [f"x/{i}.png" for i in order], labels,
                                      None, np.zeros(len(labels), np.float32), 10, map_data.palettes(17), 16, 1, None)
    live = dict(zip(payload["labels"]["names"], payload["palettes"]["label"]))  # as web/map-core.js pairs them
    for name in CLASSES:
        assert scatter[name] == panels[name] == live[name] == colour_map(labels)[name], name
    legend = drawn[0].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == CLASSES, "every class in the legend"
