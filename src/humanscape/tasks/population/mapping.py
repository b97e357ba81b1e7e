"""Population maps: a model run over every cell of a grid laid on a scene (Huang et al. 2021, Sec. V).

For each cell the model sees what it was trained on: a chip of the training chips' size in
pixels centred on the cell centre (EuroSAT chips are 64 px = 640 m inside their 1 km census
cell; chips cut by ``humanscape chip --neighbors n`` are the n x n block of cells). The map is a
:class:`~humanscape.scale.chips.ChipMap`: the CLI runs it on the tiled engine (one windowed read
per tile of cells, resumable, on Dask workers), :func:`predict_map` in this process.

The output GeoTIFF is on the cell grid (cell in metres, arc-seconds, or the grid of a reference
raster), units ``count`` (people per cell), bands ``population``, ``lower``, ``upper`` (the split-conformal interval); the scene is harmonised to the training
chips first unless asked not to (:mod:`humanscape.data.harmonise`) and, when district totals are given, ``population_model`` (before the
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
from tqdm.auto import tqdm

from humanscape.data.harmonise import HARMONISE, QuantileMatch, scene_quantiles
from humanscape.errors import HumanscapeError, NoOverlapError
from humanscape.geo.grid import CellGrid, GridSpec
from humanscape.geo.scene import Scene
from humanscape.geo.vector import rasterize
from humanscape.geo.write import write_raster
from humanscape.scale.chips import ChipMap
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


class PopulationChips:
    """A population model as a chip predictor: people per chip with the conformal interval; ``harmonise`` (a :class:`~humanscape.data.harmonise.QuantileMatch`)
    maps the scene's reflectances to the training chips' before prediction."""

    outputs = ("population", "lower", "upper")
    units = "count"

    def __init__(
        self, model: PopulationModel, token: str = "", harmonise: QuantileMatch | None = None
    ) -> None:
        self.model = model
        self.bands = list(model.input_bands)
        self.harmonise = harmonise
        self._token = token

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        from humanscape.scale.chips import set_worker_threads

        set_worker_threads()
        if self.harmonise is not None:
            chips = self.harmonise(chips)
        return self.model.predict_map_values(chips)

    def token(self) -> str:
        import joblib

        if not self._token:  # a model not read from a folder: hash the fitted model itself
            self._token = joblib.hash(self.model)
        harmonised = joblib.hash(self.harmonise) if self.harmonise is not None else "none"
        return f"population {self._token} harmonise {harmonised}"


def harmoniser(model: PopulationModel, scene: Scene, method: str) -> QuantileMatch | None:
    """The harmonisation of ``scene`` to ``model``'s training chips (``quantile`` or ``none``);
    ``None`` for ``none`` and for models saved without band quantiles (before issue 22)."""
    if method == "none":
        return None
    if method != "quantile":
        raise HumanscapeError(
            f"unknown harmonisation '{method}'", fix=f"use one of {', '.join(HARMONISE)}"
        )
    if not hasattr(model, "band_quantiles_"):
        log.warning(
            "the model keeps no training band quantiles (saved before issue 22): not harmonised"
        )
        return None
    return QuantileMatch(scene_quantiles(scene, model.input_bands), model.band_quantiles_)


def population_job(
    model: PopulationModel,
    scene: Scene,
    grid: CellGrid,
    chip_px: tuple[int, int],
    *,
    min_valid: float = 0.5,
    token: str = "",
    tags: dict[str, str] | None = None,
    harmonise: QuantileMatch | None = None,
) -> ChipMap:
    """The population map of ``scene`` on ``grid`` as a windowed map for the tiled engine."""
    return ChipMap(
        scene,
        PopulationChips(model, token, harmonise),
        chip=chip_px,
        cells=grid,
        min_valid=min_valid,
        tags=tags,
    )


def predict_map(
    model: PopulationModel,
    scene: Scene,
    grid: CellGrid,
    chip_px: tuple[int, int],
    *,
    min_valid: float = 0.5,
    progress: bool = True,
    harmonise: QuantileMatch | None = None,
) -> PopulationMap:
    """Predict people per cell of ``grid`` over ``scene`` in this process (see the module docstring).

    Cells whose chip has less than ``min_valid`` valid pixels stay NaN; if no cell has enough,
    :class:`NoOverlapError` is raised.
    """
    job = population_job(model, scene, grid, chip_px, min_valid=min_valid, harmonise=harmonise)
    out = np.full((3, grid.n_rows, grid.n_cols), np.nan, np.float32)
    windows = list(job.spec.grid.windows(job.default_tile()))
    for window in tqdm(windows, desc="population", unit="tile", disable=not progress):
        rows, cols = window.toslices()
        out[:, rows, cols] = job.compute(window)
    check_overlap(out[0], scene.name)
    return PopulationMap(out[0], out[1], out[2], job.spec.grid)


def check_overlap(population: np.ndarray, scene: str) -> None:
    """Refuse a map in which no cell has imagery."""
    if not np.isfinite(population).any():
        raise NoOverlapError(
            "no cell of the grid has imagery (the scene does not overlap the requested grid)",
            path=scene,
            fix="give a grid (--grid, --cell) over the scene",
        )


def read_map(path: str | Path) -> PopulationMap:
    """A population map written by :func:`write_map` or the tiled engine, back in memory."""
    with rasterio.open(path) as src:
        data = src.read()
        grid = GridSpec(src.crs, src.transform, src.width, src.height)
    model = data[3] if data.shape[0] > 3 else None
    return PopulationMap(data[0], data[1], data[2], grid, model_population=model)


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
    result: PopulationMap,
    path: str | Path,
    *,
    tags: dict[str, str] | None = None,
    cog: bool = True,
) -> Path:
    """Write the map as a GeoTIFF (units ``count``; a COG with overviews unless ``cog=False``)
    atomically; see the module docstring for bands."""
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
        cog=cog,
    )
