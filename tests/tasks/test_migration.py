"""Migration outflow (Runfola et al. 2022): the signature layer, the networks, the table rules,
importance (eq. 1), Moran's I and the estimator's persistence, against values computed by hand."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from shapely.geometry import box

from humanscape.errors import HumanscapeError
from humanscape.evaluate.importance import permutation_importance
from humanscape.evaluate.spatial import morans_i
from humanscape.models.signature import (
    SocialSignature,
    annealed_temperature,
    layout_permutation_test,
    pair_distance,
    signature_side,
    soft_sort,
)
from humanscape.tasks.migration.evaluate import outflow_metrics
from humanscape.tasks.migration.model import MigrationModel
from humanscape.tasks.migration.nets import MigrationNet
from humanscape.tasks.migration.table import CensusTable, Standardiser, read_census

# -- the signature layer -------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "side"), [(1, 1), (4, 2), (5, 3), (9, 3), (10, 4), (201, 15)])
def test_signature_side_is_ceil_sqrt(a, side):
    assert signature_side(a) == side == math.ceil(math.sqrt(a))


def test_signature_shape_order_and_zero_padding_for_a_non_square_count():
    sig = SocialSignature(5, seed=0)
    with torch.no_grad():
        sig.blueprint.copy_(torch.tensor([0.1, 0.9, -0.5, 0.4, 0.0]))
    sig.eval()
    x = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])
    s = sig(x)
    assert s.shape == (1, 1, 3, 3)
    # descending blueprint: variable 1 (0.9), 3 (0.4), 0 (0.1), 4 (0.0), 2 (-0.5), row by row
    expected = torch.tensor([[20.0, 40.0, 10.0], [50.0, 30.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.equal(s[0, 0], expected)
    assert sig.layout().tolist() == [[1, 3, 0], [4, 2, -1], [-1, -1, -1]]


def test_soft_sort_matches_the_formula_by_hand():
    b = torch.tensor([0.0, 1.0, 2.0])  # sorted descending: 2, 1, 0; mean spacing 1
    p = soft_sort(b, tau=1.0)
    row0 = np.exp(-np.array([2.0, 1.0, 0.0]))  # |2 - b_j|
    row1 = np.exp(-np.array([1.0, 0.0, 1.0]))
    assert np.allclose(p[0].numpy(), row0 / row0.sum(), atol=1e-6)
    assert np.allclose(p[1].numpy(), row1 / row1.sum(), atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(3))
    hard = soft_sort(b, tau=0.0)
    assert torch.equal(hard, torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]))


def test_gradients_reach_the_blueprint_when_soft_and_not_when_hard():
    sig = SocialSignature(7, seed=1, tau=2.0)
    sig.train()
    x = torch.randn(8, 7)
    (sig(x) * torch.randn(1, 1, 3, 3)).sum().backward()
    assert sig.blueprint.grad is not None and sig.blueprint.grad.abs().sum() > 0
    sig.tau.fill_(0.0)  # the paper's hard sort: the output does not depend on B differentiably
    assert not sig(x).requires_grad


def test_annealing_schedule_is_geometric_then_hard():
    assert annealed_temperature(0, start=3.0, end=0.03, epochs=3) == pytest.approx(3.0)
    assert annealed_temperature(1, start=3.0, end=0.03, epochs=3) == pytest.approx(0.3)
    assert annealed_temperature(2, start=3.0, end=0.03, epochs=3) == pytest.approx(0.03)
    assert annealed_temperature(3, start=3.0, end=0.03, epochs=3) == 0.0


def test_training_moves_the_blueprint_and_ends_on_a_permutation():
    from humanscape.models.training import fit_module
    from humanscape.tasks.migration.nets import RowDataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 7)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] + x[:, 2]).astype(np.float32)
    net = MigrationNet("signature", 7, seed=3, anneal_epochs=3, blueprint_lr=0.2)
    before = net.signature.blueprint.detach().clone()
    rows = np.arange(48)
    fit_module(net, RowDataset(x, y, rows), epochs=5, batch_size=16, progress=False)
    after = net.signature.blueprint.detach()
    assert not torch.allclose(before, after)
    assert len(net.layouts) == 5 and net.layouts[0] != net.layouts[-1]
    assert float(net.signature.tau) == 0.0  # annealing over: the hard order is used
    net.signature.train()
    p = net.signature.permutation()
    assert torch.equal(p.sum(0), torch.ones(7)) and torch.equal(p.sum(1), torch.ones(7))
    assert set(p.unique().tolist()) == {0.0, 1.0}
    assert sorted(np.asarray(net.layouts[-1]).ravel().tolist()) == [-1, -1, 0, 1, 2, 3, 4, 5, 6]


def test_layout_permutation_test_finds_adjacent_pairs_and_not_scattered_ones():
    layout = np.arange(16).reshape(4, 4)
    near = [(0, 1), (5, 6), (10, 11), (14, 15)]
    assert pair_distance(layout, near) == 1.0
    assert layout_permutation_test(layout, near, n_permutations=499)["p_value"] < 0.05
    far = [(0, 15), (3, 12), (1, 14), (2, 13)]
    assert pair_distance(layout, far) == 3.0
    assert layout_permutation_test(layout, far, n_permutations=499)["p_value"] > 0.5


# -- the networks ---------------------------------------------------------------------------------


def test_the_dense_baseline_is_affine():
    torch.manual_seed(0)
    net = MigrationNet("dense", 6).eval()
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    rows = torch.arange(4)
    f = lambda v: net(rows, v)  # noqa: E731
    zero = f(torch.zeros(4, 6))
    assert torch.allclose(f(a + b), f(a) + f(b) - zero, atol=1e-5)
    assert torch.allclose(f(2.5 * a), 2.5 * f(a) - 1.5 * zero, atol=1e-5)
    assert [m.out_features for m in net.dense] == [128, 64, 32, 1]


def test_imagery_features_weigh_every_tile_of_a_municipality_equally():
    net = MigrationNet("imagery", 0, in_chans=2).eval()
    tiles = np.random.default_rng(0).normal(size=(5, 2, 8, 8)).astype(np.float32)
    net.attach_tiles(tiles, [np.array([0, 1, 2]), np.array([3, 4])])
    with torch.no_grad():
        feats = net._image_features(torch.tensor([0, 1]))
        single = net.image_net(torch.as_tensor(tiles))
    assert torch.allclose(feats[0], single[:3].mean(0), atol=1e-5)
    assert torch.allclose(feats[1], single[3:].mean(0), atol=1e-5)


# -- census tables --------------------------------------------------------------------------------


def _write(tmp_path, frame):
    path = tmp_path / "census.csv"
    frame.to_csv(path, index=False)
    return path


def test_missing_sentinel_constant_and_text_columns(tmp_path):
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "pop": [100, 200, -1, 400],
            "flat": [7, 7, 7, 7],
            "name": ["x", "y", "z", "w"],
            "y": [1, 2, 3, 4],
        }
    )
    path = _write(tmp_path, frame)
    with pytest.raises(HumanscapeError, match="1 non-numeric column"):
        read_census(path, id_column="id", target="y")
    t = read_census(path, id_column="id", target="y", missing=-1, drop_text=True)
    assert list(t.features.columns) == ["pop"]
    assert np.isnan(t.features["pop"][2]) and t.features["pop"][3] == 400
    assert any("dropped 1 constant column" in n for n in t.notes)
    assert any("1 value(s) equal to the missing-value code -1" in n for n in t.notes)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": ["a", "a", "c"]}, "1 duplicate id"),
        ({"id": ["a", None, "c"]}, "have no id"),
        ({"y": [1.0, np.nan, 3.0]}, "1 missing or non-numeric"),
        ({"y": [1.0, -2.0, 3.0]}, "1 negative"),
    ],
)
def test_bad_ids_and_targets_are_refused(tmp_path, change, message):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "v": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]})
    frame = frame.assign(**change)
    with pytest.raises(HumanscapeError, match=message):
        read_census(_write(tmp_path, frame), id_column="id", target="y")


def test_standardiser_logs_heavy_tails_zscores_and_flags_missing():
    heavy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10_000.0]
    frame = pd.DataFrame({"heavy": heavy, "plain": [float(v) for v in range(9)] + [np.nan]})
    s = Standardiser().fit(frame)
    assert s.log_ == [True, False]
    z = s.transform(frame)
    logged = np.log1p(np.array(heavy))
    assert np.allclose(z[:, 0], (logged - logged.mean()) / logged.std(), atol=1e-5)
    plain = np.arange(9.0)
    assert np.allclose(z[:9, 1], (plain - plain.mean()) / plain.std(), atol=1e-5)
    assert z[9, 1] == 0.0  # missing -> the training mean
    assert s.names_ == ["heavy", "plain", "plain missing"]
    assert z[:, 2].tolist() == [0.0] * 9 + [1.0]
    again = Standardiser.from_config(s.to_config()).transform(frame)
    assert np.array_equal(again, z)


# -- evaluation -----------------------------------------------------------------------------------


def test_outflow_metrics_by_hand():
    y = np.array([100.0, 2000.0, 50.0, 700.0])
    p = np.array([300.0, 900.0, 60.0, 700.0])
    m = outflow_metrics(
        y, p, lower=np.array([0, 1000, 0, 0]), upper=np.array([200, 3000, 100, 800])
    )
    ss_res = 200**2 + 1100**2 + 10**2 + 0
    ss_tot = ((y - y.mean()) ** 2).sum()
    assert m["r2"] == pytest.approx(1 - ss_res / ss_tot)
    assert m["mae"] == pytest.approx((200 + 1100 + 10 + 0) / 4)
    assert m["within_500"] == 0.75 and m["within_1000"] == 0.75
    assert m["coverage"] == 1.0 and m["interval_width"] == pytest.approx(
        (200 + 2000 + 100 + 800) / 4
    )


def test_permutation_importance_is_the_ratio_of_errors():
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 0.0, 1.0, 1.0]})
    y = np.array([1.5, 2.5, 2.5, 4.5])

    def predict(f: pd.DataFrame) -> np.ndarray:
        return f["a"].to_numpy()

    fi = permutation_importance(predict, x, y, repeats=1, seed=0).set_index("variable")
    base = np.mean(np.abs(x["a"] - y))  # 0.5
    shuffled = np.random.default_rng(0).permutation(x["a"].to_numpy())
    assert fi.loc["a", "fi"] == pytest.approx(np.mean(np.abs(shuffled - y)) / base)
    assert fi.loc["b", "fi"] == pytest.approx(1.0)


def _planted_table(n: int = 300, seed: int = 0) -> CensusTable:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame(rng.normal(size=(n, 5)), columns=["strong", "weak", "n1", "n2", "n3"])
    y = np.exp(3 + 1.2 * f["strong"] + 0.2 * f["weak"]) + rng.poisson(2, n)
    ids = pd.Series([f"m{i}" for i in range(n)])
    return CensusTable(ids, f, np.round(y.to_numpy()))


def test_permutation_importance_ranks_the_planted_variable_first():
    table = _planted_table()
    train, test = table.subset(np.arange(200)), table.subset(np.arange(200, 300))
    model = MigrationModel("hgb", n_estimators=100).fit(train)
    ids = test.ids.tolist()
    fi = permutation_importance(
        lambda f: model.predict_features(f, ids), test.features, test.target, repeats=3
    )
    assert fi["variable"].iloc[0] == "strong" and fi["fi"].iloc[0] > 2
    assert fi.set_index("variable").loc[["n1", "n2", "n3"], "fi"].max() < 1.1


def _grid(n: int) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        geometry=[box(c, -r, c + 1, -r + 1) for r in range(n) for c in range(n)]
    )


def test_morans_i_of_a_checkerboard_by_hand_and_of_a_clustered_pattern():
    n = 4
    values = np.array([(r + c) % 2 for r in range(n) for c in range(n)], dtype=float)
    summary, local = morans_i(values, _grid(n), permutations=99)
    # queen neighbours, row-standardised: I = sum_i z_i * mean_{j in N(i)} z_j / (sum z^2 / n)
    z = values - values.mean()
    lag = []
    for r in range(n):
        for c in range(n):
            nb = [
                (r + dr) * n + (c + dc)
                for dr in (-1, 0, 1)
                for dc in (-1, 0, 1)
                if (dr or dc) and 0 <= r + dr < n and 0 <= c + dc < n
            ]
            lag.append(z[nb].mean())
    expected = (z * np.array(lag)).sum() / (z**2).sum()  # S0 = n for row-standardised weights
    assert summary["I"] == pytest.approx(expected)
    assert summary["I"] < 0
    clustered = np.array([1.0 if c < 2 else 0.0 for r in range(n) for c in range(n)])
    high, _ = morans_i(clustered, _grid(n), permutations=99)
    assert high["I"] > 0.5 and high["p_value"] <= 0.05
    assert len(local) == n * n and set(local["quadrant"]) <= {"HH", "LH", "LL", "HL"}


# -- the estimator --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ensemble", "hgb", "rf", "dense", "signature"])
def test_a_saved_model_reloads_and_predicts_the_same(kind, tmp_path):
    table = _planted_table(120)
    model = MigrationModel(kind, epochs=3, n_estimators=20, seed=1).fit(table, progress=False)
    first = model.predict_interval(table)
    again = MigrationModel.load(model.save(tmp_path / "m")).predict_interval(table)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)  # forests sum trees in parallel
    prediction, lower, upper = first
    assert (lower <= prediction).all() and (prediction <= upper).all()


def test_conformal_intervals_cover_about_the_level_on_new_rows():
    table = _planted_table(900, seed=2)
    model = MigrationModel("hgb", n_estimators=100, alpha=0.1).fit(table.subset(np.arange(600)))
    test = table.subset(np.arange(600, 900))
    _, lower, upper = model.predict_interval(test)
    inside = ((test.target >= lower) & (test.target <= upper)).mean()
    assert 0.82 <= inside <= 0.98


def test_the_ensemble_averages_boosting_and_a_glm_clamped_to_its_training_range():
    table = _planted_table(200)
    model = MigrationModel("ensemble", n_estimators=50).fit(table)
    far = table.features.iloc[:3].copy()
    far["strong"] = [50.0, -50.0, 0.0]  # far outside the training rows
    ids = ["a", "b", "c"]
    x = model.standardiser_.transform(far)
    hgb = model.estimator_.predict(x)
    eta = x @ model.glm_.coef_ + model.glm_.intercept_
    low, high = model.eta_range_
    expected = 0.5 * (hgb + np.exp(np.clip(eta, low, high)))
    assert np.allclose(model.predict_features(far, ids), expected)
    assert eta[0] > high and eta[1] < low  # the clamp was needed on both sides
