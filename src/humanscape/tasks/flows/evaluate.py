"""Transfer to unseen cities: leave-cities-out folds and their per-city scores.

The users' question is "what are the flows of a city with no survey?", so the honest score of a
flow model is measured on cities it never saw: the cities are split into ``k`` folds, a model is
fitted on the other folds' cities and scored on each city of the held-out fold
(:func:`city_folds`, :func:`transfer`). No held-out city's flows, features or margins enter the
fit (the feature scaler and the margin model are fitted inside the fold).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError
from humanscape.evaluate.flows import cpc, flow_metrics
from humanscape.tasks.flows.cities import City
from humanscape.tasks.flows.model import FlowModel


def city_folds(n_cities: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` folds of ``n_cities``: ``(train, test)`` index arrays; the test sets partition the cities."""
    if not 2 <= k <= n_cities:
        raise HumanscapeError(
            f"{k} folds for {n_cities} cities", fix="use 2 <= folds <= the number of cities"
        )
    order = np.random.default_rng(seed).permutation(n_cities)
    folds = []
    for test in np.array_split(order, k):
        train = np.setdiff1d(np.arange(n_cities), test)
        folds.append((train, np.sort(test)))
    return folds


def transfer(
    cities: list[City],
    make: Callable[[], FlowModel],
    *,
    k: int = 4,
    seed: int = 0,
    margins: str = "estimated",
    observed_margins: bool = False,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Leave-cities-out scores: one row per held-out city (``fold``, ``city``, metrics, ``fit_s``).

    With ``observed_margins`` (models that need margins), the same fitted model is also scored
    with the held-out city's observed margins (column ``cpc_observed_margins``). ``predictions``,
    when given, receives each held-out city's predicted matrix by city name.
    """
    rows = []
    for fold, (train, test) in enumerate(city_folds(len(cities), k, seed)):
        model = make()
        start = time.perf_counter()
        model.fit([cities[i] for i in train], progress=progress)
        seconds = time.perf_counter() - start
        for i in test:
            city = cities[i]
            assert city.flows is not None
            predicted = model.predict(city, margins=margins)
            scores = flow_metrics(city.flows, predicted)
            if observed_margins and model.needs_margins:
                scores["cpc_observed_margins"] = cpc(
                    city.flows, model.predict(city, margins="observed")
                )
            if predictions is not None:
                predictions[city.name] = predicted
            rows.append(
                {"fold": fold, "city": city.name, "regions": city.n, **scores, "fit_s": seconds}
            )
            if report is not None:
                report(f"{model.label} fold {fold} {city.name}: CPC {scores['cpc']:.3f}")
    return pd.DataFrame(rows)
