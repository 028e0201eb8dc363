"""One colour per class, the same on every figure, in the maps' data and so in the deck's and report's live maps.

matplotlib's tab10 runs out at 10 classes and tab20 pairs each hue with a paler one; colorcet's
``glasbey_category10`` begins with tab10's ten colours (a 10-class set keeps its old look) and goes on with
246 more, each chosen by Glasbey's method to be as far as it can be from all before it. A class's colour is
its place among the sorted class names, so it does not depend on which figure draws it.
"""

from __future__ import annotations

import colorcet
import matplotlib.colors

GLASBEY = [matplotlib.colors.to_hex(rgb) for rgb in colorcet.glasbey_category10]  # 256 colours


def class_colours(count: int) -> list[str]:
    """``count`` colours as hex, distinct up to 256 classes (then they repeat, which a legend must say)."""
    return [GLASBEY[i % len(GLASBEY)] for i in range(count)]


def colour_map(names) -> dict[str, str]:
    """{class name: colour} for the classes in ``names`` (sorted first: the order every view uses)."""
    ordered = sorted(set(names))
    return dict(zip(ordered, class_colours(len(ordered))))
