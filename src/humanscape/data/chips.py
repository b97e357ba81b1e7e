"""Cut a scene into chips: one GeoTIFF per grid cell (with its neighbourhood) and a chip table.

Huang et al. (2021) feed a CNN the pixels of one grid cell, or of its ``n x n`` neighbourhood
("nbr(n)", n odd), so that context informs the estimate. Chips are written as GeoTIFFs (float32
reflectance, NaN nodata, band names, ``units=reflectance``) and listed in a chip table
(:mod:`humanscape.data.chiptable`); :func:`mosaic_chips` puts single-cell chips back together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box
from tqdm.auto import tqdm

from humanscape._atomic import atomic_folder
from humanscape.data.chiptable import write_chip_table
from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo.grid import CellGrid, GridSpec, check_neighbourhood
from humanscape.geo.scene import Scene, read_padded
from humanscape.geo.write import write_raster

log = logging.getLogger(__name__)


def chip_scene(
    scene: Scene,
    grid: CellGrid,
    out_dir: str | Path,
    *,
    neighbors: int = 1,
    bands: Sequence[str] | None = None,
    min_valid: float = 0.0,
    progress: bool = True,
) -> pd.DataFrame:
    """Write one chip per cell (with its ``neighbors`` x ``neighbors`` context) and a chip table.

    Chips whose pixels are all nodata are skipped (counted in the log); chips with a valid fraction
    below ``min_valid`` are skipped too. Raises :class:`EmptyInputError` if no chip has data.
    Returns the chip table (also written to ``out_dir/chips.csv``).

    The folder is written atomically (:func:`humanscape._atomic.atomic_folder`): chips go to a
    temporary folder renamed to ``out_dir`` with ``chips.csv`` at the end, so a failed or
    interrupted run leaves no orphan chips. A previous chip folder at ``out_dir`` is replaced.
    """
    out_dir = Path(out_dir)
    check_neighbourhood(grid, neighbors)
    pixel_scene = scene if scene.grid.matches(grid.pixels) else scene.aligned_to(grid.pixels)
    names = pixel_scene.resolve(bands)
    names = [n for n in names if pixel_scene.sensor.band(n).kind != "qa"]
    with atomic_folder(out_dir, written_by="chip") as tmp:
        table = _write_chips(
            pixel_scene, grid, tmp, names, neighbors, min_valid, progress, scene.name
        )
        write_chip_table(table, tmp / "chips.csv", crs=grid.crs)
    return table


def _write_chips(
    pixel_scene: Scene,
    grid: CellGrid,
    out_dir: Path,
    names: list[str],
    neighbors: int,
    min_valid: float,
    progress: bool,
    label: str,
) -> pd.DataFrame:
    chip_dir = out_dir / "chips"
    records, skipped = [], 0
    for cell_id in tqdm(range(len(grid)), desc="chips", disable=not progress, unit="chip"):
        row, col = grid.row_col(cell_id)
        window = grid.cell_window(row, col, neighbors)
        data = read_padded(pixel_scene, window, names)
        valid = np.all(np.isfinite(data), axis=0).mean()
        if valid == 0 or valid < min_valid:
            skipped += 1
            continue
        chip_dir.mkdir(parents=True, exist_ok=True)
        path = chip_dir / f"cell_{cell_id:07d}.tif"
        write_raster(
            path,
            data,
            grid.pixels.window_grid(window),
            units="reflectance",
            nodata=float("nan"),
            band_names=names,
            tags={
                "sensor": pixel_scene.sensor.name,
                "cell_id": str(cell_id),
                "neighbors": str(neighbors),
            },
        )
        x, y = grid.transform @ (col + 0.5, row + 0.5)
        records.append(
            {
                "image": f"chips/{path.name}",
                "cell_id": cell_id,
                "row": row,
                "col": col,
                "x": x,
                "y": y,
                "valid_fraction": round(float(valid), 4),
                "geometry": box(*grid.cell_bounds(row, col)).wkt,
            }
        )
    if not records:
        raise EmptyInputError(
            "every chip is nodata only",
            path=label,
            fix="check that the raster has data where the grid lies",
        )
    if skipped:
        log.warning("%s: skipped %d nodata-only chips of %d", label, skipped, len(grid))
    table = pd.DataFrame.from_records(records)
    table.attrs["crs"] = grid.crs.to_string()
    return table


def chip_districts(
    scene: Scene,
    districts: gpd.GeoDataFrame,
    out_dir: str | Path,
    *,
    column: str,
    size: int = 64,
    stride: int | None = None,
    min_overlap: float = 1.0,
    bands: Sequence[str] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Cut tiles of ``size`` px inside each district polygon; a chip table with a ``column`` column.

    Many small tiles per district are the input of Park et al. (2022): tiles start every
    ``stride`` px (default ``size``) from the district's upper-left pixel and are kept when
    ``min_overlap`` of their area lies in the district (1.0: wholly inside). Districts are reprojected to the scene's CRS. A district that
    gets no tile is refused by name (shrink ``--stride`` or ``--tile``). Written atomically to
    ``out_dir`` (``chips/``, ``chips.csv``) like :func:`chip_scene`.
    """
    from humanscape.geo.grid import tiles_over_polygon

    if column not in districts.columns:
        raise HumanscapeError(
            f"district file has no column '{column}' (columns: "
            f"{', '.join(c for c in map(str, districts.columns) if c != 'geometry')})",
            fix="give the district id column with --district-column",
        )
    if districts.crs is None:
        raise HumanscapeError("district file has no CRS", fix="set the CRS of the district file")
    names = scene.resolve(bands)
    names = [n for n in names if scene.sensor.band(n).kind != "qa"]
    local = districts.to_crs(scene.crs)
    records = []
    with atomic_folder(Path(out_dir), written_by="economy tiles") as tmp:
        (tmp / "chips").mkdir()
        rows = list(local.itertuples(index=False))
        for k, row in enumerate(
            tqdm(rows, desc="districts", unit="district", disable=not progress)
        ):
            district = str(getattr(row, column))
            windows = tiles_over_polygon(
                row.geometry,
                scene.grid,
                size=size,
                min_overlap=min_overlap,
                stride=stride,
                align="polygon",
            )
            kept = 0
            for window in windows:
                data = read_padded(scene, window, names)
                if np.isfinite(data).all(axis=0).mean() < 0.5:
                    continue
                path = tmp / "chips" / f"d{k:05d}_{kept:04d}.tif"
                grid = scene.grid.window_grid(window)
                write_raster(
                    path, data, grid, units="reflectance", nodata=float("nan"), band_names=names
                )
                records.append(
                    {
                        "image": f"chips/{path.name}",
                        column: district,
                        "geometry": box(*grid.bounds).wkt,
                    }
                )
                kept += 1
            if kept == 0:
                raise EmptyInputError(
                    f"district '{district}' gets no tile of {size} px with data",
                    path=scene.name,
                    fix="give a smaller --tile or --stride, a lower --min-overlap, or drop the district",
                )
        table = pd.DataFrame.from_records(records)
        write_chip_table(table, tmp / "chips.csv", crs=scene.crs)
    return table


def mosaic_chips(
    table: pd.DataFrame, root: str | Path, pixels: GridSpec, grid: CellGrid
) -> np.ndarray:
    """Re-assemble single-cell chips (``neighbors=1``) into a ``(bands, rows, cols)`` array on ``pixels``.

    The inverse of :func:`chip_scene`; cells without a chip stay NaN.
    """
    import rasterio

    root = Path(root)
    out: np.ndarray | None = None
    for rec in table.itertuples():
        with rasterio.open(root / rec.image) as src:
            data = src.read()
        if out is None:
            out = np.full(
                (data.shape[0], grid.n_rows * grid.cell_px, grid.n_cols * grid.cell_px),
                np.nan,
                dtype=np.float32,
            )
        r, c = rec.row * grid.cell_px, rec.col * grid.cell_px
        out[:, r : r + grid.cell_px, c : c + grid.cell_px] = data
    if out is None:
        raise EmptyInputError("chip table has no rows")
    return out[:, : pixels.height, : pixels.width]
