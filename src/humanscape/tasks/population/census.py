"""Census-consistent population grids and bias correction (beyond Huang et al. 2021).

- :func:`dasymetric_rescale`: given district totals from a census, rescale the cell estimates so
  that each district sums exactly to its total, keeping the model's distribution within the
  district (dasymetric redistribution; Mennis 2003, Stevens et al. 2015 for WorldPop). A district
  whose cells are all estimated 0 receives its total spread evenly over its cells; cells outside
  every district keep their estimate.
- :class:`IsotonicBiasCorrection`: Huang et al. (2021, Table III) find a systematic bias (dense
  cells under-, sparse cells over-estimated: a negative slope of error on truth). A monotone map
  from estimate to truth, fitted on validation data by isotonic regression (scikit-learn), removes
  it without changing the ranking of cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.isotonic import IsotonicRegression

from humanscape.errors import HumanscapeError


def dasymetric_rescale(
    estimate: np.ndarray, district: np.ndarray, totals: Mapping[object, float]
) -> np.ndarray:
    """Cell estimates rescaled so each district in ``totals`` sums to its total.

    ``estimate`` and ``district`` have one shape (``district`` holds each cell's district id;
    cells whose id is not in ``totals`` are left as they are). Negative or non-finite estimates
    and negative totals are refused.
    """
    est = np.asarray(estimate, dtype=np.float64)
    ids = np.asarray(district)
    if est.shape != ids.shape:
        raise HumanscapeError(f"{est.shape} estimates for {ids.shape} district ids")
    if not np.isfinite(est).all() or (est < 0).any():
        raise HumanscapeError("estimates must be finite and not negative")
    out = est.copy()
    for key, total in totals.items():
        if not total >= 0:
            raise HumanscapeError(f"district {key}: total {total} is negative or not a number")
        cells = ids == key
        n = int(cells.sum())
        if n == 0:
            raise HumanscapeError(
                f"district {key} has a total but no cell", fix="check the district ids and the grid"
            )
        current = est[cells].sum()
        out[cells] = est[cells] * (total / current) if current > 0 else total / n
    return out


class IsotonicBiasCorrection:
    """Monotone map from estimates to observed values, fitted on validation data.

    Works on whatever scale it is given (Huang et al.'s log population); outside the fitted range
    the map is clipped to its end values.
    """

    def fit(self, estimated: Sequence[float], observed: Sequence[float]) -> IsotonicBiasCorrection:
        x = np.asarray(estimated, dtype=np.float64)
        y = np.asarray(observed, dtype=np.float64)
        if x.shape != y.shape or x.size < 2:
            raise HumanscapeError("bias correction needs two or more pairs of one length")
        self.map_ = IsotonicRegression(out_of_bounds="clip").fit(x, y)
        return self

    def transform(self, estimated: Sequence[float]) -> np.ndarray:
        if not hasattr(self, "map_"):
            raise HumanscapeError("bias correction is not fitted", fix="call fit first")
        return self.map_.predict(np.asarray(estimated, dtype=np.float64))
