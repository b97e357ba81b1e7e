"""Flows (Imagery2Flow / GMEL / Deep Gravity baselines): metrics by hand, readers on a real county,
gravity recovering a known exponent, GAT forward, transfer folds, save / load round trips."""

from __future__ import annotations

import shutil
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from shapely.geometry import box

from humanscape.data.samples import sample_path
from humanscape.errors import HumanscapeError
from humanscape.evaluate.flows import (
    cpc,
    cpc_by_distance,
    cpl,
    flow_metrics,
    mass_on_observed_pairs,
)
from humanscape.tasks.flows.cities import (
    City,
    adjacency_matrix,
    distance_matrix_km,
    read_commuting_od,
    read_flow_table,
    read_regions,
)
from humanscape.tasks.flows.evaluate import city_folds, transfer
from humanscape.tasks.flows.features import intervening_population, pair_features
from humanscape.tasks.flows.gravity import Gravity, furness, radiation
from humanscape.tasks.flows.model import FlowModel, pair_split

COUNTY = "36093"


@pytest.fixture(scope="module")
def county():
    return read_commuting_od(sample_path("commuting_od") / COUNTY)


# --- metrics ------------------------------------------------------------------------------------


def test_cpc_cpl_and_mass_by_hand():
    t = np.array([[10.0, 0.0], [5.0, 5.0]])
    p = np.array([[6.0, 2.0], [5.0, 0.2]])
    # CPC = 2 * (6 + 0 + 5 + 0.2) / (20 + 13.2)
    assert cpc(t, p) == pytest.approx(2 * 11.2 / 33.2)
    # observed links {00, 10, 11}; predicted links (>= 0.5) {00, 01, 10}; common {00, 10}
    assert cpl(t, p) == pytest.approx(2 * 2 / (3 + 3))
    # predicted mass on observed pairs: (6 + 5 + 0.2) / 13.2
    assert mass_on_observed_pairs(t, p) == pytest.approx(11.2 / 13.2)
    m = flow_metrics(t, p)
    err = np.array([-4.0, 2.0, 0.0, -4.8])
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["mae"] == pytest.approx(np.abs(err).mean())
    assert m["pearson_r"] == pytest.approx(np.corrcoef(t.ravel(), p.ravel())[0, 1])
    assert (m["observed_total"], m["predicted_total"]) == (20.0, pytest.approx(13.2))
    assert cpc(t, t) == 1.0 and cpc(t, np.zeros_like(t)) == 0.0


def test_cpc_by_distance_band_by_hand():
    t = np.array([[4.0, 2.0], [1.0, 3.0]])
    p = np.array([[2.0, 2.0], [3.0, 3.0]])
    d = np.array([[0.5, 7.0], [7.0, 0.5]])
    table = cpc_by_distance(t, p, d)
    assert table["band"].tolist() == ["0-2 km", "5-10 km"]  # empty bands left out
    near = table.iloc[0]
    assert near["pairs"] == 2 and near["cpc"] == pytest.approx(2 * (2 + 3) / (7 + 5))
    assert table.iloc[1]["cpc"] == pytest.approx(2 * (2 + 1) / (3 + 5))


def test_metrics_refuse_shape_mismatch():
    with pytest.raises(HumanscapeError, match="differ in shape"):
        cpc(np.ones((2, 2)), np.ones((3, 3)))


# --- readers ------------------------------------------------------------------------------------


def test_reader_returns_aligned_arrays_for_a_real_county(county):
    folder = sample_path("commuting_od") / COUNTY
    od = np.load(folder / "od.npy")
    demos = np.load(folder / "demos.npy")
    shp = gpd.read_file(folder / "regions.shp")
    n = len(shp)
    assert county.n == n and county.flows.shape == (n, n)
    assert county.ids.tolist() == shp["GEOID"].astype(str).tolist()  # rows follow regions.shp
    np.testing.assert_array_equal(county.flows, od)
    np.testing.assert_array_equal(county.population, demos[:, 0])
    assert county.features.shape == (n, demos.shape[1] + np.load(folder / "pois.npy").shape[1])
    np.testing.assert_array_equal(county.features["demo_005"], demos[:, 5])
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(county.distance_km[off], np.load(folder / "dis.npy")[off] / 1000)
    # intra-zonal distance: half the radius of a disc of the tract's area
    assert county.distance_km[0, 0] == pytest.approx(0.5 * np.sqrt(county.area_km2[0] / np.pi))
    assert (county.adjacency == county.adjacency.T).all() and not county.adjacency.diagonal().any()


def test_reader_refuses_missing_file_and_mismatched_arrays(county, tmp_path):
    src = sample_path("commuting_od") / COUNTY
    bad = tmp_path / COUNTY
    shutil.copytree(src, bad)
    (bad / "pois.npy").unlink()
    with pytest.raises(HumanscapeError, match=r"lacks pois\.npy"):
        read_commuting_od(bad)
    np.save(bad / "pois.npy", np.zeros((county.n - 1, 34)))
    with pytest.raises(HumanscapeError, match=rf"expected \({county.n}, columns\)") as info:
        read_commuting_od(bad)
    assert info.value.path.endswith("pois.npy")


def _square_regions(n_side: int = 3, size_m: float = 1000.0) -> gpd.GeoDataFrame:
    cells = [
        box(c * size_m, r * size_m, (c + 1) * size_m, (r + 1) * size_m)
        for r in range(n_side)
        for c in range(n_side)
    ]
    return gpd.GeoDataFrame(
        {
            "id": [f"r{i}" for i in range(len(cells))],
            "population": np.arange(1, len(cells) + 1) * 100.0,
        },
        geometry=cells,
        crs="EPSG:32633",
    )


def test_distance_and_adjacency_of_a_grid_by_hand():
    regions = _square_regions()
    d = distance_matrix_km(regions)
    assert d[0, 1] == pytest.approx(1.0) and d[0, 4] == pytest.approx(np.sqrt(2))
    assert d[0, 0] == pytest.approx(0.5 * np.sqrt(1.0 / np.pi))  # 1 km2 cells
    a = adjacency_matrix(regions)
    assert a[0, 1] and a[0, 4] and not a[0, 2] and not a[0, 0]  # queen: corners count
    assert a.sum(axis=1)[4] == 8


def test_generic_reader_and_flow_table_errors(tmp_path):
    path = tmp_path / "regions.gpkg"
    _square_regions().to_file(path)
    city = read_regions(path)
    assert city.n == 9 and city.population[2] == 300.0
    flows = tmp_path / "flows.csv"
    pd.DataFrame({"origin": ["r0", "r1"], "destination": ["r1", "r1"], "flow": [5, 2]}).to_csv(
        flows, index=False
    )
    with_flows = read_flow_table(flows, city)
    assert (
        with_flows.flows[0, 1] == 5 and with_flows.flows[1, 1] == 2 and with_flows.flows.sum() == 7
    )
    pd.DataFrame({"origin": ["r0", "zz"], "destination": ["r1", "r1"], "flow": [5, 2]}).to_csv(
        flows, index=False
    )
    with pytest.raises(HumanscapeError, match="not regions .first: zz"):
        read_flow_table(flows, city)
    pd.DataFrame({"origin": ["r0"], "destination": ["r1"], "flow": [-1]}).to_csv(flows, index=False)
    with pytest.raises(HumanscapeError, match="negative flow"):
        read_flow_table(flows, city)
    empty = _square_regions()
    empty.loc[3, "geometry"] = None
    empty.to_file(tmp_path / "holes.gpkg")
    with pytest.raises(HumanscapeError, match="without geometry .first: r3"):
        read_regions(tmp_path / "holes.gpkg")


def test_embeddings_must_cover_every_region(county):
    table = pd.DataFrame({"id": county.ids[:-2], "e000": 1.0})
    with pytest.raises(HumanscapeError, match=f"2 of {county.n} regions"):
        county.with_features(table, source="emb.parquet")
    full = pd.DataFrame({"id": county.ids[::-1], "e000": np.arange(county.n)[::-1] * 1.0})
    joined = county.with_features(full, source="emb.parquet")
    np.testing.assert_array_equal(joined.features["e000"], np.arange(county.n))  # aligned by id


# --- features and classic models ----------------------------------------------------------------


def _line_city(pop=(100.0, 50.0, 30.0, 20.0), spacing=1.0, flows=None) -> City:
    n = len(pop)
    x = np.arange(n) * spacing
    d = np.abs(x[:, None] - x[None])
    np.fill_diagonal(d, 0.1)
    regions = gpd.GeoDataFrame(
        {"id": [f"r{i}" for i in range(n)]},
        geometry=[box(1000 * xi, 0, 1000 * xi + 900, 900) for xi in x],
        crs="EPSG:32633",
    )
    return City(
        "line",
        regions,
        pd.DataFrame({"population": np.asarray(pop)}),
        d,
        np.abs(np.subtract.outer(np.arange(n), np.arange(n))) == 1,
        flows,
        np.asarray(pop),
    )


def test_intervening_population_by_hand():
    city = _line_city()
    s = intervening_population(city.distance_km, city.mass())
    # from r0: r1 at 1 km has nobody closer (r0 itself excluded); r2 at 2 km: r1 (50); r3: r1 + r2
    np.testing.assert_allclose(s[0], [0, 0, 50, 80])
    # from r1: r0 and r2 both at 1 km (ties are not closer); r3 at 2 km: r0 + r2
    np.testing.assert_allclose(s[1], [0, 0, 0, 130])


def test_radiation_by_hand():
    city = _line_city()
    o = np.array([10.0, 0, 0, 0])
    t = radiation(city, o)
    big_m = city.mass().sum()  # 200 residents
    # T_02 = O_0 / (1 - m0/M) * m0 m2 / ((m0 + s02)(m0 + m2 + s02)), s02 = 50
    expect = 10 / (1 - 100 / big_m) * 100 * 30 / ((100 + 50) * (100 + 30 + 50))
    assert t[0, 2] == pytest.approx(expect)
    assert t[0, 0] == 0 and t[1:].sum() == 0


def test_furness_matches_margins_and_a_hand_case():
    seed = np.array([[1.0, 1.0], [1.0, 1.0]])
    t = furness(seed, np.array([3.0, 1.0]), np.array([2.0, 2.0]))
    # a uniform seed balanced to rows (3, 1) and columns (2, 2) is the outer product / total
    np.testing.assert_allclose(t, np.outer([3, 1], [2, 2]) / 4, atol=1e-9)
    rng = np.random.default_rng(0)
    o, d = rng.random(5) * 10, rng.random(5) * 10
    t = furness(rng.random((5, 5)) + 0.1, o, d)
    np.testing.assert_allclose(t.sum(axis=1), o, rtol=1e-6)  # rows hit the origin totals
    np.testing.assert_allclose(t.sum(axis=0), d * o.sum() / d.sum(), rtol=1e-6)  # columns rescaled


def _gravity_world(gamma: float, law: str = "power", n: int = 60, seed: int = 0) -> City:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 30, (n, 2))
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    np.fill_diagonal(d, 0.5)
    pop = rng.lognormal(8, 0.6, n)
    f = np.log(d) if law == "power" else d
    expected = 1e-3 * pop[:, None] ** 0.9 * pop[None] ** 0.7 * np.exp(-gamma * f)
    regions = gpd.GeoDataFrame(
        {"id": [f"r{i}" for i in range(n)]},
        geometry=[box(1000 * x, 1000 * y, 1000 * x + 500, 1000 * y + 500) for x, y in xy],
        crs="EPSG:32633",
    )
    return City(
        "gravity", regions, pd.DataFrame({"population": pop}), d, np.zeros((n, n), bool),
        rng.poisson(expected).astype(float), pop,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("constraint", "law", "gamma"),
    [("none", "power", 2.0), ("production", "power", 1.5), ("doubly", "exponential", 0.15)],
)
def test_gravity_recovers_the_exponent_of_synthetic_flows(constraint, law, gamma):
    city = _gravity_world(gamma, law)
    model = Gravity(constraint, law).fit([city])
    assert model.params_["gamma"] == pytest.approx(gamma, rel=0.05)
    if constraint == "none":
        assert model.params_["a_origin_mass"] == pytest.approx(0.9, abs=0.05)
        assert model.params_["b_destination_mass"] == pytest.approx(0.7, abs=0.05)
    out = model.predict(city, city.flows.sum(1), city.flows.sum(0))
    if constraint != "none":  # constrained forms reproduce the margins they are given
        np.testing.assert_allclose(out.sum(axis=1), city.flows.sum(axis=1), rtol=1e-4)


def test_pair_features_layout(county):
    nodes = np.arange(county.n * 2, dtype=np.float32).reshape(county.n, 2)
    x = pair_features(county, nodes)
    assert x.shape == (county.n**2, 2 * 2 + 5)
    row = 3 * county.n + 7  # pair 3 -> 7
    np.testing.assert_array_equal(x[row, :2], nodes[3])
    np.testing.assert_array_equal(x[row, 2:4], nodes[7])
    assert x[row, 4] == pytest.approx(np.log(county.distance_km[3, 7]))
    assert x[row, 6] == 0 and x[3 * county.n + 3, 6] == 1  # same region flag


# --- networks -----------------------------------------------------------------------------------


def test_gat_forward_on_a_tiny_graph_is_equivariant_to_node_order():
    from humanscape.models.flow_nets import GATFlowNet, make_graph

    torch.manual_seed(0)
    n, f = 5, 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, f)).astype(np.float32)
    d = rng.uniform(1, 5, (n, n))
    d = (d + d.T) / 2
    pairs = rng.normal(size=(n, n, 2)).astype(np.float32)
    adjacency = np.zeros((n, n), bool)
    adjacency[0, 1] = adjacency[1, 0] = True
    net = GATFlowNet(f, 2, hidden=8, heads=2).eval()
    graph = make_graph(x, pairs.reshape(n * n, 2), d, adjacency, neighbours=2)
    log_flow, log_out, log_in = net(graph)
    assert log_flow.shape == (n, n) and log_out.shape == (n,) and torch.isfinite(log_flow).all()
    perm = np.array([3, 0, 4, 1, 2])
    graph2 = make_graph(
        x[perm], pairs[perm][:, perm].reshape(n * n, 2), d[perm][:, perm], adjacency[perm][:, perm],
        neighbours=2,
    )  # fmt: skip
    log_flow2, _, _ = net(graph2)
    torch.testing.assert_close(log_flow2, log_flow[perm][:, perm], atol=1e-5, rtol=1e-5)


# --- splits, transfer, persistence --------------------------------------------------------------


def test_pair_split_partitions_pairs_8_1_1():
    train, val, test = pair_split(10, seed=0)
    assert (train.astype(int) + val + test == 1).all()
    assert (train.sum(), val.sum(), test.sum()) == (80, 10, 10)


def test_transfer_folds_never_leak_a_test_city_into_training():
    folds = city_folds(16, 4, seed=0)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested) == list(range(16))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 16
    with pytest.raises(HumanscapeError, match="folds"):
        city_folds(3, 4)


def test_transfer_fits_only_on_training_cities(county):
    seen = []

    class Spy(FlowModel):
        def fit(self, cities, **kw):
            seen.append([c.name for c in cities])
            return super().fit(cities, **kw)

    cities = [county, replace(county, name="copy"), replace(county, name="third")]
    table = transfer(cities, lambda: Spy("gravity", constraint="none"), k=3)
    assert sorted(table["city"]) == ["36093", "copy", "third"]
    for names, held in zip(seen, table.sort_values("fold")["city"], strict=True):
        assert held not in names


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("gravity", {"constraint": "doubly", "deterrence": "exponential"}),
        ("radiation", {}),
        ("gbrt", {}),
        ("gnn", {"epochs": 2, "hidden": 8}),
        ("deepgravity", {"epochs": 2}),
    ],
)
def test_saved_model_reloads_and_predicts_the_same(kind, options, county, tmp_path):
    model = FlowModel(kind, **options).fit([county], progress=False)
    before = model.predict(county)
    assert before.shape == (county.n, county.n) and (before >= 0).all()
    again = FlowModel.load(model.save(tmp_path / kind))
    np.testing.assert_allclose(again.predict(county), before, rtol=1e-5)
    assert sorted(p.name for p in (tmp_path / kind).iterdir() if p.suffix == ".pkl") == []


def test_observed_margins_reproduce_the_origin_totals(county):
    model = FlowModel("gravity", constraint="production").fit([county])
    out = model.predict(county, margins="observed")
    np.testing.assert_allclose(out.sum(axis=1), county.flows.sum(axis=1), rtol=1e-6)


def test_columns_constant_in_training_are_left_out(county):
    from humanscape.tasks.flows.features import fit_scaler, node_features

    scaler = fit_scaler([county])  # one city: its city-level columns are constant
    assert "city_population" not in scaler.columns_ and "city_regions" not in scaler.columns_
    assert "population_share" in scaler.columns_
    bigger = replace(county, population=county.population * 10)
    assert np.abs(node_features(bigger, scaler)).max() <= 10.0


def test_gnn_can_stop_early_on_held_out_training_cities(county, tmp_path):
    cities = [county, replace(county, name="b"), replace(county, name="c")]
    model = FlowModel("gnn", epochs=2, hidden=8, validation="cities").fit(cities, progress=False)
    again = FlowModel.load(model.save(tmp_path / "m"))
    assert again.validation == "cities"
    np.testing.assert_allclose(again.predict(county), model.predict(county), rtol=1e-5)
    with pytest.raises(HumanscapeError, match="unknown validation 'counties'"):
        FlowModel("gnn", validation="counties").fit(cities)  # checked when fitting
