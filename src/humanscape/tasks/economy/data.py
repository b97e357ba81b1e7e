"""The inputs of the economy model: labelled chips, district tiles and tables, nightlights.

Every reader checks what it reads against the rest (tiles against districts, indicator values,
weights, units) and refuses a mismatch with one error naming the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape.data.chiptable import read_chip_table, read_chips, read_table
from humanscape.errors import HumanscapeError, NoOverlapError
from humanscape.tasks.economy.district import DistrictTiles
from humanscape.tasks.economy.ordinal import level_targets, read_mapping
from humanscape.tasks.economy.score import ScoreModel

#: Chip units a score model may be trained on.
UNITS = ("reflectance", "rgb8")


def read_levels(
    table: pd.DataFrame, column: str, mapping: Path | None, table_path: Path
) -> np.ndarray:
    """Level probabilities ``(n, 3)`` of a chip table's ``column`` (level names or mapped classes)."""
    return level_targets(
        table[column],
        mapping=read_mapping(mapping) if mapping is not None else None,
        path=table_path,
        column=column,
        mapping_path=mapping,
    )


def read_tiles(model: ScoreModel, paths: list[str], progress: bool) -> np.ndarray:
    images, _ = read_chips(paths, model.bands, units=(model.units_,), progress=progress)
    return images


@dataclass
class DistrictData:
    """Tiles of districts: images, each tile's district index into ``names``, the indicator."""

    images: np.ndarray
    district: np.ndarray
    names: list[str]
    y: np.ndarray | None
    weights: np.ndarray | None
    table: pd.DataFrame
    districts: pd.DataFrame | None

    @property
    def tiles(self) -> DistrictTiles:
        """The districts as the economy model reads them."""
        return DistrictTiles(self.images, self.district, self.names)


def load_district_data(
    tile_table: Path,
    district_column: str,
    bands: list[str],
    units: str,
    *,
    districts_path: Path | None = None,
    indicator: str | None = None,
    weight_column: str | None = None,
    progress: bool = True,
) -> DistrictData:
    """Read tiles and (with ``districts_path``) the district table; every mismatch refused by name."""
    table = read_chip_table(tile_table, required=[district_column])
    tile_district = table[district_column].astype(str).str.strip().to_numpy()
    districts = None
    y = weights = None
    if districts_path is not None:
        districts = read_table(districts_path, what="district table")
        needed = [district_column, *(c for c in (indicator, weight_column) if c)]
        for column in needed:
            if column not in districts.columns:
                raise HumanscapeError(
                    f"district table has no column '{column}' (columns: "
                    f"{', '.join(map(str, districts.columns))})",
                    path=districts_path,
                    fix=f"add a '{column}' column or choose another column",
                )
        districts = districts.assign(
            **{district_column: districts[district_column].astype(str).str.strip()}
        )
        if districts[district_column].duplicated().any():
            dup = districts[district_column][districts[district_column].duplicated()].iloc[0]
            raise HumanscapeError(
                f"district '{dup}' appears twice", path=districts_path, fix="one row per district"
            )
        names = list(districts[district_column])
        unknown = sorted(set(tile_district) - set(names))
        if unknown:
            raise HumanscapeError(
                f"{int(np.isin(tile_district, unknown).sum())} tile(s) name districts missing from "
                f"{Path(districts_path).name}, first '{unknown[0]}'",
                path=tile_table,
                fix="add those districts to the district table, or drop their tiles",
            )
        empty = [n for n in names if n not in set(tile_district)]
        if empty:
            raise HumanscapeError(
                f"{len(empty)} district(s) have no tile in {Path(tile_table).name}, first '{empty[0]}'",
                path=districts_path,
                fix="cut tiles for every district (economy tiles), or drop those districts",
            )
        if indicator:
            y = pd.to_numeric(districts[indicator], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(y) | (y <= 0)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise HumanscapeError(
                    f"column '{indicator}' has {int(bad.sum())} missing, zero or negative value(s), "
                    f"first district '{names[row]}': {districts[indicator].iloc[row]}; "
                    "eq. 14 takes ln(y / sum of scores)",
                    path=districts_path,
                    fix="drop those districts, or use an indicator that is positive everywhere",
                )
        if weight_column:
            weights = pd.to_numeric(districts[weight_column], errors="coerce").to_numpy(np.float64)
            if not (np.isfinite(weights) & (weights > 0)).all():
                raise HumanscapeError(
                    f"weight column '{weight_column}' has missing or non-positive values",
                    path=districts_path,
                    fix="give a positive weight (e.g. population) for every district",
                )
    else:
        names = sorted(set(tile_district))
    index = {n: i for i, n in enumerate(names)}
    images, _ = read_chips(list(table["image"]), bands, units=(units,), progress=progress)
    return DistrictData(
        images,
        np.array([index[d] for d in tile_district], np.int64),
        names,
        y,
        weights,
        table,
        districts,
    )


def labelled_tiles(
    score_model: ScoreModel,
    table_path: Path | None,
    label_column: str | None,
    mapping: Path | None,
    *,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The step-1 tiles for the encoders' class loss: ``table_path``, else the score model's own."""
    if table_path is None:
        info = getattr(score_model, "info_", {})
        source = info.get("training_table", "")
        if not source or not Path(source).exists():
            raise HumanscapeError(
                f"the score model's training table {source or '(not recorded)'} is not here",
                fix="give the labelled chips with --labelled CHIPTABLE --label-column COLUMN",
            )
        table_path = Path(source)
        label_column = label_column or info.get("label_column")
        mapping = mapping or (Path(info["mapping"]) if info.get("mapping") else None)
    if not label_column:
        raise HumanscapeError("no label column for the labelled chips", fix="give --label-column")
    table = read_chip_table(table_path, required=[label_column])
    targets = read_levels(table, label_column, mapping, table_path)
    return read_tiles(score_model, list(table["image"]), progress), targets


def nightlight_values(table: pd.DataFrame, raster: Path) -> np.ndarray:
    """Mean of ``raster`` over each tile's footprint (tiles must be georeferenced GeoTIFFs)."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    out = np.full(len(table), np.nan)
    try:
        src = rasterio.open(raster)
    except rasterio.errors.RasterioError as exc:
        raise HumanscapeError(f"not a readable raster ({exc})", path=raster) from None
    with src:
        for i, path in enumerate(table["image"]):
            with rasterio.open(path) as tile:
                if tile.crs is None:
                    raise HumanscapeError(
                        "tile has no georeference: no nightlight value can be read for it",
                        path=path,
                        fix="cut tiles with 'economy tiles' (georeferenced GeoTIFFs)",
                    )
                bounds = transform_bounds(tile.crs, src.crs, *tile.bounds)
            window = from_bounds(*bounds, transform=src.transform)
            data = src.read(1, window=window, boundless=True, masked=True, out_shape=(4, 4))
            out[i] = float(data.mean()) if data.count() else np.nan
    if np.isnan(out).all():
        raise NoOverlapError(
            "the nightlight raster does not overlap the tiles", path=raster, fix="check its extent"
        )
    return np.nan_to_num(out, nan=float(np.nanmean(out)))


@dataclass
class DistrictInputs:
    """What ``economy fit`` and ``evaluate`` read: the tile table and its district column, the
    district table with the indicator (and weights), the step-1 score model, the labelled chips of
    the encoders' class loss (default: the score model's own training table) and a nightlight
    raster (optional)."""

    tile_table: Path
    districts: Path
    indicator: str
    score_model: Path
    district_column: str = "district"
    weight_column: str | None = None
    labelled: Path | None = None
    label_column: str | None = None
    mapping: Path | None = None
    nightlight: Path | None = None

    def load(
        self, *, progress: bool = True
    ) -> tuple[ScoreModel, DistrictData, tuple[np.ndarray, np.ndarray], np.ndarray | None]:
        """The score model, the district data, the labelled chips and the nightlight values."""
        score = ScoreModel.load(self.score_model)
        data = load_district_data(
            self.tile_table,
            self.district_column,
            list(score.bands),
            score.units_,
            districts_path=self.districts,
            indicator=self.indicator,
            weight_column=self.weight_column,
            progress=progress,
        )
        pairs = labelled_tiles(
            score, self.labelled, self.label_column, self.mapping, progress=progress
        )
        light = nightlight_values(data.table, self.nightlight) if self.nightlight else None
        return score, data, pairs, light

    def baseline_images(self, score: ScoreModel) -> np.ndarray | None:
        """The tiles with the 13 Sentinel-2 bands of the shipped SimCLR baseline, when they have
        them (None otherwise: that baseline is left out)."""
        from humanscape.data.chiptable import EUROSAT_MS_ORDER

        if score.units_ != "reflectance":
            return None
        try:
            return load_district_data(
                self.tile_table, self.district_column, list(EUROSAT_MS_ORDER), "reflectance"
            ).images
        except HumanscapeError:
            return None
