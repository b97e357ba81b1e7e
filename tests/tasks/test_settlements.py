"""Settlement mapping (Tingzon et al. 2020): features, sampling, metrics, outputs, bad input.

End-to-end checks run on the synthetic world, where settlements appear between periods with a known
truth; real-data checks (Berlin, OSM residential) are in bench/settlements.py and the demo.
"""

import json
import logging
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import box

from humanscape.data.synthetic import SyntheticWorld
from humanscape.errors import EmptyInputError, HumanscapeError, NoOverlapError
from humanscape.evaluate.ranking import precision_recall_at_top, settlement_scores
from humanscape.geo.composite import CloudMask, parse_periods
from humanscape.geo.raster import open_scene, write_raster
from humanscape.tasks.settlements.evaluate import cross_validate, make_folds, write_report
from humanscape.tasks.settlements.features import read_feature_names, settlement_features
from humanscape.tasks.settlements.model import SettlementClassifier
from humanscape.tasks.settlements.predict import (
    candidate_polygons,
    predict_probability,
    ranked_grid,
)
from humanscape.tasks.settlements.sampling import LabelSpec, label_rasters, sample_pixels

PERIODS = "2015-2016,2017-2018,2019-2020"


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(240, 240, seed=11, settlements_per_km2=4.0)


@pytest.fixture(scope="module")
def stack(world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("settlements")
    scenes = []
    for p, day in enumerate(["20160601", "20180601", "20200601"]):
        path = world.write_scene(folder / f"synthetic_{day}.tif", period=p)
        scenes.append(open_scene(path))
    return settlement_features(
        scenes, folder / "features.tif", periods=parse_periods(PERIODS), progress=False
    )


def test_feature_stack_has_66_named_features_in_period_order(stack, world):
    names = read_feature_names(stack)
    assert len(names) == 66
    assert names[:3] == ["2015-2016_B01", "2015-2016_B02", "2015-2016_B03"]
    assert (
        names[11] == "2015-2016_B12" and "2015-2016_B10" not in names
    )  # cirrus left out, B8A kept
    assert names[12:22] == [
        f"2015-2016_{i}"
        for i in ("NDVI", "SAVI", "MNDWI", "NDBI", "UI", "NBI", "BRBA", "NBAI", "MBI", "BAEI")
    ]
    assert names[22] == "2017-2018_B01" and names[-1] == "2019-2020_BAEI"
    with rasterio.open(stack) as src:
        assert src.crs == world.grid.crs and src.tags()["periods"] == PERIODS
        red, nir, ndvi = (
            src.read(names.index(f"2019-2020_{b}") + 1) for b in ("B04", "B08", "NDVI")
        )
    np.testing.assert_allclose(ndvi, (nir - red) / (nir + red), rtol=1e-5, atol=1e-6)


def test_single_period_says_the_temporal_part_degenerates(world, tmp_path, caplog):
    path = world.write_scene(tmp_path / "one_20200601.tif", period=2)
    with caplog.at_level(logging.WARNING):
        out = settlement_features(
            [open_scene(path)], tmp_path / "f.tif", texture=True, progress=False
        )
    names = read_feature_names(out)
    assert len(names) == 22 + 9 and names[-1] == "2020-06-01_B11_glcm_homogeneity"
    with rasterio.open(out) as src:
        assert src.tags()["temporal"].startswith("single period")
    assert "degenerates" in caplog.text


def test_sampling_counts_balance_and_kinds(stack, world):
    truth = world.settlements()
    landuse = gpd.GeoDataFrame(
        {"use": ["formal"]}, geometry=[box(*world.grid.bounds).buffer(-900)], crs=world.grid.crs
    )
    sample = sample_pixels(
        str(stack),
        LabelSpec(truth),
        landuse=landuse,
        landuse_column="use",
        formal_values=["formal"],
        negatives_per_group=2000,
        min_blocks=5,
    )
    balance = sample.attrs["balance"].iloc[0]
    pos = sample[sample["label"] == 1]
    assert balance["positive"] == len(pos) > 0
    counts = sample[sample["label"] == 0]["kind"].value_counts()
    assert counts["formal"] == 800 and counts["unoccupied"] == 1200  # 40 / 60
    assert set(pos["settlement"].str[0]) == {"p"} and set(
        sample.loc[sample["label"] == 0, "settlement"].str[0]
    ) == {"b"}
    # no negative pixel shares a 500 m block with a positive pixel
    block = lambda df: set(zip(df["row"] // 50, df["col"] // 50, strict=True))  # noqa: E731
    assert not block(pos) & block(sample[sample["label"] == 0])


def test_bad_labels_are_refused(stack, world):
    far = gpd.GeoDataFrame({"cls": ["a"]}, geometry=[box(0, 0, 10, 10)], crs=4326)
    with pytest.raises(NoOverlapError, match="far.gpkg: no feature overlaps"):
        sample_pixels(str(stack), LabelSpec(far, source="far.gpkg"))
    truth = world.settlements().assign(cls="informal")
    with pytest.raises(
        HumanscapeError,
        match="value\\(s\\) slum never occur in column 'cls' \\(values: informal\\)",
    ):
        sample_pixels(str(stack), LabelSpec(truth, "cls", ["slum"], "labels.gpkg"))


def test_group_layer_that_leaves_labels_unassigned(stack, world, caplog):
    truth = world.settlements()
    left, bottom, right, top = world.grid.bounds
    half = gpd.GeoDataFrame(
        {"muni": ["west"]},
        geometry=[box(left, bottom, (left + right) / 2, top)],
        crs=world.grid.crs,
    )
    with caplog.at_level(logging.WARNING):
        sample = sample_pixels(
            str(stack),
            LabelSpec(truth),
            groups=half,
            group_column="muni",
            negatives_per_group=500,
            min_blocks=2,
        )
    assert "positive pixels lie outside every group polygon and are dropped" in caplog.text
    assert set(sample["group"]) == {"west"}
    corner = box(left, bottom, left + 30, bottom + 30)
    assert not truth.intersects(corner).any()
    elsewhere = gpd.GeoDataFrame({"muni": ["x"]}, geometry=[corner], crs=world.grid.crs)
    with pytest.raises(HumanscapeError, match="no positive pixel lies inside a group polygon"):
        sample_pixels(str(stack), LabelSpec(truth), groups=elsewhere, group_column="muni")


def test_all_cloudy_period_is_refused(world, tmp_path):
    paths = [
        world.write_scene(tmp_path / f"s_{d}.tif", period=p)
        for p, d in ((0, "20160601"), (2, "20200601"))
    ]
    scenes = [open_scene(p) for p in paths]
    masks = [
        write_raster(
            tmp_path / f"m{i}.tif", np.full(s.grid.shape, i == 0, np.uint8), s.grid, units="class"
        )
        for i, s in enumerate(scenes)
    ]
    with pytest.raises(EmptyInputError, match="period 2015-2016 has no clear observation at all"):
        settlement_features(
            scenes,
            tmp_path / "f.tif",
            periods=parse_periods("2015-2016,2019-2020"),
            cloud_mask=CloudMask("raster", masks),
            progress=False,
        )
    assert not (tmp_path / "f.tif").exists()
    with pytest.raises(EmptyInputError, match="no scene in period\\(s\\) 2017-2018"):
        settlement_features(
            scenes, tmp_path / "f.tif", periods=parse_periods(PERIODS), progress=False
        )


def test_precision_recall_at_top_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    labels = [1, 0, 1, 1, 0, 0, 0, 1, 0, 0]
    curve = precision_recall_at_top(scores, labels, [10, 30, 50, 100]).set_index("percent")
    assert curve.loc[10, ["k", "precision", "recall"]].tolist() == [1, 1.0, 0.25]
    assert curve.loc[30, "precision"] == pytest.approx(2 / 3) and curve.loc[30, "recall"] == 0.5
    assert curve.loc[50, "precision"] == pytest.approx(3 / 5) and curve.loc[50, "recall"] == 0.75
    assert curve.loc[100, ["precision", "recall"]].tolist() == [0.4, 1.0]
    sett = settlement_scores(
        np.arange(20) / 20, ["a"] * 10 + ["b"] * 10, [1] * 10 + [0] * 10
    ).set_index("settlement")
    assert sett.loc["a", "score"] == pytest.approx(0.45)  # top 10 % of 10 pixels = the best one
    assert sett.loc["b", "score"] == pytest.approx(0.95) and sett.loc["b", "label"] == 0


def test_end_to_end_finds_settlements_and_flags_the_new_ones(stack, world, tmp_path):
    # trained on the northern half only (old and new settlements), judged on the southern half
    truth = world.settlements()
    sample = sample_pixels(str(stack), LabelSpec(truth), negatives_per_group=6000, min_blocks=10)
    north = sample[sample["row"] < world.height // 2 - 10]
    clf = SettlementClassifier("rf", n_estimators=40, n_jobs=1).fit(north, north["label"])
    prob = predict_probability(
        clf, stack, tmp_path / "prob.tif", change=True, block=96, progress=False
    )
    with rasterio.open(prob) as src:
        p, new = src.read(1), src.read(2)
        assert src.crs == world.grid.crs and src.descriptions == ("probability", "new_score")
    south = np.zeros(p.shape, bool)
    south[world.height // 2 :] = True
    settled = world.tile(period=2).settlement
    assert p[settled & south].mean() > 0.6 and p[~settled & south].mean() < 0.2
    first = world.tile(period=0).settlement
    new_ones, old_ones = settled & ~first & south, settled & first & south
    assert new_ones.any() and old_ones.any()
    assert new[new_ones].mean() > new[old_ones].mean() + 0.2  # new ones stand out from old ones
    grid = ranked_grid(prob, tmp_path / "ranked.gpkg")
    assert grid["rank"].tolist() == list(range(1, len(grid) + 1))
    assert (
        grid["score"].is_monotonic_decreasing
        and grid["cumulative_area_km2"].is_monotonic_increasing
    )
    polys = candidate_polygons(prob, tmp_path / "cand.gpkg", threshold=0.5, top_k=5)
    assert len(polys) <= 5 and polys["score_mean"].is_monotonic_decreasing
    for path in ("ranked.gpkg", "cand.gpkg"):
        assert gpd.read_file(tmp_path / path).crs == world.grid.crs


def test_ranked_grid_orders_cells_by_mean_of_top_pixels(tmp_path, world):
    grid = world.grid.window_grid(rasterio.windows.Window(0, 0, 100, 50))
    prob = np.zeros((50, 100), np.float32)
    prob[:, 50:] = 0.2
    prob[0:5, 50:60] = 0.9  # 50 of 2500 pixels very high: the top 10 % (250) averages 0.34
    path = write_raster(tmp_path / "p.tif", prob, grid, units="probability")
    ranked = ranked_grid(path, cell=500)
    assert len(ranked) == 2 and ranked.iloc[0]["score"] == pytest.approx(
        (50 * 0.9 + 200 * 0.2) / 250
    )
    assert ranked.iloc[0].geometry.bounds[0] == grid.bounds[0] + 500


def test_group_cv_never_mixes_groups_and_writes_report(stack, world, tmp_path):
    truth = world.settlements()
    left, bottom, right, top = world.grid.bounds
    mid = (left + right) / 2
    munis = gpd.GeoDataFrame(
        {"muni": ["w", "e"]},
        geometry=[box(left, bottom, mid, top), box(mid, bottom, right, top)],
        crs=world.grid.crs,
    )
    sample = sample_pixels(
        str(stack),
        LabelSpec(truth),
        groups=munis,
        group_column="muni",
        negatives_per_group=1500,
        min_blocks=3,
    )
    rasters = label_rasters(stack, LabelSpec(truth), groups=munis, group_column="muni")
    folds = make_folds(rasters, buffer=0)
    assert folds.names == ["group=w", "group=e"]
    result = cross_validate(stack, sample, SettlementClassifier("lr"), rasters, folds)
    for fold, part in result.predictions.groupby("fold"):
        assert part["group"].nunique() == 1 and fold == f"group={part['group'].iloc[0]}"
    paths = write_report([result], tmp_path / "report")
    table = pd.read_csv(paths["table"])
    assert (
        set(table["fold"]) == {"group=e", "group=w", "pooled"}
        and table["pr_auc_pixel"].between(0, 1).all()
    )
    assert (tmp_path / "report" / "curves_pooled.png").stat().st_size > 1000


def test_cli_chain_features_fit_predict_evaluate(world, tmp_path):
    from click.testing import CliRunner

    from humanscape.cli import cli

    scenes = [
        str(world.write_scene(tmp_path / f"s_{d}.tif", period=p))
        for p, d in ((0, "20160601"), (2, "20200601"))
    ]
    world.settlements().to_file(tmp_path / "labels.gpkg")
    runner = CliRunner()

    def ok(*args):
        result = runner.invoke(cli, ["settlements", *map(str, args)])
        assert result.exit_code == 0, result.output
        return result.output

    ok(
        "features", *scenes, "--periods", "2015-2016,2019-2020", "--texture", "--out",
        tmp_path / "f.tif",
    )  # fmt: skip
    ok(
        "fit",
        tmp_path / "f.tif",
        "--labels",
        tmp_path / "labels.gpkg",
        "--out",
        tmp_path / "run",
        "--method",
        "rf",
        "--n-estimators",
        20,
        "--negatives",
        3000,
    )
    assert (tmp_path / "run" / "class_balance.csv").exists()
    out = ok(
        "predict",
        tmp_path / "f.tif",
        "--model",
        tmp_path / "run",
        "--out",
        tmp_path / "p.tif",
        "--grid-out",
        tmp_path / "g.gpkg",
        "--polygons-out",
        tmp_path / "c.gpkg",
        "--top-k",
        3,
    )
    assert "cells ranked" in out and gpd.read_file(tmp_path / "c.gpkg").shape[0] <= 3
    # the fused path: the same map from the period scenes, features computed tile by tile on two
    # Dask workers (texture halo included), never written
    ok(
        "predict", *scenes, "--model", tmp_path / "run", "--out", tmp_path / "fused.tif",
        "--workers", 2, "--tile", 64,
    )  # fmt: skip
    with rasterio.open(tmp_path / "p.tif") as a, rasterio.open(tmp_path / "fused.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["kind"] == "humanscape.settlements"
    assert config["info"]["periods"] == ["2015-2016", "2019-2020"]
    assert config["info"]["texture_window"] == 7
    ok(
        "evaluate",
        tmp_path / "f.tif",
        "--labels",
        tmp_path / "labels.gpkg",
        "--out",
        tmp_path / "rep",
        "--methods",
        "lr",
        "--negatives",
        3000,
        "--block-km",
        1,
    )
    assert pd.read_csv(tmp_path / "rep" / "table.csv")["model"].eq("lr").all()
    bad = runner.invoke(
        cli,
        [
            "settlements",
            "fit",
            str(tmp_path / "f.tif"),
            "--labels",
            str(tmp_path / "labels.gpkg"),
            "--label-column",
            "new",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "--label-column needs --positive" in bad.output


def test_landsat_band_set_and_real_fmask_composites(tmp_path, caplog):
    from humanscape.data import samples

    series = samples.landsat_timeseries()
    with caplog.at_level(logging.WARNING):
        out = settlement_features(
            series,
            tmp_path / "f.tif",
            periods=parse_periods("2008-2009,2010-2011"),
            cloud_mask=CloudMask("fmask"),
            progress=False,
        )
    names = read_feature_names(out)
    assert names[:3] == ["2008-2009_B3", "2008-2009_B4", "2008-2009_B5"]
    assert (
        "2010-2011_NDVI" in names and "2010-2011_NDBI" in names and "2010-2011_MNDWI" not in names
    )
    assert "left out" in caplog.text  # indices needing green / swir2 are reported missing
    with rasterio.open(out) as src:
        ndvi = src.read(names.index("2010-2011_NDVI") + 1)
        assert src.crs == series[0].crs and src.res == (30.0, 30.0)
    assert np.isfinite(ndvi).mean() > 0.9 and -1 <= np.nanmin(ndvi) and np.nanmax(ndvi) <= 1


def test_composites_can_be_given_directly(world, tmp_path):
    from humanscape.geo.composite import composite
    from humanscape.tasks.settlements.features import stack_features

    scenes = [
        open_scene(world.write_scene(tmp_path / f"s{p}_2020010{p + 1}.tif", period=p))
        for p in range(2)
    ]
    comp = composite(scenes, tmp_path / "c.tif", progress=False)
    reopened = open_scene(comp)
    assert "valid_count" not in reopened.band_names and reopened.band_names[0] == "B01"
    out = stack_features([reopened], ["2020"], tmp_path / "f.tif", progress=False)
    assert len(read_feature_names(out)) == 22


def test_point_labels_in_another_crs_give_one_pixel_each(stack, world):
    points = world.settlements().copy()
    points["geometry"] = points.geometry.centroid
    points = points.to_crs(4326)  # labels in any CRS are reprojected
    sample = sample_pixels(str(stack), LabelSpec(points), negatives_per_group=500, min_blocks=2)
    assert (sample["label"] == 1).sum() == len(points)


# --- labels a user has, estimator contract, persistence, honest evaluation -------------------


def _classes(world, n_neg: int = 6):
    """Settlement polygons (class 'settlement') plus square negatives of two other classes."""
    truth = world.settlements()[["geometry"]].assign(cls="settlement")
    left, bottom, right, top = world.grid.bounds
    boxes, names = [], []
    rng = np.random.default_rng(0)
    while len(boxes) < n_neg:
        x, y = rng.uniform(left, right - 200), rng.uniform(bottom, top - 200)
        b = box(x, y, x + 200, y + 200)
        if not truth.intersects(b).any() and not any(b.intersects(o) for o in boxes):
            boxes.append(b)
            names.append("forest" if len(boxes) % 2 else "farm")
    others = gpd.GeoDataFrame({"cls": names}, geometry=boxes, crs=world.grid.crs)
    return gpd.GeoDataFrame(pd.concat([truth, others], ignore_index=True), crs=world.grid.crs)


def test_labelled_negatives_are_sampled_from_their_features(stack, world):
    labels = _classes(world)
    spec = LabelSpec(labels, "cls", ["settlement"], "labels.gpkg")
    sample = sample_pixels(str(stack), spec, negatives_per_group=500, min_blocks=2)
    labelled = sample[sample["kind"] == "labelled"]
    assert len(labelled) > 0 and (labelled["label"] == 0).all()
    assert labelled["settlement"].str.startswith("n").all()
    points = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(labelled["x"], labelled["y"]), crs=world.grid.crs
    )
    inside = points.within(labels[labels["cls"] != "settlement"].union_all())
    assert inside.all()
    assert sample.attrs["balance"].iloc[0]["negative_labelled"] == len(labelled)
    capped = sample_pixels(
        str(stack), spec, negatives_per_group=500, labelled_per_group=50, min_blocks=2
    )
    assert (capped["kind"] == "labelled").sum() == 50
    only_farm = LabelSpec(labels, "cls", ["settlement"], "labels.gpkg", negative=["farm"])
    farm = sample_pixels(str(stack), only_farm, negatives_per_group=500, min_blocks=2)
    forest = labels[labels["cls"] == "forest"].union_all()
    xy = gpd.points_from_xy(farm["x"], farm["y"], crs=world.grid.crs)
    assert not xy.within(
        forest
    ).any()  # the ignored class is neither trained on nor drawn at random


def test_complement_weight_by_hand():
    X = pd.DataFrame(
        {"f": np.arange(50.0), "kind": ["labelled"] * 10 + ["unoccupied"] * 30 + ["positive"] * 10}
    )
    w = SettlementClassifier(complement_weight=0.25).sample_weights(X)
    assert w[:10].tolist() == [1.0] * 10 and w[40:].tolist() == [1.0] * 10
    np.testing.assert_allclose(w[10:40], 0.25 * 10 / 30)  # total: a quarter of the labelled weight
    assert SettlementClassifier().sample_weights(X[X["kind"] != "labelled"]) is None


def test_settlement_classifier_is_a_scikit_learn_estimator():
    from sklearn.base import clone

    clf = SettlementClassifier("lr", C=0.5, features=["a", "b"])
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and copy is not clf
    X = pd.DataFrame({"a": np.r_[np.zeros(20), np.ones(20)], "b": np.arange(40.0)})
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    fitted = copy.fit(X, y)
    assert fitted is copy and fitted.predict_proba(X).shape == (40, 2)
    assert (fitted.predict(X) == y).mean() > 0.9 and fitted.score(X, y) > 0.9
    with pytest.raises(HumanscapeError, match="unknown settlement method 'knn'"):
        SettlementClassifier("knn").fit(X, y)


def test_svm_is_calibrated_on_spatial_folds():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {"f": rng.normal(size=400), "x": rng.uniform(0, 8000, 400), "y": rng.uniform(0, 8000, 400)}
    )
    y = (X["f"] + rng.normal(0, 0.5, 400) > 0).astype(int).to_numpy()
    clf = SettlementClassifier("svm", features=["f"], calibration_block=2000)
    folds = clf._calibration_cv(X, y)
    block = np.floor(X[["x", "y"]].to_numpy() / 2000)
    for train, test in folds:  # no 2 km block has calibration pixels on both sides
        assert not {tuple(b) for b in block[train]} & {tuple(b) for b in block[test]}
    p = clf.fit(X, y).predict_proba(X)[:, 1]
    assert 0 < p.min() < 0.2 and 0.8 < p.max() < 1


def test_model_folder_is_skops_and_loads_only_trusted_types(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 5})
    y = (X["a"] > 20).astype(int)
    for model in ("lr", "svm", "rf"):
        clf = SettlementClassifier(model, n_estimators=5).fit(X, y)
        folder = clf.save(tmp_path / model)
        assert sorted(p.name for p in folder.iterdir()) == [
            ".humanscape.json",
            "config.json",
            "model.skops",
        ]
        back = SettlementClassifier.load(folder)
        np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    # a model file naming a function (code) is refused
    evil = make_pipeline(FunctionTransformer(os.system))
    sio.dump(evil, tmp_path / "rf" / "model.skops")
    with pytest.raises(HumanscapeError, match="not trusted: .*system"):
        SettlementClassifier.load(tmp_path / "rf")
    # a folder without its model file is refused by name
    (tmp_path / "rf" / "model.skops").unlink()
    with pytest.raises(HumanscapeError, match="model file missing"):
        SettlementClassifier.load(tmp_path / "rf")


def test_cv_scores_held_out_blocks_at_their_true_class_balance(stack, world):
    truth = world.settlements()
    spec = LabelSpec(truth)
    rasters = label_rasters(stack, spec)
    sample = sample_pixels(
        str(stack), spec, negatives_per_group=3000, min_blocks=5, rasters=rasters
    )
    assert 0.2 < sample["label"].mean() < 0.8  # the training sample is roughly balanced
    folds = make_folds(rasters, block_size=800, n_folds=3, buffer=100)
    result = cross_validate(stack, sample, SettlementClassifier("lr"), rasters, folds)
    pred = result.predictions
    # by hand: every valid pixel of the world is held out exactly once, with its true label
    assert len(pred) == int(rasters.valid.sum())
    assert pred["label"].mean() == pytest.approx((rasters.positive > 0)[rasters.valid].mean())
    table = result.table().set_index("fold")
    assert table.loc["pooled", "prevalence"] < 0.5 * sample["label"].mean()
    assert 0 < table.loc["pooled", "pr_auc_pixel"] <= 1


def test_point_labels_are_evaluated_on_the_labelled_points(stack, world):
    labels = _classes(world, n_neg=10)
    pts = labels.copy()
    pts["geometry"] = labels.geometry.representative_point()
    spec = LabelSpec(pts, "cls", ["settlement"], "points.gpkg")
    rasters = label_rasters(stack, spec)
    sample = sample_pixels(
        str(stack), spec, negatives_per_group=2000, min_blocks=5, rasters=rasters
    )
    folds = make_folds(rasters, block_size=800, n_folds=3, buffer=0)
    result = cross_validate(stack, sample, SettlementClassifier("lr"), rasters, folds, points=True)
    assert len(result.predictions) == len(pts)  # each labelled point, once
    assert result.predictions["label"].sum() == (pts["cls"] == "settlement").sum()


def test_model_and_complement_weight_are_chosen_by_spatial_cv(stack, world):
    from humanscape.tasks.settlements.model import select_model

    labels = _classes(world)
    spec = LabelSpec(labels, "cls", ["settlement"], "labels.gpkg")
    rasters = label_rasters(stack, spec)
    sample = sample_pixels(
        str(stack), spec, negatives_per_group=1500, min_blocks=3, rasters=rasters
    )
    folds = make_folds(rasters, block_size=800, n_folds=3, buffer=0)
    base = SettlementClassifier(n_estimators=10, n_jobs=1)
    best, table = select_model(
        sample, folds.splits(sample["x"].to_numpy(), sample["y"].to_numpy()), base=base
    )
    assert len(table) == 4 * 3  # lr, svm, rf, hgb x complement weight 0, 0.25, 1
    top = table.iloc[0]
    assert best.method == top["method"] and best.complement_weight == top["complement_weight"]
    assert table["mean_test_score"].iloc[0] == table["mean_test_score"].max()


def test_quantile_codes_by_hand_and_the_booster_splits_as_on_raw_features():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from humanscape.tasks.settlements.model import QuantileCodes

    # few distinct values: cuts at the midpoints 1.5, 2.5, 3.5; NaN stays missing
    codes = QuantileCodes().fit(np.array([[1.0], [2.0], [3.0], [4.0]]))
    np.testing.assert_allclose(codes.thresholds_[0], [1.5, 2.5, 3.5])
    out = codes.transform(np.array([[1.0], [2.0], [2.2], [4.0], [np.nan]]))[:, 0]
    np.testing.assert_array_equal(out[:4], [0, 1, 1, 3])
    assert np.isnan(out[4])
    # many distinct values: the booster on the codes predicts as the booster on the raw values
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) ** 2 > 0.4).astype(int)
    params = {"max_iter": 30, "max_bins": 32, "random_state": 0, "early_stopping": False}
    raw = HistGradientBoostingClassifier(**params).fit(X, y)
    q = QuantileCodes(max_bins=32).fit(X)
    coded = HistGradientBoostingClassifier(**params).fit(q.transform(X), y)
    test = rng.normal(size=(1000, 3))
    np.testing.assert_allclose(
        coded.predict_proba(q.transform(test)), raw.predict_proba(test), atol=1e-9
    )
