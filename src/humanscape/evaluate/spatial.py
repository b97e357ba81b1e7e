"""Spatial autocorrelation of residuals: global and local Moran's I (Runfola et al. 2022, Sec. 4).

Weights are first-order queen contiguity (polygons sharing an edge or a corner are neighbours,
``libpysal.weights.Queen``), row-standardised; the statistics are PySAL's ``esda.Moran`` (global
``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2``, Moran 1950) and ``esda.Moran_Local`` (LISA,
Anselin 1995) with conditional permutation p-values.
"""

from __future__ import annotations

import logging
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError

log = logging.getLogger(__name__)

#: LISA quadrants of esda (1 high-high, 2 low-high, 3 low-low, 4 high-low).
QUADRANTS = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}


def queen_weights(polygons: gpd.GeoDataFrame):  # type: ignore[no-untyped-def]
    """Row-standardised first-order queen contiguity weights of ``polygons`` (in row order)."""
    from libpysal.weights import Queen

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands are reported below, not as a library warning
        w = Queen.from_dataframe(polygons.reset_index(drop=True), use_index=False)
    if w.islands:
        log.warning("%d polygon(s) have no queen neighbour (islands)", len(w.islands))
    w.transform = "r"
    return w


def morans_i(
    values: np.ndarray, polygons: gpd.GeoDataFrame, *, permutations: int = 999, seed: int = 0
) -> tuple[dict[str, float], pd.DataFrame]:
    """Global Moran's I of ``values`` (one per polygon, in row order) and the LISA table.

    Returns ``{"I", "expected", "z", "p_value", "n", "islands"}`` and a frame with ``local_i``,
    ``p_value`` and ``quadrant`` (``HH``/``LH``/``LL``/``HL``) per polygon.
    """
    from esda.moran import Moran, Moran_Local

    y = np.asarray(values, dtype=np.float64)
    if len(y) != len(polygons):
        raise HumanscapeError(f"{len(y)} values for {len(polygons)} polygons")
    if len(y) < 3 or not np.isfinite(y).all() or np.std(y) == 0:
        raise HumanscapeError("Moran's I needs at least 3 finite, not all equal values")
    w = queen_weights(polygons)
    np.random.seed(seed)  # noqa: NPY002  esda draws its permutations from numpy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glob = Moran(y, w, permutations=permutations)
        local = Moran_Local(y, w, permutations=permutations, seed=seed)
    summary = {
        "I": float(glob.I),
        "expected": float(glob.EI),
        "z": float(glob.z_norm),
        "p_value": float(glob.p_sim if permutations else glob.p_norm),
        "n": int(len(y)),
        "islands": int(len(w.islands)),
    }
    table = pd.DataFrame(
        {
            "local_i": np.asarray(local.Is, dtype=np.float64),
            "p_value": np.asarray(local.p_sim, dtype=np.float64),
            "quadrant": [QUADRANTS.get(int(q), "") for q in local.q],
        }
    )
    return summary, table
