"""`humanscape migration fit | predict | evaluate` end to end on a small synthetic world: census
table (the built-up share hidden), municipality polygons and image tiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from humanscape.cli import cli
from humanscape.data.synthetic import SyntheticWorld
from humanscape.data.synthetic_census import write_census_inputs

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mig")
    paths = write_census_inputs(
        SyntheticWorld(384, 384, seed=3, n_districts=40), folder, tile=16, stride=16
    )
    return folder, paths


def _ok(args):
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_fit_and_predict_the_default_model_with_intervals(world):
    folder, p = world
    census = str(p["census"])
    # 40 municipalities: 6 calibration rows, too few for 90 % intervals (9 needed): said so, and
    # no [0, inf] interval is written as if it were one
    out = _ok(
        [
            "migration", "fit", census, "--id-column", "municipality", "--target", "outflow",
            "--drop", "--method", "ensemble", "--out", str(folder / "narrow"),
        ]
    )  # fmt: skip
    assert "no finite 90 % interval: 6 calibration municipalities are too few" in out
    # a named model bypasses the selection
    assert "candidates by" not in out and not (folder / "narrow" / "candidates.csv").exists()
    out = _ok(["migration", "predict", "--model", str(folder / "narrow"), census,
               "--out", str(folder / "narrow.csv")])  # fmt: skip
    assert "no interval" in out and "intervals)" not in out
    narrow = pd.read_csv(folder / "narrow.csv")
    assert narrow["lower"].isna().all() and narrow["upper"].isna().all()
    config = (folder / "narrow" / "config.json").read_text()
    assert "Infinity" not in config and json.loads(config)["state"]["conformal_quantile"] is None
    # 80 % intervals need 4 calibration rows
    out = _ok(
        [
            "migration", "fit", census, "--id-column", "municipality", "--target", "outflow",
            "--drop", "--alpha", "0.2", "--polygons", str(p["polygons"]),
            "--out", str(folder / "default"),
        ]
    )  # fmt: skip
    assert "dropped 1 non-numeric column(s): region" in out
    # the default (auto) scored the candidates by 5-fold CV on this table and kept the best
    assert "candidates by 5-fold cross-validation on the data given:" in out
    candidates = pd.read_csv(folder / "default" / "candidates.csv")
    assert set(candidates["candidate"]) == {"ensemble", "hgb", "rf", "ridge"}
    chosen = candidates.loc[candidates["chosen"], "candidate"].item()
    best = candidates["mean"].max()
    rf = candidates.set_index("candidate").loc["rf", "mean"]
    assert chosen == ("rf" if rf >= best else candidates.iloc[0]["candidate"])
    config = json.loads((folder / "default" / "config.json").read_text())
    assert config["params"]["method"] == chosen and "outflow" not in config["state"]["variables"]
    assert config["info"]["method_chosen_by"].startswith("auto")
    assert config["state"]["id_column"] == "municipality"
    assert not (folder / "default.checkpoints").exists()
    _ok(
        [
            "migration", "predict", "--model", str(folder / "default"), census,
            "--out", str(folder / "pred.csv"),
        ]
    )  # fmt: skip
    pred = pd.read_csv(folder / "pred.csv")
    truth = pd.read_csv(census)
    assert list(pred.columns) == ["municipality", "prediction", "lower", "upper"]
    assert list(pred["municipality"]) == list(truth["municipality"])
    assert (pred["lower"] <= pred["prediction"]).all() and (
        pred["prediction"] <= pred["upper"]
    ).all()
    assert np.corrcoef(pred["prediction"], truth["outflow"])[0, 1] > 0.5


def test_signature_with_imagery_writes_its_signature_figures(world):
    folder, p = world
    model = folder / "sig"
    pd.DataFrame(
        {
            "variable": ["population", "income", "unemployment"],
            "group": ["demographic", "economic", "economic"],
        }
    ).to_csv(folder / "groups.csv", index=False)
    _ok(
        [
            "migration", "fit", str(p["census"]), "--id-column", "municipality", "--target",
            "outflow", "--drop", "--method", "signature+imagery", "--images", str(p["tiles"]), "--epochs", "2",
            "--variable-groups", str(folder / "groups.csv"), "--out", str(model),
        ]
    )  # fmt: skip
    for name in ("config.json", "weights.safetensors", "signature.png", "signature_epochs.png"):
        assert (model / name).exists(), name
    assert not (folder / "sig.checkpoints").exists()  # removed once the model is written
    config = json.loads((model / "config.json").read_text())
    state = config["state"]
    assert len(state["layouts"]) == 2 and state["bands"] == ["B02", "B03", "B04", "B08"]
    _ok(
        [
            "migration", "predict", "--model", str(model), str(p["census"]), "--images", str(p["tiles"]), "--out", str(folder / "sig.csv"),
        ]
    )  # fmt: skip
    assert len(pd.read_csv(folder / "sig.csv")) == 40


def test_evaluate_reports_metrics_importance_moran_transfer_and_plots(world):
    folder, p = world
    report = folder / "report"
    out = _ok(
        [
            "migration", "evaluate", str(p["census"]), "--id-column", "municipality", "--target",
            "outflow", "--methods", "ensemble,dense", "--epochs", "3", "--splits", "3", "--alpha", "0.2",
            "--polygons", str(p["polygons"]), "--region-column", "region", "--out", str(report),
        ]
    )  # fmt: skip
    summary = pd.read_csv(report / "summary.csv")
    assert list(summary["model"]) == ["ensemble", "dense"]
    for column in ("r2", "r2_std", "mae", "within_500", "within_1000", "coverage", "transfer_r2"):
        assert column in summary.columns, column
    assert len(pd.read_csv(report / "metrics.csv")) == 6
    importance = pd.read_csv(report / "importance.csv")
    assert set(importance["variable"]) == {
        "population", "income", "unemployment", "youth_share", "border_distance_km",
        "household_size", "noise_var",
    }  # fmt: skip
    # the outflow is population x rate(unemployment, income, ...): a driver ranks first, and the
    # two variables the truth does not use are not in the top three
    assert importance["variable"].iloc[0] in {"population", "unemployment", "income"}
    assert not set(importance["variable"].head(3)) & {"household_size", "noise_var"}
    moran = json.loads((report / "moran.json").read_text())
    assert moran["n"] == 40 and -1 <= moran["I"] <= 1
    assert len(pd.read_csv(report / "lisa.csv")) == 40
    assert set(pd.read_csv(report / "transfer.csv")["held_out"]) == {"east", "west"}
    for name in ("importance.png", "error_vs_population.png"):
        assert (report / name).exists(), name
    assert "residual Moran's I (ensemble" in out
