"""The paper's evaluation of population estimates (Huang et al. 2021, Sec. IV.D, Table III, Figs. 5-8).

:func:`metrics_table` scores predictions on three scales: the paper's ``log(p)`` (eq. 1's floor,
then log), ``log(1 + p)`` and counts. Every scale has ``r2`` (coefficient of determination, the
paper's CoE), ``pearson_r2`` (the paper's R²), ``mioa``, ``mae``, ``rmse`` and the Table III bias
analysis (``bias_r``: Pearson r of ``p`` and ``p̂ - p``; OLS intercept ``bias_alpha`` and slope
``bias_beta``), and the coverage and
width of the conformal interval when given; :func:`write_report` puts table, predictions and the
two figures (:mod:`humanscape.report.population`) in one folder atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder
from humanscape.evaluate.regression import agreement, log_population
from humanscape.evaluate.uncertainty import coverage
from humanscape.report.population import bias_plot, scatter_plot

SCALES = {
    "log": ("log population, log(p) with p<1 -> 0 (Huang et al. eq. 1)", log_population),
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


def write_report(
    folder: str | Path,
    table: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    title: str,
) -> Path:
    """``metrics.csv``, ``predictions.csv``, ``scatter.png`` and ``bias.png`` in ``folder`` (atomic)."""
    folder = Path(folder)
    with atomic_folder(folder, written_by="population evaluate") as tmp:
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
