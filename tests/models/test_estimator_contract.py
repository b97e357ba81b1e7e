"""One contract for every task model (humanscape.models.estimator.TaskModel), run over all of them.

For each model: scikit-learn's estimator API (clone, parameters round trip, ``fit`` returns self,
unfitted use refused), one folder format (``config.json`` with ``kind: humanscape.<task>``,
params, state, versions; strict JSON), and ``save`` -> ``load`` (by its class and through the
registry) -> identical predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.validation import check_is_fitted

from humanscape.data import samples
from humanscape.errors import HumanscapeError
from humanscape.models.estimator import NotFittedError, TaskModel
from humanscape.tasks.registry import MODELS, load_model


@dataclass
class Case:
    """A tiny model, its training data, and how to ask it for predictions."""

    model: TaskModel
    fit: Callable[[TaskModel], TaskModel]
    predict: Callable[[TaskModel], np.ndarray]


def _chips(n: int = 24, bands: int = 4, side: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.05 + 0.3 * rng.random((n, bands, side, side))).astype(np.float32)


def _settlements() -> Case:
    from humanscape.tasks.settlements.model import SettlementClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = (X["a"] + 0.3 * rng.normal(size=80) > 0).astype(int).to_numpy()
    return Case(
        SettlementClassifier("hgb", max_iter=5),
        lambda m: m.fit(X, y),
        lambda m: m.predict_proba(X)[:, 1],
    )


def _population() -> Case:
    from humanscape.tasks.population.model import PopulationModel

    images = _chips()
    population = np.round(1000 * images[:, 3].mean(axis=(1, 2)))
    locations = np.stack([np.arange(24) * 60_000.0, np.zeros(24)], axis=1)
    model = PopulationModel(
        method="features", bands=("B02", "B03", "B04", "B08"), feature_bands=None
    )
    return Case(
        model,
        lambda m: m.fit(images, population, locations=locations, progress=False),
        lambda m: m.predict(images),
    )


def _disaggregation() -> Case:
    from humanscape.tasks.population.disaggregate import Disaggregator, Units

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    unit = np.repeat(np.arange(20), 10)
    units = Units(
        unit, np.ones(200), np.bincount(unit, np.exp(x[:, 0]) * 10), list("abcdefghijklmnopqrst")
    )
    return Case(
        Disaggregator("rf", n_estimators=10),
        lambda m: m.fit(x, units, ["a", "b"]),
        lambda m: m.predict(x),
    )


def _score_model() -> Any:
    from humanscape.tasks.economy.score import ScoreModel

    images = _chips(30)
    levels = np.arange(30) % 3
    return ScoreModel(arch="resnet18_half", epochs=1, batch_size=8), images, levels


def _score() -> Case:
    model, images, levels = _score_model()
    return Case(
        model,
        lambda m: m.fit(images, levels, progress=False),
        lambda m: m.predict(images),
    )


def _economy() -> Case:
    from humanscape.tasks.economy.district import DistrictTiles
    from humanscape.tasks.economy.model import EconomyModel

    score, images, levels = _score_model()
    score.fit(images, levels, progress=False)
    X = DistrictTiles(images, np.arange(30) % 6, [f"d{k}" for k in range(6)])
    y = np.arange(6) * 100.0 + 50
    model = EconomyModel(n_clusters=(0,), encoder_epochs=1, n_estimators=5, augment=False)
    return Case(
        model,
        lambda m: m.fit(X, y, score_model=score, labelled=(images, levels), progress=False),
        lambda m: m.predict(X),
    )


def _migration() -> Case:
    from humanscape.tasks.migration.model import MigrationModel
    from humanscape.tasks.migration.table import CensusTable

    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(60, 3)), columns=["pop", "income", "age"])
    y = np.round(np.exp(2 + features["pop"].to_numpy()))
    table = CensusTable(pd.Series([f"m{i}" for i in range(60)]), features, y)
    return Case(
        MigrationModel("hgb", n_estimators=10),
        lambda m: m.fit(table),
        lambda m: m.predict(table),
    )


def _flows() -> Case:
    from humanscape.tasks.flows.cities import read_commuting_od
    from humanscape.tasks.flows.model import FlowModel

    city = read_commuting_od(samples.commuting_od("36093"))
    return Case(FlowModel("gravity"), lambda m: m.fit([city]), lambda m: m.predict(city))


CASES = {
    "humanscape.settlements": _settlements,
    "humanscape.population": _population,
    "humanscape.population.disaggregation": _disaggregation,
    "humanscape.economy.score": _score,
    "humanscape.economy": _economy,
    "humanscape.migration": _migration,
    "humanscape.flows": _flows,
}


def test_every_registered_model_is_under_contract():
    assert set(CASES) == set(MODELS)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request) -> Case:
    return CASES[request.param]()


def test_clone_and_parameters_round_trip(case):
    model = case.model
    params = model.get_params()
    copy = clone(model)
    assert copy is not model and copy.get_params() == params
    rebuilt = type(model)(**params)
    assert rebuilt.get_params() == params
    assert model.set_params(seed=model.get_params()["seed"]) is model


def test_unfitted_use_is_refused(case):
    fresh = clone(case.model)
    with pytest.raises(SklearnNotFittedError):
        check_is_fitted(fresh)
    with pytest.raises(NotFittedError, match="is not fitted"):
        case.predict(fresh)
    with pytest.raises(HumanscapeError, match="call fit first"):
        fresh.save("never-written")


def test_fit_returns_self_and_a_saved_model_predicts_the_same(case, tmp_path):
    model = clone(case.model)
    assert case.fit(model) is model
    check_is_fitted(model)
    before = np.asarray(case.predict(model))
    folder = model.save(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())  # strict JSON: no NaN / Infinity
    assert "NaN" not in (folder / "config.json").read_text()
    assert config["kind"] == model.kind and config["kind"].startswith("humanscape.")
    assert config["params"] == json.loads(json.dumps(model.get_params(), default=str))
    assert {"humanscape", "sklearn"} <= set(config["versions"])
    assert (folder / ".humanscape.json").exists()
    again = type(model).load(folder)
    np.testing.assert_allclose(np.asarray(case.predict(again)), before, rtol=1e-5, atol=1e-8)
    through_registry = load_model(folder)
    assert type(through_registry) is type(model)
    np.testing.assert_allclose(
        np.asarray(case.predict(through_registry)), before, rtol=1e-5, atol=1e-8
    )


def test_a_folder_of_another_kind_is_refused(case, tmp_path):
    other = _flows() if case.model.kind == "humanscape.settlements" else _settlements()
    folder = other.fit(other.model).save(tmp_path / "other")
    with pytest.raises(HumanscapeError, match=f"holds a model of kind '{other.model.kind}'"):
        type(case.model).load(folder)
