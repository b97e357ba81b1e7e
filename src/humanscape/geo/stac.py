"""STAC input (issue 24): a STAC Item, an ItemCollection saved from a search, or a static catalog,
read as scenes.

pystac reads the JSON (relative hrefs resolved against the file, catalogs walked recursively).
Items repeated across the pages of a search are kept once. Each item's assets are matched to the
sensor's bands by their ``eo:bands`` name, the asset key, the common name where it names one band,
then the centre wavelength (within 20 nm): Earth Search names assets ``red``, ``rededge1``,
``nir08``, ``scl``; Planetary Computer ``B04``, ``B05``, ``SCL``. hrefs go to GDAL as given
(:class:`~humanscape.geo.files.GdalPath`: ``/vsicurl/`` for http(s), ``/vsis3/`` for ``s3://``,
a signed URL's query string kept), so only the windows a command reads are fetched.

Several items of one date (tiles of one pass) are mosaicked per band through a GDAL VRT (same CRS
and pixel size, refused otherwise, naming both); several dates are several scenes, in date order
(what ``composite`` takes).

Radiometry of Sentinel-2 assets (:func:`s2_offset`): the DN -> reflectance scale is the asset's
``raster:bands`` scale (else 1e-4); the offset comes from the processing baseline (property
``s2:processing_baseline``, else the ``_N0400_`` of the product id, else the date: baseline 04.00
went operational on 2022-01-25) and Earth Search's ``earthsearch:boa_offset_applied`` flag, once:
baseline 03.xx has no offset; 04.00 and later stores ``DN = 10000 * reflectance + 1000`` unless the
flag says the +1000 was already removed (harmonised files). The ``raster:bands`` offset is not
added on top (stackstac 0.5 applies it itself; a reader that did both would subtract 0.2); where it
disagrees with the decision, ``info`` says so. Other sensors use ``raster:bands`` scale and offset
(Landsat Collection 2: 2.75e-5 and -0.2); an asset without them is refused with the units asked
for (``--pixel-units dn`` takes the sensor table, ``reflectance`` the values as they are): Level-1
and Level-2 products of one platform scale differently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from humanscape.errors import EmptyInputError, HumanscapeError, MissingBandError
from humanscape.geo.files import GdalPath, input_path, is_remote, open_raster
from humanscape.geo.grid import GridSpec
from humanscape.geo.products import S2_BASELINE_0400
from humanscape.geo.radiometry import PHYSICAL_UNITS, Radiometry, UnitsOption, declared_units
from humanscape.geo.scene import BandSource
from humanscape.geo.sensors import Band, Sensor, get_sensor

log = logging.getLogger(__name__)

#: File suffixes of STAC documents.
STAC_SUFFIXES = (".json", ".geojson")
#: Largest gap between an asset's centre wavelength and a band's for a match (nm).
WAVELENGTH_TOLERANCE_NM = 20.0
#: Where mosaics of several items are written (content-addressed VRTs).
VRT_DIR = Path(tempfile.gettempdir()) / "humanscape-stac"


def is_stac(item: str | Path) -> bool:
    """Whether an input names a STAC document (a ``.json`` / ``.geojson`` file or URL)."""
    text = str(item).split("?", 1)[0].lower()
    return text.endswith(STAC_SUFFIXES)


def read_items(source: str | Path) -> list[Any]:
    """The items of a STAC Item, ItemCollection, Catalog or Collection (pystac), each once."""
    import pystac

    href = str(source)
    label = href
    try:
        if is_remote(href):
            data = json.loads(pystac.StacIO.default().read_text(href))
        else:
            path = Path(href)
            if not path.exists():
                raise EmptyInputError("STAC file not found", path=path, fix="check the path")
            data = json.loads(path.read_text())
            href = str(path.resolve())
    except (OSError, ValueError) as exc:
        raise HumanscapeError(
            f"not a readable STAC document ({type(exc).__name__}: {exc})",
            path=label,
            fix="give a STAC Item, an ItemCollection saved from a search, or a catalog.json",
        ) from None
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "Feature":
            items = [pystac.Item.from_dict(data, href=href)]
        elif kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
            for item in items:  # relative asset hrefs resolve against the collection file
                if item.get_self_href() is None:
                    item.set_self_href(href)
        elif kind in ("Catalog", "Collection"):
            catalog = pystac.read_dict(data, href=href)
            items = list(catalog.get_items(recursive=True))
        else:
            raise HumanscapeError(
                f"JSON of type {kind!r} is not a STAC Item, ItemCollection or catalog",
                path=label,
                fix="give a STAC Item, an ItemCollection saved from a search, or a catalog.json",
            )
    except pystac.STACError as exc:
        raise HumanscapeError(f"not a valid STAC document: {exc}", path=label) from None
    unique: dict[str, Any] = {}
    for item in items:
        unique.setdefault(item.id, item)
    if len(unique) < len(items):
        log.info("%s: %d items repeated (search pages); kept once", label, len(items) - len(unique))
    if not unique:
        raise EmptyInputError("STAC document holds no item", path=label, fix="check the search")
    return list(unique.values())


def item_date(item: Any) -> date:
    """The acquisition date of an item (``datetime``, else ``start_datetime``)."""
    moment = item.datetime or item.common_metadata.start_datetime
    if moment is None:
        raise HumanscapeError(f"item {item.id} has no datetime", fix="give items with a date")
    return moment.date()


# --- sensors and radiometry ------------------------------------------------------------------


def _baseline(item: Any) -> str | None:
    """The Sentinel-2 processing baseline ``NN.NN`` of an item, when it says."""
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version"):
        if props.get(key):
            return str(props[key])
    for text in (item.id, str(props.get("s2:product_uri", ""))):
        found = re.search(r"_N(\d{2})(\d{2})_", text)
        if found:
            return f"{found.group(1)}.{found.group(2)}"
    return None


def _s2_level(item: Any) -> str | None:
    """``1C`` / ``2A`` of a Sentinel-2 item; None for another platform."""
    props = item.properties
    platform = str(props.get("platform", "")) + " " + str(props.get("constellation", ""))
    collection = (item.collection_id or "").lower()
    if "sentinel-2" not in platform.lower() and "sentinel-2" not in collection:
        return None
    text = " ".join(
        str(props.get(k, "")) for k in ("s2:product_type", "processing:level", "s2:product_uri")
    )
    text = f"{text} {collection} {item.id}".upper().replace("-", "")
    if "L2A" in text or "MSI2A" in text:
        return "2A"
    if "L1C" in text or "MSI1C" in text:
        return "1C"
    return None


@dataclass(frozen=True)
class OffsetDecision:
    """The additive DN offset of a Sentinel-2 item and why (``reflectance = (DN + offset) * scale``)."""

    offset_dn: float
    baseline: str | None
    reason: str


def s2_offset(item: Any) -> OffsetDecision:
    """The BOA / radiometric offset of a Sentinel-2 item, decided once (module docstring)."""
    baseline = _baseline(item)
    flag = item.properties.get("earthsearch:boa_offset_applied")
    if baseline is not None:
        try:
            newer = float(baseline) >= 4.0
        except ValueError:
            newer = item_date(item) >= S2_BASELINE_0400
        source = f"baseline {baseline}"
    else:
        newer = item_date(item) >= S2_BASELINE_0400
        source = f"no baseline given; acquired {item_date(item)} ({'after' if newer else 'before'} 2022-01-25)"
    if not newer:
        return OffsetDecision(0.0, baseline, f"{source}: no offset")
    if flag is True:
        return OffsetDecision(
            0.0, baseline, f"{source}, earthsearch:boa_offset_applied true: offset already removed"
        )
    said = ", earthsearch:boa_offset_applied false" if flag is False else ""
    return OffsetDecision(-1000.0, baseline, f"{source}{said}: offset -1000 DN")


def item_sensor(item: Any, forced: str | Sensor | None = None) -> tuple[Sensor, str]:
    """The band table of an item and the evidence: Sentinel-2 from platform and level (the offset
    folded in by :func:`s2_offset`), Landsat from the platform; ``forced`` wins within its family."""
    level = _s2_level(item)
    platform = str(item.properties.get("platform", "")).lower()
    if forced is not None:
        sensor = get_sensor(forced)
        if level is not None and sensor.family != "sentinel2":
            raise HumanscapeError(
                f"item {item.id} is Sentinel-2 ({platform}), but --sensor {sensor.name} is "
                f"{sensor.family}",
                fix="drop --sensor",
            )
        return sensor, f"--sensor {sensor.name}"
    if level is not None:
        key = "sentinel2_l2a" if level == "2A" else "sentinel2_l1c"
        return get_sensor(key), f"STAC platform {platform or 'sentinel-2'}, level {level}"
    for mission, key in (("9", "landsat9_oli"), ("8", "landsat8_oli"), ("7", "landsat7_etm")):
        if platform in (f"landsat-{mission}", f"landsat_{mission}", f"landsat{mission}"):
            return get_sensor(key), f"STAC platform {platform}"
    if platform in ("landsat-5", "landsat_5", "landsat5"):
        return get_sensor("landsat5_tm"), f"STAC platform {platform}"
    raise HumanscapeError(
        f"item {item.id}: platform {platform or '(none)'} is not a sensor humanscape knows",
        fix="pass --sensor (sentinel2_l1c, sentinel2_l2a, landsat8_oli, ...)",
    )


def _asset_band_info(asset: Any) -> list[dict[str, Any]]:
    fields = asset.extra_fields
    return list(fields.get("eo:bands") or fields.get("bands") or [])


def _match(asset_key: str, asset: Any, sensor: Sensor) -> Band | None:
    """The sensor band an asset holds (single-band assets only)."""
    info = _asset_band_info(asset)
    if len(info) > 1:
        return None
    entry = info[0] if info else {}
    for key in (entry.get("name"), asset_key):
        if key and (band := sensor.find(str(key))) is not None:
            return band
    common = entry.get("common_name") or entry.get("eo:common_name")
    if common:
        hits = [b for b in sensor.bands if b.role == str(common).lower()]
        if len(hits) == 1:
            return hits[0]
    wavelength = entry.get("center_wavelength") or entry.get("eo:center_wavelength")
    if wavelength:
        nm = float(wavelength) * (1000.0 if float(wavelength) < 20 else 1.0)
        near = [
            b
            for b in sensor.bands
            if not math.isnan(b.wavelength_nm)
            and abs(b.wavelength_nm - nm) <= WAVELENGTH_TOLERANCE_NM
        ]
        if near:
            return min(near, key=lambda b: abs(b.wavelength_nm - nm))
    return None


def item_assets(item: Any, sensor: Sensor) -> dict[str, tuple[str, Any]]:
    """Band name -> (asset key, asset) of an item's raster assets; the first asset of a band wins
    (Earth Search lists JP2 copies after the COGs, ``*-jp2``)."""
    out: dict[str, tuple[str, Any]] = {}
    for key, asset in item.assets.items():
        roles = asset.roles or []
        if "thumbnail" in roles or "overview" in roles or "metadata" in roles:
            continue
        if asset.media_type and "image/" not in asset.media_type:
            continue
        band = _match(key, asset, sensor)
        if band is not None and band.name not in out and not key.endswith("-jp2"):
            out[band.name] = (key, asset)
    return out


def asset_radiometry(
    item: Any, asset: Any, band: Band, sensor: Sensor, units: UnitsOption, declared: str | None
) -> Radiometry:
    """Units, scale and offset of one asset (module docstring: Sentinel-2 offset once)."""
    if band.kind == "qa":
        return Radiometry("class", source="quality band, never scaled")
    if declared in PHYSICAL_UNITS:
        return Radiometry(declared, source=f"file declares {declared}")
    raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
    stac_scale, stac_offset = raster.get("scale"), raster.get("offset")
    if sensor.family == "sentinel2":
        decision = s2_offset(item)
        scale = float(stac_scale) if stac_scale else 1e-4
        offset = decision.offset_dn * scale
        note = ""
        if stac_offset is not None and not math.isclose(float(stac_offset), offset, abs_tol=1e-9):
            note = f"; raster:bands offset {float(stac_offset):g} not used"
        return Radiometry("dn", scale, offset, f"STAC {decision.reason}{note}")
    if stac_scale is not None:
        return Radiometry(
            "dn", float(stac_scale), float(stac_offset or 0.0), "STAC raster:bands scale/offset"
        )
    if units == "reflectance":
        return Radiometry("reflectance", source="--pixel-units reflectance")
    if units != "dn" or math.isnan(band.scale):
        table = (
            f"--pixel-units dn to use the {sensor.name} table ({band.scale:g}, {band.offset:g})"
            if not math.isnan(band.scale)
            else "raster:bands scale / offset in the item"
        )
        raise HumanscapeError(
            f"asset of band {band.name} of item {item.id} has no raster:bands scale: its units "
            "are unknown (Level-1 and Level-2 products of one platform scale differently)",
            fix=f"give {table}, or --pixel-units reflectance if it holds reflectance",
        )
    return Radiometry(
        "dn", band.scale, band.offset, f"--pixel-units dn: sensor table {sensor.name}"
    )


def check_offset_removed(ds: Any, radiometry: Radiometry, item_id: str) -> Radiometry:
    """Earth Search's ``boa_offset_applied`` flag is wrong on some items. Where it says the +1000
    was removed, the blue band (B02) of a scene with any water, shadow or dense vegetation holds
    values below 1000 DN; if the darkest 1 % of an overview read is still at or above 1000, the
    flag is doubted in the log and in ``info`` (the decision stays: a bright scene, snow or desert,
    can look the same)."""
    import numpy as np
    from rasterio.enums import Resampling

    step = max(1, max(ds.width, ds.height) // 256)
    small = ds.read(
        1,
        out_shape=(max(1, ds.height // step), max(1, ds.width // step)),
        resampling=Resampling.nearest,
        masked=True,
    )
    values = np.asarray(small.compressed(), dtype=np.float64)
    values = values[values > 0]
    if values.size and float(np.percentile(values, 1)) >= 1000:
        note = (
            f"; doubted: the darkest 1 % of B02 is {np.percentile(values, 1):.0f} DN or more, as "
            "if the +1000 were still in the files"
        )
        log.warning("item %s: boa_offset_applied is true%s", item_id, note)
        return Radiometry(
            radiometry.units, radiometry.scale, radiometry.offset, radiometry.source + note
        )
    return radiometry


# --- scenes ------------------------------------------------------------------------------------


@dataclass
class StacDate:
    """The band sources of the items of one date, on their grids, and what was decided."""

    day: date
    sensor: Sensor
    sources: list[tuple[BandSource, GridSpec]]
    items: list[str]
    evidence: str


def _href(asset: Any) -> Path | GdalPath:
    href = asset.get_absolute_href() or asset.href
    return input_path(href) if is_remote(href) else Path(href)


def group_by_date(
    items: Sequence[Any],
    *,
    sensor: str | Sensor | None = None,
    bands: Sequence[str] | None = None,
    units: UnitsOption = "auto",
) -> list[StacDate]:
    """Band sources per acquisition date (several items of a date mosaicked), in date order."""
    by_day: dict[date, list[Any]] = {}
    for item in items:
        by_day.setdefault(item_date(item), []).append(item)
    out = []
    sensor_names: set[str] = set()
    for day in sorted(by_day):
        group = sorted(by_day[day], key=lambda i: i.id)
        table, evidence = item_sensor(group[0], sensor)
        sensor_names.add(table.family)
        per_band: dict[str, list[tuple[BandSource, GridSpec]]] = {}
        wanted = None if bands is None else [_wanted(table, key, group[0]) for key in bands]
        for item in group:
            other, _ = item_sensor(item, sensor)
            if other.name != table.name:
                raise HumanscapeError(
                    f"items of {day} mix sensors: {group[0].id} is {table.name}, {item.id} is "
                    f"{other.name}",
                    fix="search one collection at a time",
                )
            assets = item_assets(item, table)
            for name in wanted or list(assets):
                if name not in assets:
                    raise MissingBandError(
                        f"item {item.id} has no asset for band {name} (it has "
                        f"{', '.join(sorted(assets)) or 'no band assets'})",
                        fix="search a collection with that band, or drop the band/index",
                    )
                key, asset = assets[name]
                path = _href(asset)
                band = table.band(name)
                with open_raster(path) as ds:
                    declared = declared_units(ds, 1)
                    radiometry = asset_radiometry(item, asset, band, table, units, declared)
                    if band.name == "B02" and "offset already removed" in radiometry.source:
                        radiometry = check_offset_removed(ds, radiometry, item.id)
                    raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
                    nodata = ds.nodata if ds.nodata is not None else raster.get("nodata")
                    if nodata is None and band.kind != "qa":
                        nodata = table.nodata
                    grid = GridSpec(ds.crs, ds.transform, ds.width, ds.height)
                per_band.setdefault(name, []).append(
                    (BandSource(path, 1, band, radiometry, nodata), grid)
                )
        sources = []
        for name, parts in per_band.items():
            sources.append(parts[0] if len(parts) == 1 else _mosaic(name, parts, day))
        _same_radiometry(per_band, day)
        out.append(StacDate(day, table, sources, [i.id for i in group], evidence))
    if len(sensor_names) > 1:
        raise HumanscapeError(
            f"the STAC input mixes sensor families ({', '.join(sorted(sensor_names))})",
            fix="give the items of one sensor (one collection)",
        )
    return out


def _wanted(sensor: Sensor, key: str, item: Any) -> str:
    band = sensor.find(key)
    if band is None:
        raise MissingBandError(
            f"sensor {sensor.name} (item {item.id}) has no band or role '{key}'",
            fix=f"use names of {', '.join(sensor.band_names)}",
        )
    return band.name


def _same_radiometry(per_band: dict[str, list[tuple[BandSource, GridSpec]]], day: date) -> None:
    for name, parts in per_band.items():
        kinds = {(s.radiometry.units, s.radiometry.scale, s.radiometry.offset) for s, _ in parts}
        if len(kinds) > 1:
            raise HumanscapeError(
                f"the items of {day} store band {name} in different units or offsets "
                f"({'; '.join(s.radiometry.source for s, _ in parts)})",
                fix="give the items of one processing baseline per date",
            )


def _mosaic(
    name: str, parts: list[tuple[BandSource, GridSpec]], day: date
) -> tuple[BandSource, GridSpec]:
    """One VRT per band over the tiles of a date (GDAL mosaics them; the first tile wins on
    overlap, tiles in id order)."""
    first, grid0 = parts[0]
    for source, grid in parts[1:]:
        if grid.crs != grid0.crs:
            raise HumanscapeError(
                f"the items of {day} lie in different CRSs ({grid0.crs.to_string()} for "
                f"{first.path.name}, {grid.crs.to_string()} for {source.path.name}); refused",
                fix="give the items of one UTM zone (filter the search by grid:code / "
                "mgrs:utm_zone)",
            )
        if grid.res != grid0.res:
            raise HumanscapeError(
                f"the items of {day} have different pixel sizes for band {name} "
                f"({grid0.res[0]:g} and {grid.res[0]:g})",
                fix="give items of one collection",
            )
    res_x, res_y = grid0.res
    left = min(g.bounds[0] for _, g in parts)
    bottom = min(g.bounds[1] for _, g in parts)
    right = max(g.bounds[2] for _, g in parts)
    top = max(g.bounds[3] for _, g in parts)
    width, height = round((right - left) / res_x), round((top - bottom) / res_y)
    from affine import Affine

    grid = GridSpec(grid0.crs, Affine(res_x, 0, left, 0, -res_y, top), width, height)
    with open_raster(first.path) as ds:
        dtype = ds.dtypes[0]
        gdal_type = {
            "uint8": "Byte",
            "uint16": "UInt16",
            "int16": "Int16",
            "uint32": "UInt32",
            "int32": "Int32",
            "float32": "Float32",
            "float64": "Float64",
        }[dtype]
    nodata = first.nodata
    sources_xml = []
    for source, g in parts:
        x_off = round((g.bounds[0] - left) / res_x)
        y_off = round((top - g.bounds[3]) / res_y)
        sources_xml.append(
            f"    <ComplexSource>\n"
            f'      <SourceFilename relativeToVRT="0">{escape(str(source.path))}</SourceFilename>\n'
            f"      <SourceBand>{source.index}</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{g.width}" ySize="{g.height}" />\n'
            f'      <DstRect xOff="{x_off}" yOff="{y_off}" xSize="{g.width}" ySize="{g.height}" />\n'
            + (f"      <NODATA>{nodata:g}</NODATA>\n" if nodata is not None else "")
            + "    </ComplexSource>\n"
        )
    nodata_xml = f"    <NoDataValue>{nodata:g}</NoDataValue>\n" if nodata is not None else ""
    xml = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(grid0.crs.to_wkt())}</SRS>\n"
        f"  <GeoTransform>{left!r}, {res_x!r}, 0.0, {top!r}, 0.0, {-res_y!r}</GeoTransform>\n"
        f'  <VRTRasterBand dataType="{gdal_type}" band="1">\n'
        f"{nodata_xml}" + "".join(sources_xml) + "  </VRTRasterBand>\n</VRTDataset>\n"
    )
    VRT_DIR.mkdir(parents=True, exist_ok=True)
    path = VRT_DIR / f"{day}_{name}_{hashlib.sha1(xml.encode()).hexdigest()[:16]}.vrt"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(xml)
        tmp.replace(path)
    mosaic = BandSource(path, 1, first.band, first.radiometry, nodata)
    return mosaic, grid
