"""Chips and census population for the population model (Huang et al. 2021, Sec. III.A).

A chip table (:mod:`humanscape.data.chiptable`) lists one image per grid cell: EuroSAT-style
13-band uint16 chips (digital numbers, reflectance x 10000) or chips cut by ``humanscape chip``
(float32 reflectance, one cell or its n x n neighbourhood, nbr(n)); both are read as reflectance
by :func:`humanscape.data.chiptable.read_chip`. Bands are selected by name (``B02,B03,B04,B08``;
``red``, ``nir`` ... by role).

Where the chips are matters for honest validation: :func:`chip_locations` finds each chip's
centre from ``lon``/``lat`` columns, from ``x``/``y`` + ``crs`` (tables written by
``humanscape chip``), or from the GeoTIFF's own georeference, and returns it in metres on the
equal-area EASE-Grid 2.0 (EPSG:6933), so that square spatial blocks have one size everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from pyproj import Transformer

from humanscape.data.chiptable import canonical_band, read_chip_table, read_chips
from humanscape.errors import HumanscapeError

#: Equal-area CRS in metres for spatial blocks anywhere on Earth (EASE-Grid 2.0 Global).
BLOCK_CRS = "EPSG:6933"


@dataclass
class PopulationChips:
    """Chip images of chosen bands with their population.

    Attributes
    ----------
    images
        float32 ``(n, bands, H, W)`` reflectance, NaN where nodata.
    bands
        Band names of ``images``, in order.
    population
        People in each chip's cell (float64; ``None`` when no target was asked for).
    table
        The chip table (``image`` paths made absolute).
    """

    images: np.ndarray
    bands: list[str]
    population: np.ndarray | None
    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.images)


def check_population(values: pd.Series, *, column: str, path: str | Path) -> np.ndarray:
    """Population counts as float64; NaN, infinite or negative values are refused with the row."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numeric) | (numeric < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise HumanscapeError(
            f"column '{column}' has {int(bad.sum())} missing, non-numeric or negative "
            f"population value(s), first in row {first + 2}: {values.iloc[first]!r}",
            path=path,
            fix="give a count of 0 or more for every chip, or drop those rows",
        )
    return numeric


def load_chips(
    table_path: str | Path,
    bands: Sequence[str],
    *,
    target: str | None = None,
    progress: bool = True,
) -> PopulationChips:
    """Read every chip of a chip table (``bands`` by name) and its ``target`` population.

    Refused with the file named: a missing target column, NaN / negative population, a band
    that a chip lacks, chips of different sizes, a chip that holds only nodata.
    """
    table = read_chip_table(table_path, required=[target] if target else [])
    population = check_population(table[target], column=target, path=table_path) if target else None
    wanted = [canonical_band(b) for b in bands]
    images, _ = read_chips(list(table["image"]), wanted, progress=progress)
    return PopulationChips(images, wanted, population, table)


def chip_locations(table: pd.DataFrame) -> np.ndarray:
    """Chip centres ``(n, 2)`` in metres on EPSG:6933 (see the module docstring for the sources)."""
    if {"lon", "lat"} <= set(table.columns):
        lon, lat = table["lon"].to_numpy(float), table["lat"].to_numpy(float)
        return _to_blocks("EPSG:4326", lon, lat)
    if {"x", "y", "crs"} <= set(table.columns) and table["crs"].nunique() == 1:
        return _to_blocks(
            str(table["crs"].iloc[0]), table["x"].to_numpy(float), table["y"].to_numpy(float)
        )
    out = np.empty((len(table), 2))
    for i, path in enumerate(table["image"]):
        with rasterio.open(path) as src:
            if src.crs is None:
                raise HumanscapeError(
                    "chip has no georeference and the table no lon/lat columns",
                    path=path,
                    fix="add lon and lat columns (chip centres) or a group column to the table",
                )
            x, y = src.xy(src.height / 2, src.width / 2, offset="ul")
            out[i] = _to_blocks(src.crs.to_string(), np.array([x]), np.array([y]))[0]
    return out


def _to_blocks(crs: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    bx, by = Transformer.from_crs(crs, BLOCK_CRS, always_xy=True).transform(x, y)
    return np.c_[bx, by]
