"""The chip table: humanscape's common format between chipping, encoders and task models.

One row per chip, CSV or Parquet:

=============  ==========================================================================
column         meaning
=============  ==========================================================================
``image``      path to a GeoTIFF / JPEG chip, relative to the table's folder or absolute
``cell_id``    (optional) cell of the grid the chip was cut from
``geometry``   (optional) WKT of the cell footprint, CRS in the ``crs`` column
``group``      (optional) spatial unit for cross-validation (district, municipality, city)
targets        any further numeric columns (population, class, indicator ...)
=============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from humanscape._atomic import atomic_output
from humanscape.errors import EmptyInputError, HumanscapeError, NotARasterError


def write_chip_table(table: pd.DataFrame, path: str | Path, *, crs: object | None = None) -> Path:
    """Write a chip table as CSV or Parquet (by extension), atomically."""
    if "image" not in table.columns:
        raise HumanscapeError("chip table needs an 'image' column", path=path)
    path = Path(path)
    table = table.copy()
    if crs is not None:
        table["crs"] = str(crs)
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
    return path


def read_chip_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    check_files: bool = True,
) -> pd.DataFrame:
    """Read a chip table; ``image`` paths become absolute (relative ones are taken from the table's folder).

    Raises a clear error when the file is missing, a required column is absent (naming the columns
    it has) or, with ``check_files``, when an image does not exist (naming the first missing one).
    """
    path = Path(path)
    if not path.exists():
        raise EmptyInputError("chip table does not exist", path=path, fix="check the path")
    table = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if table.empty:
        raise EmptyInputError("chip table has no rows", path=path)
    for column in ("image", *required):
        if column not in table.columns:
            raise HumanscapeError(
                f"chip table has no column '{column}' (columns: {', '.join(map(str, table.columns))})",
                path=path,
                fix=f"add a '{column}' column or choose another column",
            )
    root = path.parent
    table["image"] = [
        str(p if Path(p).is_absolute() else (root / p).resolve()) for p in table["image"]
    ]
    if check_files:
        missing = [p for p in table["image"] if not Path(p).exists()]
        if missing:
            raise EmptyInputError(
                f"{len(missing)} chip image(s) do not exist, first: {missing[0]}",
                path=path,
                fix="fix the 'image' paths (relative paths are read from the table's folder)",
            )
    return table


def read_chip(path: str | Path, *, scale: float | None = None) -> np.ndarray:
    """Read a chip as float32 ``(bands, rows, cols)``; refuse a chip that holds only nodata.

    Chips written by humanscape carry ``units=reflectance`` and are returned as stored. Integer
    chips (e.g. EuroSAT's uint16 DN) are multiplied by ``scale`` when given (1e-4 for Sentinel-2 L1C).
    """
    path = Path(path)
    try:
        with rasterio.open(path) as src:
            data = src.read().astype(np.float32)
            nodata = src.nodata
            units = src.tags().get("units")
    except rasterio.errors.RasterioIOError as exc:
        raise NotARasterError(
            "chip is not a readable raster", path=path, fix="re-create the chip"
        ) from exc
    if nodata is not None and not np.isnan(nodata):
        data[data == nodata] = np.nan
    if not np.isfinite(data).any():
        raise EmptyInputError(
            "chip holds only nodata",
            path=path,
            fix="drop the chip from the table (it lies outside the imagery)",
        )
    if units != "reflectance" and scale is not None:
        data *= np.float32(scale)
    return data
