"""``population disaggregate``: census counts of units spread over the cells of a scene.

The workflow behind the command: the scene's per-cell covariates
(:mod:`~humanscape.tasks.population.covariates`), optionally the share of each cell under given
land-use classes (OSM ``residential``), the units burned onto the cells (a cell belongs to the
unit that contains its centre), one method of :mod:`~humanscape.tasks.population.disaggregate`
(``auto``: chosen by the blocks-of-blocks check, areal weighting unless another is 10 % better),
and a GeoTIFF of people per cell that sums exactly to each unit's count, with the 90 % band of
eq. 3 of that module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.features import rasterize

from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo.grid import CellGrid, GridSpec, cell_grid
from humanscape.geo.inputs import SceneReader
from humanscape.geo.scene import Scene
from humanscape.geo.write import write_raster
from humanscape.tasks.population.covariates import cell_covariates
from humanscape.tasks.population.disaggregate import (
    METHODS,
    MIN_UNITS_FOR_BAND,
    Candidate,
    Disaggregator,
    Units,
    interval_band,
    interval_halfwidth,
    redistribute,
    select_method,
    unit_centroids,
)

log = logging.getLogger(__name__)

LANDUSE_OVERSAMPLE = 10  # land-use shares from a grid 10 x finer than the cells
MIN_LABELS = 20  # mapped cells of each class a settlements model needs


def reference_cells(scene: Scene, reference: Path) -> CellGrid:
    """The cells of a reference raster (e.g. a census grid) as a cell grid of the scene: same
    CRS, a pixel size that is a whole number of scene pixels, edges on scene pixel edges."""
    from humanscape.geo.files import open_raster

    grid = scene.grid
    with open_raster(reference) as src:
        crs, t, width, height = src.crs, src.transform, src.width, src.height
    if crs != grid.crs:
        raise HumanscapeError(
            f"reference grid in {crs}, scene in {grid.crs}", path=reference,
            fix="give a reference raster in the scene's CRS, or use --cell",
        )  # fmt: skip
    k = t.a / grid.transform.a
    if abs(k - round(k)) > 1e-6 or round(k) < 1 or abs(t.e + t.a) > 1e-9 * abs(t.a):
        raise HumanscapeError(
            f"reference cells of {t.a:g} m are not a whole number of the scene's "
            f"{grid.transform.a:g} m pixels (or not square)",
            path=reference,
            fix="use --cell instead",
        )
    k = round(k)
    pixels = GridSpec(
        grid.crs, Affine(grid.transform.a, 0, t.c, 0, grid.transform.e, t.f), width * k, height * k
    )
    return CellGrid(pixels, k)


def read_units(
    path: Path, count_column: str, crs: object, id_column: str | None = None
) -> gpd.GeoDataFrame:
    """The units with ``id`` and ``count``, in ``crs``; bad counts and overlaps refused."""
    from humanscape.geo.vector import read_vector

    units = read_vector(path, crs=crs)
    columns = [c for c in map(str, units.columns) if c != "geometry"]
    for column, option in ((count_column, "--count-column"), (id_column, "--id-column")):
        if column is not None and column not in units.columns:
            raise HumanscapeError(
                f"units have no column '{column}' (columns: {', '.join(columns)})",
                path=path,
                fix=f"give {option} one of these columns",
            )
    counts = pd.to_numeric(units[count_column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        raise HumanscapeError(
            f"{int(bad.sum())} unit(s) have a missing, non-numeric or negative count in "
            f"'{count_column}'",
            path=path,
            fix="give every unit a count of people >= 0",
        )
    ids = units[id_column].astype(str) if id_column else pd.Series(range(len(units))).astype(str)
    out = gpd.GeoDataFrame(
        {"id": ids.to_numpy(), "count": counts}, geometry=units.geometry.values, crs=units.crs
    )
    overlap = out.geometry.area.sum() - out.geometry.union_all().area
    if overlap > 1e-6 * max(out.geometry.area.sum(), 1e-12):
        raise HumanscapeError(
            f"units overlap ({overlap:,.0f} m² counted twice): a person would be placed twice",
            path=path,
            fix="give units that partition the land (census districts, not overlapping buffers)",
        )
    return out


def burn_units(units: gpd.GeoDataFrame, grid: GridSpec) -> np.ndarray:
    """Index of the unit containing each cell's centre, -1 outside every unit; ``(rows, cols)``."""
    shapes = [(geom, i) for i, geom in enumerate(units.geometry) if geom is not None]
    return rasterize(
        shapes,
        out_shape=(grid.height, grid.width),
        transform=grid.transform,
        fill=-1,
        dtype="int32",
    )


def class_share(
    landuse: gpd.GeoDataFrame, column: str, classes: Sequence[str] | None, grid: GridSpec
) -> np.ndarray:
    """Share of each cell under polygons of ``classes`` (all polygons when None), from a grid
    ``LANDUSE_OVERSAMPLE`` times finer than the cells."""
    if column not in landuse.columns:
        columns = ", ".join(c for c in map(str, landuse.columns) if c != "geometry")
        raise HumanscapeError(
            f"land use has no column '{column}' (columns: {columns})",
            fix="give --landuse-column a column of the file",
        )
    chosen = landuse if classes is None else landuse[landuse[column].astype(str).isin(classes)]
    k = LANDUSE_OVERSAMPLE
    if chosen.empty:
        log.warning(
            "no land-use polygon of class %s: the share is 0 everywhere", ", ".join(classes or [])
        )
        return np.zeros((grid.height, grid.width))
    t = grid.transform
    fine = rasterize(
        [(geom, 1) for geom in chosen.geometry if geom is not None],
        out_shape=(grid.height * k, grid.width * k),
        transform=t * Affine.scale(1 / k),
        fill=0,
        dtype="uint8",
    )
    return fine.reshape(grid.height, k, grid.width, k).mean(axis=(1, 3))


def residential_share(
    x: np.ndarray, names: Sequence[str], share: np.ndarray, mapped: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, str]:
    """The ``landuse_share`` covariate: the share under the ``--built`` classes where land use is
    mapped, and elsewhere the probability of a settlements model
    (:class:`~humanscape.tasks.settlements.model.SettlementClassifier`, random forest) fitted on
    the scene's own mapped cells (a cell at least half mapped is a positive when the ``--built``
    classes hold at least half its mapped area) from the cells' covariates:

        s_c = share_c + (1 - mapped_c) p(built | x_c)

    Land-use maps (OSM) are incomplete; the model carries what the mapped cells show to the
    unmapped ones. With fewer than ``MIN_LABELS`` cells of either class the model is skipped."""
    from humanscape.tasks.settlements.model import SettlementClassifier

    labelled = mapped >= 0.5
    positive = share >= 0.5 * mapped
    n_pos, n_neg = int((labelled & positive).sum()), int((labelled & ~positive).sum())
    if min(n_pos, n_neg) < MIN_LABELS:
        return share, (
            f"land use: {n_pos} built / {n_neg} other mapped cells are too few for a settlements "
            "model; the mapped share alone"
        )
    features = np.nan_to_num(np.asarray(x, dtype=np.float64))
    model = SettlementClassifier("rf", features=list(names), n_estimators=200, seed=seed).fit(
        features[labelled], positive[labelled].astype(int)
    )
    probability = model.predict_proba(features)[:, 1].astype(np.float64)
    return share + (1 - np.clip(mapped, 0, 1)) * probability, (
        f"land use: a settlements model fitted on {n_pos} built / {n_neg} other mapped cells "
        f"gives p(built) where {100 * float((mapped < 1).mean()):.0f} % of cells are unmapped"
    )


BAND_NAMES = ["population", "population_lower_90", "population_upper_90"]


def disaggregate_scene(
    scene: str | Path,
    units_path: Path | None,
    count_column: str | None,
    out: Path,
    reader: SceneReader,
    *,
    cell: float = 100.0,
    reference: Path | None = None,
    id_column: str | None = None,
    method: str = "auto",
    landuse: Path | None = None,
    landuse_column: str = "fclass",
    built: Sequence[str] = ("residential",),
    model: Path | None = None,
    save_model: Path | None = None,
    progress: bool = True,
    cog: bool = True,
) -> list[str]:
    """Write people per cell of ``scene`` (``cell`` metres, or the cells of the ``reference``
    raster) from the counts of ``units_path`` (band 1) and the 90 % band of eq. 3 (bands 2, 3).

    ``model``: a saved :class:`Disaggregator` instead of fitting one (its band half-width comes
    from the scene it was fitted on); without units it maps its density unconstrained.
    ``save_model``: write the fitted model there."""
    if method != "auto" and method not in METHODS:
        raise HumanscapeError(
            f"unknown method '{method}'", fix=f"use auto or one of {', '.join(METHODS)}"
        )
    if units_path is None and model is None:
        raise HumanscapeError(
            "no census units to learn from", fix="give --units and --count-column, or --model"
        )
    if units_path is not None and count_column is None:
        raise HumanscapeError(
            "--units needs --count-column", path=units_path, fix="name the column of people"
        )
    fitted = Disaggregator.load(model) if model is not None else None
    with reader.open(scene) as s:
        cells = cell_grid(s.grid, cell=cell) if reference is None else reference_cells(s, reference)
        cell = cells.cell_size
        covariates = cell_covariates(s, cells, progress=progress)
        crs = s.crs
    grid = covariates.grid
    x, names = covariates.matrix(), list(covariates.names)
    lines: list[str] = []
    if landuse is not None:
        from humanscape.geo.vector import read_vector

        polygons = read_vector(landuse, crs=crs)
        share = class_share(polygons, landuse_column, list(built), grid).ravel()
        mapped = class_share(polygons, landuse_column, None, grid).ravel()
        share, line = residential_share(x, names, share, mapped)
        x, names = np.column_stack([x, share]), [*names, "landuse_share"]
        lines.append(line)
    if fitted is not None:
        fitted.check_covariates(names)
    area_km2 = np.nan_to_num(covariates.column("valid_share")).ravel() * (cell / 1000.0) ** 2
    if units_path is None:
        assert fitted is not None
        people, halfwidth = _unconstrained(fitted, x, area_km2, model), fitted.halfwidth_or_none()
        method, n_cells = fitted.method, int((area_km2 > 0).sum())
        lines.append(
            f"no units: {np.nansum(people):,.0f} people from the model's density alone on "
            f"{n_cells} cells of {cell:g} m (not constrained to any census)"
        )
    else:
        assert count_column is not None
        table = read_units(units_path, count_column, crs, id_column)
        index = burn_units(table, grid)
        if (index < 0).all():
            raise EmptyInputError(
                "no unit covers a cell centre of the scene", path=units_path,
                fix="give units that overlap the scene, or a smaller --cell",
            )  # fmt: skip
        units = Units(index.ravel(), area_km2, table["count"].to_numpy(), list(table["id"]))
        centroids = unit_centroids(units, grid.width)
        if fitted is None:
            fitted, halfwidth = _fit(x, units, names, centroids, method, lines)
        else:
            halfwidth = fitted.halfwidth_or_none()
            lines.append(f"model {model}: {fitted.method}, fitted on another scene's units")
        method = fitted.method if fitted.method != "binary" else f"binary(floor={fitted.floor:g})"
        people = redistribute(fitted.weights(x, area_km2), units)
        lines.append(
            f"{units.n_units} units, {table['count'].sum():,.0f} people; "
            f"{np.nansum(people):,.0f} placed on {int((index >= 0).sum())} cells of {cell:g} m "
            f"by {method}"
        )
        lost = units.without_cells()
        if lost:
            lines.append(
                f"{len(lost)} unit(s) with people cover no cell centre and are not placed: "
                + ", ".join(lost[:10])
                + (" ..." if len(lost) > 10 else "")
            )
    if halfwidth is None:
        lower = upper = np.full(people.shape, np.nan)
    else:
        lower, upper = interval_band(people, halfwidth)
        lower[np.isnan(people)] = upper[np.isnan(people)] = np.nan
    stack = np.stack([people, lower, upper]).reshape(3, grid.height, grid.width)
    tags = {"method": method, "units": str(units_path or ""), "count_column": count_column or ""}
    if halfwidth is not None:
        tags["band_halfwidth_log1p"] = f"{halfwidth:.6g}"
    write_raster(
        out,
        stack.astype(np.float32),
        grid,
        units="people",
        nodata=float("nan"),
        band_names=BAND_NAMES,
        tags=tags,
        cog=cog,
    )
    if save_model is not None:
        fitted.save(save_model)
        lines.append(f"wrote {save_model}")
    lines.append(f"wrote {out}")
    return lines


def _fit(
    x: np.ndarray,
    units: Units,
    names: list[str],
    centroids: np.ndarray,
    method: str,
    lines: list[str],
) -> tuple[Disaggregator, float | None]:
    """Select (``auto``) and fit the method on the units; the band half-width of eq. 3."""
    errors = None
    if method == "auto":
        selection = select_method(x, units, names, centroids)
        candidate, errors = selection.chosen, selection.errors
        lines.append(
            "blocks-of-blocks share of people misplaced: "
            + ", ".join(f"{k} {v:.3f}" for k, v in selection.scores.items())
            + f" -> {candidate.label}"
        )
    else:
        candidate = Candidate(method)
    halfwidth, info = interval_halfwidth(candidate, x, units, names, centroids, errors=errors)
    if halfwidth is None:
        lines.append(
            f"no 90 % band: {units.n_units} units are too few to measure how errors grow from "
            f"units to cells (eq. 3 needs {MIN_UNITS_FOR_BAND})"
        )
    else:
        lines.append(
            f"90 % band: x/÷ {np.exp(halfwidth):.3g} on 1 + people per cell (q_1 "
            f"{info['q_1']:.3f} on units of {info['m_1']:.0f} cells, gamma {info['gamma']:.2f})"
        )
    fitted = candidate.model().fit(x, units, names)
    if halfwidth is not None:
        fitted.halfwidth_ = halfwidth
    return fitted, halfwidth


def _unconstrained(
    fitted: Disaggregator, x: np.ndarray, area_km2: np.ndarray, model: Path | None
) -> np.ndarray:
    """People per cell from a model's density alone (no units to rescale to)."""
    if not fitted.has_density:
        raise HumanscapeError(
            "a binary dasymetric model has relative weights, no density: it needs units",
            path=model,
            fix="give --units and --count-column",
        )
    return np.where(area_km2 > 0, fitted.density(x) * area_km2, np.nan)


def _on_reference(values: np.ndarray, grid: GridSpec, reference: GridSpec) -> np.ndarray:
    """Sum the cells of ``values`` (on ``grid``) into the reference cells holding their centres."""
    rows, cols = np.indices(values.shape)
    x, y = grid.transform * (cols + 0.5, rows + 0.5)
    col, row = ~reference.transform * (x, y)
    row, col = np.floor(row).astype(int), np.floor(col).astype(int)
    ok = (row >= 0) & (row < reference.height) & (col >= 0) & (col < reference.width)
    ok &= np.isfinite(values)
    out = np.zeros((reference.height, reference.width))
    np.add.at(out, (row[ok], col[ok]), values[ok])
    return out


def map_metrics(truth: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """r2 on counts and on log(1 + p) (coefficient of determination), MAE, total error."""
    from humanscape.evaluate.regression import r2

    return {
        "r2": r2(truth, estimate),
        "r2_log1p": r2(np.log1p(truth), np.log1p(estimate)),
        "mae": float(np.abs(truth - estimate).mean()),
        "total_error": float(estimate.sum() - truth.sum()),
    }


@dataclass
class MapComparison:
    """A map summed onto the cells of a reference raster: the metrics table and the two panels
    (NaN where a reference cell is not scored) on the reference grid."""

    table: pd.DataFrame
    estimate: np.ndarray
    truth: np.ndarray
    grid: GridSpec


def evaluate_map(
    map_path: Path,
    reference: Path,
    *,
    units_path: Path | None = None,
    count_column: str | None = None,
    band: int = 1,
    min_fraction: float | None = None,
) -> MapComparison:
    """Score a people-per-cell map against a reference raster of people per cell (a census grid,
    coarser or equal, in the map's CRS): the map's cells are summed into the reference cells that
    hold their centres; reference cells with no map cell are left out. With ``units_path`` the
    same metrics for areal weighting from those units on the map's cells (the baseline, same run).
    A map with the 90 % band (``population disaggregate``) adds ``coverage_90``, the share of
    reference cells inside the band summed like the map, and the band's median width
    ``(1 + upper) / (1 + lower)``.
    ``min_fraction``: keep only reference cells whose band 5 (share inside the scene, as in the
    shipped Eurostat sample) is at least this."""
    import rasterio

    with rasterio.open(map_path) as src:
        people = src.read(1).astype(np.float64)
        grid = GridSpec(src.crs, src.transform, src.width, src.height)
        bounds = None
        if tuple(src.descriptions[:3]) == tuple(BAND_NAMES):
            bounds = src.read(2).astype(np.float64), src.read(3).astype(np.float64)
    with rasterio.open(reference) as src:
        if src.crs != grid.crs:
            raise HumanscapeError(
                f"reference in {src.crs}, map in {grid.crs}", path=reference,
                fix="reproject the reference to the map's CRS",
            )  # fmt: skip
        truth = src.read(band).astype(np.float64)
        ref_grid = GridSpec(src.crs, src.transform, src.width, src.height)
        keep = np.isfinite(truth)
        if min_fraction is not None:
            keep &= src.read(5) >= min_fraction
    keep &= _on_reference(np.isfinite(people).astype(float), grid, ref_grid) > 0
    if not keep.any():
        raise EmptyInputError(
            "the map and the reference share no cell", path=reference,
            fix="give a reference grid over the map",
        )  # fmt: skip
    estimate = _on_reference(people, grid, ref_grid)
    rows = [{"map": "map", **map_metrics(truth[keep], estimate[keep])}]
    if bounds is not None and np.isfinite(bounds[0]).any():
        # the band summed with the map: a bound on each reference cell if all its cells hold
        lower, upper = (_on_reference(b, grid, ref_grid)[keep] for b in bounds)
        rows[0]["coverage_90"] = float(((truth[keep] >= lower) & (truth[keep] <= upper)).mean())
        rows[0]["band_width_median"] = float(np.median((upper + 1) / (lower + 1)))
    if units_path is not None and count_column is not None:
        table = read_units(units_path, count_column, grid.crs)
        index = burn_units(table, grid).ravel()
        area = np.isfinite(people).ravel().astype(float)
        units = Units(index, area, table["count"].to_numpy(), list(table["id"]))
        areal = redistribute(area, units).reshape(people.shape)
        baseline = _on_reference(areal, grid, ref_grid)[keep]
        rows.append({"map": "areal weighting (same units)", **map_metrics(truth[keep], baseline)})
    frame = pd.DataFrame(rows)
    frame.insert(1, "n_cells", int(keep.sum()))
    return MapComparison(
        frame, np.where(keep, estimate, np.nan), np.where(keep, truth, np.nan), ref_grid
    )


def evaluate_map_lines(
    map_path: Path,
    reference: Path,
    *,
    units_path: Path | None = None,
    count_column: str | None = None,
    min_fraction: float | None = None,
    png: Path | None = None,
) -> list[str]:
    """:func:`evaluate_map` as printed lines, and the map beside the reference in ``png``."""
    from humanscape.report.quicklook import side_by_side
    from humanscape.report.text import table_text

    comparison = evaluate_map(
        map_path, reference, units_path=units_path, count_column=count_column,
        min_fraction=min_fraction,
    )  # fmt: skip
    lines = [table_text(comparison.table)]
    if png is not None:
        side_by_side(
            [
                ("map, summed to the reference cells", comparison.estimate),
                ("reference", comparison.truth),
            ],
            comparison.grid,
            png,
            title=f"People per cell: {Path(map_path).name} and {Path(reference).name}",
            units="people per cell",
        )
        lines.append(f"wrote {png}")
    return lines
