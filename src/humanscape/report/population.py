"""Figures of the population evaluation (Huang et al. 2021): observed against estimated people per
cell (Fig. 5 and 7) and the error against the observed count with its OLS line (Fig. 6 and 8,
Table III)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(title: str):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
    ax.set_title(title, fontsize=10)
    return plt, fig, ax


def scatter_plot(
    observed: np.ndarray, predicted: np.ndarray, path: str | Path, *, title: str
) -> Path:
    """Observed against predicted ``log(1 + p)`` with the 1:1 line (Huang et al., Fig. 5 and 7)."""
    p, q = np.log1p(observed), np.log1p(predicted)
    plt, fig, ax = _figure(title)
    ax.scatter(p, q, s=9, alpha=0.6, edgecolors="none")
    hi = float(max(p.max(), q.max(), 1.0)) * 1.05
    ax.plot([0, hi], [0, hi], color="k", lw=0.8, label="1:1")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("census population, log(1 + people per cell)")
    ax.set_ylabel("estimated population, log(1 + people per cell)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def bias_plot(observed: np.ndarray, predicted: np.ndarray, path: str | Path, *, title: str) -> Path:
    """Error ``p̂ - p`` against ``p`` on ``log(1 + p)`` with the OLS line (Huang et al., Fig. 6 and 8, Table III)."""
    p, q = np.log1p(observed), np.log1p(predicted)
    error = q - p
    plt, fig, ax = _figure(title)
    ax.scatter(p, error, s=9, alpha=0.6, edgecolors="none")
    ax.axhline(0, color="k", lw=0.8)
    if p.std() > 0:
        beta, alpha = np.polyfit(p, error, 1)
        xs = np.array([p.min(), p.max()])
        ax.plot(xs, alpha + beta * xs, color="C3", label=f"OLS: {alpha:.2f} + {beta:.2f} p")
        ax.legend(loc="upper right")
    ax.set_xlabel("census population p, log(1 + people per cell)")
    ax.set_ylabel("error, log(1 + estimate) - log(1 + p)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
