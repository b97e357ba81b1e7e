"""Radiometry: what the stored numbers of a raster band mean, decided in one place.

Every band humanscape reads goes through :func:`decide`, which returns a :class:`Radiometry`:
the stored values' units and the ``scale`` and ``offset`` that turn them into physical values::

    physical = stored * scale + offset          (Sentinel-2 L1C: reflectance = DN * 1e-4)

:func:`decide` applies these rules, in order, to band ``i`` of a file:

1. Quality and class bands (QA60, SCL, QA_PIXEL, Fmask) are never scaled.
2. The file says its band is already physical: band unit type or dataset tag ``units`` equal to
   ``reflectance`` (every raster humanscape writes records this, see
   :class:`~humanscape.geo.write.RasterWriter`), or ``kelvin``: scale 1, offset 0.
3. The file carries GDAL scale / offset metadata for the band (other than 1 / 0): used as is.
4. ``units="reflectance"`` or ``units="dn"`` given by the caller (``--units``) for files that record
   nothing.
5. A Sentinel-2 file whose tags say its offset (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``, band
   or dataset tags, with ``QUANTIFICATION_VALUE``) or its ``PROCESSING_BASELINE`` (04.00 and
   later: -1000 DN): that offset, once, whatever the sensor table assumed
   (:func:`s2_tag_radiometry`).
6. Otherwise the file is a product in digital numbers and the sensor's band table applies (with the
   scale and offset the product's own metadata gave, see :mod:`humanscape.geo.products`). A float
   file that records no units is checked once: if its values are reflectance-like (99th percentile
   below 2) it is taken as reflectance, and the log says so.

Readers never apply a scale to a file that says it holds reflectance, so a composite written in
reflectance and read again stays reflectance (no 1e-4 applied twice).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.enums import Resampling

from humanscape.errors import HumanscapeError
from humanscape.geo.sensors import Band, Sensor

log = logging.getLogger(__name__)

#: Units a file may declare whose values need no scaling.
PHYSICAL_UNITS = ("reflectance", "kelvin")
#: Choices of the ``units`` option of scene readers.
UnitsOption = Literal["auto", "dn", "reflectance"]
UNITS_OPTIONS = ("auto", "dn", "reflectance")


@dataclass(frozen=True)
class Radiometry:
    """Units of stored values and the linear map to physical values.

    Attributes
    ----------
    units
        ``dn`` (digital numbers), ``reflectance``, ``kelvin`` or ``class`` (QA, never scaled).
    scale, offset
        ``physical = stored * scale + offset``.
    source
        Where the decision came from, for ``humanscape info`` and the log.
    """

    units: str
    scale: float = 1.0
    offset: float = 0.0
    source: str = ""

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Scale float32 ``data`` in place to physical values (NaN stays NaN) and return it."""
        if not self.is_identity:
            data *= np.float32(self.scale)
            data += np.float32(self.offset)
        return data


def to_reflectance(dn: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``DN * scale + offset`` as float32: the one formula from digital numbers to reflectance."""
    return Radiometry("dn", scale, offset).apply(np.asarray(dn, dtype=np.float32).copy())


def declared_units(ds: rasterio.io.DatasetReader, index: int) -> str | None:
    """Units the file records for band ``index`` (1-based): band unit type, else dataset tag."""
    unit = (ds.units[index - 1] or "").strip().lower() if ds.units else ""
    return unit or (ds.tags().get("units") or "").strip().lower() or None


def decide(
    ds: rasterio.io.DatasetReader,
    index: int,
    band: Band,
    sensor: Sensor,
    *,
    units: UnitsOption = "auto",
    path: str | Path | None = None,
) -> Radiometry:
    """The radiometry of band ``index`` (1-based) of the open file ``ds`` (rules in module docstring)."""
    path = path or ds.name
    if band.kind == "qa":
        return Radiometry("class", source="quality band, never scaled")
    declared = declared_units(ds, index)
    if declared in PHYSICAL_UNITS:
        return Radiometry(declared, source=f"file declares {declared}")
    scale, offset = ds.scales[index - 1], ds.offsets[index - 1]
    if (scale, offset) != (1.0, 0.0):
        return Radiometry("dn", float(scale), float(offset), "file scale/offset metadata")
    if units == "reflectance":
        return Radiometry("reflectance", source="--pixel-units reflectance")
    if units == "auto" and declared != "dn" and np.dtype(ds.dtypes[index - 1]).kind == "f":
        if _looks_like_reflectance(ds, index):
            log.info("%s: float band %s holds reflectance-like values; not scaled", path, band.name)
            return Radiometry("reflectance", source="float values in reflectance range")
    if sensor.family == "sentinel2" and (tagged := s2_tag_radiometry(ds, index, band, sensor)):
        return tagged
    if math.isnan(band.scale) or math.isnan(band.offset):
        raise HumanscapeError(
            f"{sensor.description or sensor.name}: band {band.name} has no known scale to reflectance "
            "(Level-1 factors differ by scene)",
            path=path,
            fix="keep the scene's *_MTL.txt beside the band files, or use the Level-2 product",
        )
    return Radiometry("dn", band.scale, band.offset, f"sensor table {sensor.name}")


def s2_tag_radiometry(
    ds: rasterio.io.DatasetReader, index: int, band: Band, sensor: Sensor
) -> Radiometry | None:
    """Scale and offset of a Sentinel-2 band from the file's own tags (rule 5), or None.

    ``reflectance = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE`` (Sentinel-2 Products Specification
    Document); ``ADD_OFFSET`` from ``BOA_ADD_OFFSET`` (L2A) or ``RADIO_ADD_OFFSET`` (L1C), else
    -1000 for ``PROCESSING_BASELINE`` 04.00 and later and 0 before.
    """
    tags = {k.upper(): v for k, v in ds.tags().items()} | {
        k.upper(): v for k, v in ds.tags(index).items()
    }
    quant = float(tags.get("BOA_QUANTIFICATION_VALUE") or tags.get("QUANTIFICATION_VALUE") or 0)
    scale = 1.0 / quant if quant > 0 else band.scale
    for key in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        if key in tags:
            try:
                offset = float(tags[key])
            except ValueError:
                continue
            return Radiometry("dn", scale, offset * scale, f"file tag {key} {offset:g}")
    if "PROCESSING_BASELINE" in tags:
        baseline = str(tags["PROCESSING_BASELINE"])
        try:
            newer = float(baseline) >= 4.0
        except ValueError:
            return None
        offset = -1000.0 if newer else 0.0
        return Radiometry(
            "dn",
            scale,
            offset * scale,
            f"file tag PROCESSING_BASELINE {baseline}: offset {offset:g} DN",
        )
    return None


def _looks_like_reflectance(ds: rasterio.io.DatasetReader, index: int) -> bool:
    """Once per file: the 99th percentile of a decimated read is below 2 (DN are in the thousands)."""
    step = max(1, max(ds.width, ds.height) // 256)
    small = ds.read(
        index,
        out_shape=(max(1, ds.height // step), max(1, ds.width // step)),
        resampling=Resampling.nearest,
        masked=True,
    )
    values = np.asarray(small.compressed(), dtype=np.float64)
    values = values[np.isfinite(values)]
    return values.size == 0 or float(np.percentile(values, 99)) < 2.0
