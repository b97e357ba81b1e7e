"""Population per grid cell (Huang et al. 2021): model, training, maps, census consistency."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import box
from torch.utils.data import TensorDataset

from humanscape.data import samples
from humanscape.data.chips import chip_scene
from humanscape.data.chiptable import read_chip
from humanscape.data.harmonise import QuantileMatch
from humanscape.errors import HumanscapeError
from humanscape.geo.grid import CellGrid, regular_grid
from humanscape.geo.raster import GridSpec, open_scene, write_raster
from humanscape.models.backbones import Backbone
from humanscape.models.heads import RegressionNet, log_cosh_loss
from humanscape.models.training import fit_module
from humanscape.tasks.population.chips import chip_locations, load_chips
from humanscape.tasks.population.evaluate import metrics_table
from humanscape.tasks.population.features import band_statistics
from humanscape.tasks.population.mapping import (
    PopulationMap,
    census_consistent,
    predict_map,
    reference_grid,
    write_map,
)
from humanscape.tasks.population.model import PopulationModel
from humanscape.tasks.population.network import (
    PopulationRegressor,
    from_target,
    spatial_validation,
    to_target,
)

RGBN = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def real_chips():
    """40 real EuroSAT chips (4 per class) with their census population, R, G, B, NIR."""
    table = samples.eurosat_ms().groupby("class").head(4).reset_index(drop=True)
    images = samples.read_eurosat_ms(table, RGBN)
    return images, table["pop_1km"].to_numpy(float), table


# --- formulas ------------------------------------------------------------------------------------


def test_log_cosh_loss_matches_hand_values():
    d = torch.tensor([0.0, 1.0, -2.0, 30.0])
    # log cosh 1 = log((e + 1/e) / 2) = 0.433781; log cosh 2 = 1.325028; log cosh 30 = 30 - log 2
    expected = [0.0, 0.4337808, 1.3250027, 30 - math.log(2)]
    for di, e in zip(d, expected, strict=True):
        got = log_cosh_loss(di.reshape(1), torch.zeros(1))
        assert float(got) == pytest.approx(e, abs=1e-5)
    assert float(log_cosh_loss(d, torch.zeros(4))) == pytest.approx(np.mean(expected), abs=1e-5)
    with pytest.raises(HumanscapeError):
        log_cosh_loss(torch.zeros(3), torch.zeros(2))


def test_targets_follow_the_paper_and_map_back_to_people():
    p = np.array([0.0, 1.0, 9.0, 99.0])
    np.testing.assert_allclose(to_target(p, "log"), [0.0, 0.0, math.log(9), math.log(99)])
    np.testing.assert_allclose(
        to_target(p, "log1p"), [0.0, math.log(2), math.log(10), math.log(100)]
    )
    np.testing.assert_allclose(from_target(to_target(p, "log1p"), "log1p"), p, atol=1e-9)
    assert from_target(np.array([-3.0]), "log1p")[0] == 0.0  # never negative people


def test_band_statistics_by_hand():
    img = np.zeros((1, 3, 2, 2), np.float32)
    img[0, 0] = [[0.1, 0.1], [0.1, 0.1]]  # B04 red
    img[0, 1] = [[0.3, 0.3], [0.5, 0.5]]  # B08 nir
    img[0, 2] = [[0.3, 0.3], [0.3, np.nan]]  # B11 swir1, one nodata pixel
    f = band_statistics(img, ["B04", "B08", "B11"])
    assert f.shape == (1, 3 + 3 + 2 + 2)
    np.testing.assert_allclose(f[0, :3], [0.1, 0.4, 0.3], atol=1e-6)  # means (NaN ignored)
    np.testing.assert_allclose(f[0, 3:6], [0.0, 0.1, 0.0], atol=1e-6)  # stds
    ndvi = np.array([0.2 / 0.4, 0.2 / 0.4, 0.4 / 0.6, 0.4 / 0.6])
    assert f[0, 6] == pytest.approx(ndvi.mean(), abs=1e-6)
    assert f[0, 7] == pytest.approx(ndvi.std(), abs=1e-6)
    ndbi = np.array([0.0, 0.0, -0.2 / 0.8])  # (swir - nir) / (swir + nir), nodata pixel left out
    assert f[0, 8] == pytest.approx(ndbi.mean(), abs=1e-6)


def test_metrics_table_has_the_papers_scales_and_coverage():
    obs = np.array([0.0, 10.0, 100.0, 1000.0])
    pred = np.array([1.0, 10.0, 50.0, 2000.0])
    t = metrics_table(obs, pred, pred / 2, pred * 2).set_index("scale")
    assert list(t.index) == ["log", "log1p", "count"]
    # count MAE by hand: (1 + 0 + 50 + 1000) / 4
    assert t.loc["count", "mae"] == pytest.approx(262.75)
    # coverage: 0 in [0.5, 2]? no; 10 in [5, 20] yes; 100 in [25, 100] yes; 1000 in [1000, 4000] yes
    assert t.loc["count", "coverage"] == pytest.approx(0.75)


# --- neighbourhoods ------------------------------------------------------------------------------


def test_nbr3_chip_holds_the_exact_pixels_of_the_3x3_block(tmp_path):
    """A 6 x 6 px raster, 2 px cells: nbr(3) of cell (1, 1) is pixels 0..5; of (0, 0) padded."""
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 6, 6)
    values = (np.arange(36, dtype=np.float32).reshape(6, 6) / 100)[None]
    path = write_raster(tmp_path / "r.tif", values, grid, units="reflectance", band_names=["B04"])
    scene = open_scene(path)
    cells = regular_grid(scene.grid, 20)
    table = chip_scene(scene, cells, tmp_path / "n3", neighbors=3, progress=False)
    centre = table.set_index("cell_id").loc[cells.cell_id(1, 1), "image"]
    np.testing.assert_allclose(read_chip(tmp_path / "n3" / centre).data[0], values[0])
    corner = read_chip(tmp_path / "n3" / table.set_index("cell_id").loc[0, "image"]).data[0]
    assert np.isnan(corner[:2]).all() and np.isnan(corner[:, :2]).all()
    np.testing.assert_allclose(corner[2:, 2:], values[0, :4, :4])
    # the network resizes every nbr(n) chip to one fixed size (256 in the paper)
    net = RegressionNet(Backbone("resnet18", 1), input_size=32)
    seen = []
    net.backbone.register_forward_pre_hook(lambda _m, a: seen.append(a[0].shape))
    net.eval()(torch.zeros(1, 1, 6, 6))
    assert tuple(seen[0]) == (1, 1, 32, 32)


# --- architectures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    # vgg16_bn (134 M parameters: 10 s for two Adam steps) builds and runs in test_backbones.py
    "arch",
    ["resnet18", "resnet50", "xception", "densenet121", "shipped"],
)
def test_each_architecture_trains_two_steps_on_real_chips(arch, real_chips):
    images, pop, _ = real_chips
    if arch == "shipped":
        arch = "simclr_resnet18half_eurosat_ms"
        table = samples.eurosat_ms().groupby("class").head(4).reset_index(drop=True)
        images = samples.read_eurosat_ms(table)  # 13 bands, EuroSAT order
        from humanscape.models.registry import load_encoder

        bands = load_encoder(arch).bands
        images = samples.read_eurosat_ms(table, bands)
    else:
        bands = RGBN
    x = torch.from_numpy(np.ascontiguousarray(images[:4, :, :32, :32]))
    y = torch.from_numpy(np.log1p(pop[:4]).astype(np.float32))
    from humanscape.tasks.population.network import build_net

    torch.manual_seed(0)
    net, mean, std = build_net(arch, bands, input_size=None, dropout=0.5)
    mean = mean or x.mean(dim=(0, 2, 3)).tolist()
    std = std or x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module = PopulationRegressor(net, mean, std, lr=1e-3)
    fit_module(module, TensorDataset(x, y), epochs=1, batch_size=2, progress=False)
    assert module.trainer.global_step == 2
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("head") for k in changed) and any(
        k.startswith("backbone") for k in changed
    )
    out = module.eval()(x)
    assert out.shape == (4,) and torch.isfinite(out).all()


# --- the estimator -------------------------------------------------------------------------------


def test_spatial_validation_never_splits_a_block_or_group():
    xy = np.array([[0, 0], [10, 10], [60_000, 0], [60_010, 5], [120_000, 0], [180_000, 0]], float)
    split = spatial_validation(xy, None, fraction=0.5, block_m=50_000)
    blocks = {tuple(b) for b in np.floor(xy / 50_000).astype(int)[split.test]}
    train_blocks = {tuple(b) for b in np.floor(xy / 50_000).astype(int)[split.train]}
    assert blocks and train_blocks and not blocks & train_blocks
    groups = np.array(["a", "a", "b", "b", "c", "c"])
    g = spatial_validation(None, groups, fraction=0.5)
    assert not set(groups[g.test]) & set(groups[g.train])
    with pytest.raises(HumanscapeError, match="one group"):
        spatial_validation(None, np.array(["a"] * 4))


def test_features_model_learns_population_and_reloads_identically(tmp_path, real_chips):
    images, pop, table = real_chips
    model = PopulationModel(
        method="features",
        bands=RGBN,
        feature_bands=None,  # the head on the same 4 bands
        features=["stats", "mosaiks"],
        mosaiks_filters=32,
        bias_correction=True,
    )
    model.fit(images, pop, locations=chip_locations(table), progress=False)
    pred, lower, upper = model.predict_interval(images)
    assert (pred >= 0).all() and (lower <= pred + 1e-9).all() and (upper >= pred - 1e-9).all()
    # better than a constant on the chips it was fitted on (a sanity floor, not a benchmark)
    assert np.corrcoef(np.log1p(pop), np.log1p(pred))[0, 1] > 0.5
    model.save(tmp_path / "m")
    again = PopulationModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_interval(images), (pred, lower, upper), rtol=1e-6)
    assert again.chip_shape_ == (64, 64)


def test_cnn_model_early_stops_and_reloads_identically(tmp_path, real_chips):
    images, pop, table = real_chips
    model = PopulationModel(
        method="ensemble",
        arch="resnet18",
        bands=RGBN,
        feature_bands=["B04", "B08"],  # a subset: the model reads the union of its members' bands
        features=["stats"],
        epochs=3,
        patience=1,
        batch_size=8,
        cnn_seeds=2,
        radiometric_jitter=True,  # the haze / brightness / gain path of training runs too
    )
    model.fit(images[:, :, :32, :32], pop, locations=chip_locations(table), progress=False)
    pred = model.predict(images[:, :, :32, :32])
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "cnn.safetensors").exists() and (
        tmp_path / "m" / "head.skops"
    ).exists()
    again = PopulationModel.load(tmp_path / "m")
    assert len(again.nets_) == 2 and len(model.epochs_run_) == 2
    np.testing.assert_allclose(again.predict(images[:, :, :32, :32]), pred, rtol=1e-5)
    # the two seeds give two different networks, both used
    single = again.raw_log_predict(images[:, :, :32, :32])
    again.nets_ = again.nets_[:1]
    assert not np.allclose(again.raw_log_predict(images[:, :, :32, :32]), single)


def test_a_corrupt_model_file_is_refused_by_name(tmp_path, real_chips):
    images, pop, table = real_chips
    model = PopulationModel(method="features", bands=RGBN, feature_bands=None, features=["stats"])
    model.fit(images, pop, locations=chip_locations(table), progress=False).save(tmp_path / "m")
    (tmp_path / "m" / "head.skops").write_bytes(b"not a zip")
    with pytest.raises(HumanscapeError, match="head.skops"):
        PopulationModel.load(tmp_path / "m")
    with pytest.raises(HumanscapeError, match="no config.json"):
        PopulationModel.load(tmp_path)


def test_load_chips_refuses_what_the_model_cannot_use(tmp_path):
    table = samples.eurosat_ms().head(3)[["image", "pop_1km"]]
    table.to_csv(tmp_path / "ok.csv", index=False)
    chips = load_chips(tmp_path / "ok.csv", ["red", "nir"], target="pop_1km", progress=False)
    assert chips.bands == ["B04", "B08"] and chips.images.shape == (3, 2, 64, 64)
    table.assign(pop_1km=[1.0, -2.0, 3.0]).to_csv(tmp_path / "neg.csv", index=False)
    with pytest.raises(HumanscapeError, match="row 3"):
        load_chips(tmp_path / "neg.csv", RGBN, target="pop_1km", progress=False)
    with pytest.raises(HumanscapeError, match="no column 'people'"):
        load_chips(tmp_path / "ok.csv", RGBN, target="people", progress=False)
    with pytest.raises(HumanscapeError, match="no band B99"):
        load_chips(tmp_path / "ok.csv", ["B99"], target="pop_1km", progress=False)


# --- maps ----------------------------------------------------------------------------------------


class _Constant(PopulationModel):
    """A fitted stand-in predicting the chip's mean B04 reflectance x 1000 people."""

    def __init__(self) -> None:
        super().__init__(method="features", bands=["B04"], feature_bands=None, features=["stats"])
        from humanscape.evaluate.uncertainty import SplitConformal

        self.conformal_ = SplitConformal(0.1)
        self.conformal_.quantile_ = 0.5
        self.chip_shape_ = (4, 4)

    def raw_log_predict(self, images: np.ndarray) -> np.ndarray:
        return np.log1p(np.nanmean(images[:, 0], axis=(1, 2)) * 1000)


def _scene(tmp_path, values):
    grid = GridSpec(
        CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800080), *values.shape[::-1]
    )
    return open_scene(
        write_raster(
            tmp_path / "s.tif", values[None], grid, units="reflectance", band_names=["B04"]
        )
    )


def test_map_is_on_the_requested_grid_and_reads_a_centred_chip(tmp_path):
    values = np.zeros((8, 12), np.float32)  # 80 m x 120 m scene at 10 m
    values[:4, :4] = 0.1  # cell (0, 0) of a 40 m grid
    scene = _scene(tmp_path, values)
    ref_grid = GridSpec(CRS.from_epsg(32633), Affine(40, 0, 500000, 0, -40, 5800080), 3, 2)
    write_raster(tmp_path / "ref.tif", np.zeros((1, 2, 3), np.float32), ref_grid, units="count")
    cells = reference_grid(tmp_path / "ref.tif")
    assert cells.cell_px == 4 and (cells.n_rows, cells.n_cols) == (2, 3)
    result = predict_map(_Constant(), scene, cells, (4, 4), progress=False)
    np.testing.assert_allclose(result.population, [[100, 0, 0], [0, 0, 0]], atol=1e-4)
    write_map(result, tmp_path / "pop.tif")
    with rasterio.open(tmp_path / "pop.tif") as src:
        assert src.transform == ref_grid.transform and src.crs == ref_grid.crs
        assert src.descriptions == ("population", "lower", "upper")
        assert src.units == ("count", "count", "count")
        lower, upper = src.read(2)[0, 0], src.read(3)[0, 0]
    assert lower == pytest.approx(np.expm1(np.log1p(100) - 0.5), rel=1e-5)
    assert upper == pytest.approx(np.expm1(np.log1p(100) + 0.5), rel=1e-5)


def test_map_of_a_harmonised_scene(tmp_path):
    values = np.zeros((8, 12), np.float32)
    values[:4, :4] = 0.1
    scene = _scene(tmp_path, values)
    cells = CellGrid(scene.grid, 4)
    # a scene twice as bright as the training chips: matching halves it back (0.1 -> 0.05)
    levels = np.linspace(0, 0.2, 101)[None]
    halve = QuantileMatch(source=levels, target=levels / 2)
    result = predict_map(_Constant(), scene, cells, (4, 4), progress=False, harmonise=halve)
    assert result.population[0, 0] == pytest.approx(50, rel=1e-4)
    assert result.upper[0, 0] == pytest.approx(np.expm1(np.log1p(50) + 0.5), rel=1e-4)


def test_the_model_keeps_its_training_band_quantiles(tmp_path, real_chips):
    images, pop, table = real_chips
    model = PopulationModel(method="features", bands=RGBN, feature_bands=None, features=["stats"])
    model.fit(images, pop, locations=chip_locations(table), progress=False)
    assert model.band_quantiles_.shape == (4, 101)
    train = images[model_train_rows(model, table)][:, 2]  # B04 of the training chips
    assert model.band_quantiles_[2, 50] == pytest.approx(np.median(train), abs=1e-4)
    model.save(tmp_path / "m")
    again = PopulationModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.band_quantiles_, model.band_quantiles_, atol=1e-6)


def model_train_rows(model: PopulationModel, table) -> np.ndarray:
    """The training rows of ``model``'s validation split (the same split, recomputed)."""
    return spatial_validation(chip_locations(table), None, seed=model.seed).train


def test_census_consistent_map_sums_to_each_district_total(tmp_path):
    grid = GridSpec(CRS.from_epsg(32633), Affine(1000, 0, 0, 0, -1000, 2000), 4, 2)
    pop = np.array([[10, 30, 5, 5], [0, 0, 20, np.nan]], np.float32)
    result = PopulationMap(pop, pop / 2, pop * 2, grid)
    districts = gpd.GeoDataFrame(
        {"pop": [80.0, 60.0], "name": ["west", "east"]},
        geometry=[box(0, 0, 2000, 2000), box(2000, 0, 4000, 2000)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")  # any CRS: reprojected to the grid's
    out = census_consistent(result, districts, "pop")
    # west: 10 + 30 + 0 + 0 = 40 -> x2; east: 5 + 5 + 20 = 30 -> x2
    np.testing.assert_allclose(out.population[:, :2], [[20, 60], [0, 0]], atol=1e-3)
    assert np.nansum(out.population[:, 2:]) == pytest.approx(60, abs=1e-3)
    assert np.isnan(out.population[1, 3])
    np.testing.assert_allclose(out.upper[0, 0], 40, atol=1e-3)  # interval scaled by the factor
    with pytest.raises(HumanscapeError, match="no column 'total'"):
        census_consistent(result, districts, "total")


def test_chip_locations_from_lon_lat_or_the_chip_georeference():
    table = samples.eurosat_ms().head(2)
    from_columns = chip_locations(table)
    from_files = chip_locations(table.drop(columns=["lon", "lat"]))
    assert np.abs(from_columns - from_files).max() < 1500  # cell centre vs chip centre


def test_an_interrupted_fit_resumes_from_its_checkpoints(tmp_path, real_chips):
    images, pop, table = real_chips
    small = np.ascontiguousarray(images[:, :, :32, :32])
    params = dict(method="cnn", bands=RGBN, cnn_seeds=1, patience=50, batch_size=16)
    first = PopulationModel(epochs=2, **params)
    first.fit(small, pop, locations=chip_locations(table), work_dir=tmp_path, progress=False)
    assert (tmp_path / "cnn0" / "last.ckpt").exists() and first.epochs_run_ == [2]
    # mark the kept best weights, then start again with the same budget: a resumed run has no
    # epoch left to train and returns the marked weights; a run that started over would not
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = str(tmp_path / "cnn0" / "best.safetensors")  # tensors only: no pickle to load
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
    best = load_file(path)
    best["net.head.bias"] = torch.tensor([123.0])
    save_file(best, path, metadata=metadata)
    again = PopulationModel(epochs=2, **params)
    again.fit(small, pop, locations=chip_locations(table), work_dir=tmp_path, progress=False)
    assert float(again.nets_[0].head.bias) == 123.0


def test_auto_refuses_chips_in_too_few_blocks(real_chips):
    from humanscape.tasks.population.workflow import select_population_model

    images, pop, table = real_chips
    one_block = np.zeros((len(pop), 2))  # every chip at one spot: one block, no spatial folds
    with pytest.raises(HumanscapeError, match="fewer than 3 blocks"):
        select_population_model(
            PopulationModel(method="auto"), images, RGBN, pop,
            locations=one_block, groups=None, block_m=50_000,
        )  # fmt: skip
