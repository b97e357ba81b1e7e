"""Writing rasters: windowed and atomic, recording what every band's numbers mean.

- :class:`RasterSpec` describes a map raster (grid, bands, units, dtype, nodata, tags) and
  :class:`WindowedMap` is the contract of a map computed window by window, which the tiled engine
  (:mod:`humanscape.scale`) runs; :func:`write_map` runs one in this process.
- :class:`RasterWriter` writes a GeoTIFF (or COG) window by window under a temporary name and
  renames it only when all went well; :func:`write_raster` writes an in-memory array.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from humanscape._atomic import atomic_output
from humanscape.errors import HumanscapeError
from humanscape.geo.grid import DEFAULT_BLOCK, GridSpec


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


#: Rasters with more bands than this are written as tiled GeoTIFFs even when a COG is asked for:
#: they are stacks (chip embeddings, feature stacks) read by models, not maps a person pans; their
#: overviews cost more than the map (predict-chips: 9 s more for a small scene) and no viewer
#: shows hundreds of bands.
MAX_COG_BANDS = 32


def _cog_options(compress: str) -> dict[str, str]:
    """GDAL COG-driver options matching :func:`creation_options` for ``compress``."""
    if compress == "deflate":
        return {"level": "1", "predictor": "YES"}
    if compress == "zstd":
        return {"level": "1", "predictor": "YES"}
    if compress == "lzw":
        return {"predictor": "YES"}
    return {}


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
            st = os.stat(path)
            parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(str(path))
    return ";".join(parts)


def folder_token(folder: str | Path) -> str:
    """:func:`file_token` of the files of a folder (a model folder a resumed map must find unchanged)."""
    return file_token(sorted(str(p) for p in Path(folder).glob("*") if p.is_file()))


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
    GeoTIFF is converted to a Cloud-Optimised GeoTIFF (overviews included) before the rename,
    for rasters of up to :data:`MAX_COG_BANDS` bands.

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
        # a COG for maps; stacks of many bands (embeddings, features) stay tiled GeoTIFFs
        self.cog = cog and count <= MAX_COG_BANDS
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
                    # as the tiled file: level 1, predictor, all cores (the COG default, level 6
                    # without predictor, made the copy slower than computing most maps)
                    **_cog_options(self.compress),
                    num_threads="ALL_CPUS",
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
