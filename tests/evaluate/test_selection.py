"""Choosing a model by cross-validation with the baseline always a candidate (issue 23)."""

from __future__ import annotations

import numpy as np
import pytest

from humanscape.errors import HumanscapeError
from humanscape.evaluate.regression import r2
from humanscape.evaluate.selection import group_folds, random_folds, select_candidate


def test_fold_scores_means_and_the_choice_by_hand():
    splits = random_folds(10, 2, seed=0)
    scores = {"base": [0.5, 0.7], "good": [0.8, 0.6], "bad": [0.1, np.nan]}
    calls = iter(range(6))

    def score(name, train, test):
        k = next(calls) % 2
        return scores[name][k]

    s = select_candidate(["base", "good", "bad"], score, splits, baseline="base", metric="r2")
    table = s.table.set_index("candidate")
    # base: mean 0.6, std 0.1; good: mean 0.7, std 0.1; bad: a NaN fold -> NaN mean, ranked last
    assert table.loc["base", "mean"] == pytest.approx(0.6)
    assert table.loc["good", "mean"] == pytest.approx(0.7)
    assert table.loc["good", "std"] == pytest.approx(0.1)
    assert np.isnan(table.loc["bad", "mean"])
    assert s.chosen == "good" and list(s.table["candidate"]) == ["good", "base", "bad"]
    assert s.table["chosen"].tolist() == [True, False, False]
    assert "<- chosen" in s.lines()[1] and "(baseline)" in s.lines()[2]


def test_the_baseline_wins_ties_and_lower_is_better_metrics():
    splits = random_folds(10, 2)
    s = select_candidate(["a", "base"], lambda n, tr, te: 1.0, splits, baseline="base", metric="m")
    assert s.chosen == "base"
    s = select_candidate(
        ["a", "base"],
        lambda n, tr, te: 0.5 if n == "a" else 0.9,
        splits,
        baseline="base",
        metric="rmse",
        higher_is_better=False,
    )
    assert s.chosen == "a"


def _linear_world(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 3))
    return x, 2 * x[:, 0] - x[:, 1] + rng.normal(0, 0.3, 200)


def _score(x, y):
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    make = {
        "rf": lambda: RandomForestRegressor(50, random_state=0),
        "linear": LinearRegression,
        "constant": DummyRegressor,
    }

    def score(name, train, test):
        model = make[name]().fit(x[train], y[train])
        return r2(y[test], model.predict(x[test]))

    return score


def test_a_planted_better_candidate_is_chosen_and_the_baseline_when_others_are_noise():
    x, y = _linear_world(0)  # linear truth: the linear model beats the forest
    s = select_candidate(
        ["rf", "linear", "constant"], _score(x, y), random_folds(200), baseline="rf", metric="r2"
    )
    assert s.chosen == "linear"
    # candidates that are noise (predictions unrelated to the rows): the baseline is kept
    rng = np.random.default_rng(2)
    forest = _score(x, y)

    def score(name, train, test):
        if name == "rf":
            return forest("rf", train, test)
        return r2(y[test], rng.normal(y[train].mean(), y[train].std(), test.size))

    s = select_candidate(
        ["noise_a", "rf", "noise_b"], score, random_folds(200), baseline="rf", metric="r2"
    )
    assert s.chosen == "rf" and s.table.set_index("candidate").loc["rf", "mean"] > 0.5


def test_group_folds_hold_out_whole_groups_and_refuse_one_group():
    groups = ["a", "a", "b", "b", "c", "c", "d"]
    splits = group_folds(groups, n_splits=5)
    assert len(splits) == 4  # at most one fold per group
    for train, test in splits:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert sorted(np.concatenate([t for _, t in splits]).tolist()) == list(range(7))
    with pytest.raises(HumanscapeError, match="one group"):
        group_folds(["a"] * 5)
    with pytest.raises(HumanscapeError, match="too few"):
        random_folds(6, 5)
    with pytest.raises(HumanscapeError, match="not among the candidates"):
        select_candidate(["a"], lambda *a: 0.0, random_folds(10, 2), baseline="b", metric="r2")
