"""Every bad input gets one line ``error: <file>: <problem> (fix: ...)``, exit 2, nothing left behind.

Each case of :data:`CASES` builds its inputs in a fresh folder, runs the CLI, and states a fragment
the one error line must hold. ``scripts/bad_inputs_table.py`` runs the same cases and writes
``docs/bad_inputs.md`` (case, command, message); ``test_the_docs_table_lists_every_case`` keeps
the two in step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from click.testing import CliRunner
from rasterio.crs import CRS

from humanscape.cli import cli
from humanscape.data import samples
from humanscape.geo.raster import GridSpec, write_raster
from tests.conftest import make_band_folder


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(tmp)`` returns the CLI arguments; ``expect`` is in the error line."""

    name: str
    build: Callable[[Path], list[str]]
    expect: str
    code: int = 2


def _scene(tmp: Path) -> Path:
    return make_band_folder(tmp / "scene", date="20170301")


def _composite(tmp: Path, mask: str, *more: str) -> list[str]:
    """``composite`` of the small scene with ``--cloud-mask mask`` and ``more`` arguments."""
    return ["composite", str(_scene(tmp)), "-o", str(tmp / "c.tif"), "--cloud-mask", mask, *more]


def _l2a(tmp: Path) -> Path:
    from tests.geo.products import s2_l2a_safe

    return s2_l2a_safe(tmp / "l2a", "20230601", {"B02": 1500, "B04": 1500, "B08": 3000})


def _truncated(tmp: Path) -> Path:
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 600, 600)
    data = np.random.default_rng(0).integers(0, 60000, (600, 600)).astype(np.uint16)
    path = write_raster(tmp / "T33UUU_20170301T100000_B04.tif", data, grid, units="dn")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path


def _chip_table(tmp: Path, n: int = 1) -> Path:
    ms = samples.eurosat_ms().head(n)
    ms[["image"]].to_csv(tmp / "chips.csv", index=False)
    return tmp / "chips.csv"


def _encoder_folder(tmp: Path, *, truncate: bool = False, bad_config: bool = False) -> Path:
    from humanscape.models.encoder import Encoder

    folder = Encoder("resnet18_half", ["B04", "B03", "B02"], [0.1] * 3, [0.05] * 3).save(
        tmp / "enc"
    )
    if truncate:
        weights = folder / "model.safetensors"
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 3)
    if bad_config:
        (folder / "config.json").write_text('{"arch": "resnet18_half", ')
    return folder


def _model_folder(tmp: Path, *, truncate: bool = False, bad_config: bool = False) -> Path:
    from humanscape.tasks.settlements.model import SettlementClassifier

    X = pd.DataFrame({"f": np.arange(40.0), "g": np.arange(40.0) % 3})
    folder = SettlementClassifier("rf", n_estimators=3).fit(X, X["f"] > 20).save(tmp / "model")
    if truncate:
        weights = folder / "model.skops"
        with open(weights, "r+b") as f:
            f.truncate(weights.stat().st_size // 2)
    if bad_config:
        (folder / "config.json").write_text("not json")
    return folder


def _features(tmp: Path) -> Path:
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 20, 20)
    data = np.random.default_rng(1).random((2, 20, 20), dtype=np.float32)
    return write_raster(
        tmp / "features.tif", data, grid, units="reflectance", band_names=["f", "g"]
    )


def _labels(tmp: Path) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        {"cls": ["a"]}, geometry=[box(500020, 5799820, 500080, 5799880)], crs=32633
    )
    gdf.to_file(tmp / "labels.gpkg")
    return tmp / "labels.gpkg"


def _predict(tmp: Path, *extra: str) -> list[str]:
    return [
        "settlements",
        "predict",
        str(_features(tmp)),
        "--model",
        str(_model_folder(tmp)),
        *extra,
    ]


def _fit(tmp: Path, *extra: str) -> list[str]:
    return ["settlements", "fit", str(_features(tmp)), "--labels", str(_labels(tmp)), *extra]


def _landsat(tmp: Path) -> Path:
    folder = tmp / "ls"
    folder.mkdir()
    grid = GridSpec(CRS.from_epsg(32633), Affine(30, 0, 500000, 0, -30, 5800000), 8, 8)
    write_raster(
        folder / "LC08_L2SP_044034_20200105_20200823_02_T1_SR_B5.TIF",
        np.full((8, 8), 9000, np.uint16),
        grid,
        units="dn",
    )
    return folder


def _crs_mislabelled(tmp: Path) -> Path:
    folder = make_band_folder(tmp / "s", bands=("B02", "B03"))
    make_band_folder(tmp / "other", bands=("B04",), crs=4326, origin=(500000.0, 5800000.0))
    for f in (tmp / "other").iterdir():
        f.rename(folder / f.name)
    return folder


def _rgb_jpeg_table(tmp: Path) -> Path:
    table = samples.eurosat_ms().head(2)
    table[["image"]].to_csv(tmp / "ms.csv", index=False)
    return tmp / "ms.csv"


POP_BANDS = ["B02", "B03", "B04", "B08"]


def _pop_table(tmp: Path, n: int = 30, **columns: object) -> Path:
    table = samples.eurosat_ms().groupby("class").head(n // 10 or 1).reset_index(drop=True)
    table = table[["image", "class", "lon", "lat", "pop_1km"]].assign(**columns)
    table.to_csv(tmp / "pop.csv", index=False)
    return tmp / "pop.csv"


def _pop_model(tmp: Path) -> Path:
    from humanscape.tasks.population.chips import chip_locations
    from humanscape.tasks.population.model import PopulationModel

    table = samples.eurosat_ms().groupby("class").head(3).reset_index(drop=True)
    model = PopulationModel(
        method="features", bands=POP_BANDS, feature_bands=POP_BANDS, features=["stats"]
    )
    model.fit(
        samples.read_eurosat_ms(table, POP_BANDS),
        table["pop_1km"].to_numpy(),
        locations=chip_locations(table),
        progress=False,
    )
    return model.save(tmp / "popmodel")


def _pop_scene(tmp: Path) -> Path:
    return make_band_folder(tmp / "scene", bands=tuple(POP_BANDS), size=160, date="20170301")


def _pop_map(tmp: Path, *extra: str) -> list[str]:
    return [
        "population", "predict", "--model", str(_pop_model(tmp)), "--scene", str(_pop_scene(tmp)),
        "--cell", "800", "-o", str(tmp / "pop.tif"), *extra,
    ]  # fmt: skip


def _mixed_sizes(tmp: Path) -> Path:
    table = samples.eurosat_ms().head(2)[["image", "pop_1km"]].reset_index(drop=True)
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 32, 32)
    small = write_raster(
        tmp / "small.tif", np.full((4, 32, 32), 0.1, np.float32), grid,
        units="reflectance", band_names=POP_BANDS,
    )  # fmt: skip
    table.loc[1, "image"] = str(small)
    table.to_csv(tmp / "mixed.csv", index=False)
    return tmp / "mixed.csv"


def _far_grid(tmp: Path) -> Path:
    grid = GridSpec(CRS.from_epsg(32633), Affine(1000, 0, 900000, 0, -1000, 5000000), 3, 3)
    return write_raster(tmp / "far.tif", np.zeros((1, 3, 3), np.float32), grid, units="count")


def _districts(tmp: Path, *, far: bool = False, column: str = "pop") -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    x = 900000 if far else 500000
    gdf = gpd.GeoDataFrame(
        {column: [100.0]}, geometry=[box(x, 5798400, x + 1600, 5800000)], crs=32633
    )
    gdf.to_file(tmp / "districts.gpkg")
    return tmp / "districts.gpkg"


def _pop_fit(tmp: Path, table: Path, *extra: str) -> list[str]:
    return ["population", "fit", str(table), "--out", str(tmp / "m"), "--method", "features",
            "--bands", ",".join(POP_BANDS), "--features", "stats", *extra]  # fmt: skip


_SCORE_CACHE: dict[str, Path] = {}


def _score_model(tmp: Path) -> Path:
    """A tiny score model (one epoch on 20 real chips, R, G, B, NIR), trained once per run."""
    import shutil
    import tempfile

    from humanscape.data.chiptable import read_chips
    from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS, level_targets
    from humanscape.tasks.economy.score import ScoreModel

    if "path" not in _SCORE_CACHE:
        table = samples.eurosat_ms().groupby("class").head(2).reset_index(drop=True)
        images, units = read_chips(
            list(table["image"]), ["B02", "B03", "B04", "B08"], progress=False
        )
        model = ScoreModel(arch="resnet18_half", epochs=1).fit(
            images, level_targets(table["class"].map(EUROSAT_LEVELS)), units=units, progress=False
        )
        _SCORE_CACHE["path"] = model.save(Path(tempfile.mkdtemp()) / "score")
    return Path(shutil.copytree(_SCORE_CACHE["path"], tmp / "score"))


def _econ_tiles(tmp: Path) -> Path:
    table = (
        samples.eurosat_ms().head(12)[["image"]].assign(district=[f"d{i % 4}" for i in range(12)])
    )
    table.to_csv(tmp / "tiles.csv", index=False)
    return tmp / "tiles.csv"


def _mig_census(tmp: Path, **change: object) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(30)],
            "pop": rng.integers(100, 5000, 30),
            "income": rng.normal(1000, 100, 30),
            "migrants": rng.integers(0, 50, 30),
        }
    )
    for column, value in change.items():
        frame[column] = value
    path = tmp / "census.csv"
    frame.to_csv(path, index=False)
    return path


def _mig_fit(tmp: Path, census: Path, *extra: str) -> list[str]:
    return ["migration", "fit", str(census), "--id-column", "id", "--target", "migrants",
            "--out", str(tmp / "mig"), *extra]  # fmt: skip


def _mig_tiles(tmp: Path) -> Path:
    chips = samples.eurosat_ms().head(2)[["image"]].assign(id=["zz1", "zz2"])
    chips.to_csv(tmp / "tiles.csv", index=False)
    return tmp / "tiles.csv"


def _mig_polygons(tmp: Path) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame({"id": ["p1", "p2"]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)])
    gdf.set_crs("EPSG:4326").to_file(tmp / "munis.gpkg")
    return tmp / "munis.gpkg"


def _mig_predict_missing(tmp: Path) -> list[str]:
    model = _mig_model(tmp)
    census = pd.read_csv(tmp / "census.csv").drop(columns=["income"])
    census.to_csv(tmp / "new.csv", index=False)
    return ["migration", "predict", "--model", str(model), str(tmp / "new.csv"),
            "--out", str(tmp / "p.csv")]  # fmt: skip


def _mig_model(tmp: Path) -> Path:
    from humanscape.tasks.migration.model import MigrationModel
    from humanscape.tasks.migration.table import read_census

    table = read_census(_mig_census(tmp), id_column="id", target="migrants")
    return MigrationModel("hgb", n_estimators=5).fit(table).save(tmp / "model")


def _county(tmp: Path, drop: str | None = None, **arrays: object) -> Path:
    import shutil

    folder = tmp / "36093"
    shutil.copytree(samples.commuting_od("36093"), folder)
    if drop:
        (folder / drop).unlink()
    for name, value in arrays.items():
        np.save(folder / f"{name}.npy", value)
    return folder


def _flow_regions(tmp: Path, *, hole: bool = False) -> Path:
    import geopandas as gpd
    from shapely.geometry import box

    gdf = gpd.GeoDataFrame(
        {"id": ["a", "b", "c"], "population": [100.0, 50.0, 20.0]},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(0, 1000, 1000, 2000)],
        crs="EPSG:32633",
    )
    if hole:
        gdf.loc[1, "geometry"] = None
    gdf.to_file(tmp / "regions.gpkg")
    return tmp / "regions.gpkg"


def _flow_table(tmp: Path, **cols: object) -> Path:
    frame = pd.DataFrame(
        {"origin": ["a", "a", "b"], "destination": ["b", "c", "a"], "flow": [5, 3, 2]}
    )
    frame.assign(**cols).to_csv(tmp / "flows.csv", index=False)
    return tmp / "flows.csv"


def _flows_fit(tmp: Path, *inputs: str) -> list[str]:
    return ["flows", "fit", *inputs, "--out", str(tmp / "flowmodel"), "--method", "gravity",
            "--constraint", "none"]  # fmt: skip


def _flows_embeddings_missing(tmp: Path) -> list[str]:
    regions = _flow_regions(tmp)
    pd.DataFrame({"id": ["a", "b"], "e000": [0.1, 0.2]}).to_parquet(tmp / "emb.parquet")
    return _flows_fit(tmp, "--regions", str(regions), "--flows", str(_flow_table(tmp)),
                      "--embeddings", str(tmp / "emb.parquet"))  # fmt: skip


def _econ_districts(
    tmp: Path, names: tuple[str, ...] = ("d0", "d1", "d2", "d3"), **cols: object
) -> Path:
    frame = pd.DataFrame(
        {"district": list(names), "population": [100.0, 50.0, 20.0, 5.0, 1.0][: len(names)]}
    )
    frame.assign(**cols).to_csv(tmp / "districts.csv", index=False)
    return tmp / "districts.csv"


def _econ_fit(tmp: Path, districts: Path) -> list[str]:
    return ["economy", "fit", str(_econ_tiles(tmp)), "--districts", str(districts), "--indicator",
            "population", "--score-model", str(_score_model(tmp)), "--out", str(tmp / "econ")]  # fmt: skip


def _econ_levels(tmp: Path, column: str = "class") -> Path:
    table = samples.eurosat_ms().groupby("class").head(2).reset_index(drop=True)
    table[["image", "class"]].to_csv(tmp / "labelled.csv", index=False)
    return tmp / "labelled.csv"


def _partial_mapping(tmp: Path) -> Path:
    (tmp / "classes.csv").write_text("class,level\nForest,uninhabited\nResidential,urban\n")
    return tmp / "classes.csv"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _stac_item(tmp: Path, **change: str) -> Path:
    """A one-band (red) L2A item over a local file; ``href`` or ``crs_of`` alter it."""
    import datetime as dt

    from tests.stac_helpers import make_item, save_collection, save_item

    item = make_item(tmp / "d", "S2A_1", dt.date(2023, 5, 1), {"red": np.full((4, 4), 1100)})
    if "href" in change:
        item.assets["red"].href = change["href"]
    if "crs_of" in change:  # a second tile of the same date in another UTM zone
        import rasterio

        other = item.clone()
        other.id = "S2A_2"
        with rasterio.open(item.assets["red"].href) as src:
            profile, data = src.profile | {"crs": change["crs_of"]}, src.read()
        with rasterio.open(tmp / "moved.tif", "w", **profile) as dst:
            dst.write(data)
        other.assets["red"].href = str(tmp / "moved.tif")
        return save_collection([item, other], tmp / "items.json")
    return save_item(item, tmp / "item.json")


def _stac_landsat(tmp: Path, *, raster_bands: bool = True) -> Path:
    """A one-band (red) Landsat 8 Collection 2 Level-2 item, with or without raster:bands."""
    import datetime as dt

    from tests.stac_helpers import make_item, save_item

    item = make_item(tmp / "l", "LC08_1", dt.date(2023, 5, 3), {"red": np.full((4, 4), 10000)})
    item.properties, item.collection_id = {"platform": "landsat-8"}, "landsat-c2-l2"
    item.assets["red"].extra_fields["eo:bands"] = [{"name": "OLI_B4", "common_name": "red"}]
    if not raster_bands:
        del item.assets["red"].extra_fields["raster:bands"]
    return save_item(item, tmp / "landsat.json")


def _stac_mixed(tmp: Path) -> Path:
    """A Sentinel-2 item and a Landsat item saved as one ItemCollection."""
    import datetime as dt

    import pystac

    from tests.stac_helpers import make_item, save_collection

    s2 = make_item(tmp / "d", "S2A_1", dt.date(2023, 5, 1), {"red": np.full((4, 4), 1100)})
    landsat = pystac.Item.from_file(str(_stac_landsat(tmp)))
    return save_collection([s2, landsat], tmp / "mixed.json")


CASES: list[Case] = [
    # STAC input (issue 24)
    Case(
        "STAC item without the bands a command needs",
        lambda t: ["indices", str(_stac_item(t)), "-o", str(t / "i.tif")],
        "need band roles nir, green, swir1, swir2 (scene has B04)",
    ),
    Case(
        "STAC item whose href cannot be reached",
        lambda t: ["info", str(_stac_item(t, href="http://127.0.0.1:9/gone/S2A_1_red.tif"))],
        "gone/S2A_1_red.tif",
    ),
    Case(
        "STAC collection mixing Sentinel-2 and Landsat",
        lambda t: ["composite", str(_stac_mixed(t)), "-o", str(t / "c.tif")],
        "the STAC input mixes sensor families (landsat_oli, sentinel2)",
    ),
    Case(
        "STAC asset without scale metadata",
        lambda t: ["info", str(_stac_landsat(t, raster_bands=False))],
        "has no raster:bands scale: its units are unknown",
    ),
    Case(
        "STAC items of one date in two CRSs",
        lambda t: ["info", str(_stac_item(t, crs_of="EPSG:32632"))],
        "lie in different CRSs (EPSG:32633 for S2A_1_red.tif, EPSG:32632 for moved.tif); refused",
    ),
    Case(
        "JSON that is not STAC",
        lambda t: ["info", str(_write(t / "x.json", '{"type": "Polygon"}'))],
        "is not a STAC Item, ItemCollection or catalog",
    ),
    # outputs
    Case(
        "-o is an existing folder",
        lambda t: ["indices", str(_scene(t)), "-o", str(t)],
        "is a folder, but a file is written here",
    ),
    Case(
        "--out is a file where a folder goes",
        lambda t: ["chip", str(_scene(t)), "--cell", "100", "-o", str(_labels(t))],
        "is a file, but a folder is written here",
    ),
    Case(
        "unwritable output folder",
        lambda t: ["indices", str(_scene(t)), "-o", "/proc/humanscape/x.tif"],
        "cannot be",
    ),
    Case("empty output path", lambda t: ["indices", str(_scene(t)), "-o", ""], "empty output path"),
    Case(
        "-o equal to --grid-out",
        lambda t: _predict(t, "-o", str(t / "p.gpkg"), "--grid-out", str(t / "p.gpkg")),
        "given as two different outputs",
    ),
    Case(
        "--grid-out equal to --polygons-out",
        lambda t: _predict(
            t,
            "-o",
            str(t / "p.tif"),
            "--grid-out",
            str(t / "g.gpkg"),
            "--polygons-out",
            str(t / "g.gpkg"),
        ),
        "given as two different outputs",
    ),
    Case(
        "output equal to the input",
        lambda t: [
            "settlements",
            "predict",
            str(_features(t)),
            "--model",
            str(_model_folder(t)),
            "-o",
            str(t / "features.tif"),
        ],
        "is an input of this command",
    ),
    # files that open and then fail
    Case(
        "truncated GeoTIFF",
        lambda t: ["chip", str(_truncated(t)), "--cell", "1000", "-o", str(t / "chips")],
        "truncated or corrupt",
    ),
    Case(
        "truncated chip",
        lambda t: [
            "embed",
            str(_truncated_chip_table(t)),
            "--encoder",
            "simclr_resnet18half_eurosat_ms",
            "-o",
            str(t / "e.parquet"),
        ],
        "chip is not a readable raster",
    ),
    Case(
        "truncated model.safetensors",
        lambda t: [
            "embed",
            str(_chip_table(t)),
            "--encoder",
            str(_encoder_folder(t, truncate=True)),
            "-o",
            str(t / "e.parquet"),
        ],
        "model.safetensors",
    ),
    Case(
        "truncated model.skops",
        lambda t: [
            "settlements",
            "predict",
            str(_features(t)),
            "--model",
            str(_model_folder(t, truncate=True)),
            "-o",
            str(t / "p.tif"),
        ],
        "not a readable skops file",
    ),
    Case(
        "corrupt encoder config.json",
        lambda t: [
            "embed",
            str(_chip_table(t)),
            "--encoder",
            str(_encoder_folder(t, bad_config=True)),
            "-o",
            str(t / "e.parquet"),
        ],
        "invalid encoder config",
    ),
    Case(
        "corrupt model config.json",
        lambda t: [
            "settlements",
            "predict",
            str(_features(t)),
            "--model",
            str(_model_folder(t, bad_config=True)),
            "-o",
            str(t / "p.tif"),
        ],
        "invalid settlement model config",
    ),
    Case(
        "0-byte CSV",
        lambda t: (
            (t / "e.csv").write_text("")
            and []
            or [
                "embed",
                str(t / "e.csv"),
                "--encoder",
                "simclr_resnet18half_eurosat_ms",
                "-o",
                str(t / "e.parquet"),
            ]
        ),
        "chip table file is empty",
    ),
    Case(
        "CSV named .parquet",
        lambda t: (
            (t / "t.parquet").write_text("image\na.tif\n")
            and [
                "embed",
                str(t / "t.parquet"),
                "--encoder",
                "simclr_resnet18half_eurosat_ms",
                "-o",
                str(t / "e.parquet"),
            ]
        ),
        "not a readable Parquet chip table",
    ),
    Case(
        "folder given as chip table",
        lambda t: [
            "embed",
            str(t),
            "--encoder",
            "simclr_resnet18half_eurosat_ms",
            "-o",
            str(t / "e.parquet"),
        ],
        "is a folder, not a chip table file",
    ),
    Case(
        "model folder of an older humanscape",
        lambda t: [
            "settlements",
            "predict",
            str(_features(t)),
            "--model",
            str(_pickled_model(t)),
            "-o",
            str(t / "p.tif"),
        ],
        "config.json names no kind",
    ),
    # numbers
    Case(
        "--batch-size 0",
        lambda t: [
            "embed",
            str(_chip_table(t)),
            "--encoder",
            "simclr_resnet18half_eurosat_ms",
            "-o",
            str(t / "e.parquet"),
            "--batch-size",
            "0",
        ],
        "--batch-size: 0 is not in the range 1<=x",
    ),
    Case(
        "--batch-size negative",
        lambda t: [
            "embed",
            str(_chip_table(t)),
            "--encoder",
            "simclr_resnet18half_eurosat_ms",
            "-o",
            str(t / "e.parquet"),
            "--batch-size",
            "-3",
        ],
        "--batch-size: -3 is not in the range 1<=x",
    ),
    Case(
        "--n-estimators 0",
        lambda t: _fit(t, "-o", str(t / "m"), "--n-estimators", "0"),
        "--n-estimators: 0 is not in the range 1<=x",
    ),
    Case(
        "--negatives -100",
        lambda t: _fit(t, "-o", str(t / "m"), "--negatives", "-100"),
        "--negatives: -100 is not in the range x>=0",
    ),
    Case(
        "--neighbors 999999",
        lambda t: [
            "chip",
            str(_scene(t)),
            "--cell",
            "100",
            "--neighbors",
            "999999",
            "-o",
            str(t / "c"),
        ],
        "makes chips of",
    ),
    Case(
        "--neighbors even",
        lambda t: ["chip", str(_scene(t)), "--cell", "100", "--neighbors", "2", "-o", str(t / "c")],
        "--neighbors: must be odd",
    ),
    Case(
        "--resolution 0",
        lambda t: ["indices", str(_scene(t)), "-o", str(t / "i.tif"), "--resolution", "0"],
        "--resolution: must be positive",
    ),
    Case(
        "--resolution negative",
        lambda t: ["indices", str(_scene(t)), "-o", str(t / "i.tif"), "--resolution", "-10"],
        "--resolution: must be positive",
    ),
    Case(
        "--cell 0",
        lambda t: ["chip", str(_scene(t)), "--cell", "0", "-o", str(t / "c")],
        "--cell: must be positive",
    ),
    Case(
        "--arcsec 0",
        lambda t: ["chip", str(_scene(t)), "--arcsec", "0", "-o", str(t / "c")],
        "--arcsec: must be positive",
    ),
    Case(
        "--threshold 5",
        lambda t: _predict(t, "-o", str(t / "p.tif"), "--threshold", "5"),
        "--threshold: 5.0 is not in the range 0<=x<=1",
    ),
    Case(
        "--top-k -1",
        lambda t: _predict(t, "-o", str(t / "p.tif"), "--top-k", "-1"),
        "--top-k: -1 is not in the range x>=1",
    ),
    Case(
        "--texture-window 0",
        lambda t: [
            "settlements",
            "features",
            str(_scene(t)),
            "-o",
            str(t / "f.tif"),
            "--texture",
            "--texture-window",
            "0",
        ],
        "--texture-window: must be odd",
    ),
    Case(
        "--texture-window even",
        lambda t: [
            "settlements",
            "features",
            str(_scene(t)),
            "-o",
            str(t / "f.tif"),
            "--texture",
            "--texture-window",
            "4",
        ],
        "--texture-window: must be odd",
    ),
    Case(
        "--block-km 0",
        lambda t: _fit(t, "-o", str(t / "m"), "--block-km", "0"),
        "--block-km: must be positive",
    ),
    Case(
        "--block-km negative",
        lambda t: _fit(t, "-o", str(t / "m"), "--block-km", "-1"),
        "--block-km: must be positive",
    ),
    Case(
        "probability:abc",
        lambda t: _composite(t, "probability:abc", "--mask-files", str(_features(t))),
        "threshold 'abc' is not a number",
    ),
    Case(
        "probability:7",
        lambda t: _composite(t, "probability:7", "--mask-files", str(_features(t))),
        "threshold 7 is outside (0, 1]",
    ),
    Case(
        "s2cloudless on a scene without its ten bands",
        lambda t: _composite(t, "s2cloudless"),
        "s2cloudless needs bands B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12; the scene lacks B01",
    ),
    Case(
        "s2cloudless on surface reflectance (L2A)",
        lambda t: [
            "composite",
            str(_l2a(t)),
            "-o",
            str(t / "c.tif"),
            "--cloud-mask",
            "s2cloudless",
        ],
        "s2cloudless reads top-of-atmosphere (L1C) reflectance",
    ),
    Case(
        "impossible --period date",
        lambda t: [
            "composite",
            str(_scene(t)),
            "-o",
            str(t / "c.tif"),
            "--period",
            "2015-02-30:2015-03-31",
        ],
        "impossible date",
    ),
    Case(
        "unknown --statistic",
        lambda t: ["composite", str(_scene(t)), "-o", str(t / "c.tif"), "--statistic", "mean"],
        "--statistic: 'mean' is not one of",
    ),
    # wrong pairings
    Case(
        "RGB 8-bit encoder given 13-band reflectance chips",
        lambda t: [
            "embed",
            str(_rgb_jpeg_table(t)),
            "--encoder",
            "simclr_resnet18half_eurosat_rgb",
            "-o",
            str(t / "e.parquet"),
        ],
        "chip holds reflectance, but the encoder takes 3 bands of 8-bit",
    ),
    Case(
        "Sentinel-2 sensor forced onto Landsat files",
        lambda t: ["info", str(_landsat(t)), "--sensor", "sentinel2_l1c"],
        "--sensor sentinel2_l1c is a sentinel2 sensor",
    ),
    # messages
    Case(
        "band files whose CRS is mislabelled",
        lambda t: ["info", str(_crs_mislabelled(t))],
        "EPSG:4326",
    ),
    Case(
        "missing argument",
        lambda t: ["indices", "-o", str(t / "i.tif")],
        "Missing argument 'SCENE'",
    ),
    Case("unknown command", lambda t: ["nope"], "No such command 'nope'"),
    Case(
        "unknown sensor",
        lambda t: ["info", str(_scene(t)), "--sensor", "sentinel3"],
        "unknown sensor 'sentinel3'",
    ),
    Case(
        "multi-band file without band names",
        lambda t: ["info", str(_five_layers(t))],
        "--band-names",
    ),
    # population (Huang et al.)
    Case(
        "population: missing target column",
        lambda t: _pop_fit(t, _pop_table(t), "--target", "people"),
        "no column 'people'",
    ),
    Case(
        "population: negative population",
        lambda t: _pop_fit(t, _pop_table(t, pop_1km=-1.0), "--target", "pop_1km"),
        "negative population",
    ),
    Case(
        "population: NaN population",
        lambda t: _pop_fit(t, _pop_table(t, pop_1km=float("nan")), "--target", "pop_1km"),
        "missing, non-numeric or negative",
    ),
    Case(
        "population: band not in the chips",
        lambda t: [
            "population",
            "fit",
            str(_pop_table(t)),
            "--target",
            "pop_1km",
            "--out",
            str(t / "m"),
            "--bands",
            "B02,B99",
        ],  # fmt: skip
        "no band B99",
    ),
    Case(
        "population: chips of different sizes",
        lambda t: _pop_fit(t, _mixed_sizes(t), "--target", "pop_1km"),
        "the first chip 64 x 64 px",
    ),
    Case(
        "population: unknown hold-out region",
        lambda t: _pop_fit(
            t,
            _pop_table(t),
            "--target",
            "pop_1km",
            "--region-column",
            "class",
            "--holdout",
            "Nowhere",
        ),  # fmt: skip
        "no chip has class = Nowhere",
    ),
    Case(
        "population map: grid does not overlap the scene",
        lambda t: [*_pop_map(t)[:-4], "--grid", str(_far_grid(t)), "-o", str(t / "pop.tif")],
        "does not overlap the requested grid",
    ),
    Case(
        "population map: districts without the totals column",
        lambda t: _pop_map(t, "--districts", str(_districts(t, column="people"))),
        "no column 'pop'",
    ),
    Case(
        "population map: districts outside the scene",
        lambda t: _pop_map(t, "--districts", str(_districts(t, far=True))),
        "no feature overlaps",
    ),
    Case(
        "population predict: neither chips nor scene",
        lambda t: ["population", "predict", "--model", str(_pop_model(t)), "-o", str(t / "p.csv")],
        "give either a chip table or --scene",
    ),
    Case(
        "population predict: not a model folder",
        lambda t: [
            "population",
            "predict",
            "--model",
            str(t),
            str(_pop_table(t)),
            "-o",
            str(t / "p.csv"),
        ],  # fmt: skip
        "not a population model folder",
    ),
    # economy (Park et al.)
    Case(
        "economy: label outside the three levels, no mapping",
        lambda t: [
            "economy",
            "fit-score",
            str(_econ_levels(t)),
            "--label-column",
            "class",
            "--out",
            str(t / "score"),
        ],  # fmt: skip
        "not levels",
    ),
    Case(
        "economy: mapping misses a class",
        lambda t: [
            "economy",
            "fit-score",
            str(_econ_levels(t)),
            "--label-column",
            "class",
            "--mapping",
            str(_partial_mapping(t)),
            "--out",
            str(t / "score"),
        ],  # fmt: skip
        "mapping has no row for class(es) AnnualCrop",
    ),
    Case(
        "economy: district with no tiles",
        lambda t: _econ_fit(t, _econ_districts(t, names=("d0", "d1", "d2", "d3", "d9"))),
        "have no tile",
    ),
    Case(
        "economy: tile's district missing from the district table",
        lambda t: _econ_fit(t, _econ_districts(t, names=("d0", "d1", "d2"))),
        "missing from districts.csv",
    ),
    Case(
        "economy: zero indicator where a log is taken",
        lambda t: _econ_fit(t, _econ_districts(t, population=[10.0, 0.0, 3.0, 4.0])),
        "zero or negative",
    ),
    Case(
        "economy: score model bands do not match the chips",
        lambda t: [
            "economy",
            "score",
            "--model",
            str(_score_model(t)),
            str(_rgb_table(t)),
            "--out",
            str(t / "s.csv"),
        ],  # fmt: skip
        "the model reads reflectance",
    ),
    Case(
        "economy: cluster counts out of range",
        lambda t: [*_econ_fit(t, _econ_districts(t)), "--n-clusters", "0,-3"],
        "cluster counts must be in 0..1000",
    ),
    Case(
        "economy predict: not an economy model folder",
        lambda t: [
            "economy",
            "predict",
            "--model",
            str(t),
            str(_econ_tiles(t)),
            "--out",
            str(t / "d.csv"),
        ],  # fmt: skip
        "not an economy model folder",
    ),
    # migration (Runfola et al.)
    Case(
        "migration: duplicate municipality id",
        lambda t: _mig_fit(t, _mig_census(t, id=["m0", "m0"] + [f"m{i}" for i in range(2, 30)])),
        "1 duplicate id(s) in 'id', first 'm0'",
    ),
    Case(
        "migration: negative target",
        lambda t: _mig_fit(t, _mig_census(t, migrants=[-3] + [1] * 29)),
        "1 negative value(s)",
    ),
    Case(
        "migration: non-numeric column",
        lambda t: _mig_fit(t, _mig_census(t, state=["north"] * 30)),
        "1 non-numeric column(s): state",
    ),
    Case(
        "migration: target names no column",
        lambda t: [
            "migration",
            "fit",
            str(_mig_census(t)),
            "--id-column",
            "id",
            "--target",
            "leavers",
            "--out",
            str(t / "mig"),
        ],  # fmt: skip
        "census table has no column 'leavers'",
    ),
    Case(
        "migration: tile ids match no municipality",
        lambda t: _mig_fit(
            t, _mig_census(t), "--method", "imagery", "--images", str(_mig_tiles(t))
        ),
        "none of the 2 municipality ids of the tiles matches a census id",
    ),
    Case(
        "migration: polygons without a matching id",
        lambda t: _mig_fit(t, _mig_census(t), "--polygons", str(_mig_polygons(t))),
        "none of the 2 polygon ids matches a census id",
    ),
    Case(
        "migration: predict on a table lacking a fitted column",
        _mig_predict_missing,
        "lacks 1 column(s) the model was fitted on: income",
    ),
    Case(
        "migration: --holdout without --region-column",
        lambda t: [
            "migration",
            "evaluate",
            str(_mig_census(t)),
            "--id-column",
            "id",
            "--target",
            "migrants",
            "--holdout",
            "north",
            "--out",
            str(t / "rep"),
        ],  # fmt: skip
        "--holdout needs --region-column",
    ),
    # flows (Imagery2Flow)
    Case(
        "flows: county folder missing a file",
        lambda t: _flows_fit(t, "--commuting-od", str(_county(t, drop="adj.npy"))),
        "CommutingODGen folder lacks adj.npy",
    ),
    Case(
        "flows: arrays of mismatched sizes",
        lambda t: _flows_fit(t, "--commuting-od", str(_county(t, od=np.zeros((5, 5))))),
        "array of shape (5, 5), expected (43, 43)",
    ),
    Case(
        "flows: flow origin that is not a region",
        lambda t: _flows_fit(
            t,
            "--regions",
            str(_flow_regions(t)),
            "--flows",
            str(_flow_table(t, origin=["a", "zz", "b"])),
        ),  # fmt: skip
        "1 origin/destination id(s) are not regions (first: zz)",
    ),
    Case(
        "flows: negative flows",
        lambda t: _flows_fit(
            t, "--regions", str(_flow_regions(t)), "--flows", str(_flow_table(t, flow=[5, -3, 2]))
        ),  # fmt: skip
        "1 negative flow(s)",
    ),
    Case(
        "flows: region without geometry",
        lambda t: _flows_fit(
            t, "--regions", str(_flow_regions(t, hole=True)), "--flows", str(_flow_table(t))
        ),  # fmt: skip
        "1 region(s) without geometry (first: b)",
    ),
    Case(
        "flows: embeddings table missing regions",
        _flows_embeddings_missing,
        "1 of 3 regions of regions have no row (first: c)",
    ),
    Case(
        "flows: predict with a folder that is not a flow model",
        lambda t: [
            "flows",
            "predict",
            "--model",
            str(t),
            "--commuting-od",
            str(_county(t)),
            "--out",
            str(t / "f.csv"),
        ],  # fmt: skip
        "not a flow model folder (no config.json)",
    ),
    # country-scale maps (humanscape.scale)
    Case(
        "a Dask scheduler that does not answer",
        lambda t: [
            "indices",
            str(_scene(t)),
            "-o",
            str(t / "i.tif"),
            "--scheduler",
            _dead_address(),
        ],
        "no Dask scheduler answers at this address",
    ),
    Case(
        "predict-chips without --encoder or --model",
        lambda t: ["predict-chips", str(_scene(t)), "-o", str(t / "g.tif")],
        "give either --encoder (embeddings) or --model",
    ),
    Case(
        "predict-chips with an unknown inference backend",
        lambda t: [
            "predict-chips",
            str(_scene(t)),
            "--encoder",
            "simclr_resnet18half_eurosat_ms",
            "--backend",
            "tensorrt",
            "-o",
            str(t / "g.tif"),
        ],
        "--backend: 'tensorrt' is not one of 'auto', 'onnx', 'torch'",
    ),
    Case(
        "predict-chips with a model that is not a chip model",
        lambda t: [
            "predict-chips",
            str(_scene(t)),
            "--model",
            str(_model_folder(t)),
            "-o",
            str(t / "g.tif"),
        ],
        "this needs one written by 'population fit', 'economy fit-score'",
    ),
    Case(
        "predict-chips with an encoder whose bands the scene lacks",
        lambda t: [
            "predict-chips",
            str(make_band_folder(t / "s", bands=("B02", "B03", "B08"))),
            "--encoder",
            str(_encoder_folder(t)),
            "--chip",
            "8",
            "-o",
            str(t / "g.tif"),
        ],  # fmt: skip
        "the scene has no band B04",
    ),
    Case(
        "a folder the user owns in the place of the tile folder",
        lambda t: ["indices", str(_scene(t)), "-o", str(_foreign_tiles(t))],
        "not a humanscape tile folder",
    ),
]


def _dead_address() -> str:
    """A local address where nothing listens (a port that was free a moment ago)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _foreign_tiles(tmp: Path) -> Path:
    (tmp / "i.tif.tiles").mkdir()
    (tmp / "i.tif.tiles" / "notes.txt").write_text("mine")
    return tmp / "i.tif"


def _rgb_table(tmp: Path) -> Path:
    samples.eurosat_rgb().head(3)[["image"]].to_csv(tmp / "rgb.csv", index=False)
    return tmp / "rgb.csv"


def _truncated_chip_table(tmp: Path) -> Path:
    chip = _truncated(tmp)
    pd.DataFrame({"image": [chip.name]}).to_csv(tmp / "chips.csv", index=False)
    return tmp / "chips.csv"


def _pickled_model(tmp: Path) -> Path:
    """A folder as humanscape 0.1 wrote it: no kind in config.json, the model as a pickle."""
    folder = _model_folder(tmp)
    config = json.loads((folder / "config.json").read_text())
    del config["kind"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.skops").rename(folder / "model.joblib")
    return folder


def _five_layers(tmp: Path) -> Path:
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 0, 0, -10, 5000), 8, 8)
    return write_raster(tmp / "five.tif", np.ones((5, 8, 8), np.uint16), grid, units="dn")


def run_case(case: Case, tmp: Path):
    """Build the case's inputs in ``tmp``, run the CLI, return (args, result)."""
    args = case.build(tmp)
    before = {p for p in tmp.rglob("*")}
    result = CliRunner().invoke(cli, args)
    after = {p for p in tmp.rglob("*")}
    return args, result, after - before


def error_lines(output: str) -> list[str]:
    return [ln for ln in output.strip().splitlines() if ln.startswith("error:")]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_exit_2_and_leaves_nothing(case: Case, tmp_path: Path):
    args, result, created = run_case(case, tmp_path)
    assert result.exit_code == case.code, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert case.expect in lines[0], lines[0]
    assert "(fix: " in lines[0], lines[0]
    assert "Traceback" not in result.output and "Warning" not in result.output, result.output
    assert not created, f"left behind: {sorted(map(str, created))}"


def test_the_suggested_cell_size_is_accepted(tmp_path):
    scene = _scene(tmp_path)
    bad = CliRunner().invoke(cli, ["chip", str(scene), "--cell", "155", "-o", str(tmp_path / "c")])
    line = error_lines(bad.output)[0]
    suggested = line.split("--cell ")[-1].rstrip(")")
    good = CliRunner().invoke(
        cli, ["chip", str(scene), "--cell", suggested, "-o", str(tmp_path / "c")]
    )
    assert good.exit_code == 0, good.output


def test_band_names_named_in_the_fix_exists_and_works(tmp_path):
    result = CliRunner().invoke(
        cli, ["info", str(_five_layers(tmp_path)), "--band-names", "B02,B03,B04,B08,B11"]
    )
    assert result.exit_code == 0 and "B11" in result.output, result.output


def test_indices_reads_the_composite_that_composite_wrote(tmp_path):
    folders = [
        make_band_folder(tmp_path / f"s{i}", date=d, seed=i)
        for i, d in enumerate(["20170301", "20170601"])
    ]
    ok = CliRunner().invoke(cli, ["composite", *map(str, folders), "-o", str(tmp_path / "c.tif")])
    assert ok.exit_code == 0, ok.output
    result = CliRunner().invoke(
        cli, ["indices", str(tmp_path / "c.tif"), "-o", str(tmp_path / "i.tif")]
    )
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "c.tif"), "--json"])
    bands = json.loads(info.output)["bands"]
    assert [b["name"] for b in bands] == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert {b["units"] for b in bands} == {"reflectance"} and {b["scale"] for b in bands} == {1.0}


def test_a_real_bug_says_so_in_one_line_and_shows_its_traceback_with_verbose(tmp_path, monkeypatch):
    import humanscape.geo.indices as indices

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(indices.IndicesMap, "compute", broken)
    args = ["indices", str(_scene(tmp_path)), "-o", str(tmp_path / "i.tif")]
    quiet = CliRunner().invoke(cli, args)
    assert quiet.exit_code == 1 and error_lines(quiet.output)[0].startswith("error: internal error")
    loud = CliRunner().invoke(cli, ["--verbose", *args])
    assert loud.exit_code == 1 and "Traceback" in loud.output and "ZeroDivisionError" in loud.output


def _interrupt(args: list[str], cwd: Path, marker: str) -> subprocess.CompletedProcess:
    """Run the CLI, send SIGTERM once ``marker`` shows on stderr (the work has begun)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "humanscape.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen = b""
    deadline = time.monotonic() + 120
    while marker.encode() not in seen and proc.poll() is None and time.monotonic() < deadline:
        seen += os.read(proc.stderr.fileno(), 4096)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, (seen + err).decode())


@pytest.mark.parametrize(
    "command",
    [
        (["chip", "{berlin}", "--cell", "100", "-o", "chips"], "chips:"),
        (
            ["settlements", "features", "{berlin}", "{berlin}", "--periods", "2017", "--texture"]
            + ["-o", "f.tif"],
            "composite ",
        ),
    ],
    ids=["chip", "settlements features"],
)
def test_sigterm_mid_run_leaves_nothing_behind(command, tmp_path):
    berlin = str(samples.sample_path("berlin", "IMG_DATA"))
    args = [a.replace("{berlin}", berlin) for a in command[0]]
    done = _interrupt(args, tmp_path, marker=command[1])
    assert done.returncode == 130, done.stderr[-2000:]
    assert error_lines(done.stderr) == ["error: interrupted (nothing was left half written)"], (
        done.stderr[-3000:]
    )
    assert list(tmp_path.iterdir()) == [], sorted(p.name for p in tmp_path.iterdir())


def test_the_docs_table_lists_every_case():
    table = (Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md").read_text()
    missing = [c.name for c in CASES if f"| {c.name} |" not in table]
    assert not missing, f"run scripts/bad_inputs_table.py; missing: {missing}"
