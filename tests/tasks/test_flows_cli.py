"""`humanscape flows fit | predict | evaluate | embed` end to end on the shipped real counties
(CommutingODGen) and, for the image path, a small synthetic world."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from humanscape.cli import cli
from humanscape.data import samples
from humanscape.data.synthetic import SyntheticWorld

runner = CliRunner()
TRAIN = [str(samples.commuting_od(f)) for f in ("26021", "35013")]
TEST = str(samples.commuting_od("36093"))


def _ok(args):
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flows")
    out = _ok(["flows", "fit", "--commuting-od", *TRAIN, "--out", str(folder / "model"),
               "--method", "gravity", "--constraint", "doubly"])  # fmt: skip
    return folder, out


def test_fit_reports_parameters_and_within_city_scores(fitted):
    folder, out = fitted
    assert "fitted gravity-doubly-power on 2 cities (89 regions)" in out
    assert "gamma" in out
    report = pd.read_csv(folder / "model" / "fit_report.csv")
    assert report["city"].astype(str).tolist() == ["26021", "35013"]
    assert report["cpc_test_pairs"].between(0, 1).all()
    assert not (folder / "model.checkpoints").exists()


def test_predict_writes_every_pair_with_tract_ids_and_a_map(fitted):
    folder, _ = fitted
    csv, png = folder / "flows.csv", folder / "map.png"
    _ok(["flows", "predict", "--model", str(folder / "model"), "--commuting-od", TEST,
         "--out", str(csv), "--png", str(png)])  # fmt: skip
    table = pd.read_csv(csv, dtype={"origin": str, "destination": str})
    geoids = set(gpd.read_file(samples.commuting_od("36093") / "regions.shp")["GEOID"].astype(str))
    assert list(table.columns) == ["origin", "destination", "flow"]
    assert set(table["origin"]) <= geoids and set(table["destination"]) <= geoids
    assert (table["flow"] > 0).all() and not table.duplicated(["origin", "destination"]).any()
    assert png.stat().st_size > 10_000


def test_observed_margins_reproduce_the_county_totals(fitted):
    folder, _ = fitted
    csv = folder / "observed.csv"
    _ok(["flows", "predict", "--model", str(folder / "model"), "--commuting-od", TEST,
         "--out", str(csv), "--margins", "observed"])  # fmt: skip
    od = np.load(samples.commuting_od("36093") / "od.npy")
    assert pd.read_csv(csv)["flow"].sum() == pytest.approx(od.sum(), rel=1e-3)


def test_evaluate_writes_metrics_bands_and_plots(fitted):
    folder, _ = fitted
    report = folder / "report"
    out = _ok(["flows", "evaluate", "--model", str(folder / "model"), "--commuting-od", TEST,
               TRAIN[0], "--out", str(report)])  # fmt: skip
    metrics = pd.read_csv(report / "metrics.csv", dtype={"city": str})
    assert metrics["city"].tolist() == ["36093", "26021", "mean"]
    assert metrics["cpc"].between(0, 1).all() and "cpc" in out
    bands = pd.read_csv(report / "cpc_by_distance.csv")
    assert {"band", "pairs", "cpc", "city"} <= set(bands.columns)
    assert (report / "36093_evaluation.png").exists() and (report / "36093_map.png").exists()


def test_generic_regions_and_embeddings_path(tmp_path):
    world = SyntheticWorld(256, 256, seed=2, n_districts=8)
    districts = world.districts()
    regions = gpd.GeoDataFrame(  # the id column may have any name (--id-column)
        {"tract": districts["district"].astype(str)}, geometry=districts.geometry, crs=districts.crs
    )
    regions.to_file(tmp_path / "regions.gpkg")
    scene = world.write_scene(tmp_path / "scene.tif")
    out = _ok(["flows", "embed", "--regions", str(tmp_path / "regions.gpkg"), "--id-column",
               "tract", "--scene", str(scene),
               "--encoder", "simclr_resnet18half_eurosat_ms", "--chip", "16",
               "--out", str(tmp_path / "emb.parquet")])  # fmt: skip
    emb = pd.read_parquet(tmp_path / "emb.parquet")
    assert "8 regions" in out and emb["id"].tolist() == regions["tract"].tolist()
    d = (emb.shape[1] - 2) // 2
    assert list(emb.columns[:3]) == ["id", "n_tiles", "e000"] and f"e{2 * d - 1:03d}" in emb
    flows, _ = world.flows()
    flows[["origin", "destination", "flow"]].to_csv(tmp_path / "flows.csv", index=False)
    _ok(["flows", "fit", "--regions", str(tmp_path / "regions.gpkg"), "--id-column", "tract",
         "--flows",
         str(tmp_path / "flows.csv"), "--embeddings", str(tmp_path / "emb.parquet"),
         "--method", "gnn", "--epochs", "2", "--out", str(tmp_path / "gnn")])  # fmt: skip
    _ok(["flows", "predict", "--model", str(tmp_path / "gnn"), "--regions",
         str(tmp_path / "regions.gpkg"), "--id-column", "tract", "--embeddings", str(tmp_path / "emb.parquet"),
         "--out", str(tmp_path / "pred.csv")])  # fmt: skip
    assert len(pd.read_csv(tmp_path / "pred.csv")) > 0


def test_auto_holds_out_whole_counties_and_keeps_the_best(tmp_path):
    counties = [*TRAIN, TEST]
    out = _ok(["flows", "fit", "--commuting-od", *counties, "--method", "auto",
               "--out", str(tmp_path / "auto")])  # fmt: skip
    assert "candidates by 3-fold cross-validation on the data given:" in out
    table = pd.read_csv(tmp_path / "auto" / "candidates.csv")
    assert set(table["candidate"]) == {"gravity", "radiation", "gbrt"}
    # each fold holds out one county: three fold scores per candidate, the mean theirs
    folds = table[["fold_1", "fold_2", "fold_3"]].to_numpy()
    np.testing.assert_allclose(table["mean"], folds.mean(axis=1))
    chosen = table.loc[table["chosen"], "candidate"].item()
    scores = table.set_index("candidate")["mean"]
    assert chosen == "gravity" or scores[chosen] > scores["gravity"]
    assert f"fitted {chosen}" in out or (chosen == "gravity" and "fitted gravity-" in out)
