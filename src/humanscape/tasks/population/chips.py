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
from tqdm.auto import tqdm

from humanscape.data.chiptable import read_chip, read_chip_table
from humanscape.errors import HumanscapeError
from humanscape.geo.sensors import SENTINEL2_L1C

#: Equal-area CRS in metres for spatial blocks anywhere on Earth (EASE-Grid 2.0 Global).
BLOCK_CRS = "EPSG:6933"


def canonical_band(name: str) -> str:
    """``B04`` for ``red``, ``b4`` or ``B04`` (Sentinel-2 names or roles); other names as given."""
    band = SENTINEL2_L1C.find(name)
    return band.name if band else name


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
    images: np.ndarray | None = None
    for i, path in enumerate(
        tqdm(table["image"], desc="read chips", unit="chip", disable=not progress)
    ):
        chip = read_chip(path)
        if chip.units != "reflectance":
            raise HumanscapeError(
                "chip holds 8-bit display values, not reflectance",
                path=path,
                fix="population models read multispectral GeoTIFF chips (EuroSAT MS, humanscape chip)",
            )
        if chip.bands is None:
            if chip.data.shape[0] != len(wanted):
                raise HumanscapeError(
                    f"chip has {chip.data.shape[0]} unnamed bands, {len(wanted)} were asked for",
                    path=path,
                    fix="write band descriptions into the chips, or ask for as many bands as they hold",
                )
            names = wanted
        else:
            names = [canonical_band(b) for b in chip.bands]
        missing = [b for b in wanted if b not in names]
        if missing:
            raise HumanscapeError(
                f"chip has no band {', '.join(missing)} (bands: {', '.join(names)})",
                path=path,
                fix="choose --bands among the chip's bands",
            )
        data = chip.data[[names.index(b) for b in wanted]]
        if images is None:
            images = np.empty((len(table), *data.shape), np.float32)
        elif data.shape != images.shape[1:]:
            raise HumanscapeError(
                f"chip is {data.shape[1]} x {data.shape[2]} px, the first chip "
                f"{images.shape[2]} x {images.shape[3]} px",
                path=path,
                fix="use chips of one size in one table (humanscape chip cuts them so)",
            )
        images[i] = data
    assert images is not None  # read_chip_table refuses empty tables
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
