"""Declarative band tables for the optical sensors humanscape reads.

A sensor is a table of bands, not code (the TorchGeo way): each band has a canonical name, a role
(``blue``, ``red``, ``nir``, ``swir1`` ...), a centre wavelength, a native resolution and the scale
and offset that turn stored digital numbers (DN) into reflectance::

    reflectance = DN * scale + offset

Spectral indices (``humanscape.geo.indices``) ask for roles, never for band numbers, so every index
works on every sensor that has the bands it needs. The table says what a *product's* digital numbers
mean; which scale applies to a given file (a product, or a raster humanscape wrote in reflectance) is
decided in one place, :mod:`humanscape.geo.radiometry`. Which product a set of files is (sensor,
processing level, baseline, date) is read from names and metadata by :mod:`humanscape.geo.products`.

Each sensor has a ``family`` (bands with the same name mean the same thing within a family: Landsat
TM and ETM+ share one) and a ``level``: ``toa`` (top-of-atmosphere reflectance: Sentinel-2 L1C,
Landsat Level-1) or ``surface`` (surface reflectance: Sentinel-2 L2A, Landsat Level-2). Composites
never mix levels.

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
- Landsat Level-1 (Collection 1 and 2): top-of-atmosphere reflectance
  ``(REFLECTANCE_MULT_BAND_n * DN + REFLECTANCE_ADD_BAND_n) / sin(SUN_ELEVATION)`` with the factors of
  each scene's ``_MTL.txt`` (USGS Landsat 8 Data Users Handbook, Sec. 5.1); the table holds no default
  because the factors vary by scene and band.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from humanscape.errors import HumanscapeError, MissingBandError

BandKind = Literal["reflectance", "thermal", "qa"]
#: ``toa``: top-of-atmosphere reflectance; ``surface``: surface (bottom-of-atmosphere) reflectance.
Level = Literal["toa", "surface"]

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
    family
        Sensor family: band names mean the same within one (``sentinel2``, ``landsat_tm_etm``,
        ``landsat_oli``).
    level
        ``toa`` or ``surface`` reflectance (see module docstring).
    needs_metadata
        The DN scale differs by scene (Landsat Level-1): reflectance needs the product's metadata.
    """

    name: str
    bands: tuple[Band, ...]
    nodata: float | None = None
    rgb: tuple[str, str, str] = ("B04", "B03", "B02")
    description: str = ""
    family: str = ""
    level: Level = "toa"
    needs_metadata: bool = False
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
        description: str | None = None,
        level: Level | None = None,
    ) -> Sensor:
        """The same band table with another reflectance scale/offset (e.g. another processing level)."""
        return self.with_band_scales(
            {b.name: (scale, offset) for b in self.bands if b.kind == "reflectance"},
            name=name or f"{self.name}_custom",
            nodata=nodata,
            description=description,
            level=level,
        )

    def with_band_scales(
        self,
        scales: dict[str, tuple[float, float]],
        *,
        name: str | None = None,
        nodata: float | None = None,
        description: str | None = None,
        level: Level | None = None,
    ) -> Sensor:
        """The same band table with ``(scale, offset)`` per band name (from a product's metadata)."""
        bands = tuple(
            replace(b, scale=scales[b.name][0], offset=scales[b.name][1]) if b.name in scales else b
            for b in self.bands
        )
        return replace(
            self,
            name=name or self.name,
            bands=bands,
            nodata=self.nodata if nodata is None else nodata,
            description=self.description if description is None else description,
            level=self.level if level is None else level,
            needs_metadata=self.needs_metadata and not scales,
        )


#: Band order of 13 unnamed Sentinel-2 layers in EuroSAT MS (Helber et al. 2019) and the chip
#: collections that copy it: B01..B12, then B8A. ESA products and Earth Engine exports put B8A
#: after B08 (the order of the band tables below); the readers tell the two apart.
EUROSAT_MS_ORDER = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip


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
    family="sentinel2",
    level="toa",
)
SENTINEL2_L1C_N0400 = Sensor(
    name="sentinel2_l1c_n0400",
    bands=(*_s2_bands(-0.1), Band("QA60", "qa", float("nan"), 60, "qa")),
    nodata=0,
    description="Sentinel-2 MSI Level-1C, processing baseline 04.00+ (RADIO_ADD_OFFSET -1000)",
    family="sentinel2",
    level="toa",
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
    family="sentinel2",
    level="surface",
)
SENTINEL2_L2A_PRE0400 = Sensor(
    name="sentinel2_l2a_pre0400",
    bands=(
        *(b for b in _s2_bands(0.0) if b.name != "B10"),
        Band("SCL", "qa", float("nan"), 20, "qa"),
    ),
    nodata=0,
    description="Sentinel-2 MSI Level-2A surface reflectance, processing baseline < 04.00",
    family="sentinel2",
    level="surface",
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
    description="Landsat 4-5 TM, Collection 2 Level-2 surface reflectance",
    family="landsat_tm_etm",
    level="surface",
)
LANDSAT7_ETM = Sensor(
    name="landsat7_etm",
    bands=_landsat(_ETM, ("B6", 11335.0, 60)),
    nodata=0,
    rgb=("B3", "B2", "B1"),
    description="Landsat 7 ETM+, Collection 2 Level-2 surface reflectance",
    family="landsat_tm_etm",
    level="surface",
)
LANDSAT8_OLI = Sensor(
    name="landsat8_oli",
    bands=_landsat(_OLI, ("B10", 10895.0, 100)),
    nodata=0,
    rgb=("B4", "B3", "B2"),
    description="Landsat 8 OLI/TIRS, Collection 2 Level-2 surface reflectance",
    family="landsat_oli",
    level="surface",
)
LANDSAT9_OLI = replace(
    LANDSAT8_OLI,
    name="landsat9_oli",
    description="Landsat 9 OLI-2/TIRS-2, Collection 2 Level-2 surface reflectance",
)


def _collection1(sensor: Sensor, name: str, label: str) -> Sensor:
    """ESPA Collection 1 surface reflectance: DN x 1e-4, nodata -9999."""
    return sensor.with_scale(
        1e-4,
        0.0,
        name=name,
        nodata=-9999,
        description=f"{label}, Collection 1 surface reflectance (ESPA)",
    )


LANDSAT5_TM_C1 = _collection1(LANDSAT5_TM, "landsat5_tm_c1", "Landsat 4-5 TM")
LANDSAT7_ETM_C1 = _collection1(LANDSAT7_ETM, "landsat7_etm_c1", "Landsat 7 ETM+")
LANDSAT8_OLI_C1 = _collection1(LANDSAT8_OLI, "landsat8_oli_c1", "Landsat 8 OLI")


def _level1(sensor: Sensor, name: str, description: str) -> Sensor:
    """Level-1 (top-of-atmosphere) variant: reflectance factors come from each scene's MTL."""
    unknown = (float("nan"), float("nan"))
    table = sensor.with_band_scales(
        {b.name: unknown for b in sensor.bands if b.kind != "qa"}, name=name, nodata=0, level="toa"
    )
    return replace(table, description=description, needs_metadata=True)


LANDSAT5_TM_L1 = _level1(LANDSAT5_TM, "landsat5_tm_l1", "Landsat 4-5 TM Level-1 (TOA, MTL factors)")
LANDSAT7_ETM_L1 = _level1(
    LANDSAT7_ETM, "landsat7_etm_l1", "Landsat 7 ETM+ Level-1 (TOA, MTL factors)"
)
LANDSAT8_OLI_L1 = _level1(
    LANDSAT8_OLI, "landsat8_oli_l1", "Landsat 8 OLI Level-1 (TOA, MTL factors)"
)
LANDSAT9_OLI_L1 = _level1(
    LANDSAT9_OLI, "landsat9_oli_l1", "Landsat 9 OLI-2 Level-1 (TOA, MTL factors)"
)

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
        LANDSAT8_OLI_C1,
        LANDSAT5_TM_L1,
        LANDSAT7_ETM_L1,
        LANDSAT8_OLI_L1,
        LANDSAT9_OLI_L1,
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
