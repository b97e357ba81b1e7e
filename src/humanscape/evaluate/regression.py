"""Agreement between observed and estimated values: Huang et al. (2021), Sec. IV.D and Table III.

With ``p`` the observed and ``q`` the estimated values of ``m`` test items and ``p̄`` the mean of
``p`` (population, or log population):

- ``R2`` (eq. 5): the squared Pearson correlation of ``p`` and ``q``;
- ``CoE`` (eq. 6), Nash-Sutcliffe coefficient of efficiency, ``1 - Σ(p - q)² / Σ(p - p̄)²``: the
  share of the initial variance the model accounts for, in (-inf, 1];
- ``MIoA`` (eq. 7), Willmott's modified index of agreement d1 (Willmott et al. 1985),
  ``1 - Σ|p - q| / Σ(|q - p̄| + |p - p̄|)``, in [0, 1];
- ``MAE``, ``RMSE``;
- the bias analysis of Table III: Pearson's ``r`` between ``p`` and ``q - p``, and the ordinary
  least-squares line ``q - p = α + β p`` (a negative β: large values under-, small values
  over-estimated).

Huang et al. report the first three on log population, ``log(p)`` with ``p = 0`` mapped to 0
(Sec. IV.A, :func:`log_population`), and R2 / MAE on counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from humanscape.errors import HumanscapeError


def _pair(observed: Sequence[float], estimated: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(observed, dtype=np.float64)
    q = np.asarray(estimated, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise HumanscapeError(
            f"observed and estimated must be 1-D of one length, got {p.shape} and {q.shape}"
        )
    if p.size < 2:
        raise HumanscapeError("agreement needs at least 2 items", fix="evaluate on more items")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise HumanscapeError("observed or estimated values hold NaN or inf")
    return p, q


def log_population(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """``log(p)`` with ``p = 0`` mapped to 0 (Huang et al. 2021, Sec. IV.A); negative counts refused."""
    p = np.asarray(counts, dtype=np.float64)
    if (p < 0).any():
        raise HumanscapeError("population counts must not be negative")
    out = np.zeros_like(p)
    np.log(p, out=out, where=p > 0)
    return out


def r2(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Squared Pearson correlation of observed and estimated values (eq. 5)."""
    p, q = _pair(observed, estimated)
    if p.std() == 0 or q.std() == 0:
        return float("nan")
    return float(np.corrcoef(p, q)[0, 1] ** 2)


def coe(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Nash-Sutcliffe coefficient of efficiency ``1 - Σ(p - q)² / Σ(p - p̄)²`` (eq. 6)."""
    p, q = _pair(observed, estimated)
    spread = ((p - p.mean()) ** 2).sum()
    return float("nan") if spread == 0 else float(1 - ((p - q) ** 2).sum() / spread)


def mioa(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Willmott's modified index of agreement ``1 - Σ|p - q| / Σ(|q - p̄| + |p - p̄|)`` (eq. 7)."""
    p, q = _pair(observed, estimated)
    potential = (np.abs(q - p.mean()) + np.abs(p - p.mean())).sum()
    return float("nan") if potential == 0 else float(1 - np.abs(p - q).sum() / potential)


def mae(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Mean absolute error."""
    p, q = _pair(observed, estimated)
    return float(np.abs(p - q).mean())


def rmse(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Root mean squared error."""
    p, q = _pair(observed, estimated)
    return float(np.sqrt(((p - q) ** 2).mean()))


def bias_analysis(observed: Sequence[float], estimated: Sequence[float]) -> dict[str, float]:
    """Huang et al. (2021), Table III: Pearson ``r`` of ``p`` and ``q - p``; OLS ``q - p = α + β p``."""
    p, q = _pair(observed, estimated)
    error = q - p
    if p.std() == 0:
        return {"pearson_r": float("nan"), "alpha": float("nan"), "beta": float("nan")}
    beta, alpha = np.polyfit(p, error, 1)
    r = float("nan") if error.std() == 0 else float(np.corrcoef(p, error)[0, 1])
    return {"pearson_r": r, "alpha": float(alpha), "beta": float(beta)}


def agreement(observed: Sequence[float], estimated: Sequence[float]) -> dict[str, float]:
    """R2, CoE, MIoA, MAE, RMSE and the Table III bias analysis in one dictionary."""
    return {
        "r2": r2(observed, estimated),
        "coe": coe(observed, estimated),
        "mioa": mioa(observed, estimated),
        "mae": mae(observed, estimated),
        "rmse": rmse(observed, estimated),
        **bias_analysis(observed, estimated),
    }
