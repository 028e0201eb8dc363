"""Shared figure style: every figure is written at a size that reads well on a 1280x720 slide."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .palette import colour_map  # noqa: E402

DPI = 150
LEGEND_MAX = 60  # classes a map's legend lists; beyond, the points keep their colours and the legend is left off
plt.rcParams.update({
    "figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 10, "axes.spines.top": False,
    "axes.spines.right": False, "axes.titleweight": "bold", "svg.hashsalt": "embdeck",
    "text.parse_math": False,  # file names and labels are shown as written, "$" included
})


def smallest_text_pt(fig) -> float | None:
    """The smallest font size (pt) of any text the figure shows: what a slide that shrinks it must keep legible."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
             and (t.axes is None or t.axes.axison or t not in t.axes.get_xticklabels() + t.axes.get_yticklabels())]
    return min(sizes, default=None)


def save(fig, path: Path) -> None:
    # Fixed metadata so the same numbers give byte-identical files; a PNG also records its smallest text in its
    # own pixels, which the render check turns into a size on the slide (tests/browser/deck_judge.py).
    metadata = {"Software": None}
    smallest = smallest_text_pt(fig)
    if Path(path).suffix == ".png" and smallest:
        metadata["embdeck smallest text px"] = f"{smallest * DPI / 72:.1f}"
    fig.savefig(path, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def scatter_by_label(coords: np.ndarray, labels: list[str], title: str, path: Path, xlabel: str = "",
                     ylabel: str = "", highlight: np.ndarray | None = None, highlight_label: str = "") -> None:
    """A 2-D map coloured by label (one colour per class, legend outside), or plain when unlabelled.

    ``highlight`` (a mask) rings some points in black, e.g. held-out images on a parametric map.
    """
    # Drawn small and lettered large: a slide shows a map ~510 px wide, and its smallest text must stay at
    # 10 slide px or more (tests/browser/deck_judge.py); at 8 x 5.6 in with 9 pt legends it came to 8.0 px.
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.tick_params(labelsize=12)
    size = max(2.0, min(14.0, 9000.0 / max(len(coords), 1)))
    names, colours = label_colours(labels)
    if len(names) > 1:
        label_array = np.asarray(labels)
        for name in names:
            mask = label_array == name
            ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=colours[name], label=name, alpha=0.8,
                       linewidths=0)
        if len(names) <= LEGEND_MAX:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, markerscale=max(1.0, 8 / size),
                      ncol=-(-len(names) // 20), fontsize=12 if len(names) <= 20 else 10)
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, color="#3b6ea5", alpha=0.8, linewidths=0)
    if highlight is not None and highlight.any():
        ax.scatter(coords[highlight, 0], coords[highlight, 1], s=size * 3, facecolors="none", edgecolors="black",
                   linewidths=0.6, label=highlight_label)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(xlabel, fontsize=12)
    ax.set_ylabel(ylabel, fontsize=12)
    save(fig, path)


def line_plot(x, series: dict[str, np.ndarray], title: str, path: Path, xlabel: str, ylabel: str,
              marks: dict[str, float] | None = None) -> None:
    fig, ax = plt.subplots(figsize=(5, 3))  # shown ~340 px wide beside the PCA map: 10 pt text at 10 px there
    for name, values in series.items():
        ax.plot(x, values, label=name, linewidth=2)
    for name, value in (marks or {}).items():
        ax.axvline(value, color="#999", linestyle="--", linewidth=1)
        ax.annotate(name, (value, ax.get_ylim()[0]), xytext=(4, 6), textcoords="offset points", color="#555")
    if len(series) > 1:
        ax.legend(frameon=False)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    save(fig, path)


def image_grid(tiles: list[np.ndarray], captions: list[str], title: str, path: Path, columns: int,
               cell: float = 1.1, text_pt: float = 9, gap: float = 0.3) -> None:
    """Tiles in a grid with a short caption under each (all tiles, none dropped); ``text_pt``: the captions'
    size, for a grid that a slide shrinks a lot (the title is never smaller); ``gap``: the space between
    columns, as a share of a tile (a grid shown at a fixed height can widen for free)."""
    rows = max(1, -(-len(tiles) // columns))
    lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    band = max(0.25, text_pt / 72 * (1.2 * lines + 0.3))  # room for the caption lines above each tile
    fig, axes = plt.subplots(rows, columns, figsize=(columns * cell * (1 + gap - 0.2), rows * (cell + band)),
                             squeeze=False)
    fig.subplots_adjust(wspace=gap)
    for ax in axes.flat:
        ax.axis("off")
    for ax, tile, caption in zip(axes.flat, tiles, captions):
        ax.imshow(tile, interpolation="nearest")
        ax.set_title(caption, fontsize=text_pt, pad=2)
    fig.suptitle(title, fontweight="bold", fontsize=max(12, text_pt + 1))
    save(fig, path)


def draw_metrics(sweeps: dict, choices: dict, variant: str, path: Path, identical: bool) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    panels = (("silhouette", "silhouette (higher is better)"), ("davies_bouldin", "Davies-Bouldin (lower is better)"),
              ("sse", "SSE / total (elbow)"))
    for ax, (key, title) in zip(axes, panels):
        for name, rows in sweeps.items():
            values = np.asarray(rows[key], float)
            if key == "sse":
                values = values / max(values.max(), 1e-12)
            ax.plot(rows["k"], values, "-", marker="o", markersize=3, linewidth=2 if name == variant else 1.2,
                    label=name)
        ax.axvline(choices[variant]["k"], color="#c0392b", linestyle=":", linewidth=1.2)
        if key == "sse":
            ax.axvline(choices[variant]["elbow"], color="#777", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False, fontsize=10)
    note = " (a CNN: patch mean and concatenation are the same features)" if identical else ""
    fig.suptitle(f"k-means sweep: chosen k = {choices[variant]['k']} on {variant}{note}", fontweight="bold")
    save(fig, path)


def draw_sizes(sizes: np.ndarray, k: int, path: Path) -> None:
    """One bar per cluster, largest first, in the cluster's colour on the live map (tab20 by cluster number): a
    reader asks which clusters are big, which a histogram of sizes could not say."""
    order = np.argsort(-sizes, kind="stable")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    cmap = plt.get_cmap("tab20")
    bars = ax.bar(np.arange(len(order)), sizes[order], width=0.8, color=[cmap(int(c) % 20) for c in order])
    ax.axhline(sizes.sum() / max(k, 1), color="#555", linestyle="--", linewidth=1)
    ax.annotate("equal split", (len(order) - 0.5, sizes.sum() / max(k, 1)), xytext=(0, 4),
                textcoords="offset points", ha="right", color="#555")
    if len(order) <= 16:
        ax.set_xticks(np.arange(len(order)), [f"#{c}" for c in order])
        ax.bar_label(bars, padding=2)
        ax.set_xlabel("cluster (as numbered on the maps)")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"the {len(order)} clusters, largest first")
    ax.set_title(f"Cluster sizes (k = {k})")
    ax.set_ylabel("images")
    save(fig, path)


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, names: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (each true class's predictions), the share printed in each cell."""
    from sklearn.metrics import confusion_matrix as count

    shares = count(true, predicted, labels=range(len(names)), normalize="true")
    heatmap(shares, names, names, path, title, xlabel="predicted", ylabel="label")


def heatmap(shares: np.ndarray, rows: list[str], columns: list[str], path: Path, title: str, xlabel: str,
            ylabel: str) -> None:
    """Shares in [0, 1] as a grid, the value printed in each cell that is not empty."""
    size = max(4.0, 0.4 * max(len(rows), len(columns)) + 1.5)  # small and lettered large: shown ~420 px wide
    fig, ax = plt.subplots(figsize=(size * 1.15, size))
    draw_shares(ax, shares, rows, columns, title, xlabel, ylabel, text_pt=12)
    save(fig, path)


def draw_shares(ax, shares: np.ndarray, rows: list[str], columns: list[str], title: str, xlabel: str,
                ylabel: str, text_pt: float = 11) -> None:
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=text_pt)
    ax.set_yticks(range(len(rows)), rows, fontsize=text_pt)
    if shares.size <= 400:
        for (r, c), value in np.ndenumerate(shares):
            if value >= 0.005:
                ax.text(c, r, f"{value:.2f}".lstrip("0") if value < 1 else "1", ha="center", va="center",
                        fontsize=text_pt - 1,
                        color="white" if value > 0.6 else "#222")
    ax.set_xlabel(xlabel, fontsize=text_pt)
    ax.set_ylabel(ylabel, fontsize=text_pt)
    ax.set_title(title, fontsize=text_pt)
    ax.spines[:].set_visible(False)


def composition(levels: dict, labels: list[str], path: Path, shown: int = 12, text_pt: float = 13) -> None:
    """For each level (chosen k, elbow's k): each cluster's images by label, largest clusters first.

    The slide shows it at most 344 px tall: 12 rows at 13 pt keep its text at 10 slide px or more (20 rows
    needed a taller figure, which the slide shrank to 7.5 px)."""
    most = max(min(shown, len(level["clusters"])) for level in levels.values())
    fig, axes = plt.subplots(1, len(levels), figsize=(5.2 * len(levels), 1.3 * text_pt / 72 * most + 2.4),
                             squeeze=False)
    for ax, (name, level) in zip(axes[0], levels.items()):
        clusters = level["clusters"][:shown]
        shares = np.array([[row["labels"].get(label, 0) / row["size"] for label in labels] for row in clusters])
        rows = [f"#{row['cluster']} ({row['size']})" for row in clusters]
        more = f", {shown} largest of {len(level['clusters'])}" if len(level["clusters"]) > shown else ""
        draw_shares(ax, shares, rows, labels, f"k = {level['k']} ({'chosen' if name == 'chosen' else 'elbow'}){more}",
                    "label", "cluster (images)", text_pt=text_pt)
    fig.suptitle("What each cluster holds: the share of its images with each label", fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # at 13 pt the second panel's cluster names reached into the first
    save(fig, path)


def typical_images(assignment: np.ndarray, features: np.ndarray, thumbs: np.ndarray, path: Path, k: int,
                   clusters: int = 12, per_cluster: int = 8) -> None:
    """Without labels: each cluster's most typical images (nearest its centroid), largest clusters first."""
    sizes = np.bincount(assignment)
    tiles, captions = [], []
    for cluster in np.argsort(-sizes, kind="stable")[:clusters]:
        members = np.flatnonzero(assignment == cluster)
        centre = features[members].mean(axis=0)
        order = members[np.argsort(np.linalg.norm(features[members] - centre, axis=1), kind="stable")][:per_cluster]
        for position in range(per_cluster):
            tiles.append(thumbs[order[position]] if position < len(order) else np.full_like(thumbs[0], 255))
            captions.append(f"#{cluster} ({sizes[cluster]})" if position == 0 else "")
    image_grid(tiles, captions, f"The most typical images of each cluster (k = {k}, largest clusters first)", path,
               columns=per_cluster, cell=1.1)


def label_colours(labels: list[str]) -> tuple[list[str], dict]:
    """The classes in order and a colour for each (``palette``): the same class, the same colour, everywhere."""
    colours = colour_map(labels)
    return list(colours), colours


def map_panels(panels: list[tuple[str, np.ndarray]], labels: list[str], title: str, path: Path) -> None:
    """2-D maps side by side (one per backbone), coloured by label, one legend for all."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.7 * rows), squeeze=False)
    names, colours = label_colours(labels)
    labelled = 1 < len(names)
    label_array = np.asarray(labels)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (caption, coords) in zip(axes.flat, panels):
        size = max(1.5, min(10.0, 6000.0 / max(len(coords), 1)))
        if labelled:
            for name in names:
                mask = label_array == name
                ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=colours[name], label=name, alpha=0.8,
                           linewidths=0)
        else:
            ax.scatter(coords[:, 0], coords[:, 1], s=size, color="#3b6ea5", alpha=0.8, linewidths=0)
        ax.set_title(caption, fontsize=9)
    if 1 < len(names) <= LEGEND_MAX:
        handles, legend_names = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, legend_names, loc="lower center", ncol=min(10, len(names)), frameon=False,
                   markerscale=3, fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout(rect=(0, 0.05 if labelled else 0, 1, 1))
    save(fig, path)


def grouped_bars(groups: list[str], series: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    """One panel per measure; in each, a cluster of bars per group (backbone), one bar per member (pooling) that
    the group has, centred on the group; a member keeps its colour in every panel.

    ``series``: measure -> {member: values in group order}; NaN where the group lacks the member."""
    measures = list(series)
    columns = min(2, len(measures))
    rows = -(-len(measures) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.4 * columns + 0.6 * len(groups), 3.3 * rows), squeeze=False)
    members = list(dict.fromkeys(m for values in series.values() for m in values))
    colours = {member: plt.get_cmap("tab10")(i % 10) for i, member in enumerate(members)}
    for ax in axes.flat[len(measures):]:
        ax.axis("off")
    for ax, measure in zip(axes.flat, measures):
        table = series[measure]
        width = 0.8 / max(1, max(sum(not np.isnan(v[g]) for v in table.values()) for g in range(len(groups))))
        for g in range(len(groups)):
            present = [(m, v[g]) for m, v in table.items() if not np.isnan(v[g])]
            for i, (member, value) in enumerate(present):
                bar = ax.bar(g + (i - (len(present) - 1) / 2) * width, value, width, color=colours[member])
                ax.bar_label(bar, labels=[f"{value:.2f}"], fontsize=6, padding=1)
        ax.set_xticks(np.arange(len(groups)), groups, rotation=20, ha="right", fontsize=8)
        ax.set_title(measure, fontsize=10)
        low = np.nanmin([v for values in table.values() for v in values] + [0.0])
        ax.set_ylim(min(0.0, low) * 1.1, 1.05)
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in members]
    fig.legend(handles, members, loc="lower center", ncol=len(members), frameon=False, fontsize=8)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save(fig, path)
