"""Recognise satellite products as they come: sensor, processing level, baseline, date, scale.

A scene handed to humanscape is a set of files. This module tells what they are, from the
product's own metadata where it is there and from the file and folder names otherwise:

- **Sentinel-2** granule band files (``T33UUU_20170216T102101_B04.jp2``, Level-1C) and Level-2A
  band files (``T33UUU_20230105T101329_B04_10m.jp2`` under ``IMG_DATA/R10m``); product names
  (``S2B_MSIL2A_20230105T101329_N0509_...``) anywhere in the path. The processing baseline and the
  offsets come from the product metadata ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` when it is there
  (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET`` per band, ``QUANTIFICATION_VALUE``): reprocessed
  archives carry the 04.00 offset whatever their acquisition date. Without metadata the baseline
  is taken from the product name, and only when nothing else tells, from the acquisition date
  (with a warning).
- **Landsat** Collection 2 and 1 product IDs (``LC08_L2SP_044034_20200105_20200823_02_T1``: level
  ``L1``/``L2`` and collection ``01``/``02`` read from the ID) and pre-collection scene IDs
  (``LE70350322012177EDC00``, ESPA surface reflectance). Level-1 top-of-atmosphere reflectance
  takes the factors and the sun elevation of the scene's ``_MTL.txt``.

A sensor forced by the user (``--sensor``) must belong to the family the names say (a Landsat B5
is never read as Sentinel-2's red edge B05), and a folder holding two acquisitions of the same
bands is refused with the dates named.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from humanscape.errors import HumanscapeError
from humanscape.geo.sensors import SENSORS, Sensor, get_sensor

log = logging.getLogger(__name__)

_S2_PRODUCT = re.compile(r"S2[ABCD]_MSIL(1C|2A)_(\d{8})T\d{6}_N(\d{4})")
_S2_GRANULE = re.compile(r"T\d{2}[A-Z]{3}_(\d{8})T\d{6}")
_S2_L2A_BAND = re.compile(r"_(?:B\d[\dA]|SCL|AOT|WVP|TCI)_(10|20|60)m$", re.IGNORECASE)
_LANDSAT_ID = re.compile(
    r"L([CTEOM])0([4-9])_L([12])([A-Z]{2})_\d{6}_(\d{8})_\d{8}_(\d{2})_[A-Z0-9]{2}", re.IGNORECASE
)
_LANDSAT_SCENE = re.compile(r"L([CTEO])([4-9])\d{6}(\d{4})(\d{3})[A-Z]{3}\d{2}")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
#: Sentinel-2 metadata ``band_id`` -> band name (Sentinel-2 Products Specification, Table 4).
S2_BAND_IDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: The day processing baseline 04.00 (and its -1000 DN offset) went operational.
S2_BASELINE_0400 = date(2022, 1, 25)


@dataclass(frozen=True)
class Acquisition:
    """What a product, file or folder name tells.

    Attributes
    ----------
    sensor
        Registry key when the name tells it (``sentinel2_l2a``, ``landsat8_oli_l1`` ...).
    date
        Acquisition date.
    family
        Sensor family (``sentinel2``, ``landsat_tm_etm``, ``landsat_oli``).
    baseline_known
        False when a Sentinel-2 processing baseline (hence its offset) is only guessed from the date.
    """

    sensor: str | None
    date: date | None
    family: str | None = None
    baseline_known: bool = True


def parse_acquisition(name: str | Path) -> Acquisition:
    """Read sensor, level and date from a Sentinel-2 or Landsat file name or path.

    The file name is read first, then the folders above it (a band file inside a ``.SAFE`` product
    or a Landsat product folder). Falls back to any ISO date in the file name.
    """
    path = Path(name)
    stem = path.name
    for text in (stem, *(p.name for p in path.parents)):
        if m := _S2_PRODUCT.search(text):
            level, day, baseline = m.groups()
            return Acquisition(_s2_key(level, int(baseline) >= 400), _day(day), "sentinel2")
    if m := _S2_GRANULE.search(stem):
        day = _day(m.group(1))
        level = "2A" if _S2_L2A_BAND.search(Path(stem).stem) else "1C"
        return Acquisition(_s2_key(level, day >= S2_BASELINE_0400), day, "sentinel2", False)
    for text in (stem, *(p.name for p in path.parents)):
        if m := _LANDSAT_ID.search(text):
            letter, mission, level, _, day, collection = m.groups()
            sr = level == "2" or "_sr_" in stem.lower() or stem.lower().startswith("sr_")
            key = _landsat_key(int(mission), int(collection), surface=sr)
            return Acquisition(key, _day(day), _landsat_family(int(mission)))
        if m := _LANDSAT_SCENE.search(text):  # pre-collection scene ID: ESPA surface reflectance
            letter, mission, year, doy = m.groups()
            day = date(int(year), 1, 1) + timedelta(days=int(doy) - 1)
            key = _landsat_key(int(mission), 1, surface=True)
            return Acquisition(key, day, _landsat_family(int(mission)))
    if m := _ISO_DATE.search(stem):
        try:
            return Acquisition(None, date(*map(int, m.groups())))
        except ValueError:
            pass
    return Acquisition(None, None)


def resolution_suffix(path: Path) -> float | None:
    """Pixel size in metres from a Level-2A band file suffix (``_B04_10m`` -> 10), else None."""
    m = _S2_L2A_BAND.search(path.stem)
    return float(m.group(1)) if m else None


@dataclass(frozen=True)
class Product:
    """The sensor table for a set of files (with the scales their metadata gave) and the date."""

    sensor: Sensor
    date: date | None
    evidence: str


def identify(files: Sequence[Path], sensor: str | Sensor | None = None) -> Product:
    """Which product ``files`` (one acquisition) are; see the module docstring.

    Raises a clear error for two acquisitions in one set of files, for a forced sensor of another
    family than the names say, and for Level-1 Landsat without its MTL.
    """
    acqs = [parse_acquisition(f) for f in files]
    _refuse_several_dates(files, acqs)
    named_all = [a for a in acqs if a.sensor]
    # ESPA folders mix Level-1 style names (pixel_qa) with surface reflectance bands: SR wins.
    named = next((a for a in named_all if not a.sensor.endswith("_l1")), None) or next(
        iter(named_all), None
    )
    day = next((a.date for a in acqs if a.date), None)
    if sensor is not None:
        table = get_sensor(sensor)
        if named is not None and named.family and table.family and named.family != table.family:
            raise HumanscapeError(
                f"the file names say {SENSORS[named.sensor].description or named.sensor} "
                f"(e.g. {files[0].name}), but --sensor {table.name} is a {table.family} sensor",
                path=files[0].parent if len(files) > 1 else files[0],
                fix=f"drop --sensor or pass one of the {named.family} sensors "
                f"({', '.join(k for k, s in SENSORS.items() if s.family == named.family)})",
            )
        evidence = f"--sensor {table.name}"
    elif named is not None:
        table = get_sensor(named.sensor)  # type: ignore[arg-type]
        evidence = f"file name {files[0].name}"
    else:
        table, evidence = get_sensor("sentinel2_l1c"), "default (names tell no sensor)"

    if table.family == "sentinel2":
        meta = _s2_metadata(files[0])
        if meta is not None:
            table, evidence = meta, f"product metadata ({meta.description})"
        elif sensor is None and named is not None and not named.baseline_known:
            log.warning(
                "%s: no product metadata (MTD_MSIL*.xml) and no product name; the processing "
                "baseline is assumed from the acquisition date %s (%s). Reprocessed archives differ: "
                "pass --sensor to say it",
                files[0].parent,
                day,
                table.name,
            )
    elif table.needs_metadata:
        table = _landsat_level1(files, table)
        evidence = "scene MTL"
    return Product(table, day, evidence)


def _refuse_several_dates(files: Sequence[Path], acqs: Sequence[Acquisition]) -> None:
    dates = sorted({a.date for a in acqs if a.date is not None})
    if len(dates) > 1:
        raise HumanscapeError(
            f"the files hold {len(dates)} acquisitions ({', '.join(d.isoformat() for d in dates)}); "
            "a scene is one date",
            path=files[0].parent,
            fix="give one folder (or glob) per date; composite several dates with "
            "'humanscape composite'",
        )


def _day(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


def _s2_key(level: str, newer: bool) -> str:
    return {
        ("1C", False): "sentinel2_l1c",
        ("1C", True): "sentinel2_l1c_n0400",
        ("2A", False): "sentinel2_l2a_pre0400",
        ("2A", True): "sentinel2_l2a",
    }[(level, newer)]


def _landsat_family(mission: int) -> str:
    return "landsat_oli" if mission >= 8 else "landsat_tm_etm"


def _landsat_key(mission: int, collection: int, *, surface: bool) -> str | None:
    base = {4: "landsat5_tm", 5: "landsat5_tm", 7: "landsat7_etm", 8: "landsat8_oli"}.get(mission)
    if mission == 9:
        base = "landsat9_oli"
    if base is None:
        return None
    if not surface:
        return f"{base}_l1"
    if collection == 1:
        return f"{base}_c1" if f"{base}_c1" in SENSORS else base
    return base


# --- Sentinel-2 product metadata -----------------------------------------------------------------


def _s2_metadata(band_file: Path, depth: int = 6) -> Sensor | None:
    """The band table from ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` found above ``band_file``."""
    folder = band_file.parent
    for _ in range(depth):
        for name, level in (("MTD_MSIL2A.xml", "2A"), ("MTD_MSIL1C.xml", "1C")):
            if (folder / name).is_file():
                return s2_sensor_from_metadata(folder / name, level)
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def s2_sensor_from_metadata(path: Path, level: str) -> Sensor:
    """Sentinel-2 band table with the offsets and quantification of a product metadata file.

    ``reflectance = (DN + ADD_OFFSET_b) / QUANTIFICATION_VALUE`` per band (Sentinel-2 Products
    Specification Document, L1C and L2A radiometric offsets from baseline 04.00).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise HumanscapeError(
            f"product metadata is not readable XML: {exc}",
            path=path,
            fix="re-download the product (or remove the broken file)",
        ) from exc
    values: dict[str, list[tuple[dict[str, str], str]]] = {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        values.setdefault(tag, []).append((el.attrib, (el.text or "").strip()))
    baseline = values.get("PROCESSING_BASELINE", [({}, "")])[0][1]
    qkey = "BOA_QUANTIFICATION_VALUE" if level == "2A" else "QUANTIFICATION_VALUE"
    okey = "BOA_ADD_OFFSET" if level == "2A" else "RADIO_ADD_OFFSET"
    try:
        quant = float(values[qkey][0][1]) if qkey in values else 10000.0
        offsets = {
            S2_BAND_IDS[int(attrib["band_id"])]: float(text)
            for attrib, text in values.get(okey, [])
        }
    except (ValueError, KeyError, IndexError) as exc:
        raise HumanscapeError(
            f"unexpected {qkey} / {okey} in product metadata: {exc}", path=path
        ) from exc
    newer = bool(offsets) and any(v != 0 for v in offsets.values())
    base = get_sensor(_s2_key(level, newer))
    scales = {
        b.name: (1.0 / quant, offsets.get(b.name, 0.0) / quant)
        for b in base.bands
        if b.kind == "reflectance"
    }
    return base.with_band_scales(
        scales,
        description=f"Sentinel-2 MSI Level-{level}, baseline {baseline or 'unknown'} "
        f"(offset {min(offsets.values(), default=0):g} DN, from {path.name})",
    )


# --- Landsat Level-1 metadata ------------------------------------------------------------------


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """``GROUP -> {KEY: value}`` of a Landsat ``_MTL.txt`` (ODL text)."""
    groups: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            stack = stack[:-1]
        elif value and stack:
            groups.setdefault(stack[-1], {})[key] = value.strip('"')
    return groups


def _landsat_level1(files: Sequence[Path], table: Sensor) -> Sensor:
    """Apply ``REFLECTANCE_MULT/ADD_BAND_n`` and the sun elevation of the scene's MTL."""
    folder = files[0].parent
    local = isinstance(folder, Path)  # a remote band's MTL is not looked up
    mtls = sorted(folder.glob("*_MTL.txt")) + sorted(folder.glob("*_MTL.TXT")) if local else []
    if not mtls:
        raise HumanscapeError(
            f"{table.description}: top-of-atmosphere reflectance needs the scene's *_MTL.txt "
            "(the factors differ by scene and band), and there is none beside the band files",
            path=folder,
            fix="keep the MTL file next to the bands, or use the Level-2 surface reflectance product",
        )
    groups = parse_mtl(mtls[0])
    rescale = next(
        (
            g
            for name, g in groups.items()
            if "RADIOMETRIC_RESCALING" in name and "LEVEL2" not in name
        ),
        {},
    )
    attrs = groups.get("IMAGE_ATTRIBUTES", {})
    try:
        sun = math.sin(math.radians(float(attrs["SUN_ELEVATION"])))
        scales = {}
        for band in table.bands:
            if band.kind != "reflectance":
                continue
            n = band.name[1:]
            mult = float(rescale[f"REFLECTANCE_MULT_BAND_{n}"])
            add = float(rescale[f"REFLECTANCE_ADD_BAND_{n}"])
            scales[band.name] = (mult / sun, add / sun)
    except (KeyError, ValueError) as exc:
        raise HumanscapeError(
            f"MTL lacks the reflectance rescaling factors or the sun elevation ({exc})",
            path=mtls[0],
            fix="use the product's original MTL file",
        ) from exc
    return table.with_band_scales(
        scales, description=f"{table.description}: factors from {mtls[0].name}"
    )
