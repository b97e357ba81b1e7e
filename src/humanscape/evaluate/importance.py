"""Permutation feature importance as a ratio of errors (Runfola et al. 2022, eq. 1).

``FI_j = MAE_permuted / MAE_original`` (Fisher, Rudin & Dominici 2019, "model reliance"): the
values of variable ``j`` are shuffled across the rows, the fitted model predicts again, and the
mean absolute error is divided by the error on the intact rows. ``FI_j = 1``: the model does not
use ``j``; ``FI_j = 1.3``: shuffling ``j`` makes the error 30 % larger. The shuffle is repeated
``repeats`` times (seeded) and averaged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    features: pd.DataFrame,
    observed: np.ndarray,
    *,
    repeats: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """``variable``, ``fi`` (eq. 1, mean over repeats), ``fi_std``; sorted by ``fi``, largest first.

    ``predict`` maps a feature table (same columns as ``features``) to predictions.
    """
    y = np.asarray(observed, dtype=np.float64)
    if len(y) != len(features) or len(y) < 2:
        raise HumanscapeError(f"{len(y)} observed values for {len(features)} rows (need >= 2)")
    base = float(np.mean(np.abs(predict(features) - y)))
    if base <= 0:
        raise HumanscapeError("the model is exact on these rows: importance ratios are undefined")
    rng = np.random.default_rng(seed)
    rows = []
    for column in features.columns:
        ratios = []
        for _ in range(repeats):
            shuffled = features.copy()
            shuffled[column] = rng.permutation(features[column].to_numpy())
            ratios.append(float(np.mean(np.abs(predict(shuffled) - y))) / base)
        rows.append(
            {"variable": str(column), "fi": float(np.mean(ratios)), "fi_std": float(np.std(ratios))}
        )
    return (
        pd.DataFrame(rows).sort_values("fi", ascending=False, kind="stable").reset_index(drop=True)
    )
