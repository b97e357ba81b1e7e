"""The evaluation of Runfola et al. (2022, Sec. 4 and 5) and the transfer test beyond it.

- :func:`outflow_metrics`: ``r2`` (coefficient of determination, ``1 - SS_res / SS_tot``), squared
  Pearson correlation beside it, MAE, and the shares of estimates within 500 and within 1000
  migrants of the truth (Sec. 4: "64 % ... within 1000 migrants; 38 % ... within 500"), plus the
  coverage and mean width of the conformal intervals;
- :func:`cross_fit`: random 80/20 splits that partition the rows (5 folds, seeded): every
  municipality gets exactly one out-of-sample estimate, so residual maps, Moran's I, the error
  versus population plot (Figure 5) and permutation importance (eq. 1, on each fold's held-out
  rows) all use honest predictions;
- :func:`transfer`: fit on some regions (states), predict the others; reported separately, since
  a model that only interpolates between neighbours of the same state looks better on random splits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError
from humanscape.evaluate.importance import permutation_importance
from humanscape.evaluate.regression import pearson_r2, r2
from humanscape.report.text import number
from humanscape.tasks.migration.imagery import MunicipalImages
from humanscape.tasks.migration.model import MigrationModel, prediction_table
from humanscape.tasks.migration.table import CensusTable


def outflow_metrics(
    observed: np.ndarray,
    predicted: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of Table 2 and Sec. 4 for one set of held-out municipalities."""
    y = np.asarray(observed, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    err = np.abs(p - y)
    out = {
        "r2": r2(y, p),
        "pearson_r2": pearson_r2(y, p) if np.std(p) > 0 else 0.0,
        "mae": float(err.mean()),
        "within_500": float((err <= 500).mean()),
        "within_1000": float((err <= 1000).mean()),
        "n": float(len(y)),
    }
    if lower is not None and upper is not None and np.isfinite(upper).all():
        out["coverage"] = float(((y >= lower) & (y <= upper)).mean())
        out["interval_width"] = float(np.mean(np.asarray(upper) - np.asarray(lower)))
    return out


@dataclass
class CrossFit:
    """Out-of-sample estimates of every row, per-fold metrics, importance and the fold-0 model."""

    predictions: pd.DataFrame  # id, observed, prediction, lower, upper, fold
    folds: pd.DataFrame  # one row of outflow_metrics per fold
    importance: pd.DataFrame | None
    first_model: MigrationModel


def _folds(n: int, n_splits: int, seed: int) -> list[np.ndarray]:
    if n < 2 * n_splits:
        raise HumanscapeError(f"{n} municipalities are too few for {n_splits} splits")
    order = np.random.default_rng([seed, 21]).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_splits)]


def cross_fit(
    make: Callable[[int], MigrationModel],
    table: CensusTable,
    images: MunicipalImages | None = None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    importance: bool = False,
    importance_repeats: int = 3,
    report: Callable[[str], None] | None = None,
) -> CrossFit:
    """Fit ``make(fold_seed)`` on 80 % and predict 20 %, for ``n_splits`` folds partitioning the rows."""
    if table.target is None:
        raise HumanscapeError("the census table has no target", fix="give --target")
    parts = _folds(len(table), n_splits, seed)
    frames, rows, fis = [], [], []
    first: MigrationModel | None = None
    for k, test in enumerate(parts):
        train = np.setdiff1d(np.arange(len(table)), test)
        model = make(seed * 100 + k).fit(table.subset(train), images, progress=False)
        held = table.subset(test)
        pred = prediction_table(model, held, images)
        y = np.asarray(held.target)
        rows.append(
            {"fold": k, **outflow_metrics(y, pred["prediction"], pred["lower"], pred["upper"])}
        )
        frames.append(pred.assign(observed=y, fold=k))
        if importance:
            ids = held.ids.tolist()
            fis.append(
                permutation_importance(
                    lambda f, ids=ids, model=model: model.predict_features(f, ids, images),
                    held.features[model.standardiser_.columns_],
                    y,
                    repeats=importance_repeats,
                    seed=seed + k,
                ).assign(fold=k)
            )
        if report:
            m = rows[-1]
            report(
                f"  {model.method} split {k + 1}/{n_splits}: r2 {number(m['r2'])}, MAE {m['mae']:.1f}"
            )
        first = first or model
    assert first is not None
    fi = None
    if fis:
        stacked = pd.concat(fis)
        fi = (
            stacked.groupby("variable")["fi"]
            .agg(fi="mean", fi_std="std")
            .reset_index()
            .sort_values("fi", ascending=False, kind="stable")
            .reset_index(drop=True)
        )
    return CrossFit(pd.concat(frames, ignore_index=True), pd.DataFrame(rows), fi, first)


def summarise(folds: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation over splits of each metric (``r2``, ``r2_std``, ...)."""
    out: dict[str, float] = {}
    with np.errstate(invalid="ignore"):  # infinite widths (too few calibration rows) stay inf
        for column in folds.columns:
            if column in ("fold", "n", "model", "seed"):
                continue
            values = folds[column].to_numpy(np.float64)
            out[column] = float(values.mean())
            out[f"{column}_std"] = (
                float(values.std()) if np.isfinite(values).all() else float("nan")
            )
    return out


def transfer(
    make: Callable[[int], MigrationModel],
    table: CensusTable,
    images: MunicipalImages | None = None,
    *,
    holdout: Sequence[str] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit on some regions and predict the others.

    With ``holdout``, one test: those regions held out. Without, the regions are dealt into
    ``n_splits`` groups (seeded) and each group is held out once. One row of metrics per test,
    with the held-out regions named.
    """
    if table.groups is None:
        raise HumanscapeError(
            "no region column for a transfer test", fix="give --region-column COLUMN"
        )
    groups = table.groups.to_numpy()
    names = sorted(set(groups))
    if holdout:
        unknown = [g for g in holdout if g not in names]
        if unknown:
            raise HumanscapeError(
                f"held-out region(s) {', '.join(unknown)} not in the region column "
                f"(regions: {', '.join(names[:10])})",
                fix="name regions that exist",
            )
        tests = [list(holdout)]
    else:
        if len(names) < 2:
            raise HumanscapeError(
                "a transfer test needs at least 2 regions", fix="check --region-column"
            )
        order = np.random.default_rng([seed, 31]).permutation(len(names))
        tests = [
            [names[i] for i in part]
            for part in np.array_split(order, min(n_splits, len(names)))
            if len(part)
        ]
    rows = []
    for k, held in enumerate(tests):
        test = np.flatnonzero(np.isin(groups, held))
        train = np.flatnonzero(~np.isin(groups, held))
        if len(train) < 10:
            raise HumanscapeError(
                f"only {len(train)} municipalities outside {', '.join(held)} to fit on",
                fix="hold out fewer regions",
            )
        model = make(seed * 100 + k).fit(table.subset(train), images, progress=False)
        part = table.subset(test)
        pred = prediction_table(model, part, images)
        rows.append(
            {
                "held_out": " ".join(held),
                **outflow_metrics(
                    np.asarray(part.target), pred["prediction"], pred["lower"], pred["upper"]
                ),
            }
        )
    return pd.DataFrame(rows)
