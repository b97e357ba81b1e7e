"""Covariates per grid cell from a scene, for census disaggregation (dasymetric mapping).

The cells are a :class:`~humanscape.geo.grid.CellGrid` of the scene: each cell is ``cell_px`` x
``cell_px`` scene pixels. Per cell, from the spectral indices of its valid pixels (Tingzon et
al.'s set, :mod:`humanscape.geo.indices`):

- the mean of NDVI, NDBI, MNDWI and UI, and the standard deviation of NDVI and NDBI (texture:
  built-up land is heterogeneous at 10 m);
- ``built_share``: the share of valid pixels that look built up, ``NDBI > 0``, ``NDVI < 0.3`` and
  ``MNDWI < 0`` (short-wave infrared above near infrared, little vegetation, no water). A rule of
  thumb, used as the binary dasymetric baseline's mask and as one covariate among the others;
- ``valid_share``: the share of pixels with data (cells past the scene edge or under nodata).

The scene is read one band of cell rows at a time (``rows_per_read`` cells high), so that memory
stays flat as scenes grow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.windows import Window

from humanscape.errors import EmptyInputError, MissingBandError
from humanscape.geo.grid import CellGrid, GridSpec
from humanscape.geo.indices import IndicesMap
from humanscape.geo.scene import Scene

INDICES = ("NDVI", "NDBI", "MNDWI", "UI")  # bands: green, red, NIR, SWIR 1 and 2
NAMES = (
    "ndvi_mean",
    "ndbi_mean",
    "mndwi_mean",
    "ui_mean",
    "ndvi_std",
    "ndbi_std",
    "built_share",
    "valid_share",
)


@dataclass
class CellCovariates:
    """``values`` ``(len(names), n_rows, n_cols)`` on ``grid`` (one pixel per cell); NaN where a
    cell has no valid pixel."""

    values: np.ndarray
    names: tuple[str, ...]
    grid: GridSpec

    def column(self, name: str) -> np.ndarray:
        return self.values[self.names.index(name)]

    def matrix(self) -> np.ndarray:
        """``(n_cells, n_covariates)``, cells row-major."""
        return self.values.reshape(len(self.names), -1).T


def cell_statistics(indices: np.ndarray, cell_px: int) -> np.ndarray:
    """Per-cell covariates of a block of per-pixel indices ``(4, H, W)`` (``H``, ``W`` multiples of
    ``cell_px``; NaN = no data) -> ``(len(NAMES), H / cell_px, W / cell_px)``."""
    k, h, w = indices.shape
    rows, cols = h // cell_px, w // cell_px
    blocks = indices.reshape(k, rows, cell_px, cols, cell_px).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(k, rows, cols, cell_px * cell_px)
    valid = np.isfinite(blocks).all(axis=0)  # (rows, cols, px)
    n_valid = valid.sum(axis=-1)
    out = np.full((len(NAMES), rows, cols), np.nan, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        data = np.where(valid[None], blocks, 0.0)
        mean = data.sum(axis=-1) / n_valid
        square = (data**2).sum(axis=-1) / n_valid
        std = np.sqrt(np.maximum(square - mean**2, 0.0))
        ndvi, ndbi, mndwi = blocks[0], blocks[1], blocks[2]
        built = valid & (ndbi > 0) & (ndvi < 0.3) & (mndwi < 0)
        out[0:4] = mean
        out[4] = std[0]
        out[5] = std[1]
        out[6] = built.sum(axis=-1) / n_valid
    out[7] = n_valid / float(cell_px * cell_px)
    out[:7, n_valid == 0] = np.nan
    return out


def cell_covariates(
    scene: Scene, cells: CellGrid, *, rows_per_read: int = 8, progress: bool = True
) -> CellCovariates:
    """:data:`NAMES` per cell of ``cells``, reading ``rows_per_read`` rows of cells at a time.

    ``cells.pixels`` has the scene's pixel size and an origin on the scene's pixel grid (the
    scene's own grid, or one shifted by whole pixels, e.g. to match a census raster); cells
    beyond the scene get NaN."""
    from tqdm import tqdm

    try:
        job = IndicesMap(scene, INDICES)
    except MissingBandError as exc:
        raise MissingBandError(
            f"the census covariates ({', '.join(INDICES)}) need the green, red, NIR, SWIR 1 and "
            f"SWIR 2 bands; scene has {', '.join(scene.band_names)}",
            path=scene.name,
            fix="give a scene with those bands (Sentinel-2 B03, B04, B08, B11, B12; Landsat "
            "green, red, nir, swir1, swir2), or name them with --band-names",
        ) from exc
    px = cells.cell_px
    col0, row0 = _pixel_offset(scene, cells)
    n_rows, n_cols = cells.n_rows, cells.n_cols
    out = np.full((len(NAMES), n_rows, n_cols), np.nan, dtype=np.float32)
    starts = range(0, n_rows, rows_per_read)
    for r0 in tqdm(starts, desc="covariates", unit="band", disable=not progress):
        r1 = min(r0 + rows_per_read, n_rows)
        height = (r1 - r0) * px
        window = Window(col0, row0 + r0 * px, n_cols * px, height)
        block = _read_padded(job, scene, window)
        out[:, r0:r1] = cell_statistics(block, px)
    if not np.isfinite(out[0]).any():
        raise EmptyInputError(
            "no cell of the grid has valid pixels", path=scene.name, fix="check the scene's nodata"
        )
    t, size = cells.pixels.transform, cells.cell_size
    grid = GridSpec(cells.crs, Affine(size, 0, t.c, 0, -size, t.f), n_cols, n_rows)
    return CellCovariates(out, NAMES, grid)


def _pixel_offset(scene: Scene, cells: CellGrid) -> tuple[int, int]:
    """Whole scene pixels from the scene's origin to the cells' origin (refused otherwise)."""
    from humanscape.errors import HumanscapeError

    t, s = cells.pixels.transform, scene.grid.transform
    if abs(t.a - s.a) > 1e-6 * abs(s.a) or abs(t.e - s.e) > 1e-6 * abs(s.e):
        raise HumanscapeError(
            "the cell grid's pixels are not the scene's pixels", path=scene.name,
            fix="use a cell size that is a whole number of scene pixels",
        )  # fmt: skip
    col, row = ~s * (t.c, t.f)
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        raise HumanscapeError(
            "the cell grid is not aligned to the scene's pixels (its origin falls inside a pixel)",
            path=scene.name,
            fix="give a reference grid whose cell edges fall on the scene's pixel edges",
        )
    return round(col), round(row)


def _read_padded(job: IndicesMap, scene: Scene, window: Window) -> np.ndarray:
    """The indices of ``window``, NaN where it extends past the scene."""
    from rasterio.errors import WindowError

    full = np.full((len(INDICES), int(window.height), int(window.width)), np.nan, np.float32)
    try:
        inside = window.intersection(Window(0, 0, scene.width, scene.height))
    except WindowError:  # wholly outside the scene
        return full
    values = job.compute(inside)
    r, c = int(inside.row_off - window.row_off), int(inside.col_off - window.col_off)
    full[:, r : r + int(inside.height), c : c + int(inside.width)] = values
    return full
