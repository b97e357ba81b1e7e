"""Figures of the settlement evaluation (Tingzon et al. 2020, Fig. 4): precision and recall of the
top x % of pixels and of settlements, every model of the evaluation on one figure per fold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd


def curves_png(curves: pd.DataFrame, fold: str, prevalence: float, path: str | Path) -> Path:
    """Precision (solid) and recall (dashed) at the top x % validated, pixel and settlement level.

    ``curves`` holds one fold's rows of :meth:`~humanscape.tasks.settlements.evaluate.CVResult.
    curves` (``level``, ``model``, ``percent``, ``precision``, ``recall``); ``prevalence`` is the
    share of positive pixels of the fold (its true class balance).
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, level in zip(axes, ("pixel", "settlement"), strict=True):
        for model, m in curves[curves["level"] == level].groupby("model"):
            ax.plot(m["percent"], m["precision"], label=f"{model} precision")
            ax.plot(m["percent"], m["recall"], "--", label=f"{model} recall")
        ax.set(
            title=f"{fold}: {level} level ({100 * prevalence:.1f} % positive pixels)",
            xlabel="top x % validated",
            ylabel="precision / recall",
            ylim=(0, 1.02),
        )
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
