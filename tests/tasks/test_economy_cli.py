"""`humanscape economy ...` end to end on shipped real data: EuroSAT MS chips, the Berlin scene
and its census cells as districts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from humanscape.cli import cli
from humanscape.data import samples
from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS

runner = CliRunner()


@pytest.fixture(scope="module")
def score_folder(tmp_path_factory):
    """A score model trained through the CLI on 60 real chips, classes mapped by a mapping file."""
    folder = tmp_path_factory.mktemp("econ")
    table = samples.eurosat_ms().groupby("class").head(6).reset_index(drop=True)
    table[["image", "class"]].to_csv(folder / "chips.csv", index=False)
    pd.DataFrame({"class": list(EUROSAT_LEVELS), "level": list(EUROSAT_LEVELS.values())}).to_csv(
        folder / "classes.csv", index=False
    )
    out = folder / "score"
    result = runner.invoke(
        cli,
        [
            "economy",
            "fit-score",
            str(folder / "chips.csv"),
            "--label-column",
            "class",
            "--mapping",
            str(folder / "classes.csv"),
            "--out",
            str(out),
            "--method",
            "cnn",
            "--arch",
            "resnet18_half",
            "--epochs",
            "3",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    assert "validation: accuracy" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["info"]["label_column"] == "class" and config["state"]["units"] == "reflectance"
    assert config["params"]["bands"] == ["B02", "B03", "B04", "B08"]
    assert not (folder / "score.checkpoints").exists()
    return out


@pytest.fixture(scope="module")
def berlin_tiles(tmp_path_factory):
    """Tiles cut inside five real census cells of the Berlin scene, and their district table."""
    folder = tmp_path_factory.mktemp("tiles")
    cells = samples.berlin_census_cells()
    cells = cells[cells["population"] > 0].head(5)
    cells.to_file(folder / "cells.gpkg")
    cells.drop(columns="geometry").to_csv(folder / "districts.csv", index=False)
    result = runner.invoke(
        cli,
        [
            "economy",
            "tiles",
            str(samples.sample_path("berlin", "IMG_DATA")),
            "--districts",
            str(folder / "cells.gpkg"),
            "--chip",
            "32",
            "--stride",
            "32",
            "--bands",
            "B02,B03",
            "--bands",
            "B04,B08",
            "--out",
            str(folder / "tiles"),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(folder / "tiles" / "chips.csv")
    # 1 km cells of 100 px: tiles of 32 px wholly inside, every 32 px -> 3 x 3 (or 2 x 3) each
    assert table.groupby("district").size().between(4, 9).all()
    assert set(table["district"]) == set(cells["district"])
    return folder


def test_score_a_chip_table_and_a_scene(tmp_path, score_folder, berlin_tiles):
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        cli,
        [
            "economy",
            "score",
            "--model",
            str(score_folder),
            str(berlin_tiles / "tiles" / "chips.csv"),
            "--out",
            str(out),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["image", "score", "class"]
    assert scores["score"].between(-10, 20).all()
    expected = np.where(
        scores["score"] < 0, "uninhabited", np.where(scores["score"] < 10, "rural", "urban")
    )
    assert (scores["class"] == expected).all()
    import geopandas as gpd

    gpkg = gpd.read_file(out.with_suffix(".gpkg"))
    assert len(gpkg) == len(scores) and gpkg.crs.to_epsg() == 32633
    tif, png = tmp_path / "score.tif", tmp_path / "score.png"
    result = runner.invoke(
        cli,
        [
            "economy",
            "score",
            "--model",
            str(score_folder),
            "--scene",
            str(samples.sample_path("berlin", "IMG_DATA")),
            "--chip",
            "64",
            "--out",
            str(tif),
            "--png",
            str(png),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(tif) as src:
        assert src.descriptions == ("score", "level")
        assert src.res == (640.0, 640.0)
        score, level = src.read()
    finite = np.isfinite(score)
    assert finite.mean() > 0.9
    expected = (score[finite] >= 0).astype(int) + (score[finite] >= 10.0).astype(int)  # eq. 4
    assert np.array_equal(level[finite], expected)
    assert png.stat().st_size > 10_000


def test_fit_predict_evaluate_on_berlin_districts(tmp_path, score_folder, berlin_tiles):
    tiles = berlin_tiles / "tiles" / "chips.csv"
    districts = berlin_tiles / "districts.csv"
    model = tmp_path / "econ"
    fast = ["--n-clusters", "0,2", "--encoder-epochs", "1", "--n-estimators", "20"]
    result = runner.invoke(
        cli,
        [
            "economy",
            "fit",
            str(tiles),
            "--districts",
            str(districts),
            "--indicator",
            "population",
            "--score-model",
            str(score_folder),
            "--out",
            str(model),
            *fast,
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    fitted = pd.read_csv(model / "fitted.csv")
    assert len(fitted) == 5 and "observed_population" in fitted.columns
    out = tmp_path / "districts.csv"
    result = runner.invoke(
        cli, ["economy", "predict", "--model", str(model), str(tiles), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(out)
    merged = predicted.merge(fitted, on="district", suffixes=("", "_fit"))
    assert np.allclose(merged["population"], merged["population_fit"])
    assert np.allclose(
        predicted["population"], predicted["score_sum"] * predicted["district_factor"]
    )
    assert predicted["gini"].between(0, 1).all()
    national = json.loads((tmp_path / "districts_national.json").read_text())
    assert set(national) == {"scores", "district_factors", "adjusted_scores"}
    assert "national Gini" in result.output
    report = tmp_path / "report"
    result = runner.invoke(
        cli,
        [
            "economy",
            "evaluate",
            str(tiles),
            "--districts",
            str(districts),
            "--indicator",
            "population",
            "--score-model",
            str(score_folder),
            "--out",
            str(report),
            *fast,
            "--splits",
            "3",
            "--share-splits",
            "2",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    table1 = pd.read_csv(report / "table1.csv")
    assert {"full", "without_ensemble", "without_fine_tuning", "without_hyperlocal",
            "read_like", "mosaiks_ridge"} <= set(table1["configuration"])  # fmt: skip
    assert (table1["n_splits"] == 3).all()
    curve = pd.read_csv(report / "figure6.csv")
    assert set(curve["augmentation"]) == {True, False}
    assert (report / "figure6.png").stat().st_size > 10_000


def test_nightlight_values_and_nightlight_encoders(tmp_path, score_folder, berlin_tiles):
    from humanscape.geo.raster import write_raster
    from humanscape.tasks.economy.data import nightlight_values

    census = samples.berlin_population()
    rows, cols = np.indices(census.data.shape[1:])
    light = (100 * rows + cols).astype(np.float32)  # one value per 1 km census cell
    raster = write_raster(tmp_path / "light.tif", light[None], census.grid, units="count")
    tiles = pd.read_csv(berlin_tiles / "tiles" / "chips.csv")
    tiles["image"] = [str(berlin_tiles / "tiles" / p) for p in tiles["image"]]
    values = nightlight_values(tiles, raster)
    # every tile lies wholly inside its census cell "r<row>c<col>": its mean is that cell's value
    expected = [
        100 * int(d[1 : d.index("c")]) + int(d[d.index("c") + 1 :]) for d in tiles["district"]
    ]
    assert values.tolist() == pytest.approx(expected)
    result = runner.invoke(
        cli,
        [
            "economy",
            "fit",
            str(berlin_tiles / "tiles" / "chips.csv"),
            "--districts",
            str(berlin_tiles / "districts.csv"),
            "--indicator",
            "population",
            "--score-model",
            str(score_folder),
            "--nightlight",
            str(raster),
            "--n-clusters",
            "0",
            "--encoder-epochs",
            "1",
            "--n-estimators",
            "10",
            "--out",
            str(tmp_path / "econ"),
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "econ" / "config.json").read_text())
    assert config["state"]["encoders"] == ["labels_nc0", "nightlight_nc0"]


def test_fit_score_auto_writes_its_candidates_and_a_forest_feeds_economy_fit(
    tmp_path, score_folder, berlin_tiles
):
    chips = score_folder.parent / "chips.csv"
    out = tmp_path / "auto"
    args = ["--label-column", "class", "--mapping", str(score_folder.parent / "classes.csv")]
    result = runner.invoke(
        cli,
        ["economy", "fit-score", str(chips), *args, "--out", str(out), "--arch", "resnet18_half",
         "--epochs", "2", "--method", "forest"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (out / "candidates.csv").exists()  # a named method: no selection
    forest, out = out, tmp_path / "auto2"
    result = runner.invoke(
        cli,
        ["economy", "fit-score", str(chips), *args, "--out", str(out), "--arch", "resnet18_half",
         "--epochs", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "candidates by one held-out split" in result.output
    table = pd.read_csv(out / "candidates.csv")
    assert set(table["candidate"]) == {"cnn", "forest", "mosaiks"} and table["chosen"].sum() == 1
    chosen = table.loc[table["chosen"], "candidate"].item()
    config = json.loads((out / "config.json").read_text())
    assert config["state"]["method"] == chosen and "candidates.csv" in config["tables"]
    assert config["info"]["method_chosen_by"].startswith("auto: 3-class accuracy")
    assert config["state"]["validation"]["accuracy"] == pytest.approx(
        table.loc[table["chosen"], "mean"].item()
    )
    result = runner.invoke(
        cli,
        ["economy", "fit", str(berlin_tiles / "tiles" / "chips.csv"), "--districts",
         str(berlin_tiles / "districts.csv"), "--indicator", "population", "--score-model",
         str(forest), "--n-estimators", "10", "--out", str(tmp_path / "econ")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the score model is a forest classifier" in result.output
