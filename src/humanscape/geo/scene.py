"""A scene: the bands of one acquisition (or composite) on one aligned grid, read window by window.

A :class:`Scene` holds, for each band, where it lives and what its numbers mean
(:class:`BandSource`), and presents all bands on one target grid: bands on another grid are warped
on the fly through GDAL's ``WarpedVRT``, window by window, so that memory never grows with the size
of the scene. Continuous bands are resampled bilinearly when upsampled and by area average when
downsampled; QA / mask bands always by nearest neighbour. Nodata becomes NaN in float reads, and
:meth:`Scene.read` turns stored numbers into reflectance with each band's radiometry (decided once,
when the scene is opened: :func:`humanscape.geo.inputs.open_scene`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from humanscape.errors import CRSMismatchError, MissingBandError, NotARasterError
from humanscape.geo.files import GdalPath, open_raster
from humanscape.geo.grid import DEFAULT_BLOCK, GridSpec
from humanscape.geo.radiometry import Radiometry
from humanscape.geo.sensors import Band, Sensor


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

    path: Path | GdalPath
    index: int
    band: Band
    radiometry: Radiometry = field(default_factory=lambda: Radiometry("reflectance"))
    nodata: float | None = None


@dataclass
class Scene:
    """Bands of one acquisition (or composite), presented on one aligned grid.

    Use :func:`humanscape.geo.inputs.open_scene` to build one. Read with :meth:`read` (whole scene or a window); iterate
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
            self._datasets[path] = open_raster(path)
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


def read_padded(scene: Scene, window: Window, bands: Sequence[str] | None = None) -> np.ndarray:
    """Read ``window`` from ``scene``; the part outside the scene grid is NaN."""
    names = scene.resolve(bands)
    col0, row0 = max(0, int(window.col_off)), max(0, int(window.row_off))
    col1 = min(scene.width, int(window.col_off + window.width))
    row1 = min(scene.height, int(window.row_off + window.height))
    if (col0, row0, col1 - col0, row1 - row0) == (
        int(window.col_off),
        int(window.row_off),
        int(window.width),
        int(window.height),
    ):  # inside the scene: no padding, no copy
        return scene.read(names, window)
    out = np.full((len(names), int(window.height), int(window.width)), np.nan, dtype=np.float32)
    if col1 <= col0 or row1 <= row0:
        return out
    inner = Window(col0, row0, col1 - col0, row1 - row0)
    r, c = row0 - int(window.row_off), col0 - int(window.col_off)
    out[:, r : r + inner.height, c : c + inner.width] = scene.read(names, inner)
    return out
