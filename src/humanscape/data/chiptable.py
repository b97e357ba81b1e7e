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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from PIL import Image

from humanscape._atomic import atomic_output
from humanscape.errors import EmptyInputError, HumanscapeError, NotARasterError
from humanscape.geo.inputs import cirrus_in_layer_10
from humanscape.geo.radiometry import decide, declared_units
from humanscape.geo.sensors import EUROSAT_MS_ORDER, Band, Sensor, get_sensor


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


def read_table(path: str | Path, *, what: str = "table") -> pd.DataFrame:
    """Read a CSV or Parquet table (by extension) with a clear error for every way it can fail.

    A missing file, a folder, an empty file, a file that is not what its extension says and a table
    without rows each raise a :class:`HumanscapeError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise EmptyInputError(f"{what} does not exist", path=path, fix="check the path")
    if path.is_dir():
        raise HumanscapeError(
            f"is a folder, not a {what} file", path=path, fix="give the CSV or Parquet file"
        )
    parquet = path.suffix.lower() == ".parquet"
    try:
        table = pd.read_parquet(path) if parquet else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise EmptyInputError(
            f"{what} file is empty", path=path, fix="give a table with rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        kind = "Parquet" if parquet else "CSV"
        raise HumanscapeError(
            f"not a readable {kind} {what} ({str(exc).splitlines()[0][:120]})",
            path=path,
            fix=f"write the {what} as {kind}, or give it the extension of its format (.csv / .parquet)",
        ) from None
    if table.empty:
        raise EmptyInputError(f"{what} has no rows", path=path, fix="give a table with rows")
    return table


def read_chip_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    check_files: bool = True,
) -> pd.DataFrame:
    """Read a chip table; ``image`` paths become absolute (relative ones are taken from the table's folder).

    A table without ``image`` but with ``file`` (the EuroSAT population tables) uses ``file``.

    Raises a clear error when the file is missing, a required column is absent (naming the columns
    it has) or, with ``check_files``, when an image does not exist (naming the first missing one).
    """
    path = Path(path)
    table = read_table(path, what="chip table")
    if "image" not in table.columns and "file" in table.columns:
        table = table.rename(columns={"file": "image"})  # EuroSAT population tables
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


#: File types read as 8-bit RGB display values.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Chip:
    """One chip read for a model.

    Attributes
    ----------
    data
        float32 ``(bands, rows, cols)``; NaN where nodata.
    bands
        Canonical band names (``B04`` ...; ``red``/``green``/``blue`` for RGB images), or ``None``
        when the file does not name its bands.
    units
        ``reflectance`` (0..1) or ``rgb8`` (8-bit display values 0..255).
    """

    data: np.ndarray
    bands: list[str] | None
    units: str


def read_chip(path: str | Path, *, sensor: str | Sensor = "sentinel2_l1c") -> Chip:
    """Read a chip as reflectance (or 8-bit RGB); refuse a chip that holds only nodata.

    GeoTIFF bands are named by their descriptions (``sensor``'s band names or roles; a 13-band
    Sentinel-2 chip without descriptions is in EuroSAT order, :data:`EUROSAT_MS_ORDER`, or ESA
    order, told by the dark cirrus layer: :func:`humanscape.geo.inputs.cirrus_in_layer_10`) and
    scaled by
    :func:`humanscape.geo.radiometry.decide`: chips humanscape wrote declare reflectance and are
    returned as stored; integer chips without units (EuroSAT's uint16 DN) are digital numbers of
    ``sensor``. 8-bit GeoTIFFs and JPEG / PNG images are RGB display values (``rgb8``).
    """
    path = Path(path)
    table = get_sensor(sensor)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as image:
                data = np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
        except OSError as exc:
            raise NotARasterError(f"not a readable image: {exc}", path=path) from None
        return Chip(np.ascontiguousarray(data), ["red", "green", "blue"], "rgb8")
    try:
        with rasterio.open(path) as src:
            data = src.read().astype(np.float32)
            raw_nodata = src.nodata
            descriptions = list(src.descriptions)
            eight_bit = src.dtypes[0] == "uint8" and declared_units(src, 1) in (None, "rgb8")
            names = _chip_bands(descriptions, table, data, eight_bit, raw_nodata)
            if raw_nodata is not None and not np.isnan(raw_nodata):
                data[data == np.float32(raw_nodata)] = np.nan
            for i in range(0 if eight_bit else src.count):
                band = table.find(names[i]) if names else None
                decide(src, i + 1, band or _generic_band(table), table, path=path).apply(data[i])
    except rasterio.errors.RasterioError as exc:
        raise NotARasterError(
            f"chip is not a readable raster ({exc})", path=path, fix="re-create the chip"
        ) from None
    if not np.isfinite(data).any():
        raise EmptyInputError(
            "chip holds only nodata",
            path=path,
            fix="drop the chip from the table (it lies outside the imagery)",
        )
    return Chip(data, names, "rgb8" if eight_bit else "reflectance")


def canonical_band(name: str, sensor: str | Sensor = "sentinel2_l1c") -> str:
    """``B04`` for ``red``, ``b4`` or ``B04`` (the sensor's names or roles); other names as given."""
    band = get_sensor(sensor).find(name)
    return band.name if band else name


def read_chips(
    paths: Sequence[str | Path],
    bands: Sequence[str],
    *,
    units: Sequence[str] = ("reflectance",),
    progress: bool = True,
) -> tuple[np.ndarray, str]:
    """Stack chips as float32 ``(n, len(bands), H, W)``, bands picked by name; returns the units too.

    ``units`` lists what a model accepts (``reflectance``, ``rgb8``); every chip must have the same
    units and size. Refused with the chip named: display values where reflectance is needed, a
    band the chip lacks, unnamed bands of another count, a chip of another size, only nodata.
    """
    from tqdm.auto import tqdm

    wanted = [canonical_band(b) for b in bands]
    images: np.ndarray | None = None
    first_units = ""
    for i, path in enumerate(tqdm(paths, desc="read chips", unit="chip", disable=not progress)):
        chip = read_chip(path)
        if chip.units not in units:
            raise HumanscapeError(
                f"chip holds {'8-bit display values' if chip.units == 'rgb8' else chip.units}, "
                f"the model reads {' or '.join(units)}",
                path=path,
                fix="give chips of the kind the model was trained on (multispectral GeoTIFF "
                "reflectance, or RGB images for an RGB model)",
            )
        if first_units and chip.units != first_units:
            raise HumanscapeError(
                f"chip holds {chip.units}, the first chip {first_units}",
                path=path,
                fix="use chips of one kind in one table",
            )
        first_units = chip.units
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
            images = np.empty((len(paths), *data.shape), np.float32)
        elif data.shape != images.shape[1:]:
            raise HumanscapeError(
                f"chip is {data.shape[1]} x {data.shape[2]} px, the first chip "
                f"{images.shape[2]} x {images.shape[3]} px",
                path=path,
                fix="use chips of one size in one table (humanscape chip cuts them so)",
            )
        images[i] = data
    if images is None:
        raise EmptyInputError("no chip to read", fix="give a chip table with at least one row")
    return images, first_units


def _chip_bands(
    descriptions: list[str | None],
    sensor: Sensor,
    data: np.ndarray,
    eight_bit: bool,
    nodata: float | None,
) -> list[str] | None:
    count = data.shape[0]
    if all(descriptions):
        return [
            (sensor.find(d).name if sensor.find(d) else str(d))  # type: ignore[union-attr]
            for d in descriptions
        ]
    if eight_bit and count == 3:
        return ["red", "green", "blue"]
    if not eight_bit and count == len(EUROSAT_MS_ORDER) and sensor.find("B8A") is not None:
        if cirrus_in_layer_10(data[9], data[10], nodata):  # EuroSAT order, B8A last
            return list(EUROSAT_MS_ORDER)
        return [b.name for b in sensor.bands if b.kind != "qa"][:count]  # ESA order
    return None


def _generic_band(sensor: Sensor) -> Band:
    """A band unnamed in the file is a reflectance band of ``sensor`` (its common scale)."""
    return next(b for b in sensor.bands if b.kind == "reflectance")
