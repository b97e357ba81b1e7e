"""Figures of the migration task (Runfola et al. 2022, Figures 5 to 8).

- :func:`signature_png`: the learned signature layout (Figure 7): one cell per census variable,
  coloured by variable group when groups are given, else by the variable's mean |z-score| (colour
  bar in z units);
- :func:`signature_epochs_png`: the layout across epochs (Figure 8) with one variable highlighted;
- :func:`importance_png`: the top permutation importances (Figure 6, eq. 1);
- :func:`error_png`: estimate error versus municipal population (Figure 5).

Every figure is written atomically (PNG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from humanscape._atomic import atomic_output


def _short(name: str, width: int = 14) -> str:
    name = name.replace("sending_", "").replace("_", " ")
    return name if len(name) <= width else name[: width - 1] + "…"


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _draw_layout(
    ax: plt.Axes,
    layout: np.ndarray,
    names: Sequence[str],
    colours: np.ndarray,
    *,
    highlight: int | None = None,
    labels: bool = True,
) -> None:
    side = layout.shape[0]
    ax.imshow(colours, interpolation="nearest")
    for r in range(side):
        for c in range(side):
            v = int(layout[r, c])
            if v < 0:
                continue
            if labels:
                ax.text(c, r, _short(names[v]), ha="center", va="center", fontsize=5.5, wrap=True)
            if highlight is not None and v == highlight:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
    ax.set_xticks(np.arange(side))
    ax.set_yticks(np.arange(side))
    ax.tick_params(labelsize=6)
    ax.set_xlabel("signature column (3 x 3 filters span 3 cells)")
    ax.set_ylabel("signature row")


def signature_png(
    layout: Sequence[Sequence[int]],
    names: Sequence[str],
    path: str | Path,
    *,
    groups: dict[str, str] | None = None,
    strength: Sequence[float] | None = None,
    title: str = "Learned social signature",
) -> Path:
    """The layout (Figure 7): cells coloured by group (legend) or by ``strength`` (colour bar)."""
    grid = np.asarray(layout)
    fig, ax = plt.subplots(figsize=(1.0 * grid.shape[1] + 3, 1.0 * grid.shape[0] + 1))
    if groups:
        kinds = sorted({groups.get(n, "other") for n in names})
        cmap = plt.get_cmap("tab10")
        colours = np.ones((*grid.shape, 4))
        for (r, c), v in np.ndenumerate(grid):
            if v >= 0:
                colours[r, c] = cmap(kinds.index(groups.get(names[v], "other")) % 10)
                colours[r, c, 3] = 0.55
        _draw_layout(ax, grid, names, colours)
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=cmap(i % 10), alpha=0.55) for i in range(len(kinds))
        ]
        ax.legend(
            handles, kinds, title="variable group", bbox_to_anchor=(1.02, 1), loc="upper left"
        )
    else:
        values = np.full(grid.shape, np.nan)
        s = np.ones(len(names)) if strength is None else np.asarray(strength, dtype=float)
        for (r, c), v in np.ndenumerate(grid):
            if v >= 0:
                values[r, c] = s[v]
        image = ax.imshow(values, cmap="viridis", interpolation="nearest")
        _draw_layout(
            ax, grid, names, plt.get_cmap("viridis")(plt.Normalize()(np.nan_to_num(values)))
        )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="mean |z-score| of the variable")
    ax.set_title(title)
    return _save(fig, Path(path))


def signature_epochs_png(
    layouts: Sequence[Sequence[Sequence[int]]],
    names: Sequence[str],
    path: str | Path,
    *,
    highlight: str | None = None,
    panels: int = 8,
) -> Path:
    """Layouts of evenly spaced epochs (Figure 8), the ``highlight`` variable framed in red.

    Cells are coloured by each variable's slot in the first layout, so moved variables show as
    colours out of order.
    """
    epochs = np.unique(
        np.linspace(0, len(layouts) - 1, min(panels, len(layouts))).round().astype(int)
    )
    cols = min(4, len(epochs))
    rows = math.ceil(len(epochs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows + 0.6), squeeze=False)
    first = np.asarray(layouts[0]).reshape(-1)
    start = {int(v): k for k, v in enumerate(first) if v >= 0}
    n_cells = len(first)
    target = names.index(highlight) if highlight in names else None
    for ax, e in zip(axes.ravel(), epochs, strict=False):
        grid = np.asarray(layouts[e])
        rank = np.full(grid.shape, np.nan)
        for (r, c), v in np.ndenumerate(grid):
            if v >= 0:
                rank[r, c] = start[int(v)] / n_cells
        colours = plt.get_cmap("viridis")(np.nan_to_num(rank, nan=0.0))
        colours[np.isnan(rank)] = (1.0, 1.0, 1.0, 1.0)
        _draw_layout(ax, grid, names, colours, highlight=target, labels=False)
        ax.set_title(f"epoch {e + 1}", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
    for ax in axes.ravel()[len(epochs) :]:
        ax.axis("off")
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, n_cells))
    fig.colorbar(
        mappable, ax=axes.ravel().tolist(), fraction=0.03, label="slot at epoch 1 (cell index)"
    )
    what = f"; red frame: {highlight}" if target is not None else ""
    fig.suptitle(f"Social signature across epochs{what}")
    return _save(fig, Path(path))


def importance_png(importance: pd.DataFrame, path: str | Path, *, top: int = 10) -> Path:
    """Top ``top`` permutation importances (Figure 6), with their spread over splits."""
    head = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(head) + 1.2))
    ax.barh(
        [_short(v, 40) for v in head["variable"]],
        head["fi"],
        xerr=head.get("fi_std"),
        color="tab:blue",
    )
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("FI = MAE permuted / MAE original (1 = unused)")
    ax.set_title(f"Top {len(head)} permutation feature importances")
    return _save(fig, Path(path))


def error_png(
    population: np.ndarray, error: np.ndarray, path: str | Path, *, title: str = ""
) -> Path:
    """Estimate error (estimate - observed) versus population (Figure 5), with r2 of the two."""
    x = np.asarray(population, dtype=float)
    e = np.asarray(error, dtype=float)
    r = float(np.corrcoef(x, e)[0, 1] ** 2) if np.std(x) > 0 and np.std(e) > 0 else float("nan")
    shown = x > 0  # a log axis cannot show empty municipalities; r2 counts them
    x, e = x[shown], e[shown]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(x, e, s=8, alpha=0.6)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("municipal population (people, log scale)")
    ax.set_ylabel("estimate - observed (migrants)")
    ax.set_title(title or f"Error versus population (r2 = {r:.2f})")
    return _save(fig, Path(path))
