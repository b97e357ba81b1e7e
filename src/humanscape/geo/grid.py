"""Pixel grids and cell grids: where every raster and every chip of humanscape sits.

- A :class:`GridSpec` is a raster grid: CRS, north-up affine transform, size in pixels.
- A :class:`CellGrid` is a regular grid of square cells laid on a pixel grid: either in the
  raster's own CRS (cell size in metres, a whole number of pixels) or an arc-second grid in
  EPSG:4326 aligned to the global lattice (30 arc-seconds as LandScan / WorldPop).
- A chip is the pixels of one cell, or of its ``n x n`` neighbourhood: Huang et al. (2021) feed
  the CNN the cell plus its neighbours ("nbr(n)", n odd).
- Tiles of fixed pixel size cover a polygon for region-level embeddings (Park et al. 2022;
  Imagery2Flow step 1).

Cutting a scene into chip files and a chip table is :func:`humanscape.data.chips.chip_scene`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import rasterio.windows
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from humanscape.errors import EmptyInputError, HumanscapeError

log = logging.getLogger(__name__)

WGS84 = CRS.from_epsg(4326)
#: Default window side of in-process windowed reads and writes, in pixels.
DEFAULT_BLOCK = 512
#: Metres per degree of latitude (and of longitude at the equator), for arc-second cell sampling.
METRES_PER_DEGREE = 111_320.0


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


@dataclass(frozen=True)
class CellGrid:
    """Square cells of ``cell_px`` x ``cell_px`` pixels over ``pixels`` (a :class:`GridSpec`).

    Cells are numbered row-major from the top-left; ``cell_id = row * n_cols + col``. Cells at the
    right/bottom edge may extend past the pixel grid; chips there are padded with nodata.
    """

    pixels: GridSpec
    cell_px: int

    @property
    def n_rows(self) -> int:
        return math.ceil(self.pixels.height / self.cell_px)

    @property
    def n_cols(self) -> int:
        return math.ceil(self.pixels.width / self.cell_px)

    @property
    def cell_size(self) -> float:
        """Cell side in CRS units (metres, or degrees for an arc-second grid)."""
        return self.pixels.res[0] * self.cell_px

    @property
    def crs(self) -> CRS:
        return self.pixels.crs

    @property
    def transform(self) -> Affine:
        """Affine of the cell lattice (one unit = one cell)."""
        return self.pixels.transform @ Affine.scale(self.cell_px)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    def cell_id(self, row: int, col: int) -> int:
        return row * self.n_cols + col

    def row_col(self, cell_id: int) -> tuple[int, int]:
        if not 0 <= cell_id < len(self):
            raise HumanscapeError(
                f"unknown cell id {cell_id} (grid has {len(self)} cells)",
                fix="use an id from the chip table",
            )
        return divmod(cell_id, self.n_cols)

    def cell_bounds(self, row: int, col: int) -> tuple[float, float, float, float]:
        left, top = self.transform @ (col, row)
        right, bottom = self.transform @ (col + 1, row + 1)
        return (left, bottom, right, top)

    def cell_window(self, row: int, col: int, neighbors: int = 1) -> Window:
        """Pixel window of the cell and its ``neighbors x neighbors`` neighbourhood (n odd)."""
        _check_odd(neighbors)
        half = neighbors // 2
        return Window(
            (col - half) * self.cell_px,
            (row - half) * self.cell_px,
            neighbors * self.cell_px,
            neighbors * self.cell_px,
        )

    def neighbourhood(self, row: int, col: int, n: int = 3) -> list[tuple[int, int]]:
        """(row, col) of the ``n x n`` cells centred on (row, col) that lie in the grid, nbr(n)."""
        _check_odd(n)
        half = n // 2
        return [
            (r, c)
            for r in range(row - half, row + half + 1)
            for c in range(col - half, col + half + 1)
            if 0 <= r < self.n_rows and 0 <= c < self.n_cols
        ]

    def cells(self) -> gpd.GeoDataFrame:
        """All cells as polygons with ``cell_id``, ``row``, ``col``."""
        rows, cols = np.divmod(np.arange(len(self)), self.n_cols)
        geoms = [box(*self.cell_bounds(int(r), int(c))) for r, c in zip(rows, cols, strict=True)]
        return gpd.GeoDataFrame(
            {"cell_id": np.arange(len(self)), "row": rows, "col": cols},
            geometry=geoms,
            crs=self.crs,
        )


def _check_odd(n: int) -> None:
    if n < 1 or n % 2 == 0:
        raise HumanscapeError(
            f"neighbourhood size must be odd (1, 3, 5 ...), got {n}",
            fix="use --neighbors 1, 3 or 5",
        )


#: Longest chip side humanscape cuts, in pixels (a 13-band float32 chip of 8192^2 is 3.5 GB).
MAX_CHIP_PX = 8192


def check_neighbourhood(grid: CellGrid, n: int) -> None:
    """Refuse an even or non-positive ``n``, or an ``n x n`` neighbourhood too large to cut."""
    _check_odd(n)
    side = n * grid.cell_px
    if side > MAX_CHIP_PX:
        largest = max(1, (MAX_CHIP_PX // grid.cell_px - 1) // 2 * 2 + 1)
        raise HumanscapeError(
            f"a {n} x {n} neighbourhood of {grid.cell_px} px cells makes chips of {side} px a side "
            f"(at most {MAX_CHIP_PX})",
            fix=f"use --neighbors between 1 and {largest} (odd)",
        )


def regular_grid(pixels: GridSpec, cell_size: float) -> CellGrid:
    """Cells of ``cell_size`` CRS units (a whole number of pixels) aligned to the raster origin."""
    if pixels.crs is not None and pixels.crs.is_geographic:
        raise HumanscapeError(
            f"the raster is in {pixels.crs.to_string()} (degrees), so a cell size in metres has no "
            "meaning",
            fix="use --arcsec 30 for an arc-second grid, or reproject the raster to a metric CRS",
        )
    if not cell_size > 0:
        raise HumanscapeError(
            f"cell size must be positive, got {cell_size:g}",
            fix=f"use a multiple of the {pixels.res[0]:.12g} m pixel, e.g. --cell {100 * pixels.res[0]:.12g}",
        )
    ratio = cell_size / pixels.res[0]
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        suggestion = max(1, round(ratio)) * pixels.res[0]
        raise HumanscapeError(
            f"cell size {cell_size:g} is not a whole number of {pixels.res[0]:.12g} m pixels",
            fix=f"use a multiple of {pixels.res[0]:.12g} (e.g. --cell {suggestion:.12g})",
        )
    return CellGrid(pixels, int(round(ratio)))


def arcsec_grid(
    bounds: Sequence[float], crs: object, *, arcsec: float = 30.0, cell_px: int = 90
) -> CellGrid:
    """Arc-second grid in EPSG:4326 covering ``bounds`` (given in ``crs``), LandScan-aligned.

    Cells are ``arcsec`` arc-seconds square and aligned to multiples of ``arcsec`` from
    (-180, 90), like LandScan (30") and WorldPop (3", 30"). Each cell is sampled with
    ``cell_px`` x ``cell_px`` pixels (90 px ~ 10 m at the equator for 30").
    """
    if not arcsec > 0 or cell_px < 1:
        raise HumanscapeError(
            f"arc-second cell size must be positive, got {arcsec:g}", fix="use e.g. --arcsec 30"
        )
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(CRS.from_user_input(crs), WGS84, *bounds)
    step = arcsec / 3600.0
    c0 = math.floor((left + 180) / step)
    c1 = math.ceil((right + 180) / step)
    r0 = math.floor((90 - top) / step)
    r1 = math.ceil((90 - bottom) / step)
    px = step / cell_px
    transform = Affine(px, 0, -180 + c0 * step, 0, -px, 90 - r0 * step)
    return CellGrid(GridSpec(WGS84, transform, (c1 - c0) * cell_px, (r1 - r0) * cell_px), cell_px)


def cell_grid(
    pixels: GridSpec, *, cell: float | None = None, arcsec: float | None = None
) -> CellGrid:
    """The cell grid a map or a chip table uses: ``cell`` metres on the raster's own grid (default
    1000), or an ``arcsec`` arc-second grid in EPSG:4326 sampled at about the raster's pixel size.
    """
    if cell is not None and arcsec is not None:
        raise HumanscapeError("give a cell size or an arc-second grid, not both", fix="drop one")
    if arcsec is None:
        return regular_grid(pixels, 1000.0 if cell is None else cell)
    metres_per_unit = 1 / METRES_PER_DEGREE if pixels.crs.is_geographic else 1.0
    # one arc-second is ~30.87 m on the ground (at the equator; cells stay square in degrees)
    side_m = arcsec * METRES_PER_DEGREE / 3600.0
    cell_px = max(1, round(side_m * metres_per_unit / pixels.res[0]))
    return arcsec_grid(pixels.bounds, pixels.crs, arcsec=arcsec, cell_px=cell_px)


def overview_grid(grid: GridSpec, max_size: int) -> GridSpec:
    """A coarser grid over the same extent whose longer side is at most ``max_size`` pixels."""
    factor = max(1, int(np.ceil(max(grid.width, grid.height) / max_size)))
    if factor == 1:
        return grid
    return GridSpec.from_bounds(grid.crs, grid.bounds, grid.res[0] * factor)


OVERLAP_TOLERANCE = 1e-6  # share of a tile's area: below it, two areas count as equal


def tiles_over_polygon(
    polygon: BaseGeometry,
    pixels: GridSpec,
    *,
    size: int = 224,
    min_overlap: float = 0.0,
    stride: int | None = None,
    align: str = "grid",
) -> list[Window]:
    """Windows of ``size`` x ``size`` pixels, aligned to the pixel grid, that intersect ``polygon``.

    Windows start every ``stride`` pixels (default ``size``: edge to edge; smaller: overlapping
    tiles, e.g. several tiles inside one small district), counted from the raster origin
    (``align="grid"``: the same tiles for every polygon) or from the pixel at the polygon's
    upper-left corner (``align="polygon"``: as many tiles as fit inside a small polygon).

    ``polygon`` is in the grid's CRS. A tile is kept when the polygon covers at least
    ``min_overlap`` of its area (0: any overlap of positive area; a tile that only touches the
    polygon's edge is dropped), to within :data:`OVERLAP_TOLERANCE` of the tile's area: a polygon
    reprojected from another CRS moves its edges by ~1e-10 m, and "wholly inside" must still
    hold for the tiles it covers. Tiles may extend past the raster edge (read them with
    :func:`humanscape.geo.scene.read_padded`).
    """
    if polygon.is_empty:
        raise EmptyInputError("polygon is empty", fix="check the region geometry")
    inv = ~pixels.transform
    left, bottom, right, top = polygon.bounds
    c0, r0 = inv @ (left, top)
    c1, r1 = inv @ (right, bottom)
    step = stride or size
    if step < 1:
        raise HumanscapeError(f"tile stride must be at least 1 px, got {step}")
    if align == "polygon":
        rows = range(math.floor(r0 + 1e-9), math.ceil(r1 - 1e-9), step)
        cols = range(math.floor(c0 + 1e-9), math.ceil(c1 - 1e-9), step)
    elif align == "grid":
        rows = range(math.floor((r0 - size) / step + 1) * step, math.ceil(r1 / step) * step, step)
        cols = range(math.floor((c0 - size) / step + 1) * step, math.ceil(c1 / step) * step, step)
    else:
        raise HumanscapeError(f"unknown tile alignment '{align}'", fix="use grid or polygon")
    out = []
    for row in rows:
        for col in cols:
            window = Window(col, row, size, size)
            tile = box(*pixels.window_grid(window).bounds)
            overlap = (
                tile.intersection(polygon).area / tile.area if tile.intersects(polygon) else 0.0
            )
            if overlap > OVERLAP_TOLERANCE and overlap >= min_overlap - OVERLAP_TOLERANCE:
                out.append(window)
    return out
