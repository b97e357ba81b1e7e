"""Loaders for the real sample data shipped inside the package (see ``sample_data/README.md``).

Each loader returns the data ready to use: a :class:`~humanscape.geo.scene.Scene`, a
GeoDataFrame, a chip table, or a small dataclass of arrays with their grid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from importlib.resources import files
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.crs import CRS

from humanscape.data.chiptable import EUROSAT_MS_ORDER
from humanscape.errors import HumanscapeError
from humanscape.geo.grid import GridSpec
from humanscape.geo.inputs import open_scene
from humanscape.geo.scene import Scene

#: Layer order of the EuroSAT MS GeoTIFFs (B10 cirrus included, B8A last).
EUROSAT_MS_BANDS = list(EUROSAT_MS_ORDER)
EUROSAT_CLASSES = [
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
]
COMMUTING_COUNTIES = ["26021", "35013", "36093"]


def sample_path(*parts: str) -> Path:
    """Path of a file or folder under the shipped ``sample_data``."""
    path = Path(str(files("humanscape").joinpath("sample_data", *parts)))
    if not path.exists():
        raise HumanscapeError(
            "sample data file is missing",
            path=path,
            fix="reinstall humanscape from a complete checkout",
        )
    return path


# --- Berlin Sentinel-2 scene -------------------------------------------------------------------


def berlin_scene(bands: list[str] | None = None, resolution: float | None = None) -> Scene:
    """The real Sentinel-2 L1C scene west of Berlin (2017-02-16), 13 bands aligned to 10 m."""
    return open_scene(
        sample_path("berlin", "IMG_DATA"),
        sensor="sentinel2_l1c",
        bands=bands,
        resolution=resolution,
        name="berlin_T33UUU_20170216",
    )


def berlin_landuse() -> gpd.GeoDataFrame:
    """OpenStreetMap land-use polygons over the Berlin scene (``fclass`` column), EPSG:32633."""
    return gpd.read_file(sample_path("berlin", "osm_landuse.gpkg"))


@dataclass
class RasterArray:
    """An in-memory raster: ``data`` (bands, rows, cols), its grid and band names."""

    data: np.ndarray
    grid: GridSpec
    band_names: list[str]


def berlin_population() -> RasterArray:
    """Eurostat 1 km census population aligned to the Berlin scene (2021, 2018, 2011, 2006, fraction)."""
    with rasterio.open(sample_path("berlin", "population_1km_eurostat.tif")) as src:
        return RasterArray(
            src.read(),
            GridSpec(src.crs, src.transform, src.width, src.height),
            ["pop_2021", "pop_2018", "pop_2011", "pop_2006", "fraction_in_scene"],
        )


def berlin_census_cells(min_fraction: float = 0.99) -> gpd.GeoDataFrame:
    """The 1 km census cells of the Berlin scene as district polygons (``district`` = ``r<row>c<col>``),
    with ``population`` (2021) and ``fraction_in_scene``; cells less than ``min_fraction`` inside
    the scene are dropped (their count covers land the imagery does not show)."""
    from shapely.geometry import box

    pop = berlin_population()
    rows = []
    for r in range(pop.grid.height):
        for c in range(pop.grid.width):
            fraction = float(pop.data[4, r, c])
            if fraction < min_fraction:
                continue
            x0, y0 = pop.grid.transform * (c, r + 1)
            x1, y1 = pop.grid.transform * (c + 1, r)
            rows.append(
                {
                    "district": f"r{r}c{c}",
                    "population": float(pop.data[0, r, c]),
                    "fraction_in_scene": fraction,
                    "geometry": box(x0, y0, x1, y1),
                }
            )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=pop.grid.crs)


def berlin_census_blocks(km: int) -> gpd.GeoDataFrame:
    """The 1 km census cells inside the scene summed into ``km`` x ``km`` blocks (``block``,
    ``population``): census units to disaggregate, with the 1 km cells as the truth to score on."""
    cells = berlin_census_cells()
    rc = cells["district"].str.extract(r"r(\d+)c(\d+)").astype(int)
    cells["block"] = (rc[0] // km).astype(str) + "_" + (rc[1] // km).astype(str)
    return cells.dissolve("block", aggfunc={"population": "sum"}).reset_index()


# --- EuroSAT -----------------------------------------------------------------------------------


def eurosat_ms() -> pd.DataFrame:
    """Chip table of the shipped EuroSAT MS chips with their class and 1 km census population.

    Columns: ``image`` (absolute path), ``class``, ``label`` (class index), ``lon``, ``lat``,
    ``pop_1km`` (2021), ``pop_1km_2011``, ``pop_1km_2018``, ``pop_source``.
    """
    root = sample_path("eurosat_ms")
    table = pd.read_csv(root / "population_1km.csv")
    table.insert(0, "image", [str(root / f) for f in table.pop("file")])
    table["label"] = table["class"].map(EUROSAT_CLASSES.index)
    return table


def read_eurosat_ms(table: pd.DataFrame, bands: list[str] | None = None) -> np.ndarray:
    """Stack EuroSAT MS chips as reflectance float32 ``(n, bands, 64, 64)`` (L1C DN x 1e-4).

    Read through :func:`humanscape.data.chiptable.read_chip`, the one reader of chips.
    """
    from humanscape.data.chiptable import read_chip

    wanted = bands or EUROSAT_MS_BANDS
    out = []
    for path in table["image"]:
        chip = read_chip(path, sensor="sentinel2_l1c")
        names = chip.bands or EUROSAT_MS_BANDS
        out.append(chip.data[[names.index(b) for b in wanted]])
    return np.stack(out)


def eurosat_rgb() -> pd.DataFrame:
    """Table of the shipped EuroSAT RGB JPEGs: ``image``, ``class``, ``label``, ``number``."""
    root = sample_path("eurosat_rgb")
    rows = []
    for label, cls in enumerate(EUROSAT_CLASSES):
        for path in sorted((root / cls).glob("*.jpg")):
            rows.append(
                {
                    "image": str(path),
                    "class": cls,
                    "label": label,
                    "number": int(re.search(r"_(\d+)\.jpg$", path.name).group(1)),
                }
            )
    return pd.DataFrame(rows)


# --- commuting flows ---------------------------------------------------------------------------


def commuting_od(fips: str) -> Path:
    """The folder of one shipped CommutingODGen county (``26021``, ``35013`` or ``36093``).

    Read it with :func:`humanscape.tasks.flows.cities.read_commuting_od`.
    """
    if fips not in COMMUTING_COUNTIES:
        raise HumanscapeError(
            f"unknown county '{fips}'", fix=f"use one of {', '.join(COMMUTING_COUNTIES)}"
        )
    return sample_path("commuting_od", fips)


# --- time series -------------------------------------------------------------------------------


@dataclass
class SloveniaTimeSeries:
    """eo-learn's Slovenian test patch: NDVI time series with cloud masks, on a ~10 m grid."""

    ndvi: np.ndarray  # (dates, rows, cols) float32
    cloud_probability: np.ndarray  # (dates, rows, cols) float32 in 0..1
    cloud_mask: np.ndarray  # (dates, rows, cols) bool, True = cloud
    is_data: np.ndarray  # (dates, rows, cols) bool
    is_valid: np.ndarray  # (dates, rows, cols) bool
    lulc: np.ndarray  # (rows, cols) uint8
    dates: list[date]
    grid: GridSpec


def slovenia_timeseries() -> SloveniaTimeSeries:
    """Load the Slovenian NDVI time series (68 dates, 2015-2017) with CLP/CLM masks and land cover."""
    root = sample_path("slovenia")
    z = np.load(root / "eopatch.npz")
    stamps = json.loads((root / "timestamps.json").read_text())
    bbox = json.loads((root / "bbox.geojson").read_text())
    xs = [p[0] for p in bbox["coordinates"][0]]
    ys = [p[1] for p in bbox["coordinates"][0]]
    rows, cols = z["ndvi"].shape[1:]
    transform = Affine(
        (max(xs) - min(xs)) / cols, 0, min(xs), 0, -(max(ys) - min(ys)) / rows, max(ys)
    )
    return SloveniaTimeSeries(
        ndvi=z["ndvi"],
        cloud_probability=z["clp"].astype(np.float32) / 100.0,
        cloud_mask=z["clm"].astype(bool),
        is_data=z["is_data"].astype(bool),
        is_valid=z["is_valid"].astype(bool),
        lulc=z["lulc"],
        dates=[datetime.fromisoformat(s).date() for s in stamps],
        grid=GridSpec(CRS.from_epsg(32633), transform, cols, rows),
    )


def landsat_timeseries() -> list[Scene]:
    """The 105 Landsat 5/7 scenes over Colorado (b3, b4, b5 + Fmask), sorted by date."""
    root = sample_path("landsat_colorado")
    scenes = [open_scene(folder) for folder in sorted(p for p in root.iterdir() if p.is_dir())]
    return sorted(scenes, key=lambda s: s.date)
