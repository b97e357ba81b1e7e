"""Declarative band tables for the optical sensors humanscape reads.

A sensor is a table of bands, not code (the TorchGeo way): each band has a canonical name, a role
(``blue``, ``red``, ``nir``, ``swir1`` ...), a centre wavelength, a native resolution and the scale
and offset that turn stored digital numbers (DN) into reflectance::

    reflectance = DN * scale + offset

Spectral indices (``humanscape.geo.indices``) ask for roles, never for band numbers, so every index
works on every sensor that has the bands it needs.

Sources
-------
- Sentinel-2 MSI: ESA Sentinel-2 User Handbook (2015), Table 1 (S2A centre wavelengths) and the
  Level-1C / Level-2A product specifications. From processing baseline 04.00 (25 January 2022) the
  products carry ``BOA_ADD_OFFSET`` (L2A) / ``RADIO_ADD_OFFSET`` (L1C) = -1000 DN, i.e.
  ``reflectance = (DN - 1000) / 10000``.
- Landsat 4-5 TM, 7 ETM+, 8-9 OLI/TIRS: USGS Landsat Collection 2 Level-2 Science Product Guide:
  surface reflectance ``DN * 2.75e-5 - 0.2``, surface temperature ``DN * 0.00341802 + 149.0`` K.
- Landsat Collection 1 surface reflectance (ESPA, as in the shipped Colorado series): ``DN * 1e-4``,
  nodata -9999.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Literal

import numpy as np

from humanscape.errors import HumanscapeError, MissingBandError

BandKind = Literal["reflectance", "thermal", "qa"]

#: Band roles understood by the indices. ``nir`` is the broad NIR band (S2 B08, OLI B5, TM B4).
ROLES = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir_narrow",
    "water_vapour",
    "cirrus",
    "swir1",
    "swir2",
    "thermal",
    "qa",
)


@dataclass(frozen=True)
class Band:
    """One band of a sensor.

    Attributes
    ----------
    name
        Canonical band name, e.g. ``"B04"`` (Sentinel-2) or ``"B4"`` (Landsat).
    role
        Spectral role used by indices (see :data:`ROLES`), or ``None``.
    wavelength_nm
        Centre wavelength in nanometres (``nan`` for QA bands).
    resolution_m
        Native ground sampling distance in metres.
    kind
        ``reflectance`` (continuous, resampled bilinearly), ``thermal`` (continuous), or ``qa``
        (categorical or bit-packed: always resampled with nearest neighbour, never scaled).
    scale, offset
        ``physical = DN * scale + offset``.
    aliases
        Other spellings found in file names (``b4``, ``SR_B4``, ``fmask`` ...), case-insensitive.
    """

    name: str
    role: str | None
    wavelength_nm: float
    resolution_m: float
    kind: BandKind = "reflectance"
    scale: float = 1.0
    offset: float = 0.0
    aliases: tuple[str, ...] = ()

    def spellings(self) -> tuple[str, ...]:
        """All lower-case names under which this band may appear in a file name."""
        names = {self.name.lower(), *(a.lower() for a in self.aliases)}
        match = re.fullmatch(r"b0?(\d{1,2})(a?)", self.name.lower())
        if match:  # B04 <-> B4, B8A <-> B8a
            num, suffix = match.groups()
            names |= {f"b{num}{suffix}", f"b{int(num):02d}{suffix}"}
        return tuple(sorted(names))


@dataclass(frozen=True)
class Sensor:
    """A declarative band table.

    Attributes
    ----------
    name
        Registry key, e.g. ``"sentinel2_l1c"``.
    bands
        Bands in the sensor's canonical order.
    nodata
        The DN that marks missing data in the product (``None`` if the product has none).
    rgb
        Band names for a true-colour quicklook.
    description
        Human-readable product name.
    """

    name: str
    bands: tuple[Band, ...]
    nodata: float | None = None
    rgb: tuple[str, str, str] = ("B04", "B03", "B02")
    description: str = ""
    _by_key: dict[str, Band] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup: dict[str, Band] = {}
        for band in self.bands:
            for spelling in band.spellings():
                lookup[spelling] = band
        object.__setattr__(self, "_by_key", lookup)

    @property
    def band_names(self) -> list[str]:
        """Canonical band names in order."""
        return [b.name for b in self.bands]

    @property
    def reflectance_bands(self) -> list[str]:
        """Names of the reflectance bands (no thermal, no QA)."""
        return [b.name for b in self.bands if b.kind == "reflectance"]

    def band(self, key: str) -> Band:
        """Look up a band by name or alias (``"B4"``, ``"b04"``, ``"SR_B4"``) or by role (``"red"``)."""
        found = self.find(key)
        if found is None:
            raise MissingBandError(
                f"sensor {self.name} has no band or role '{key}'",
                fix=f"use one of {', '.join(self.band_names)} or roles "
                f"{', '.join(sorted(self.roles()))}",
            )
        return found

    def find(self, key: str) -> Band | None:
        """Like :meth:`band` but returns ``None`` when nothing matches."""
        low = key.lower()
        if low in self._by_key:
            return self._by_key[low]
        for band in self.bands:
            if band.role == low:
                return band
        return None

    def roles(self) -> dict[str, str]:
        """Mapping role -> band name for every band that has a role."""
        return {b.role: b.name for b in self.bands if b.role}

    def with_scale(
        self,
        scale: float,
        offset: float = 0.0,
        *,
        name: str | None = None,
        nodata: float | None = None,
    ) -> Sensor:
        """The same band table with another reflectance scale/offset (e.g. another processing level)."""
        bands = tuple(
            replace(b, scale=scale, offset=offset) if b.kind == "reflectance" else b
            for b in self.bands
        )
        return Sensor(
            name=name or f"{self.name}_custom",
            bands=bands,
            nodata=self.nodata if nodata is None else nodata,
            rgb=self.rgb,
            description=self.description,
        )

    def to_reflectance(self, dn: np.ndarray, band_names: list[str]) -> np.ndarray:
        """Scale a ``(bands, ...)`` DN array to physical values, float32; nodata becomes NaN.

        Implements ``reflectance = DN * scale + offset`` per band (see module docstring).
        """
        out = dn.astype(np.float32, copy=True)
        for i, name in enumerate(band_names):
            band = self.band(name)
            if self.nodata is not None:
                out[i][dn[i] == self.nodata] = np.nan
            if band.kind != "qa":
                out[i] *= np.float32(band.scale)
                out[i] += np.float32(band.offset)
        return out


def _s2_bands(offset: float) -> tuple[Band, ...]:
    # (name, role, centre wavelength S2A nm, resolution m); ESA Sentinel-2 User Handbook, Table 1.
    table = [
        ("B01", "coastal", 442.7, 60),
        ("B02", "blue", 492.4, 10),
        ("B03", "green", 559.8, 10),
        ("B04", "red", 664.6, 10),
        ("B05", "rededge1", 704.1, 20),
        ("B06", "rededge2", 740.5, 20),
        ("B07", "rededge3", 782.8, 20),
        ("B08", "nir", 832.8, 10),
        ("B8A", "nir_narrow", 864.7, 20),
        ("B09", "water_vapour", 945.1, 60),
        ("B10", "cirrus", 1373.5, 60),
        ("B11", "swir1", 1613.7, 20),
        ("B12", "swir2", 2202.4, 20),
    ]
    return tuple(Band(n, r, w, res, "reflectance", 1e-4, offset) for n, r, w, res in table)


SENTINEL2_L1C = Sensor(
    name="sentinel2_l1c",
    bands=(*_s2_bands(0.0), Band("QA60", "qa", float("nan"), 60, "qa")),
    nodata=0,
    description="Sentinel-2 MSI Level-1C top-of-atmosphere reflectance (baseline < 04.00)",
)
SENTINEL2_L1C_N0400 = Sensor(
    name="sentinel2_l1c_n0400",
    bands=(*_s2_bands(-0.1), Band("QA60", "qa", float("nan"), 60, "qa")),
    nodata=0,
    description="Sentinel-2 MSI Level-1C, processing baseline 04.00+ (RADIO_ADD_OFFSET -1000)",
)
SENTINEL2_L2A = Sensor(
    name="sentinel2_l2a",
    bands=(
        *(b for b in _s2_bands(-0.1) if b.name != "B10"),  # L2A has no cirrus band
        Band("SCL", "qa", float("nan"), 20, "qa"),
    ),
    nodata=0,
    description="Sentinel-2 MSI Level-2A surface reflectance, processing baseline 04.00+ "
    "(BOA_ADD_OFFSET -1000)",
)
SENTINEL2_L2A_PRE0400 = Sensor(
    name="sentinel2_l2a_pre0400",
    bands=(
        *(b for b in _s2_bands(0.0) if b.name != "B10"),
        Band("SCL", "qa", float("nan"), 20, "qa"),
    ),
    nodata=0,
    description="Sentinel-2 MSI Level-2A surface reflectance, processing baseline < 04.00",
)

_C2_SR = (2.75e-5, -0.2)
_C2_ST = (0.00341802, 149.0)
_LANDSAT_QA = (
    Band("QA_PIXEL", "qa", float("nan"), 30, "qa", aliases=("pixel_qa", "qa")),
    Band("FMASK", None, float("nan"), 30, "qa", aliases=("cfmask",)),
)


def _landsat(
    table: list[tuple[str, str, float, float]], thermal: tuple[str, float, float]
) -> tuple[Band, ...]:
    sr_scale, sr_offset = _C2_SR
    bands = [
        Band(
            n, r, w, res, "reflectance", sr_scale, sr_offset, aliases=(f"SR_{n}", f"sr_band{n[1:]}")
        )
        for n, r, w, res in table
    ]
    name, wavelength, res = thermal
    bands.append(
        Band(
            name,
            "thermal",
            wavelength,
            res,
            "thermal",
            _C2_ST[0],
            _C2_ST[1],
            aliases=(f"ST_{name}",),
        )
    )
    return (*bands, *_LANDSAT_QA)


_TM = [
    ("B1", "blue", 485.0, 30),
    ("B2", "green", 560.0, 30),
    ("B3", "red", 660.0, 30),
    ("B4", "nir", 830.0, 30),
    ("B5", "swir1", 1650.0, 30),
    ("B7", "swir2", 2215.0, 30),
]
_ETM = [
    ("B1", "blue", 477.0, 30),
    ("B2", "green", 560.0, 30),
    ("B3", "red", 661.0, 30),
    ("B4", "nir", 835.0, 30),
    ("B5", "swir1", 1648.0, 30),
    ("B7", "swir2", 2206.0, 30),
]
_OLI = [
    ("B1", "coastal", 443.0, 30),
    ("B2", "blue", 482.0, 30),
    ("B3", "green", 561.4, 30),
    ("B4", "red", 654.6, 30),
    ("B5", "nir", 864.7, 30),
    ("B6", "swir1", 1608.9, 30),
    ("B7", "swir2", 2200.7, 30),
]

LANDSAT5_TM = Sensor(
    name="landsat5_tm",
    bands=_landsat(_TM, ("B6", 11450.0, 120)),
    nodata=0,
    rgb=("B3", "B2", "B1"),
    description="Landsat 4-5 TM, Collection 2 Level-2",
)
LANDSAT7_ETM = Sensor(
    name="landsat7_etm",
    bands=_landsat(_ETM, ("B6", 11335.0, 60)),
    nodata=0,
    rgb=("B3", "B2", "B1"),
    description="Landsat 7 ETM+, Collection 2 Level-2",
)
LANDSAT8_OLI = Sensor(
    name="landsat8_oli",
    bands=_landsat(_OLI, ("B10", 10895.0, 100)),
    nodata=0,
    rgb=("B4", "B3", "B2"),
    description="Landsat 8 OLI/TIRS, Collection 2 Level-2",
)
LANDSAT9_OLI = replace(
    LANDSAT8_OLI, name="landsat9_oli", description="Landsat 9 OLI-2/TIRS-2, Collection 2 Level-2"
)
LANDSAT5_TM_C1 = LANDSAT5_TM.with_scale(1e-4, 0.0, name="landsat5_tm_c1", nodata=-9999)
LANDSAT7_ETM_C1 = LANDSAT7_ETM.with_scale(1e-4, 0.0, name="landsat7_etm_c1", nodata=-9999)

SENSORS: dict[str, Sensor] = {
    s.name: s
    for s in (
        SENTINEL2_L1C,
        SENTINEL2_L1C_N0400,
        SENTINEL2_L2A,
        SENTINEL2_L2A_PRE0400,
        LANDSAT5_TM,
        LANDSAT7_ETM,
        LANDSAT8_OLI,
        LANDSAT9_OLI,
        LANDSAT5_TM_C1,
        LANDSAT7_ETM_C1,
    )
}


def get_sensor(name: str | Sensor) -> Sensor:
    """Return a registered sensor by name (``sentinel2_l1c``, ``landsat8_oli`` ...)."""
    if isinstance(name, Sensor):
        return name
    key = name.lower().replace("-", "_")
    if key not in SENSORS:
        raise HumanscapeError(f"unknown sensor '{name}'", fix=f"use one of {', '.join(SENSORS)}")
    return SENSORS[key]


# --- acquisition metadata from product / file names -------------------------------------------

_S2_NAME = re.compile(r"T\d{2}[A-Z]{3}_(\d{8})T\d{6}")
_S2_PRODUCT = re.compile(r"S2[ABC]_MSIL(1C|2A)_(\d{8})T\d{6}_N(\d{4})")
_LANDSAT_C2 = re.compile(r"L([CTEO])0([4-9])_L[12][A-Z]{2}_\d{6}_(\d{8})_\d{8}_\d{2}_[A-Z0-9]{2}")
_LANDSAT_C1 = re.compile(r"L([CTEO])([4-9])\d{6}(\d{4})(\d{3})[A-Z]{3}\d{2}")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass(frozen=True)
class Acquisition:
    """What a product or file name tells: sensor registry key (if known) and acquisition date."""

    sensor: str | None
    date: date | None


def parse_acquisition(name: str) -> Acquisition:
    """Read the sensor and the acquisition date from a Sentinel-2 or Landsat file/product name.

    Recognises Sentinel-2 product names (``S2A_MSIL2A_20200101T...``, with the processing baseline
    deciding the offset), Sentinel-2 granule band files (``T33UUU_20170216T102101_B04.jp2``),
    Landsat Collection 2 (``LC08_L2SP_...``) and Collection 1 / pre-collection scene IDs
    (``LE70350322012177EDC00``: year + day of year). Falls back to any ISO date in the name.
    """
    stem = name.rsplit("/", 1)[-1]
    if m := _S2_PRODUCT.search(stem):
        level, day, baseline = m.groups()
        newer = int(baseline) >= 400
        key = {
            ("1C", False): "sentinel2_l1c",
            ("1C", True): "sentinel2_l1c_n0400",
            ("2A", False): "sentinel2_l2a_pre0400",
            ("2A", True): "sentinel2_l2a",
        }[(level, newer)]
        return Acquisition(key, datetime.strptime(day, "%Y%m%d").date())
    if m := _S2_NAME.search(stem):
        day = datetime.strptime(m.group(1), "%Y%m%d").date()
        return Acquisition(
            "sentinel2_l1c" if day < date(2022, 1, 25) else "sentinel2_l1c_n0400", day
        )
    if m := _LANDSAT_C2.search(stem):
        letter, mission, day = m.groups()
        return Acquisition(
            _landsat_key(letter, mission, c1=False), datetime.strptime(day, "%Y%m%d").date()
        )
    if m := _LANDSAT_C1.search(stem):
        letter, mission, year, doy = m.groups()
        day = date(int(year), 1, 1) + timedelta(days=int(doy) - 1)
        return Acquisition(_landsat_key(letter, mission, c1=True), day)
    if m := _ISO_DATE.search(stem):
        try:
            return Acquisition(None, date(*map(int, m.groups())))
        except ValueError:
            pass
    return Acquisition(None, None)


def _landsat_key(letter: str, mission: str, *, c1: bool) -> str | None:
    mission_no = int(mission)
    if mission_no in (4, 5):
        return "landsat5_tm_c1" if c1 else "landsat5_tm"
    if mission_no == 7:
        return "landsat7_etm_c1" if c1 else "landsat7_etm"
    if mission_no == 8:
        return "landsat8_oli"
    if mission_no == 9:
        return "landsat9_oli"
    return None
