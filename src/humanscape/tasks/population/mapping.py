"""Population maps: a model run over every cell of a grid laid on a scene (Huang et al. 2021, Sec. V).

For each cell the model sees what it was trained on: a chip of the training chips' size in
pixels centred on the cell centre (EuroSAT chips are 64 px = 640 m inside their 1 km census
cell; chips cut by ``humanscape chip --neighbors n`` are the n x n block of cells). Cells are read
batch by batch with :func:`~humanscape.geo.grid.read_padded` (windowed reads: memory holds one
batch of chips plus the cell-level output, never the scene).

The output GeoTIFF is on the cell grid (cell in metres, arc-seconds, or the grid of a reference
raster), units ``count`` (people per cell), bands ``population``, ``lower``, ``upper`` (the
split-conformal interval) and, when district totals are given, ``population_model`` (before the
census-consistent rescaling, :func:`~humanscape.tasks.population.census.dasymetric_rescale`,
which scales the interval by the same factor).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window
from tqdm.auto import tqdm

from humanscape.errors import HumanscapeError, NoOverlapError
from humanscape.geo.grid import CellGrid, read_padded
from humanscape.geo.raster import GridSpec, Scene, write_raster
from humanscape.geo.vector import rasterize
from humanscape.tasks.population.census import dasymetric_rescale
from humanscape.tasks.population.model import PopulationModel

log = logging.getLogger(__name__)

#: Ground sampling the population models are trained at (Sentinel-2 10 m bands).
PIXEL_M = 10.0


@dataclass
class PopulationMap:
    """Cell-level arrays of a population map (``NaN`` where the scene has no data)."""

    population: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    grid: GridSpec
    model_population: np.ndarray | None = None


def reference_grid(path: str | Path, *, pixel_m: float = PIXEL_M) -> CellGrid:
    """The cell grid of a reference raster (e.g. a census grid), sampled at about ``pixel_m``."""
    try:
        with rasterio.open(path) as src:
            crs, transform, width, height = src.crs, src.transform, src.width, src.height
    except rasterio.errors.RasterioError as exc:
        raise HumanscapeError(
            f"not a readable raster ({exc})", path=path, fix="give a GeoTIFF of the target grid"
        ) from None
    if crs is None:
        raise HumanscapeError(
            "reference grid has no CRS", path=path, fix="give a georeferenced raster"
        )
    size = abs(transform.a) * (111_320.0 if crs.is_geographic else 1.0)
    cell_px = max(1, round(size / pixel_m))
    pixels = GridSpec(crs, transform * Affine.scale(1 / cell_px), width * cell_px, height * cell_px)
    return CellGrid(pixels, cell_px)


def predict_map(
    model: PopulationModel,
    scene: Scene,
    grid: CellGrid,
    chip_px: tuple[int, int],
    *,
    batch_size: int = 64,
    min_valid: float = 0.5,
    progress: bool = True,
) -> PopulationMap:
    """Predict people per cell of ``grid`` over ``scene`` (see the module docstring).

    Cells whose chip has less than ``min_valid`` valid pixels stay NaN; if no cell has enough,
    :class:`NoOverlapError` is raised.
    """
    pixel_scene = scene if scene.grid.matches(grid.pixels) else scene.aligned_to(grid.pixels)
    missing = [b for b in model.input_bands if b not in pixel_scene.band_names]
    if missing:
        raise HumanscapeError(
            f"the scene has no band {', '.join(missing)} (bands: {', '.join(pixel_scene.band_names)})",
            path=scene.name,
            fix="give a scene with the model's bands",
        )
    shape = (grid.n_rows, grid.n_cols)
    out = {k: np.full(shape, np.nan, np.float32) for k in ("population", "lower", "upper")}
    h, w = chip_px
    cells = [(r, c) for r in range(grid.n_rows) for c in range(grid.n_cols)]
    bar = tqdm(total=len(cells), desc="population", unit="cell", disable=not progress)
    for start in range(0, len(cells), batch_size):
        batch, where = [], []
        for r, c in cells[start : start + batch_size]:
            cy, cx = (r + 0.5) * grid.cell_px, (c + 0.5) * grid.cell_px
            window = Window(round(cx - w / 2), round(cy - h / 2), w, h)
            chip = read_padded(pixel_scene, window, model.input_bands)
            if np.isfinite(chip).all(axis=0).mean() >= min_valid:
                batch.append(chip)
                where.append((r, c))
        if batch:
            pred, lower, upper = model.predict_interval(np.stack(batch))
            rows, cols = np.array(where).T
            out["population"][rows, cols] = pred
            out["lower"][rows, cols] = lower
            out["upper"][rows, cols] = upper
        bar.update(len(cells[start : start + batch_size]))
    bar.close()
    if not np.isfinite(out["population"]).any():
        raise NoOverlapError(
            "no cell of the grid has imagery (the scene does not overlap the requested grid)",
            path=scene.name,
            fix="give a grid (--grid, --cell) over the scene",
        )
    cell_grid = GridSpec(grid.crs, grid.transform, grid.n_cols, grid.n_rows)
    return PopulationMap(out["population"], out["lower"], out["upper"], cell_grid)


def census_consistent(
    result: PopulationMap,
    districts: gpd.GeoDataFrame,
    total_column: str,
    *,
    id_column: str | None = None,
    source: str | Path = "districts",
) -> PopulationMap:
    """Rescale cells so each district's cells sum to its total (dasymetric redistribution).

    A cell belongs to the district holding its centre. Districts are reprojected to the grid's
    CRS; those with no cell of the map (outside the scene) are left out with a warning. The
    interval is scaled by each district's factor.
    """
    if total_column not in districts.columns:
        raise HumanscapeError(
            f"district file has no column '{total_column}' (columns: "
            f"{', '.join(c for c in map(str, districts.columns) if c != 'geometry')})",
            path=source,
            fix="give the column of district population totals (--total-column)",
        )
    totals = districts[total_column].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(totals).all() or (totals < 0).any():
        raise HumanscapeError(
            f"column '{total_column}' has missing or negative totals",
            path=source,
            fix="give a population of 0 or more for every district",
        )
    ids = np.arange(1, len(districts) + 1, dtype=np.int32)
    frame = districts.assign(_hs_id=ids)
    district = rasterize(frame, result.grid, column="_hs_id", fill=0, dtype="int32", source=source)
    valid = np.isfinite(result.population)
    present = set(np.unique(district[valid]).tolist()) - {0}
    if not present:
        raise NoOverlapError(
            "no district covers a cell centre of the map",
            path=source,
            fix="give districts over the scene, in any CRS",
        )
    skipped = len(ids) - len(present)
    if skipped:
        log.warning("%s: %d district(s) have no cell of the map and were left out", source, skipped)
    key = {int(i): float(t) for i, t in zip(ids, totals, strict=True) if int(i) in present}
    scaled = dasymetric_rescale(
        np.where(valid, result.population, 0.0), np.where(valid, district, 0), key
    )
    factor = np.where(result.population > 0, scaled / np.maximum(result.population, 1e-12), 1.0)
    return PopulationMap(
        np.where(valid, scaled, np.nan).astype(np.float32),
        (result.lower * factor).astype(np.float32),
        (result.upper * factor).astype(np.float32),
        result.grid,
        model_population=result.population,
    )


def write_map(
    result: PopulationMap, path: str | Path, *, tags: dict[str, str] | None = None
) -> Path:
    """Write the map as a GeoTIFF (units ``count``) atomically; see the module docstring for bands."""
    arrays = [result.population, result.lower, result.upper]
    names = ["population", "lower", "upper"]
    if result.model_population is not None:
        arrays.append(result.model_population)
        names.append("population_model")
    return write_raster(
        path,
        np.stack(arrays).astype(np.float32),
        result.grid,
        units="count",
        nodata=float("nan"),
        band_names=names,
        tags=tags,
    )
