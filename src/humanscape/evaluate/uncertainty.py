"""Split-conformal prediction intervals for any regression output (DESIGN.md, beyond the papers).

Split conformal prediction (Vovk et al. 2005; Lei et al. 2018, Algorithm 2): fit the model on a
training set, compute the absolute residuals ``|y - ŷ|`` of ``n`` calibration items the model
never saw, and take ``q`` = the ``⌈(n + 1)(1 - α)⌉``-th smallest of them. Then for a new item,
``[ŷ - q, ŷ + q]`` holds the true value with probability at least ``1 - α`` whenever calibration
and new items are exchangeable, whatever the model. ``q`` is infinite when ``n`` is too small for
the level asked (``⌈(n + 1)(1 - α)⌉ > n``).

Intervals on a transformed scale (log population) are mapped back through the inverse transform,
which keeps the coverage (the transform is monotone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from humanscape.errors import HumanscapeError


def conformal_quantile(residuals: Sequence[float], alpha: float) -> float:
    """The ``⌈(n + 1)(1 - α)⌉``-th smallest absolute residual (inf if that rank exceeds ``n``)."""
    if not 0 < alpha < 1:
        raise HumanscapeError(f"alpha must be in (0, 1), got {alpha}", fix="use 0.1 for 90 %")
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    if r.size == 0 or not np.isfinite(r).all():
        raise HumanscapeError("calibration residuals are empty or not finite")
    rank = math.ceil((r.size + 1) * (1 - alpha))
    return float("inf") if rank > r.size else float(r[rank - 1])


@dataclass
class SplitConformal:
    """Symmetric split-conformal interval of level ``1 - alpha`` (see module docstring).

    ``fit(observed, predicted)`` on calibration items; ``interval(predicted)`` for new ones.
    ``inverse`` maps the interval ends back from a transformed scale (e.g. ``np.expm1``).
    """

    alpha: float = 0.1
    inverse: Callable[[np.ndarray], np.ndarray] | None = None

    def fit(self, observed: Sequence[float], predicted: Sequence[float]) -> SplitConformal:
        y = np.asarray(observed, dtype=np.float64)
        yhat = np.asarray(predicted, dtype=np.float64)
        if y.shape != yhat.shape:
            raise HumanscapeError(f"{y.shape} observed values for {yhat.shape} predictions")
        self.quantile_ = conformal_quantile(y - yhat, self.alpha)
        self.n_calibration_ = int(y.size)
        return self

    def interval(self, predicted: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds for each prediction (mapped back when ``inverse`` is set)."""
        if not hasattr(self, "quantile_"):
            raise HumanscapeError("the conformal interval is not calibrated", fix="call fit first")
        yhat = np.asarray(predicted, dtype=np.float64)
        lower, upper = yhat - self.quantile_, yhat + self.quantile_
        if self.inverse is not None:
            lower, upper = self.inverse(lower), self.inverse(upper)
        return lower, upper


def coverage(observed: Sequence[float], lower: Sequence[float], upper: Sequence[float]) -> float:
    """Share of observed values inside ``[lower, upper]``."""
    y = np.asarray(observed, dtype=np.float64)
    return float(((y >= np.asarray(lower)) & (y <= np.asarray(upper))).mean())
