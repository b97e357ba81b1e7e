"""`humanscape population fit / predict / evaluate` end to end on the shipped real chips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from humanscape.cli import cli
from humanscape.data import samples

runner = CliRunner()
FAST = ["--method", "features", "--features", "stats", "--bands", "B02,B03,B04,B08,B11"]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """60 real chips with census population and their country-like region (the class here)."""
    folder = tmp_path_factory.mktemp("pop")
    frame = samples.eurosat_ms().groupby("class").head(6).reset_index(drop=True)
    frame[["image", "class", "lon", "lat", "pop_1km"]].to_csv(folder / "t.csv", index=False)
    return folder / "t.csv"


def test_fit_with_holdout_group_reports_transfer_apart(tmp_path, table):
    out = tmp_path / "m"
    result = runner.invoke(
        cli,
        [
            "population",
            "fit",
            str(table),
            "--target",
            "pop_1km",
            "--out",
            str(out),
            *FAST,
            "--region-column",
            "class",
            "--holdout",
            "Residential",
        ],  # fmt: skip
    )
    assert result.exit_code == 0, result.output
    transfer = pd.read_csv(out / "transfer.csv")
    assert set(transfer["scale"]) == {"log", "log1p", "count"} and (transfer["n"] == 6).all()
    assert "coverage" in transfer.columns
    validation = pd.read_csv(out / "validation.csv")
    assert set(validation["set"]) == {"validation"}
    config = json.loads((out / "config.json").read_text())
    assert config["info"]["transfer"] == {"held_out": "class = Residential", "n": 6}
    # the held-out region was never seen: 54 chips for training + validation
    validation = config["state"]["validation"]
    assert validation["n_train"] + validation["n_validation"] == 54


def test_auto_scores_the_candidates_by_spatial_cv_and_keeps_the_best(tmp_path, table):
    out = tmp_path / "auto"
    tiny = ["--epochs", "1", "--cnn-seeds", "1", "--batch-size", "16", "--block-km", "200"]
    result = runner.invoke(
        cli,
        ["population", "fit", str(table), "--target", "pop_1km", "--out", str(out), *tiny,
         "--region-column", "class", "--holdout", "Residential"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "candidates by 3-fold cross-validation on the data given:" in result.output
    candidates = pd.read_csv(out / "candidates.csv")
    assert list(candidates.columns[:3]) == ["candidate", "mean", "std"]
    assert set(candidates["candidate"]) == {"ensemble", "ridge_stats", "rf_stats"}
    chosen = candidates.loc[candidates["chosen"], "candidate"].item()
    scores = candidates.set_index("candidate")["mean"]
    assert chosen == "rf_stats" or scores[chosen] > scores["rf_stats"]  # the baseline wins ties
    config = json.loads((out / "config.json").read_text())
    expected = {"ensemble": "ensemble", "ridge_stats": "features", "rf_stats": "features"}
    assert config["params"]["method"] == expected[chosen]
    assert config["info"]["method_chosen_by"].startswith(f"auto: {chosen}")
    # the held-out region stays out of the selection as of the fit: 54 chips
    assert (
        config["state"]["validation"]["n_train"] + config["state"]["validation"]["n_validation"]
        == 54
    )


def test_predict_chips_and_evaluate(tmp_path, table):
    model = tmp_path / "m"
    fit = runner.invoke(
        cli, ["population", "fit", str(table), "--target", "pop_1km", "--out", str(model), *FAST]
    )
    assert fit.exit_code == 0, fit.output
    pred = runner.invoke(
        cli,
        ["population", "predict", "--model", str(model), str(table), "-o", str(tmp_path / "p.csv")],
    )
    assert pred.exit_code == 0, pred.output
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["image", "prediction", "lower", "upper"] and len(frame) == 60
    assert (frame["lower"] <= frame["prediction"]).all() and (
        frame["prediction"] <= frame["upper"]
    ).all()
    report = tmp_path / "report"
    ev = runner.invoke(
        cli,
        [
            "population",
            "evaluate",
            "--model",
            str(model),
            str(table),
            "--target",
            "pop_1km",
            "-o",
            str(report),
        ],  # fmt: skip
    )
    assert ev.exit_code == 0, ev.output
    metrics = pd.read_csv(report / "metrics.csv").set_index("scale")
    truth = pd.read_csv(table)["pop_1km"].to_numpy()
    mae = np.abs(truth - frame["prediction"].to_numpy()).mean()
    assert metrics.loc["count", "mae"] == pytest.approx(mae, rel=1e-6)
    assert (report / "scatter.png").stat().st_size > 1000 and (report / "bias.png").exists()


def test_scene_map_on_a_reference_grid_with_district_totals(tmp_path, table):
    import geopandas as gpd
    from shapely.geometry import box

    model = tmp_path / "m"
    runner.invoke(
        cli, ["population", "fit", str(table), "--target", "pop_1km", "--out", str(model), *FAST]
    )
    census = samples.sample_path("berlin", "population_1km_eurostat.tif")
    with rasterio.open(census) as src:
        left, bottom, right, top = src.bounds
        transform, shape = src.transform, src.shape
    halves = gpd.GeoDataFrame(
        {"pop": [1000.0, 3000.0]},
        geometry=[
            box(left, bottom, (left + right) / 2, top),
            box((left + right) / 2, bottom, right, top),
        ],
        crs=32633,
    )
    halves.to_file(tmp_path / "d.gpkg")
    result = runner.invoke(
        cli,
        ["population", "predict", "--model", str(model), "--scene",
         str(samples.sample_path("berlin", "IMG_DATA")), "--grid", str(census), "--districts",
         str(tmp_path / "d.gpkg"), "-o", str(tmp_path / "pop.tif"), "--png", str(tmp_path / "pop.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "pop.tif") as src:
        assert src.transform == transform and src.shape == shape
        assert src.descriptions == ("population", "lower", "upper", "population_model")
        pop = src.read(1)
    west = np.nansum(pop[:, : shape[1] // 2])
    east = np.nansum(pop[:, shape[1] // 2 :])
    assert west == pytest.approx(1000, rel=1e-4) and east == pytest.approx(3000, rel=1e-4)
    assert (tmp_path / "pop.png").stat().st_size > 1000
