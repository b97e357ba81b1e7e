"""Inequality from hyperlocal scores (Park et al. 2022, Discussion: Fig. 9 and Table 4).

The Gini index is PySAL's (``inequality.gini.Gini``, the relative mean difference form
``G = sum_i (2 i - n - 1) x_(i) / (n sum x)`` over sorted values): 0 when all are equal,
``(n - 1) / n`` when one holds everything. Scores enter positive-shifted
(:func:`~humanscape.tasks.economy.ordinal.positive_scores`), as a Gini of negative values is
meaningless.

- within each district: Gini of its tiles' scores (the paper compares it with poverty incidence);
- national, three ways (Table 4): from the raw tile scores ``f``, from the district factors
  ``exp(h(r))`` (each tile carries its district's factor), and from the adjusted scores
  ``f * exp(h(r))``; the paper finds the adjusted scores closest to the World Bank's Gini.
"""

from __future__ import annotations

import numpy as np
from inequality.gini import Gini

from humanscape.errors import HumanscapeError


def gini(values: np.ndarray) -> float:
    """Gini index of non-negative ``values`` (NaN for an empty set or an all-zero set)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if (x < 0).any():
        raise HumanscapeError("the Gini index needs non-negative values (shift the scores first)")
    if x.size == 0 or x.sum() == 0:
        return float("nan")
    return float(Gini(x).g)


def within_district_gini(values: np.ndarray, district: np.ndarray, n_districts: int) -> np.ndarray:
    """Gini of the tile ``values`` of each district ``0..n_districts-1``."""
    district = np.asarray(district, dtype=np.int64)
    order = np.argsort(district, kind="stable")
    bounds = np.searchsorted(district[order], np.arange(n_districts + 1))
    x = np.asarray(values, dtype=np.float64)[order]
    return np.array([gini(x[bounds[k] : bounds[k + 1]]) for k in range(n_districts)])


def national_gini(
    positive_scores: np.ndarray, district: np.ndarray, factor: np.ndarray
) -> dict[str, float]:
    """Table 4: national Gini from raw scores, from district factors, from adjusted scores."""
    per_tile = np.asarray(factor, dtype=np.float64)[np.asarray(district, dtype=np.int64)]
    s = np.asarray(positive_scores, dtype=np.float64)
    return {
        "scores": gini(s),
        "district_factors": gini(per_tile),
        "adjusted_scores": gini(s * per_tile),
    }
