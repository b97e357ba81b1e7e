"""Raster sources: open a scene, align its bands to one grid, read it window by window, write rasters.

A *scene* is a set of bands from one acquisition (or one composite), given as one multi-band file or
one file per band (a folder, a glob or a list; GeoTIFF, COG, JPEG2000). All bands are presented on a
single target grid (by default the finest native resolution, 10 m for Sentinel-2): bands on another
grid are warped on the fly through GDAL's ``WarpedVRT``, window by window, so that memory never
grows with the size of the scene. Continuous bands are resampled bilinearly when upsampled and by
area average when downsampled; QA / mask bands always by nearest neighbour.

Nodata (the file's nodata value, else the sensor's for products in digital numbers) becomes NaN in
float reads. What the stored numbers mean (digital numbers or reflectance, scale, offset) is decided
once per band when the scene is opened, by :func:`humanscape.geo.radiometry.decide`; which product
the files are (sensor, level, baseline, date) by :func:`humanscape.geo.products.identify`.
"""

from __future__ import annotations

import glob as _glob
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.warp
import rasterio.windows
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from humanscape._atomic import atomic_output
from humanscape.errors import (
    CRSMismatchError,
    EmptyInputError,
    HumanscapeError,
    MissingBandError,
    NoOverlapError,
    NotARasterError,
)
from humanscape.geo.products import identify, resolution_suffix
from humanscape.geo.radiometry import Radiometry, UnitsOption, decide
from humanscape.geo.sensors import Band, Sensor, get_sensor

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
DEFAULT_BLOCK = 512


# --- grid --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridSpec:
    """A raster grid: CRS, affine transform (north-up) and size in pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        left, top = self.transform.c, self.transform.f
        return (
            left,
            top + self.transform.e * self.height,
            left + self.transform.a * self.width,
            top,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @classmethod
    def from_bounds(cls, crs: CRS, bounds: Sequence[float], res: float) -> GridSpec:
        """Grid of square pixels ``res`` covering ``bounds``, snapped outward to multiples of ``res``."""
        left, bottom, right, top = bounds
        left = math.floor(left / res + 1e-9) * res
        top = math.ceil(top / res - 1e-9) * res
        width = max(1, round((right - left) / res))
        height = max(1, round((top - bottom) / res))
        return cls(CRS.from_user_input(crs), Affine(res, 0, left, 0, -res, top), width, height)

    def window_grid(self, window: Window) -> GridSpec:
        """The sub-grid covered by ``window``."""
        return GridSpec(
            self.crs,
            rasterio.windows.transform(window, self.transform),
            int(window.width),
            int(window.height),
        )

    def windows(self, block: int = DEFAULT_BLOCK) -> Iterator[Window]:
        """Windows of at most ``block`` x ``block`` pixels tiling the grid, row-major."""
        for row in range(0, self.height, block):
            for col in range(0, self.width, block):
                yield Window(col, row, min(block, self.width - col), min(block, self.height - row))

    def matches(self, other: GridSpec, tol: float = 1e-6) -> bool:
        """Same CRS, size and transform (within ``tol`` CRS units)."""
        return (
            self.crs == other.crs
            and self.shape == other.shape
            and self.transform.almost_equals(other.transform, precision=tol)
        )


# --- scene -------------------------------------------------------------------------------------


@dataclass
class BandSource:
    """Where one band of a scene lives and what its numbers mean.

    Attributes
    ----------
    path, index
        File and 1-based band index in that file.
    band
        The sensor band it holds.
    radiometry
        Units, scale and offset of the stored values (:func:`humanscape.geo.radiometry.decide`).
    nodata
        Stored value that marks missing data (the file's, else the sensor's for DN products).
    """

    path: Path
    index: int
    band: Band
    radiometry: Radiometry = field(default_factory=lambda: Radiometry("reflectance"))
    nodata: float | None = None


@dataclass
class Scene:
    """Bands of one acquisition (or composite), presented on one aligned grid.

    Use :func:`open_scene` to build one. Read with :meth:`read` (whole scene or a window); iterate
    windows with :meth:`windows` to keep memory flat.
    """

    sources: list[BandSource]
    sensor: Sensor
    grid: GridSpec
    name: str
    date: date | None = None
    _datasets: dict[Path, rasterio.io.DatasetReader] = field(default_factory=dict, repr=False)
    _vrts: dict[tuple[Path, Resampling], WarpedVRT] = field(default_factory=dict, repr=False)

    # -- description
    @property
    def band_names(self) -> list[str]:
        return [s.band.name for s in self.sources]

    @property
    def crs(self) -> CRS:
        return self.grid.crs

    @property
    def transform(self) -> Affine:
        return self.grid.transform

    @property
    def width(self) -> int:
        return self.grid.width

    @property
    def height(self) -> int:
        return self.grid.height

    def windows(self, block: int = DEFAULT_BLOCK) -> Iterator[Window]:
        """Windows tiling the scene grid (see :meth:`GridSpec.windows`)."""
        return self.grid.windows(block)

    def describe(self) -> dict[str, object]:
        """Bands, CRS, resolution and extent, for ``humanscape info``."""
        return {
            "name": self.name,
            "sensor": self.sensor.name,
            "date": self.date.isoformat() if self.date else None,
            "crs": self.crs.to_string(),
            "resolution_m": self.grid.res[0],
            "size_px": [self.width, self.height],
            "bounds": [round(v, 3) for v in self.grid.bounds],
            "bands": [
                {
                    "name": s.band.name,
                    "role": s.band.role,
                    "wavelength_nm": None
                    if math.isnan(s.band.wavelength_nm)
                    else s.band.wavelength_nm,
                    "native_resolution_m": self._dataset(s.path).res[0],
                    "file": str(s.path),
                    "index": s.index,
                    "units": s.radiometry.units,
                    "scale": s.radiometry.scale,
                    "offset": s.radiometry.offset,
                    "radiometry_from": s.radiometry.source,
                }
                for s in self.sources
            ],
        }

    # -- reading
    def has(self, key: str) -> bool:
        """Whether the scene holds a band with this name, alias or role."""
        band = self.sensor.find(key)
        return band is not None and band.name in self.band_names

    def resolve(self, keys: Sequence[str] | None) -> list[str]:
        """Band names for names/aliases/roles ``keys`` (all bands if ``None``); clear error if missing."""
        if keys is None:
            return self.band_names
        names = []
        for key in keys:
            band = self.sensor.find(key)
            if band is None or band.name not in self.band_names:
                raise MissingBandError(
                    f"scene has no band '{key}' (has {', '.join(self.band_names)})",
                    path=self.name,
                    fix="add the band file to the scene folder or choose another band/index",
                )
            names.append(band.name)
        return names

    def read(
        self,
        bands: Sequence[str] | None = None,
        window: Window | None = None,
        *,
        reflectance: bool = True,
    ) -> np.ndarray:
        """Read bands on the scene grid as float32 ``(bands, rows, cols)``; nodata is NaN.

        With ``reflectance=True`` stored values become physical values with each band's
        :class:`~humanscape.geo.radiometry.Radiometry` (``DN * scale + offset`` for digital
        numbers, unchanged for files that hold reflectance); QA bands are never scaled.
        """
        names = self.resolve(bands)
        window = window or Window(0, 0, self.width, self.height)
        out = np.empty((len(names), int(window.height), int(window.width)), dtype=np.float32)
        sources = [self._source(name) for name in names]
        for i, (source, raw) in enumerate(
            zip(sources, self._read_many(sources, window), strict=True)
        ):
            np.copyto(out[i], raw, casting="unsafe")  # cast into place: no per-band temporary
            if source.nodata is not None and not np.isnan(source.nodata):
                out[i][raw == source.nodata] = np.nan
            if reflectance:
                source.radiometry.apply(out[i])
        return out

    def read_raw(self, band: str, window: Window | None = None) -> np.ndarray:
        """One band's stored values (no scaling, no NaN), e.g. a QA / fmask band."""
        window = window or Window(0, 0, self.width, self.height)
        return self._read_source(self._source(self.resolve([band])[0]), window)

    def valid_mask(
        self, window: Window | None = None, bands: Sequence[str] | None = None
    ) -> np.ndarray:
        """True where every (non-QA) band has data."""
        names = [n for n in self.resolve(bands) if self.sensor.band(n).kind != "qa"]
        return np.all(np.isfinite(self.read(names, window, reflectance=False)), axis=0)

    def aligned_to(self, grid: GridSpec) -> Scene:
        """The same bands presented on another grid (warped on read)."""
        return Scene(list(self.sources), self.sensor, grid, self.name, self.date)

    def select(self, bands: Sequence[str]) -> Scene:
        """A scene with only ``bands`` (names, aliases or roles), in that order."""
        names = self.resolve(bands)
        return Scene([self._source(n) for n in names], self.sensor, self.grid, self.name, self.date)

    def close(self) -> None:
        for vrt in self._vrts.values():
            vrt.close()
        for ds in self._datasets.values():
            ds.close()
        self._vrts.clear()
        self._datasets.clear()

    def __getstate__(self) -> dict[str, object]:
        """Pickle the recipe (band files, sensor, grid), never the open datasets.

        A scene shipped to a Dask worker reopens its files there on first read, so the files must be
        readable on the worker at the same path (a shared file system or a mounted object store).
        """
        state = dict(self.__dict__)
        state["_datasets"], state["_vrts"] = {}, {}
        return state

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals
    def _source(self, name: str) -> BandSource:
        for source in self.sources:
            if source.band.name == name:
                return source
        raise MissingBandError(f"scene has no band '{name}'", path=self.name)  # pragma: no cover

    def _dataset(self, path: Path) -> rasterio.io.DatasetReader:
        if path not in self._datasets:
            self._datasets[path] = _open_raster(path)
        return self._datasets[path]

    def _read_many(self, sources: Sequence[BandSource], window: Window) -> list[np.ndarray]:
        """Stored values of several bands: one read per file (and resampling) for all its bands.

        A multi-band GeoTIFF is usually pixel-interleaved: read band by band, every block would be
        decompressed once per band.
        """
        groups: dict[tuple[Path, object], list[int]] = {}
        for i, source in enumerate(sources):
            ds = self._dataset(source.path)
            direct = GridSpec(ds.crs, ds.transform, ds.width, ds.height).matches(self.grid)
            key = (
                source.path,
                None if direct else resampling_for(source.band, ds.res[0], self.grid.res[0]),
            )
            groups.setdefault(key, []).append(i)
        out: list[np.ndarray] = [np.empty(0)] * len(sources)
        for (path, resampling), members in groups.items():
            if len(members) == 1:
                out[members[0]] = self._read_source(sources[members[0]], window)
                continue
            reader = self._dataset(path) if resampling is None else self._vrt(sources[members[0]])
            try:
                block = reader.read([sources[i].index for i in members], window=window)
            except RasterioIOError as exc:
                raise NotARasterError(
                    f"could not read bands {', '.join(sources[i].band.name for i in members)}: {exc}",
                    path=path,
                    fix="the file may be truncated or corrupt; re-download it",
                ) from exc
            for k, i in enumerate(members):
                out[i] = block[k]
        return out

    def _read_source(self, source: BandSource, window: Window) -> np.ndarray:
        ds = self._dataset(source.path)
        src_grid = GridSpec(ds.crs, ds.transform, ds.width, ds.height)
        try:
            if src_grid.matches(self.grid):
                return ds.read(source.index, window=window)
            return self._vrt(source).read(source.index, window=window)
        except RasterioIOError as exc:
            raise NotARasterError(
                f"could not read band {source.band.name}: {exc}",
                path=source.path,
                fix="the file may be truncated or corrupt; re-download it",
            ) from exc

    def _vrt(self, source: BandSource) -> WarpedVRT:
        """The warped view of the band's file with the band's own resampling.

        One view per (file, resampling): quality bands are always read through a nearest-neighbour
        view, whatever band of the same file was read first.
        """
        ds = self._dataset(source.path)
        resampling = resampling_for(source.band, ds.res[0], self.grid.res[0])
        key = (source.path, resampling)
        if key not in self._vrts:
            if ds.crs is None:
                raise CRSMismatchError(
                    "raster has no CRS, so it cannot be aligned with the other bands",
                    path=source.path,
                    fix="assign the CRS (e.g. gdal_edit.py -a_srs EPSG:32633)",
                )
            self._vrts[key] = WarpedVRT(
                ds,
                crs=self.grid.crs,
                transform=self.grid.transform,
                width=self.grid.width,
                height=self.grid.height,
                resampling=resampling,
                src_nodata=source.nodata,
                nodata=source.nodata,
            )
        return self._vrts[key]


def resampling_for(band: Band, source_res: float, target_res: float) -> Resampling:
    """Nearest for quality / class bands always; bilinear up, area average down for the others."""
    if band.kind == "qa":
        return Resampling.nearest
    if source_res > target_res:
        return Resampling.bilinear
    if source_res < target_res:
        return Resampling.average
    return Resampling.nearest


# --- opening -----------------------------------------------------------------------------------

#: Level-2A product folders under IMG_DATA, finest first.
_L2A_RESOLUTIONS = ("R10m", "R20m", "R60m")
#: Files of Sentinel-2 / Landsat products that are neither bands nor masks humanscape reads.
_AUXILIARY = {"tci", "aot", "wvp", "pvi", "radsat", "aerosol", "saa", "sza", "vaa", "vza"}


def _open_raster(path: Path) -> rasterio.io.DatasetReader:
    if not path.exists():
        raise EmptyInputError("file does not exist", path=path, fix="check the path")
    if path.is_dir():
        raise NotARasterError(
            "is a folder, not a raster file", path=path, fix="point at a GeoTIFF / JPEG2000 file"
        )
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return rasterio.open(path, num_threads=_decode_threads())
        return rasterio.open(path)
    except (RasterioIOError, OSError) as exc:
        raise NotARasterError(
            "not a readable raster (GeoTIFF, COG or JPEG2000 expected)",
            path=path,
            fix="check that the file is a complete raster; re-download or re-export it",
        ) from exc


def _decode_threads() -> str:
    """Threads GDAL may use to decompress the blocks of one windowed read (GTiff ``NUM_THREADS``).

    All cores in a plain process; on a Dask worker the cores it was given (the nanny sets
    ``OMP_NUM_THREADS``), so that workers do not oversubscribe the machine.
    """
    import os

    given = os.environ.get("OMP_NUM_THREADS", "")
    return given if given.isdigit() else "ALL_CPUS"


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


def expand_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files for a folder, a glob pattern, a file, or a list of those; error if nothing matches.

    A folder may be a plain band folder, a Sentinel-2 granule or ``.SAFE`` product (its
    ``IMG_DATA``), or a Level-2A ``IMG_DATA`` with ``R10m`` / ``R20m`` / ``R60m`` inside.
    """
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    files: list[Path] = []
    for item in items:
        text = str(item)
        if not text.strip():
            raise EmptyInputError("empty path given as input", fix="name a raster file or folder")
        if any(ch in text for ch in "*?["):
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
    files = expand_inputs(inputs)
    label = name or (str(inputs) if isinstance(inputs, str | Path) else str(files[0].parent))
    product = identify(files, sensor)
    sensor_obj = product.sensor
    if len(files) == 1:
        with _open_raster(files[0]) as ds:
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
    grid = _target_grid([g for g in grids if id(g[0]) in chosen_ids], resolution)
    return Scene(sources, sensor_obj, grid, label, acquired or product.date)


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
        with _open_raster(path) as ds:
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


def _target_grid(grids: list[tuple[BandSource, GridSpec]], resolution: float | None) -> GridSpec:
    for source, grid in grids:
        if grid.crs is None:
            raise CRSMismatchError("raster has no CRS", path=source.path, fix="assign a CRS")
    finest_source, finest = min(grids, key=lambda g: g[1].res[0])
    res = resolution or finest.res[0]
    left, bottom, right, top = finest.bounds
    for source, grid in grids:
        b = grid.bounds
        if grid.crs != finest.crs:
            b = rasterio.warp.transform_bounds(grid.crs, finest.crs, *b)
        left, bottom, right, top = (
            max(left, b[0]),
            max(bottom, b[1]),
            min(right, b[2]),
            min(top, b[3]),
        )
        if left >= right or bottom >= top:
            if grid.crs != finest.crs:
                raise CRSMismatchError(
                    f"band {source.band.name} is in {grid.crs.to_string()} but band "
                    f"{finest_source.band.name} is in {finest.crs.to_string()}, and reprojected "
                    "they do not overlap",
                    path=source.path,
                    fix="one of the files has a wrong CRS: check it with 'humanscape info' and "
                    "fix it (gdal_edit.py -a_srs)",
                )
            raise NoOverlapError(
                f"band {source.band.name} does not overlap band {finest_source.band.name}",
                path=source.path,
                fix="all band files of a scene must cover the same area",
            )
    if resolution is None and np.allclose(finest.bounds, (left, bottom, right, top)):
        return finest
    return GridSpec.from_bounds(finest.crs, (left, bottom, right, top), res)


def overview_grid(grid: GridSpec, max_size: int) -> GridSpec:
    """A coarser grid over the same extent whose longer side is at most ``max_size`` pixels."""
    factor = max(1, int(np.ceil(max(grid.width, grid.height) / max_size)))
    if factor == 1:
        return grid
    return GridSpec.from_bounds(grid.crs, grid.bounds, grid.res[0] * factor)


def open_grid(path: str | Path) -> GridSpec:
    """The grid of a raster file."""
    with _open_raster(Path(path)) as ds:
        return GridSpec(ds.crs, ds.transform, ds.width, ds.height)


class AlignedRaster:
    """One band of an auxiliary raster (cloud mask, labels, probability) read on a target grid.

    Reprojected/resampled on the fly with nearest neighbour (the default, for masks and classes) or
    the given resampling; windowed like :class:`Scene`.
    """

    def __init__(
        self,
        path: str | Path,
        grid: GridSpec,
        *,
        band: int = 1,
        resampling: Resampling = Resampling.nearest,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.band = band
        self.resampling = resampling
        self._ds = _open_raster(self.path)
        if self._ds.crs is None:
            raise CRSMismatchError("raster has no CRS", path=self.path, fix="assign a CRS")
        if band > self._ds.count:
            raise MissingBandError(
                f"raster has {self._ds.count} bands, band {band} asked for", path=self.path
            )
        src = GridSpec(self._ds.crs, self._ds.transform, self._ds.width, self._ds.height)
        bounds = (
            src.bounds
            if src.crs == grid.crs
            else rasterio.warp.transform_bounds(src.crs, grid.crs, *src.bounds)
        )
        g = grid.bounds
        if bounds[0] >= g[2] or bounds[2] <= g[0] or bounds[1] >= g[3] or bounds[3] <= g[1]:
            if src.crs != grid.crs:
                raise CRSMismatchError(
                    f"raster is in {src.crs.to_string()}, the scene in {grid.crs.to_string()}, "
                    "and reprojected they do not overlap",
                    path=self.path,
                    fix="check the raster's CRS (humanscape info); a wrong CRS label is the usual cause",
                )
            raise NoOverlapError(
                "raster does not overlap the scene",
                path=self.path,
                fix="check that it covers the same area as the scene",
            )
        self.nodata = self._ds.nodata
        self.dtype = self._ds.dtypes[band - 1]
        self._reader = (
            self._ds
            if src.matches(grid)
            else WarpedVRT(
                self._ds,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                src_nodata=self.nodata,
                nodata=self.nodata,
            )
        )

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as the recipe; the copy reopens the file (e.g. on a Dask worker)."""
        return (_aligned_raster, (self.path, self.grid, self.band, self.resampling))

    def read(self, window: Window | None = None) -> np.ndarray:
        """Stored values on the target grid for ``window`` (whole grid if ``None``)."""
        return self._reader.read(
            self.band, window=window or Window(0, 0, self.grid.width, self.grid.height)
        )

    def close(self) -> None:
        if self._reader is not self._ds:
            self._reader.close()
        self._ds.close()

    def __enter__(self) -> AlignedRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _aligned_raster(path: Path, grid: GridSpec, band: int, resampling: Resampling) -> AlignedRaster:
    return AlignedRaster(path, grid, band=band, resampling=resampling)


# --- writing -----------------------------------------------------------------------------------


def creation_options(compress: str = "deflate", dtype: str = "float32") -> dict[str, object]:
    """GeoTIFF creation options humanscape uses: fast level-1 compression, predictor, all cores.

    DEFLATE level 1 with GDAL's multi-threaded compression writes 2-3x faster than the default
    level 6 for the same size on float rasters, and stays readable by every GIS; ``zstd`` is faster
    still where readers support it.
    """
    opts: dict[str, object] = {"compress": compress, "num_threads": "ALL_CPUS"}
    if compress in ("deflate", "lzw", "zstd"):
        opts["predictor"] = 3 if np.dtype(dtype).kind == "f" else 2
    if compress == "deflate":
        opts["zlevel"] = 1
    elif compress == "zstd":
        opts["zstd_level"] = 1
    return opts


@dataclass(frozen=True)
class RasterSpec:
    """What a map raster holds: its grid, bands, units, data type, nodata and tags.

    The output description shared by the windowed writers (:func:`write_map`) and the tiled,
    distributed engine (:mod:`humanscape.scale`).
    """

    grid: GridSpec
    band_names: tuple[str, ...]
    units: str | tuple[str, ...]
    dtype: str = "float32"
    nodata: float | None = float("nan")
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def count(self) -> int:
        return len(self.band_names)

    def writer(self, path: str | Path, *, cog: bool = False) -> RasterWriter:
        """A :class:`RasterWriter` for this raster at ``path``."""
        return RasterWriter(
            path,
            self.grid,
            count=self.count,
            units=self.units,
            dtype=self.dtype,
            nodata=self.nodata,
            band_names=self.band_names,
            cog=cog,
            tags=dict(self.tags),
        )


class WindowedMap(Protocol):
    """A map computed window by window: ``spec`` describes the output, ``compute`` fills a window.

    ``compute(window)`` returns ``(spec.count, window.height, window.width)`` for a window of the
    output grid; it reads whatever context it needs around the window (a halo for texture or CNN
    chips) itself, so the result never depends on how the grid is cut. ``sources()`` names the
    files it reads (checked on every Dask worker before a distributed run) and ``token()`` says
    what the result depends on (inputs, model, options: a changed token restarts a resumed run).
    Implementations must pickle (they are shipped to the workers once).
    """

    spec: RasterSpec

    def compute(self, window: Window) -> np.ndarray: ...

    def sources(self) -> list[str]: ...

    def token(self) -> str: ...


def file_token(paths: Sequence[str | Path]) -> str:
    """Path, size and modification time of each file: what a resumed run must find unchanged."""
    parts = []
    for path in paths:
        try:
            st = Path(path).stat()
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(str(path))
    return ";".join(parts)


def write_map(
    job: WindowedMap,
    out: str | Path,
    *,
    block: int = DEFAULT_BLOCK,
    cog: bool = False,
    progress: bool = True,
    desc: str | None = None,
) -> Path:
    """Compute ``job`` window by window in this process and write it atomically (flat memory).

    The in-process writer of the library functions (:func:`humanscape.geo.indices.scene_indices`,
    :func:`humanscape.geo.composite.composite`); the CLI runs the same jobs through the resumable,
    distributed engine :func:`humanscape.scale.run_map`.
    """
    from tqdm.auto import tqdm

    windows = list(job.spec.grid.windows(block))
    with job.spec.writer(out, cog=cog) as writer:
        for window in tqdm(windows, desc=desc or Path(out).name, disable=not progress, unit="win"):
            writer.write(job.compute(window), window)
    return Path(out)


class RasterWriter:
    """Write a GeoTIFF (or COG) window by window, atomically, recording what its numbers mean.

    The file is written under a temporary name in the target folder and renamed only when the
    ``with`` block ends without error; on error nothing is left behind. With ``cog=True`` the tiled
    GeoTIFF is converted to a Cloud-Optimised GeoTIFF (overviews included) before the rename.

    Every raster records its ``units`` (DESIGN.md conventions): per band as the GDAL unit type, and
    as the dataset tag ``units`` when all bands share one. ``reflectance`` tells every reader that
    no scale applies; ``dn`` comes with the GDAL ``scales`` / ``offsets`` to reflectance. Other
    layers say what they are (``count``, ``index``, ``probability``, ``texture``).

    Example
    -------
    >>> with RasterWriter("out.tif", grid, count=2, units="reflectance", band_names=["a", "b"]) as w:
    ...     for window in grid.windows():
    ...         w.write(compute(window), window)
    """

    def __init__(
        self,
        path: str | Path,
        grid: GridSpec,
        *,
        count: int,
        units: str | Sequence[str],
        dtype: str = "float32",
        nodata: float | None = None,
        band_names: Sequence[str] | None = None,
        scales: Sequence[float] | None = None,
        offsets: Sequence[float] | None = None,
        cog: bool = False,
        compress: str = "deflate",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.count = count
        self.dtype = dtype
        self.nodata = nodata
        self.band_names = list(band_names) if band_names else None
        self.units = [units] * count if isinstance(units, str) else list(units)
        self.scales = list(scales) if scales is not None else None
        self.offsets = list(offsets) if offsets is not None else None
        self.cog = cog
        self.compress = compress
        self.tags = tags or {}
        for label, values in (
            ("band names", self.band_names),
            ("units", self.units),
            ("scales", self.scales),
            ("offsets", self.offsets),
        ):
            if values is not None and len(values) != count:
                raise HumanscapeError(f"{len(values)} {label} for {count} bands", path=path)

    def __enter__(self) -> RasterWriter:
        self._ctx = atomic_output(self.path)
        self._tmp = self._ctx.__enter__()
        block = 256 if min(self.grid.width, self.grid.height) >= 256 else None
        profile = {
            "driver": "GTiff",
            "width": self.grid.width,
            "height": self.grid.height,
            "count": self.count,
            "dtype": self.dtype,
            "crs": self.grid.crs,
            "transform": self.grid.transform,
            "nodata": self.nodata,
            "compress": self.compress,
            "BIGTIFF": "IF_SAFER",
        }
        if block:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        profile.update(creation_options(self.compress, self.dtype))
        self._dst = rasterio.open(self._tmp, "w", **profile)
        if self.band_names:
            for i, name in enumerate(self.band_names, start=1):
                self._dst.set_band_description(i, name)
        self._dst.units = tuple(self.units)
        if self.scales is not None:
            self._dst.scales = tuple(self.scales)
        if self.offsets is not None:
            self._dst.offsets = tuple(self.offsets)
        tags = dict(self.tags)
        if len(set(self.units)) == 1:
            tags["units"] = self.units[0]
        self._dst.update_tags(**tags)
        return self

    def write(self, array: np.ndarray, window: Window | None = None) -> None:
        """Write ``(count, rows, cols)`` (or ``(rows, cols)`` when count is 1) at ``window``."""
        if array.ndim == 2:
            array = array[None]
        if array.shape[0] != self.count:
            raise HumanscapeError(
                f"array has {array.shape[0]} bands, writer expects {self.count}", path=self.path
            )
        self._dst.write(array.astype(self.dtype, copy=False), window=window)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._dst.close()
        if exc_type is None and self.cog:
            cog_tmp = self._tmp.with_name(self._tmp.stem + ".cog.tif")
            try:
                rasterio.shutil.copy(
                    self._tmp,
                    cog_tmp,
                    driver="COG",
                    compress=self.compress.upper(),
                    overview_resampling="average"
                    if np.dtype(self.dtype).kind == "f"
                    else "nearest",
                )
                cog_tmp.replace(self._tmp)
            finally:
                if cog_tmp.exists():
                    cog_tmp.unlink()
        if exc_type is None:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(exc_type, exc, tb)  # type: ignore[arg-type]


def write_raster(
    path: str | Path,
    array: np.ndarray,
    grid: GridSpec,
    *,
    units: str | Sequence[str],
    nodata: float | None = None,
    band_names: Sequence[str] | None = None,
    cog: bool = False,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write an in-memory array as a GeoTIFF/COG atomically (see :class:`RasterWriter`)."""
    if array.ndim == 2:
        array = array[None]
    with RasterWriter(
        path,
        grid,
        count=array.shape[0],
        units=units,
        dtype=str(array.dtype),
        nodata=nodata,
        band_names=band_names,
        cog=cog,
        tags=tags,
    ) as writer:
        writer.write(array)
    return Path(path)
