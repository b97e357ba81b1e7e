"""Finding and opening inputs: files of a scene (folders, globs, products, URLs) and the scene.

:func:`open_scene` turns what a user names (one multi-band file; a folder, glob or list of
single-band files; a Sentinel-2 granule or ``.SAFE`` product; a URL or ``/vsi`` path) into a
:class:`~humanscape.geo.scene.Scene`: which product the files are (sensor, level, baseline, date:
:func:`humanscape.geo.products.identify`), which file holds which band, what its stored numbers
mean (:func:`humanscape.geo.radiometry.decide`), and the grid every band is aligned to.
:class:`SceneReader` carries the options a user gives for all of that, once.
"""

from __future__ import annotations

import glob as _glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from humanscape.errors import EmptyInputError, HumanscapeError, MissingBandError
from humanscape.geo.align import target_grid
from humanscape.geo.files import RASTER_SUFFIXES, GdalPath, input_path, is_remote, open_raster
from humanscape.geo.grid import GridSpec
from humanscape.geo.products import identify, resolution_suffix
from humanscape.geo.radiometry import UnitsOption, decide
from humanscape.geo.scene import BandSource, Scene
from humanscape.geo.sensors import EUROSAT_MS_ORDER, Band, Sensor, get_sensor

log = logging.getLogger(__name__)


#: Level-2A product folders under IMG_DATA, finest first.
_L2A_RESOLUTIONS = ("R10m", "R20m", "R60m")
#: Files of Sentinel-2 / Landsat products that are neither bands nor masks humanscape reads.
_AUXILIARY = {"tci", "aot", "wvp", "pvi", "radsat", "aerosol", "saa", "sza", "vaa", "vza"}


def _folder_rasters(folder: Path) -> list[Path]:
    """Raster files of a band folder, a Sentinel-2 granule / SAFE product, or a Level-2A IMG_DATA."""

    def rasters(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)

    found = rasters(folder)
    if found:
        return found
    img = (
        [folder / "IMG_DATA"]
        if (folder / "IMG_DATA").is_dir()
        else sorted((folder / "GRANULE").glob("*/IMG_DATA"))
    )
    if len(img) > 1:
        raise HumanscapeError(
            f"product holds {len(img)} granules",
            path=folder,
            fix="point at one granule's IMG_DATA folder",
        )
    search = img[0] if img else folder
    found = rasters(search)
    for sub in _L2A_RESOLUTIONS:  # Level-2A: IMG_DATA/R10m, R20m, R60m
        if not found and (search / sub).is_dir():
            found = [
                p for s in _L2A_RESOLUTIONS if (search / s).is_dir() for p in rasters(search / s)
            ]
    return found


def expand_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path | GdalPath]:
    """Files for a folder, a glob pattern, a file, or a list of those; error if nothing matches.

    A folder may be a plain band folder, a Sentinel-2 granule or ``.SAFE`` product (its
    ``IMG_DATA``), or a Level-2A ``IMG_DATA`` with ``R10m`` / ``R20m`` / ``R60m`` inside. A URL or
    ``/vsi`` path is handed to GDAL as given (:class:`~humanscape.geo.files.GdalPath`).
    """
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path | GdalPath] = []
    for item in items:
        text = str(item)
        if not text.strip():
            raise EmptyInputError("empty path given as input", fix="name a raster file or folder")
        if is_remote(item):
            files.append(input_path(item))
        elif any(ch in text for ch in "*?["):
            matched = sorted(Path(p) for p in _glob.glob(text))
            if not matched:
                raise EmptyInputError(
                    "glob pattern matches no file", path=text, fix="check the pattern"
                )
            files.extend(matched)
        elif Path(text).is_dir():
            found = _folder_rasters(Path(text))
            if not found:
                raise EmptyInputError(
                    f"folder holds no raster file ({', '.join(RASTER_SUFFIXES)})",
                    path=text,
                    fix="point at the folder that holds the band files",
                )
            files.extend(found)
        else:
            files.append(Path(text))
    return files


def _tokens(path: Path) -> list[str]:
    tokens = [t for t in path.stem.replace("-", "_").replace(".", "_").split("_") if t]
    if tokens and resolution_suffix(path) is not None:  # Level-2A "_B04_10m"
        tokens = tokens[:-1]
    return tokens


def _match_band(path: Path, sensor: Sensor) -> Band | None:
    tokens = _tokens(path)
    for n in (2, 1):  # "SR_B4" before "B4"
        if len(tokens) >= n:
            band = sensor.find("_".join(tokens[-n:]))
            if band is not None:
                return band
    return None


def open_scene(
    inputs: str | Path | Sequence[str | Path],
    *,
    sensor: str | Sensor | None = None,
    bands: Sequence[str] | None = None,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
    name: str | None = None,
    acquired: date | None = None,
    units: UnitsOption = "auto",
) -> Scene:
    """Open a scene given as one multi-band file or one file per band.

    Parameters
    ----------
    inputs
        A multi-band file; or a folder, glob or list of single-band files whose names end in the
        band (``..._B04.jp2``, ``..._B04_10m.jp2``, ``..._b4.tif``, ``..._SR_B4.TIF``,
        ``..._fmask.tif``); or a Sentinel-2 granule / ``.SAFE`` product folder.
    sensor
        Registry key or :class:`Sensor`; recognised from product metadata and names when omitted
        (:func:`humanscape.geo.products.identify`), or from the ``sensor`` tag of a raster
        humanscape wrote; else Sentinel-2 L1C. A sensor of another family than the names say is
        refused.
    bands
        Keep only these bands (names, aliases or roles), in this order.
    band_names
        For a multi-band file: the band name of each layer in file order. Without it the file's
        band descriptions are used (layers named like no band of the sensor, such as a
        composite's ``valid_count``, are left out), then the sensor's band order when the count
        matches.
    resolution
        Target pixel size in CRS units; default the finest native resolution of the chosen bands.
    name, acquired
        Display name and acquisition date (read from the product when omitted).
    units
        For files that do not record their units: ``auto`` (see
        :mod:`humanscape.geo.radiometry`), ``dn`` or ``reflectance``.
    """
    if resolution is not None and not resolution > 0:
        raise HumanscapeError(
            f"resolution must be a positive pixel size, got {resolution:g}",
            fix="pass --resolution 10 (CRS units, metres for UTM)",
        )
    stac_source = _stac_input(inputs)
    if stac_source is not None:
        scenes = stac_scenes(
            stac_source,
            sensor=sensor,
            bands=bands,
            resolution=resolution,
            name=name,
            units=units,
        )
        if len(scenes) > 1:
            raise HumanscapeError(
                f"the STAC input holds {len(scenes)} dates "
                f"({', '.join(str(s.date) for s in scenes[:4])}{', ...' if len(scenes) > 4 else ''}); "
                "this command reads one scene",
                path=str(inputs),
                fix="composite them (humanscape composite ITEMS.json), or save one date's items",
            )
        return scenes[0]
    files = expand_inputs(inputs)
    label = name or (str(inputs) if isinstance(inputs, str | Path) else str(files[0].parent))
    product = identify(files, sensor)
    sensor_obj = product.sensor
    if len(files) == 1:
        with open_raster(files[0]) as ds:
            tagged = ds.tags().get("sensor")
            if tagged:
                sensor_obj = _tagged_sensor(tagged, sensor, files[0]) or sensor_obj
            sources = [
                _band_source(ds, files[0], index, band, sensor_obj, units)
                for index, band in _layers(ds, sensor_obj, files[0], band_names)
            ]
            grids = [(s, GridSpec(ds.crs, ds.transform, ds.width, ds.height)) for s in sources]
    else:
        if band_names is not None:
            raise HumanscapeError(
                "--band-names names the layers of one multi-band file, but several files were given",
                path=label,
                fix="name band files like *_B04.tif, or give the one multi-band file",
            )
        sources, grids = _band_files(files, sensor_obj, label, units)

    by_name = {s.band.name: s for s in sources}
    if bands is not None:
        chosen = []
        for key in bands:
            band = sensor_obj.find(key)
            if band is None or band.name not in by_name:
                raise MissingBandError(
                    f"band '{key}' not found (scene has {', '.join(by_name)})",
                    path=label,
                    fix="add the missing band file or drop the band/index that needs it",
                )
            chosen.append(by_name[band.name])
        sources = chosen
    else:  # canonical sensor order
        order = {b.name: i for i, b in enumerate(sensor_obj.bands)}
        sources = sorted(sources, key=lambda s: order[s.band.name])

    chosen_ids = {id(s) for s in sources}
    grid = target_grid([g for g in grids if id(g[0]) in chosen_ids], resolution)
    return Scene(sources, sensor_obj, grid, label, acquired or product.date)


def _stac_input(inputs: str | Path | Sequence[str | Path]) -> str | Path | None:
    """The one STAC document given as input, if that is what ``inputs`` is."""
    from humanscape.geo.stac import is_stac

    if isinstance(inputs, str | Path) and is_stac(inputs):
        return inputs
    if not isinstance(inputs, str | Path) and len(inputs) == 1 and is_stac(inputs[0]):
        return inputs[0]
    return None


def stac_scenes(
    source: str | Path,
    *,
    sensor: str | Sensor | None = None,
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
    name: str | None = None,
    units: UnitsOption = "auto",
) -> list[Scene]:
    """One scene per acquisition date of a STAC Item, ItemCollection or catalog
    (:mod:`humanscape.geo.stac`), in date order; the items of a date are mosaicked."""
    from humanscape.geo.stac import group_by_date, read_items

    try:
        dates = group_by_date(read_items(source), sensor=sensor, bands=bands, units=units)
    except HumanscapeError as exc:
        if exc.path is None:  # a problem of the document as a whole: name it
            exc.path = str(source)
        raise
    scenes = []
    for dated in dates:
        pairs = dated.sources  # in the order of ``bands`` when given
        if bands is None:  # canonical sensor order
            order = {b.name: i for i, b in enumerate(dated.sensor.bands)}
            pairs = sorted(pairs, key=lambda p: order[p[0].band.name])
        grid = target_grid(pairs, resolution)
        label = name or f"{source}#{dated.day}"  # the document and the date it holds
        log.info("%s: %s; items %s", label, dated.evidence, ", ".join(dated.items))
        scenes.append(Scene([s for s, _ in pairs], dated.sensor, grid, label, dated.day))
    return scenes


def _tagged_sensor(tagged: str, forced: str | Sensor | None, path: Path) -> Sensor | None:
    """The sensor a humanscape raster records, checked against a forced one."""
    try:
        recorded = get_sensor(tagged)
    except HumanscapeError:
        return None
    if forced is None:
        return recorded
    chosen = get_sensor(forced)
    if chosen.family != recorded.family:
        raise HumanscapeError(
            f"the raster records sensor {recorded.name}, but --sensor {chosen.name} is another "
            "sensor family",
            path=path,
            fix="drop --sensor",
        )
    return chosen


def _band_source(
    ds: rasterio.io.DatasetReader,
    path: Path,
    index: int,
    band: Band,
    sensor: Sensor,
    units: UnitsOption,
) -> BandSource:
    radiometry = decide(ds, index, band, sensor, units=units, path=path)
    if ds.nodata is not None:
        nodata = ds.nodata
    elif band.kind == "qa" or radiometry.units != "dn":
        nodata = None
    else:
        nodata = sensor.nodata
    return BandSource(path, index, band, radiometry, nodata)


def _band_files(
    files: list[Path], sensor: Sensor, label: str, units: UnitsOption
) -> tuple[list[BandSource], list[tuple[BandSource, GridSpec]]]:
    """One source per band from single-band files; the finest Level-2A resolution wins."""
    matched: dict[str, list[tuple[Path, Band]]] = {}
    for path in files:
        band = _match_band(path, sensor)
        if band is None:
            level = (
                logging.DEBUG
                if {t.lower() for t in _tokens(path)} & _AUXILIARY
                else logging.WARNING
            )
            log.log(level, "%s: file name names no %s band; skipped", path, sensor.name)
            continue
        matched.setdefault(band.name, []).append((path, band))
    if not matched:
        raise MissingBandError(
            f"no file name ends in a {sensor.name} band name",
            path=label,
            fix="name files like *_B04.tif or pass --sensor",
        )
    sources, grids = [], []
    for candidates in matched.values():
        if len(candidates) > 1:
            sized = [(resolution_suffix(p), p, b) for p, b in candidates]
            if any(r is None for r, _, _ in sized) or len({r for r, _, _ in sized}) < len(sized):
                raise HumanscapeError(
                    f"{len(candidates)} files hold band {candidates[0][1].name}: "
                    f"{', '.join(p.name for p, _ in candidates)}",
                    path=label,
                    fix="keep one file per band (one acquisition per folder)",
                )
            candidates = [min(sized, key=lambda t: t[0])[1:]]  # type: ignore[misc]
        path, band = candidates[0]
        with open_raster(path) as ds:
            source = _band_source(ds, path, 1, band, sensor, units)
            grids.append((source, GridSpec(ds.crs, ds.transform, ds.width, ds.height)))
        sources.append(source)
    return sources, grids


def _layers(
    ds: rasterio.io.DatasetReader,
    sensor: Sensor,
    path: Path,
    band_names: Sequence[str] | None,
) -> list[tuple[int, Band]]:
    """(1-based index, band) of the layers of a multi-band file that are bands of ``sensor``."""
    if band_names is not None:
        if len(band_names) != ds.count:
            raise MissingBandError(
                f"{len(band_names)} band names given for a file with {ds.count} bands",
                path=path,
                fix="give one band name per layer (--band-names B02,B03,B04,...)",
            )
        out = []
        for i, n in enumerate(band_names):
            band = sensor.find(n)
            if band is None:
                raise MissingBandError(
                    f"--band-names: sensor {sensor.name} has no band or role '{n}'",
                    path=path,
                    fix=f"use names of {', '.join(sensor.band_names)} or pass --sensor",
                )
            out.append((i + 1, band))
        return _no_repeats(out, path)
    if ds.count == 1 and (band := _match_band(path, sensor)) is not None:
        return [(1, band)]
    descriptions = list(ds.descriptions)
    if any(descriptions):
        layers = [(i + 1, sensor.find(d)) for i, d in enumerate(descriptions) if d]
        named = [(i, b) for i, b in layers if b is not None]
        if not named:
            raise MissingBandError(
                f"no layer is named like a {sensor.name} band "
                f"(layers: {', '.join(d or '?' for d in descriptions[:8])})",
                path=path,
                fix="pass --sensor for the sensor these bands come from, or --band-names",
            )
        other = [d for d, (_, b) in zip(descriptions, layers, strict=False) if d and b is None]
        if other:
            log.info(
                "%s: layers %s are not %s bands; left out", path, ", ".join(other), sensor.name
            )
        return _no_repeats(named, path)  # type: ignore[arg-type]
    if (
        ds.count == len(EUROSAT_MS_ORDER)
        and all(sensor.find(n) is not None for n in EUROSAT_MS_ORDER)
        and _cirrus_is_layer_10(ds)
    ):
        log.info("%s: 13 unnamed layers, cirrus in layer 10: EuroSAT order (B8A last)", path)
        return [(i + 1, sensor.band(n)) for i, n in enumerate(EUROSAT_MS_ORDER)]
    if ds.count == len(sensor.reflectance_bands):
        return [(i + 1, sensor.band(n)) for i, n in enumerate(sensor.reflectance_bands)]
    if ds.count == len(sensor.bands):
        return [(i + 1, b) for i, b in enumerate(sensor.bands)]
    raise MissingBandError(
        f"cannot tell which band is which: {ds.count} layers, no band descriptions, and sensor "
        f"{sensor.name} has {len(sensor.reflectance_bands)} reflectance bands",
        path=path,
        fix="pass --band-names with one name per layer (e.g. --band-names B02,B03,B04,B08)",
    )


def cirrus_in_layer_10(ten: np.ndarray, eleven: np.ndarray, nodata: float | None = None) -> bool:
    """Whether 13 unnamed Sentinel-2 layers are in EuroSAT order, told by where the cirrus band is.

    B10 (1375 nm) sees almost nothing through the water vapour of the atmosphere: its median is far
    below both B09 (945 nm) and B11 (1610 nm). In ESA order layer 10 is B09 and layer 11 is B10, so
    layer 11 is the darker; in EuroSAT order layer 10 is B10 and layer 11 is B11, so layer 10 is.
    ``ten`` and ``eleven`` are the values of layers 10 and 11 (1-based).
    """
    ten, eleven = ten.astype(np.float64), eleven.astype(np.float64)
    ok = np.isfinite(ten) & np.isfinite(eleven)
    if nodata is not None:
        ok &= (ten != nodata) & (eleven != nodata)
    return bool(ok.any()) and float(np.median(ten[ok])) < float(np.median(eleven[ok]))


def _cirrus_is_layer_10(ds: rasterio.io.DatasetReader) -> bool:
    """:func:`cirrus_in_layer_10` on a thumbnail of at most 64 x 64 pixels of the file."""
    shape = (min(ds.height, 64), min(ds.width, 64))
    ten, eleven = (ds.read(i, out_shape=shape, resampling=Resampling.nearest) for i in (10, 11))
    return cirrus_in_layer_10(ten, eleven, ds.nodata)


def _no_repeats(layers: list[tuple[int, Band]], path: Path) -> list[tuple[int, Band]]:
    seen: dict[str, int] = {}
    for index, band in layers:
        if band.name in seen:
            raise MissingBandError(
                f"layers {seen[band.name]} and {index} are both band {band.name}",
                path=path,
                fix="give each layer a distinct band name (--band-names)",
            )
        seen[band.name] = index
    return layers


def open_grid(path: str | Path) -> GridSpec:
    """The grid of a raster file."""
    with open_raster(path) as ds:
        return GridSpec(ds.crs, ds.transform, ds.width, ds.height)


@dataclass(frozen=True)
class SceneReader:
    """How to open the scenes of one command: the user's sensor, layer names, units, resolution.

    ``SceneReader(sensor="sentinel2_l2a").open("S2/IMG_DATA")`` is :func:`open_scene` with these
    options; ``band_names`` names the layers of a multi-band file (``B02,B03,...``).
    """

    sensor: str | None = None
    band_names: tuple[str, ...] | None = None
    units: UnitsOption = "auto"
    resolution: float | None = None

    def open(self, inputs: str | Path | Sequence[str | Path], **kwargs: object) -> Scene:
        """Open one scene (see :func:`open_scene`; ``kwargs`` such as ``bands`` pass through)."""
        return open_scene(
            inputs,
            sensor=self.sensor,
            band_names=self.band_names,
            units=self.units,
            resolution=self.resolution,
            **kwargs,  # type: ignore[arg-type]
        )

    def open_each(self, inputs: Sequence[str | Path]) -> list[Scene]:
        """One scene per entry (dated scenes of a composite or a time series)."""
        if self.band_names is not None and len(inputs) > 1:
            raise HumanscapeError(
                "--band-names names the layers of one multi-band file",
                fix="give one scene, or drop --band-names",
            )
        scenes: list[Scene] = []
        for item in inputs:
            if _stac_input(item) is not None:  # a STAC input: one scene per date
                scenes.extend(
                    stac_scenes(
                        item, sensor=self.sensor, units=self.units, resolution=self.resolution
                    )
                )
            else:
                scenes.append(self.open(item))
        return scenes
