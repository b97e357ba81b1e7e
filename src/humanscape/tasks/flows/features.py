"""Node and pair features of a city for flow models (GMEL, Liu et al. 2020; Deep Gravity, Simini et al. 2021).

Node features are the city's own columns (census, POIs, image embeddings) plus descriptors every
city has from its polygons and population, chosen to transfer between cities:

- ``area_km2``; ``population_share`` = ``P_i / sum P`` (the region's weight in its city);
- ``centrality_km`` = ``sum_j P_j d_ij / sum_j P_j`` (population-weighted mean distance to the
  city, small in the centre) and ``centrality_rel`` = centrality over its city mean (centres
  attract commuters: Xu et al. 2025 discuss centrality and compactness as what drives transfer);
- ``city_regions`` and ``city_population`` (constant within a city: they set the flow volume).

All are standardised by :class:`~humanscape.data.standardise.Standardiser` (log1p for heavy tails,
z-scores fitted on the training cities, clipped to +-10).

Pair features (``i -> j``): the standardised features of ``i`` and of ``j``, ``log d_ij``,
``d_ij`` over the city's mean distance, whether ``i = j``, whether ``i`` and ``j`` share a
border, and ``log1p(s_ij)``, the population living closer to ``i`` than ``j`` does (the
*intervening opportunities* of the radiation model, Simini et al. 2012).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from humanscape.data.standardise import Standardiser
from humanscape.tasks.flows.cities import City

#: Names of the pair descriptors appended after the origin and destination features.
PAIR_COLUMNS = ("log_distance", "distance_rel", "same_region", "adjacent", "log_intervening")


def derived_features(city: City) -> pd.DataFrame:
    """Area, population share, centrality and city size of every region (see module docstring)."""
    pop = city.mass()
    weights = pop if pop.sum() > 0 else np.ones(city.n)
    centrality = city.distance_km @ weights / weights.sum()
    return pd.DataFrame(
        {
            "area_km2": city.area_km2,
            "population_share": weights / weights.sum(),
            "centrality_km": centrality,
            "centrality_rel": centrality / max(centrality.mean(), 1e-9),
            "city_regions": float(city.n),
            "city_population": float(pop.sum()),
        }
    )


def node_table(city: City) -> pd.DataFrame:
    """The city's features and the derived descriptors, one row per region."""
    return pd.concat([city.features.reset_index(drop=True), derived_features(city)], axis=1)


def fit_scaler(cities: list[City]) -> Standardiser:
    """A :class:`Standardiser` fitted on the node tables of ``cities`` pooled.

    Columns constant over the training regions are left out: they carry nothing to learn from,
    and a city-level column (``city_population``) is constant whenever one city is fitted on, so
    that its z-score in another city would be an arbitrary extreme.
    """
    table = pd.concat([node_table(c) for c in cities], ignore_index=True)
    varying = [c for c in table.columns if table[c].nunique(dropna=False) > 1]
    return Standardiser().fit(table[varying])


def node_features(city: City, scaler: Standardiser) -> np.ndarray:
    """``(N, F)`` float32 standardised node features of ``city``."""
    table = node_table(city)
    missing = [c for c in scaler.columns_ if c not in table.columns]
    if missing:
        from humanscape.errors import HumanscapeError

        raise HumanscapeError(
            f"regions lack {len(missing)} feature column(s) the model was fitted on "
            f"(first: {', '.join(missing[:3])})",
            path=city.source,
            fix="give the same feature columns (and --embeddings) as when fitting",
        )
    return scaler.transform(table)


def intervening_population(distance_km: np.ndarray, population: np.ndarray) -> np.ndarray:
    """``s_ij``: residents of the regions closer to ``i`` than ``j`` is, ``i`` and ``j`` excluded.

    ``s_ij = sum_{k != i, j : d_ik < d_ij} P_k`` (Simini et al. 2012, radiation model). Ties in
    distance count as not closer.
    """
    n = len(population)
    order = np.argsort(distance_km, axis=1, kind="stable")
    sorted_d = np.take_along_axis(distance_km, order, axis=1)
    sorted_p = population[order]
    cumulative = np.cumsum(sorted_p, axis=1) - sorted_p  # population strictly before in the order
    s = np.empty((n, n))
    for i in range(n):
        # first position whose distance equals d_ij: everything before is strictly closer
        first = np.searchsorted(sorted_d[i], sorted_d[i], side="left")
        closer = cumulative[i][first]
        s[i, order[i]] = closer
    own = population[:, None] * (np.diag(distance_km)[:, None] < distance_km)
    s -= own  # i itself is never intervening
    np.fill_diagonal(s, 0.0)
    return np.clip(s, 0, None)


def pair_descriptors(city: City) -> np.ndarray:
    """``(N * N, 5)`` float32 descriptors of every pair ``o -> d`` (row ``o * N + d``), see :data:`PAIR_COLUMNS`."""
    n = city.n
    d = city.distance_km
    mean_distance = d[~np.eye(n, dtype=bool)].mean() if n > 1 else 1.0
    s = intervening_population(d, city.mass())
    return np.column_stack(
        [
            np.log(np.maximum(d, 1e-3)).ravel(),
            (d / mean_distance).ravel(),
            np.eye(n).ravel(),
            city.adjacency.astype(np.float64).ravel(),
            np.log1p(s).ravel(),
        ]
    ).astype(np.float32)


def pair_features(city: City, nodes: np.ndarray) -> np.ndarray:
    """``(N * N, 2F + 5)`` float32: origin features, destination features, pair descriptors."""
    n = city.n
    return np.concatenate(
        [np.repeat(nodes, n, axis=0), np.tile(nodes, (n, 1)), pair_descriptors(city)], axis=1
    ).astype(np.float32)
