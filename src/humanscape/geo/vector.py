"""Vector I/O, rasterize and polygonize, always CRS-aware.

Vectors are read with pyogrio through geopandas (GeoPackage, GeoParquet, Shapefile, GeoJSON),
reprojected to the raster's CRS when they differ, and refused with a clear error when they do not
overlap it. Outputs are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
from rasterio.windows import Window
from shapely.geometry import box, shape

from humanscape._atomic import atomic_output
from humanscape.errors import EmptyInputError, HumanscapeError, NoOverlapError
from humanscape.geo.grid import GridSpec

_DRIVERS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
}


def read_vector(
    path: str | Path, *, layer: str | None = None, crs: object | None = None
) -> gpd.GeoDataFrame:
    """Read a vector file (any OGR format or GeoParquet); reproject to ``crs`` when given."""
    path = Path(path)
    if not path.exists():
        raise EmptyInputError("vector file does not exist", path=path, fix="check the path")
    try:
        if path.suffix.lower() == ".parquet":
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path, layer=layer)
    except Exception as exc:  # pyogrio / pyarrow raise many types
        raise HumanscapeError(
            f"not a readable vector file: {exc}",
            path=path,
            fix="use GeoPackage, GeoParquet, Shapefile or GeoJSON",
        ) from exc
    if gdf.crs is None:
        raise HumanscapeError(
            "vector file has no CRS", path=path, fix="set one (e.g. ogr2ogr -a_srs EPSG:4326)"
        )
    if len(gdf) == 0:
        raise EmptyInputError("vector file has no features", path=path)
    if crs is not None and gdf.crs != crs:
        gdf = gdf.to_crs(crs)
    return gdf


def write_vector(gdf: gpd.GeoDataFrame, path: str | Path, *, layer: str | None = None) -> Path:
    """Write GeoPackage / GeoParquet / Shapefile / GeoJSON by extension, atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_output(path) as tmp:
        if suffix == ".parquet":
            gdf.to_parquet(tmp)
        elif suffix in _DRIVERS:
            gdf.to_file(tmp, driver=_DRIVERS[suffix], layer=layer or path.stem)
        else:
            raise HumanscapeError(
                f"unknown vector format '{suffix}'",
                path=path,
                fix=f"use one of {', '.join(['.parquet', *_DRIVERS])}",
            )
    return path


def clip_to_grid(
    gdf: gpd.GeoDataFrame, grid: GridSpec, *, source: str | Path = "vector"
) -> gpd.GeoDataFrame:
    """Reproject to the grid's CRS and keep the features that overlap it; error if none does."""
    gdf = gdf.to_crs(grid.crs) if gdf.crs != grid.crs else gdf
    frame = box(*grid.bounds)
    keep = gdf[gdf.intersects(frame)]
    if keep.empty:
        raise NoOverlapError(
            f"no feature overlaps the raster (vector bounds {np.round(gdf.total_bounds, 1).tolist()}, "
            f"raster bounds {np.round(grid.bounds, 1).tolist()} in {grid.crs.to_string()})",
            path=source,
            fix="check that the vector and the raster cover the same place",
        )
    return keep


def clip_or_empty(gdf: gpd.GeoDataFrame, grid: GridSpec) -> gpd.GeoDataFrame:
    """Reproject to the grid's CRS and keep the features that overlap it (possibly none)."""
    gdf = gdf.to_crs(grid.crs) if gdf.crs != grid.crs else gdf
    return gdf[gdf.intersects(box(*grid.bounds))]


def rasterize(
    gdf: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    column: str | None = None,
    burn: float = 1,
    fill: float = 0,
    dtype: str = "uint8",
    all_touched: bool = False,
    window: Window | None = None,
    source: str | Path = "vector",
) -> np.ndarray:
    """Burn polygons/points onto ``grid`` (or a window of it): ``column`` values or ``burn``.

    Reprojects to the grid's CRS; raises :class:`NoOverlapError` (naming ``source``) when nothing
    overlaps. Later features overwrite earlier ones where they overlap.
    """
    gdf = clip_to_grid(gdf, grid, source=source)
    target = grid.window_grid(window) if window is not None else grid
    if column is not None and column not in gdf.columns:
        raise HumanscapeError(
            f"no column '{column}' (columns: {', '.join(map(str, gdf.columns))})",
            path=source,
            fix="choose an existing column",
        )
    values = gdf[column].to_numpy() if column else np.full(len(gdf), burn)
    shapes = [
        (geom, val) for geom, val in zip(gdf.geometry, values, strict=True) if geom is not None
    ]
    return rasterio.features.rasterize(
        shapes,
        out_shape=target.shape,
        transform=target.transform,
        fill=fill,
        dtype=dtype,
        all_touched=all_touched,
    )


def polygonize(
    scores: np.ndarray,
    grid: GridSpec,
    *,
    threshold: float,
    min_area: float = 0.0,
) -> gpd.GeoDataFrame:
    """Polygons of 8-connected pixels with ``scores >= threshold``, with area and score statistics.

    Columns: ``geometry``, ``area_m2`` (CRS units squared), ``n_pixels``, ``score_mean``,
    ``score_max``; sorted by ``score_mean`` descending. NaN scores never pass the threshold.
    """
    from scipy import ndimage

    mask = np.nan_to_num(scores, nan=-np.inf) >= threshold
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
    if n == 0:
        return gpd.GeoDataFrame(
            {"area_m2": [], "n_pixels": [], "score_mean": [], "score_max": []},
            geometry=gpd.GeoSeries([], crs=grid.crs),
            crs=grid.crs,
        )
    index = np.arange(1, n + 1)
    mean = ndimage.mean(scores, labels, index)
    peak = ndimage.maximum(scores, labels, index)
    count = ndimage.sum(mask, labels, index)
    geoms: dict[int, list] = {}
    for geom, value in rasterio.features.shapes(
        labels.astype(np.int32), mask=mask, connectivity=8, transform=grid.transform
    ):
        geoms.setdefault(int(value), []).append(shape(geom))
    from shapely.ops import unary_union

    rows = []
    for lab in index:
        geom = unary_union(geoms[int(lab)])
        rows.append(
            {
                "geometry": geom,
                "area_m2": geom.area,
                "n_pixels": int(count[lab - 1]),
                "score_mean": float(mean[lab - 1]),
                "score_max": float(peak[lab - 1]),
            }
        )
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=grid.crs)
    gdf = gdf[gdf["area_m2"] >= min_area]
    return gdf.sort_values("score_mean", ascending=False).reset_index(drop=True)
