"""The paper's evaluation of population estimates (Huang et al. 2021, Sec. IV.D, Table III, Figs. 6-8).

:func:`metrics_table` scores predictions on three scales: the paper's ``log(p)`` with 0 -> 0
(R2, CoE, MIoA), ``log(1 + p)`` and counts (R2, MAE), each with the Table III bias analysis
(Pearson r of ``p`` and ``p̂ - p``, OLS intercept alpha and slope beta), and the coverage and
width of the conformal interval when given. :func:`scatter_plot` and :func:`bias_plot` draw the
two figures; :func:`write_report` puts table, predictions and figures in one folder atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder
from humanscape.evaluate.regression import agreement, log_population
from humanscape.evaluate.uncertainty import coverage

SCALES = {
    "log": ("log population, log(p) with p=0 -> 0 (Huang et al.)", log_population),
    "log1p": ("log(1 + population)", np.log1p),
    "count": ("people per cell", np.asarray),
}


def metrics_table(
    observed: np.ndarray,
    predicted: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    *,
    label: str = "",
) -> pd.DataFrame:
    """One row per scale (``log``, ``log1p``, ``count``): agreement, bias and interval coverage."""
    p = np.asarray(observed, dtype=np.float64)
    q = np.asarray(predicted, dtype=np.float64)
    rows = []
    for scale, (_, transform) in SCALES.items():
        row = {"set": label, "scale": scale, "n": int(p.size)}
        row |= agreement(transform(p), transform(q))
        rows.append(row)
    table = pd.DataFrame(rows)
    if lower is not None and upper is not None:
        table["coverage"] = coverage(p, lower, upper)
        table["median_interval_width"] = float(np.median(np.asarray(upper) - np.asarray(lower)))
    return table


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
    """Observed against predicted ``log(1 + p)`` with the 1:1 line (Huang et al., Fig. 6)."""
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
    """Error ``p̂ - p`` against ``p`` on ``log(1 + p)`` with the OLS line (Huang et al., Table III)."""
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


def write_report(
    folder: str | Path,
    table: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    title: str,
) -> Path:
    """``metrics.csv``, ``predictions.csv``, ``scatter.png`` and ``bias.png`` in ``folder`` (atomic)."""
    folder = Path(folder)
    with atomic_folder(folder, marker="metrics.csv") as tmp:
        predictions.to_csv(tmp / "predictions.csv", index=False)
        for label, part in predictions.groupby("set", sort=False):
            suffix = "" if predictions["set"].nunique() == 1 else f"_{label}"
            scatter_plot(
                part["observed"].to_numpy(),
                part["prediction"].to_numpy(),
                tmp / f"scatter{suffix}.png",
                title=f"{title}: {label}",
            )
            bias_plot(
                part["observed"].to_numpy(),
                part["prediction"].to_numpy(),
                tmp / f"bias{suffix}.png",
                title=f"{title}: {label}, bias (Table III)",
            )
        table.to_csv(tmp / "metrics.csv", index=False)
    return folder
