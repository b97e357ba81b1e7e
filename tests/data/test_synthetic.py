import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from humanscape.data.synthetic import CLASSES, SyntheticWorld


def test_same_seed_same_world_other_seed_other_world():
    a = SyntheticWorld(64, 80, seed=3).tile()
    b = SyntheticWorld(64, 80, seed=3).tile()
    c = SyntheticWorld(64, 80, seed=4).tile()
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    np.testing.assert_array_equal(a.population, b.population)
    assert not np.array_equal(a.reflectance, c.reflectance)


def test_tile_by_tile_equals_whole_world():
    world = SyntheticWorld(150, 170, seed=5)
    whole = world.tile()
    part = world.tile(Window(37, 61, 90, 50))
    np.testing.assert_allclose(part.reflectance, whole.reflectance[:, 61:111, 37:127], rtol=1e-6)
    np.testing.assert_array_equal(part.landcover, whole.landcover[61:111, 37:127])
    np.testing.assert_array_equal(part.district, whole.district[61:111, 37:127])


def test_streamed_scene_file_matches_tiles(tmp_path):
    world = SyntheticWorld(100, 120, seed=2)
    path = world.write_scene(tmp_path / "w.tif", block=32)
    with rasterio.open(path) as src:
        dn = src.read()
        assert src.count == 13 and src.crs == world.grid.crs
    np.testing.assert_allclose(dn * 1e-4, world.tile().reflectance, atol=6e-5)


def test_real_class_spectra_make_water_dark_in_nir_and_forest_green():
    world = SyntheticWorld(256, 256, seed=1)
    t = world.tile()
    nir, red = t.reflectance[7], t.reflectance[3]
    ndvi = (nir - red) / (nir + red)
    assert ndvi[t.landcover == CLASSES.index("Forest")].mean() > 0.6
    assert ndvi[t.landcover == CLASSES.index("SeaLake")].mean() < 0


def test_population_follows_built_density_with_high_rise_factor():
    flat = SyntheticWorld(200, 200, seed=1, highrise=0.0)
    tall = SyntheticWorld(200, 200, seed=1, highrise=5.0)
    tf, tt = flat.tile(), tall.tile()
    core = tt.built > 0.85
    assert core.any()
    np.testing.assert_array_equal(tf.reflectance, tt.reflectance)  # same imagery
    assert tt.population[core].mean() > 2 * tf.population[core].mean()  # more people per pixel
    from scipy.stats import spearmanr

    assert spearmanr(tt.built.ravel(), tt.population.ravel())[0] > 0.8  # monotone in density
    cells = tall.population_grid(10)
    assert cells.shape == (20, 20) and cells.sum() == pytest.approx(tt.population.sum(), rel=1e-5)


def test_settlements_appear_between_periods():
    world = SyntheticWorld(400, 400, seed=2)
    truth = world.settlements()
    assert set(truth["appear_period"]) <= {0, 1, 2} and truth["new"].any()
    early, late = world.tile(period=0), world.tile(period=2)
    assert late.settlement.sum() > early.settlement.sum()
    assert not (early.settlement & ~late.settlement).any()  # settlements do not vanish


def test_district_gdp_follows_the_power_law_and_flows_the_gravity_law():
    world = SyntheticWorld(300, 300, seed=3, n_districts=10)
    d = world.districts()
    slope = np.polyfit(np.log(d["population"]), np.log(d["gdp"]), 1)[0]
    assert slope == pytest.approx(world.gdp_beta, abs=0.1)
    flows, params = world.flows()
    off = flows[flows.origin != flows.destination]
    slope_d = np.polyfit(
        np.log(off["distance_km"]),
        np.log(off["expected"])
        - np.log(
            d["population"].to_numpy()[off.origin] * d["population"].to_numpy()[off.destination]
        ),
        1,
    )[0]
    assert slope_d == pytest.approx(-params["gamma"], abs=0.3)


def test_census_outflow_uses_the_stated_function():
    world = SyntheticWorld(200, 200, seed=4)
    table, truth = world.census()
    assert len(table) == world.n_districts and set(truth["irrelevant"]) <= set(table.columns)

    def z(column):  # standardised with the population standard deviation, as stated
        v = table[column].to_numpy(float)
        return (v - v.mean()) / v.std()

    eta = (
        -3.0
        + 0.9 * z("unemployment")
        - 0.6 * z("income")
        + 0.7 * z("unemployment") * z("youth_share")
        + 0.5 * (-z("border_distance_km")) * (1 - z("urban_share"))
        - 0.4 * z("urban_share")
    )
    rate = 1 / (1 + np.exp(-eta))
    np.testing.assert_allclose(table["rate"], rate, rtol=1e-9)
    np.testing.assert_array_equal(table["outflow"], np.round(table["population"] * rate))
    assert truth["terms"]["unemployment:youth_share"] == 0.7 and truth["intercept"] == -3.0


def test_pointwise_noise_equals_gridded_noise():
    from humanscape.data.noise import fbm as _fbm
    from humanscape.data.noise import fbm_at as _fbm_at

    rows, cols = np.arange(40.0) + 3, np.arange(25.0) + 1000
    grid = _fbm(rows, cols, 300, 1, 11)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    np.testing.assert_allclose(
        _fbm_at(rr.ravel(), cc.ravel(), 300, 1, 11).reshape(grid.shape), grid, atol=1e-6
    )
