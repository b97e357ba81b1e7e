"""Figures of the economy evaluation (Park et al. 2022): R² of the district indicator against the
share of districts used for training, with and without district augmentation (Figure 6)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def share_plot(curve: pd.DataFrame, path: str | Path, *, title: str, indicator: str) -> Path:
    """Figure 6 as a PNG: mean R2 (band: +- one standard deviation over splits) by share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for augment, colour in ((True, "C0"), (False, "C3")):
        part = curve[curve["augmentation"] == augment].sort_values("train_share")
        x, m, s = part["train_share"], part["r2_mean"], part["r2_std"]
        label = "with district augmentation" if augment else "without augmentation"
        ax.plot(x, m, "o-", color=colour, label=label)
        ax.fill_between(x, m - s, m + s, color=colour, alpha=0.15)
    ax.set_xlabel("share of districts used for training")
    ax.set_ylabel(f"R² of {indicator} (original scale)")
    ax.set_title(title)
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
