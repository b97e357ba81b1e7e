"""Metrics for origin-destination flows (observed ``T``, predicted ``T^``, both ``(N, N)``).

- **CPC**, common part of commuters (Gargiulo et al. 2012; Lenormand et al. 2012, 2016; the
  metric of record of Deep Gravity, Simini et al. 2021, and of CommutingODGen, Rong et al. 2023):
  ``CPC = 2 sum_ij min(T_ij, T^_ij) / (sum_ij T_ij + sum_ij T^_ij)``; 1 when the matrices are
  equal, 0 when they share no commuter. It rewards the right total *and* the right pairs.
- **CPL**, common part of links (Lenormand et al. 2016): ``2 |L ^ L^| / (|L| + |L^|)`` with
  ``L = {ij : T_ij > 0}`` and ``L^ = {ij : T^_ij >= 0.5}`` (a predicted flow rounds to at least
  one commuter).
- **mass on observed pairs**: ``sum_{ij : T_ij > 0} T^_ij / sum_ij T^_ij``, the share of the
  predicted flow that lands on pairs where commuting is observed.
- **RMSE**, **MAE** and **Pearson r** over all ``N^2`` pairs (CommutingODGen reports RMSE, NRMSE
  and CPC; GMEL reports RMSE, MAE and CPC).
- **CPC by distance band**: CPC restricted to the pairs whose distance falls in a band (how well
  short and long commutes are reproduced; Simini et al. 2021, Fig. 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError

#: Distance bands (km) of the CPC-by-distance table: [0, 2), [2, 5), ... [50, inf).
DISTANCE_BANDS_KM = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0, np.inf)


def _pair(observed: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(observed, np.float64)
    p = np.asarray(predicted, np.float64)
    if t.shape != p.shape:
        raise HumanscapeError(f"observed flows {t.shape} and predictions {p.shape} differ in shape")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise HumanscapeError("flows hold NaN or infinite values")
    return t, p


def cpc(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Common part of commuters ``2 sum min(T, T^) / (sum T + sum T^)`` (Lenormand et al. 2012)."""
    t, p = _pair(observed, predicted)
    total = t.sum() + p.sum()
    return float(2.0 * np.minimum(t, p).sum() / total) if total > 0 else 1.0


def cpl(observed: np.ndarray, predicted: np.ndarray, *, threshold: float = 0.5) -> float:
    """Common part of links ``2 |L ^ L^| / (|L| + |L^|)``; a predicted link is ``T^ >= threshold``."""
    t, p = _pair(observed, predicted)
    links, predicted_links = t > 0, p >= threshold
    total = links.sum() + predicted_links.sum()
    return float(2.0 * (links & predicted_links).sum() / total) if total > 0 else 1.0


def mass_on_observed_pairs(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Share of the predicted flow on pairs with observed flow, ``sum_{T>0} T^ / sum T^``."""
    t, p = _pair(observed, predicted)
    return float(p[t > 0].sum() / p.sum()) if p.sum() > 0 else float("nan")


def flow_metrics(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """CPC, CPL, mass on observed pairs, RMSE, MAE, Pearson r and the totals of one city."""
    t, p = _pair(observed, predicted)
    err = p - t
    r = (
        float(np.corrcoef(t.ravel(), p.ravel())[0, 1])
        if t.std() > 0 and p.std() > 0
        else float("nan")
    )
    return {
        "cpc": cpc(t, p),
        "cpl": cpl(t, p),
        "mass_on_observed_pairs": mass_on_observed_pairs(t, p),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "pearson_r": r,
        "observed_total": float(t.sum()),
        "predicted_total": float(p.sum()),
        "pairs": int(t.size),
    }


def cpc_by_distance(
    observed: np.ndarray,
    predicted: np.ndarray,
    distance_km: np.ndarray,
    *,
    bands: Sequence[float] = DISTANCE_BANDS_KM,
) -> pd.DataFrame:
    """CPC per distance band: ``band``, ``lo_km``, ``hi_km``, ``pairs``, ``observed``, ``predicted``, ``cpc``.

    Bands with no pair are left out; a band with flow in neither matrix has CPC NaN.
    """
    t, p = _pair(observed, predicted)
    d = np.asarray(distance_km, np.float64)
    if d.shape != t.shape:
        raise HumanscapeError(f"distances {d.shape} and flows {t.shape} differ in shape")
    rows = []
    for lo, hi in zip(bands[:-1], bands[1:], strict=True):
        inside = (d >= lo) & (d < hi)
        if not inside.any():
            continue
        to, po = t[inside].sum(), p[inside].sum()
        value = 2 * np.minimum(t[inside], p[inside]).sum() / (to + po) if to + po > 0 else np.nan
        label = f"{lo:g}-{hi:g} km" if np.isfinite(hi) else f">= {lo:g} km"
        rows.append((label, lo, hi, int(inside.sum()), float(to), float(po), float(value)))
    return pd.DataFrame(
        rows, columns=["band", "lo_km", "hi_km", "pairs", "observed", "predicted", "cpc"]
    )
