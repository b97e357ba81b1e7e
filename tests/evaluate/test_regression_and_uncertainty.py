"""Huang et al. (2021) agreement metrics and split-conformal intervals, against values by hand."""

import numpy as np
import pytest

from humanscape.errors import HumanscapeError
from humanscape.evaluate.regression import (
    agreement,
    bias_analysis,
    log_population,
    mae,
    mioa,
    pearson_r2,
    r2,
    rmse,
)
from humanscape.evaluate.uncertainty import SplitConformal, conformal_quantile, coverage

P = [1.0, 2.0, 3.0, 4.0]
Q = [1.5, 2.0, 2.5, 3.0]


def test_metrics_by_hand():
    # p̄ = 2.5; errors q - p = 0.5, 0, -0.5, -1
    assert r2(P, Q) == pytest.approx(1 - (0.25 + 0 + 0.25 + 1) / (2.25 + 0.25 + 0.25 + 2.25))  # 0.7
    # Σ|p - q| = 2; Σ(|q - p̄| + |p - p̄|) = (1 + .5 + 0 + .5) + (1.5 + .5 + .5 + 1.5) = 6
    assert mioa(P, Q) == pytest.approx(1 - 2 / 6)
    assert pearson_r2(P, Q) == pytest.approx(1.0)  # q = 0.5 p + 1: perfectly correlated
    assert mae(P, Q) == pytest.approx(0.5) and rmse(P, Q) == pytest.approx(np.sqrt(1.5 / 4))
    # Table III: q - p = 1 - 0.5 p exactly: alpha 1, beta -0.5, r -1
    bias = bias_analysis(P, Q)
    assert bias == pytest.approx({"bias_r": -1.0, "bias_alpha": 1.0, "bias_beta": -0.5})
    assert set(agreement(P, Q)) == {
        "r2",
        "pearson_r2",
        "mioa",
        "mae",
        "rmse",
        "bias_r",
        "bias_alpha",
        "bias_beta",
    }


def test_r2_can_be_negative_while_squared_pearson_is_perfect():
    # perfectly correlated but ten times too large: squared Pearson 1, coefficient of
    # determination 1 - Σ(p - 10p)² / Σ(p - p̄)² = 1 - 81 * 30 / 5 = -485
    assert pearson_r2(P, [10, 20, 30, 40]) == pytest.approx(1)
    assert r2(P, [10, 20, 30, 40]) == pytest.approx(1 - 81 * 30 / 5)


def test_log_population_floors_counts_below_one_as_eq_1():
    # eq. 1: below 1 -> 0; then log(p) for p >= 1 (0.01 would otherwise be log 0.01 = -4.6)
    np.testing.assert_allclose(
        log_population([0, 0.01, 0.99, 1, np.e, 100]), [0, 0, 0, 0, 1, np.log(100)]
    )
    with pytest.raises(HumanscapeError, match="negative"):
        log_population([-1])


def test_bad_pairs_are_refused():
    with pytest.raises(HumanscapeError, match="one length"):
        r2([1, 2], [1, 2, 3])
    with pytest.raises(HumanscapeError, match="NaN"):
        mae([1, np.nan], [1, 2])


def test_conformal_quantile_by_hand():
    residuals = [0.1, -0.4, 0.2, 0.8, -0.3, 0.5, 0.05, -0.9, 0.6]  # n = 9
    # alpha 0.2: rank ceil(10 * 0.8) = 8 -> sorted |r| = .05 .1 .2 .3 .4 .5 .6 .8 .9 -> 0.8
    assert conformal_quantile(residuals, 0.2) == pytest.approx(0.8)
    # alpha 0.05: rank ceil(10 * 0.95) = 10 > 9 -> no finite interval
    assert conformal_quantile(residuals, 0.05) == float("inf")
    with pytest.raises(HumanscapeError, match="alpha"):
        conformal_quantile(residuals, 1.5)


def test_split_conformal_covers_at_the_nominal_level_on_held_out_data():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(200):
        truth = rng.normal(size=400)
        pred = truth + rng.standard_t(3, size=400)  # heavy-tailed errors, no model assumption
        conformal = SplitConformal(alpha=0.1).fit(truth[:200], pred[:200])
        lo, hi = conformal.interval(pred[200:])
        covered.append(coverage(truth[200:], lo, hi))
    # expected coverage rank / (n + 1) = ceil(201 * 0.9) / 201 = 181 / 201 for continuous residuals;
    # 200 repetitions estimate it to about 0.002 (one standard error)
    assert np.mean(covered) == pytest.approx(181 / 201, abs=0.006)


def test_interval_on_log_scale_maps_back():
    conformal = SplitConformal(alpha=0.5, inverse=np.exp).fit([0.0, 0.0, 0.0], [0.5, -0.5, 1.0])
    # |r| = .5 .5 1; rank ceil(4 * 0.5) = 2 -> q = 0.5
    lo, hi = conformal.interval([np.log(100.0)])
    assert lo[0] == pytest.approx(100 * np.exp(-0.5)) and hi[0] == pytest.approx(100 * np.exp(0.5))
