"""Figures of the clustering sweep: metrics against k for every variant, and the cluster sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figures import plt, save


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
    axes[0].legend(frameon=False, fontsize=8)
    note = " (a CNN: patch mean and concatenation are the same features)" if identical else ""
    fig.suptitle(f"k-means sweep: chosen k = {choices[variant]['k']} on {variant}{note}", fontweight="bold")
    save(fig, path)


def draw_sizes(sizes: np.ndarray, k: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = min(30, max(5, len(np.unique(sizes))))
    ax.hist(sizes, bins=bins, color="#3b6ea5", edgecolor="white")
    ax.set_title(f"Cluster sizes (k = {k})")
    ax.set_xlabel("images in the cluster")
    ax.set_ylabel("clusters")
    save(fig, path)
