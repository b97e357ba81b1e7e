"""Alignment: one grid for the bands of a scene, and auxiliary rasters read on a target grid.

:func:`target_grid` chooses the grid a scene is presented on (the finest band, over the area every
band covers); :class:`AlignedRaster` reads one band of another raster (a cloud mask, labels, a
probability map) on a target grid, reprojected and resampled window by window.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio.warp
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from humanscape.errors import CRSMismatchError, MissingBandError, NoOverlapError
from humanscape.geo.files import GdalPath, input_path, open_raster
from humanscape.geo.grid import GridSpec

if TYPE_CHECKING:
    from humanscape.geo.scene import BandSource


def target_grid(grids: list[tuple[BandSource, GridSpec]], resolution: float | None) -> GridSpec:
    """The grid a scene's bands are aligned to: the finest band's grid over the area all bands
    cover (at ``resolution`` when given); bands that do not overlap are refused by name."""
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
        self.path = input_path(path)
        self.grid = grid
        self.band = band
        self.resampling = resampling
        self._ds = open_raster(self.path)
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


def _aligned_raster(
    path: Path | GdalPath, grid: GridSpec, band: int, resampling: Resampling
) -> AlignedRaster:
    return AlignedRaster(path, grid, band=band, resampling=resampling)
