"""Agreement between observed and estimated values: Huang et al. (2021), Sec. IV.D, eqs. 5-7 and Table III.

With ``p`` the observed and ``q`` the estimated values of ``m`` test items and ``p̄`` the mean of
``p`` (population, or log population):

- ``r2``: the coefficient of determination ``1 - Σ(p - q)² / Σ(p - p̄)²`` as in scikit-learn, in
  (-inf, 1]. It is Huang's ``CoE`` (eq. 6, the Nash-Sutcliffe coefficient of efficiency: "the
  proportion of initial variance accounted for by a model"), and it is what ``r2`` means everywhere
  in humanscape;
- ``pearson_r2``: the squared Pearson correlation of ``p`` and ``q``, which Huang et al. report as
  ``R²`` (eq. 5; their Table I has R² above CoE for every model, which a squared correlation
  allows and a second coefficient of determination would not). It ignores bias and scale: a
  prediction that is ten times too large scores 1;
- ``MIoA`` (eq. 7), Willmott's modified index of agreement d1 (Willmott et al. 1985),
  ``1 - Σ|p - q| / Σ(|q - p̄| + |p - p̄|)``, in [0, 1];
- ``MAE``, ``RMSE``;
- the bias analysis of Table III (and Figs. 6 and 8): ``bias_r``, Pearson's ``r`` between
  ``p`` and ``q - p``, and the ordinary least-squares line ``q - p = bias_alpha + bias_beta p`` (a
  negative β: large values under-, small values over-estimated).

Huang et al. report R², CoE and MIoA on log population (Sec. IV.A and Table I):
:func:`log_population` applies eq. 1's floor (counts below 1 become 0) and takes ``log`` of the
rest, to observed and estimated counts alike.
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
    """Huang et al. (2021), eq. 1 then Sec. IV.A: counts below 1 set to 0, then ``log(p)`` for ``p >= 1``.

    Without the floor a predicted 0.01 people against an observed 0 would become ``log(0.01) =
    -4.6`` and dominate the log-scale metrics. Negative counts are refused.
    """
    p = np.asarray(counts, dtype=np.float64)
    if (p < 0).any():
        raise HumanscapeError("population counts must not be negative")
    out = np.zeros_like(p)
    np.log(p, out=out, where=p >= 1)
    return out


def r2(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Coefficient of determination ``1 - Σ(p - q)² / Σ(p - p̄)²`` (Huang's CoE, eq. 6; scikit-learn's r2)."""
    p, q = _pair(observed, estimated)
    spread = ((p - p.mean()) ** 2).sum()
    return float("nan") if spread == 0 else float(1 - ((p - q) ** 2).sum() / spread)


def pearson_r2(observed: Sequence[float], estimated: Sequence[float]) -> float:
    """Squared Pearson correlation of observed and estimated values (Huang's R², eq. 5)."""
    p, q = _pair(observed, estimated)
    if p.std() == 0 or q.std() == 0:
        return float("nan")
    return float(np.corrcoef(p, q)[0, 1] ** 2)


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
    """Huang et al. (2021), Table III and Figs. 6 and 8: Pearson ``r`` of ``p`` and the error ``q - p``, and OLS
    ``q - p = α + β p``, as ``bias_r``, ``bias_alpha``, ``bias_beta``."""
    p, q = _pair(observed, estimated)
    error = q - p
    if p.std() == 0:
        return {"bias_r": float("nan"), "bias_alpha": float("nan"), "bias_beta": float("nan")}
    beta, alpha = np.polyfit(p, error, 1)
    r = float("nan") if error.std() == 0 else float(np.corrcoef(p, error)[0, 1])
    return {"bias_r": r, "bias_alpha": float(alpha), "bias_beta": float(beta)}


def agreement(observed: Sequence[float], estimated: Sequence[float]) -> dict[str, float]:
    """r2 (= CoE), pearson_r2, MIoA, MAE, RMSE and the bias analysis in one dictionary."""
    return {
        "r2": r2(observed, estimated),
        "pearson_r2": pearson_r2(observed, estimated),
        "mioa": mioa(observed, estimated),
        "mae": mae(observed, estimated),
        "rmse": rmse(observed, estimated),
        **bias_analysis(observed, estimated),
    }
