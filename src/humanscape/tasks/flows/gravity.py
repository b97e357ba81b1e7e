"""Classic spatial-interaction baselines: gravity (unconstrained, singly and doubly constrained) and radiation.

Notation: ``T_ij`` flow from origin ``i`` to destination ``j``, ``m_i`` residents (mass; the
laws use ``log m`` as ``log(1 + m)`` so that an empty region stays finite),
``d_ij`` distance (km, intra-zonal distance on the diagonal), ``f(d) = log d`` (power law) or
``f(d) = d`` (exponential law), ``O_i = sum_j T_ij`` and ``D_j = sum_i T_ij`` the margins.

- **Unconstrained gravity** (Zipf 1946; Wilson 1971):
  ``log E[T_ij] = k + a log m_i + b log m_j - g f(d_ij) + c [i = j]``.
- **Singly (production) constrained**: ``T_ij = O_i exp(b log m_j - g f(d_ij) + c [i = j]) /
  sum_k exp(b log m_k - g f(d_ik) + c [i = k])``.
- **Doubly constrained**: ``T_ij = A_i O_i B_j D_j exp(-g f(d_ij) + c [i = j])``, with
  ``A_i, B_j`` balancing factors found by iterative proportional fitting (Furness 1965).

All three are fitted as Poisson GLMs (the maximum likelihood of Flowerdew & Aitkin 1982): the
constrained forms by origin (and destination) fixed effects, whose maximum likelihood reproduces
the observed margins exactly. Parameters ``a, b, g, c`` are shared across the training cities.

- **Radiation model** (Simini et al. 2012), parameter free, with the finite-size correction of
  Masucci et al. (2013): ``T_ij = O_i / (1 - m_i / M) * m_i m_j / ((m_i + s_ij)(m_i + m_j + s_ij))``
  for ``j != i``, ``s_ij`` the residents of the regions closer to ``i`` than ``j`` is, ``M`` the
  city's residents; the radiation model has no intra-region flow (``T_ii = 0``).

In a city with no survey the margins ``O_i``, ``D_j`` are unknown: :class:`MarginModel` predicts
them from the regions' features (Poisson gradient boosting, trained on the training cities'
margins). When a planner knows them (census counts of workers by residence and jobs by workplace)
they can be given instead (``margins="observed"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import PoissonRegressor

from humanscape.errors import HumanscapeError
from humanscape.tasks.flows.cities import City
from humanscape.tasks.flows.features import intervening_population

DETERRENCES = ("power", "exponential")


def deterrence(distance_km: np.ndarray, law: str) -> np.ndarray:
    """``f(d)``: ``log d`` for the power law, ``d`` for the exponential law."""
    if law == "power":
        return np.log(np.maximum(distance_km, 1e-3))
    if law == "exponential":
        return np.asarray(distance_km, np.float64)
    raise HumanscapeError(f"unknown deterrence '{law}'", fix=f"use one of {', '.join(DETERRENCES)}")


def _poisson(x: Any, y: np.ndarray, *, intercept: bool) -> PoissonRegressor:
    model = PoissonRegressor(
        alpha=0.0, fit_intercept=intercept, solver="lbfgs", max_iter=3000, tol=1e-8
    )
    return model.fit(x, y)


def _minimise(loss: Any, start: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    result = minimize(loss, start, method="L-BFGS-B", options={"maxiter": 500})
    return np.asarray(result.x, np.float64)


def _pairs(city: City, law: str) -> dict[str, np.ndarray]:
    n = city.n
    m = np.log1p(city.mass())
    return {
        "log_mass_o": np.repeat(m, n),
        "log_mass_d": np.tile(m, n),
        "f": deterrence(city.distance_km, law).ravel(),
        "same": np.eye(n).ravel(),
    }


class Gravity:
    """Gravity model fitted as a Poisson GLM (see module docstring).

    Parameters
    ----------
    constraint
        ``"none"``, ``"production"`` (singly constrained) or ``"doubly"``.
    law
        ``"power"`` (``d^-g``) or ``"exponential"`` (``exp(-g d)``).
    """

    def __init__(self, constraint: str = "none", law: str = "power") -> None:
        if constraint not in ("none", "production", "doubly"):
            raise HumanscapeError(
                f"unknown gravity constraint '{constraint}'", fix="use none, production or doubly"
            )
        deterrence(np.ones(1), law)  # refuses an unknown law
        self.constraint = constraint
        self.law = law

    def fit(self, cities: list[City], masks: list[np.ndarray] | None = None) -> Gravity:
        """Fit on the (masked) pairs of ``cities``; ``masks`` are ``(N, N)`` bool of pairs to use.

        Unconstrained: a Poisson GLM (scikit-learn). Constrained: the same likelihood with the
        origin (and destination) fixed effects profiled out, which is equivalent and much faster:
        production-constrained = multinomial logit over each origin's destinations; doubly
        constrained = Poisson likelihood of the Furness-balanced matrix (both maximised over the
        2-3 shared parameters with scipy).
        """
        data = []
        for k, city in enumerate(cities):
            if city.flows is None:
                raise HumanscapeError("no observed flows to fit on", path=city.source)
            keep = np.ones((city.n, city.n), bool) if masks is None else np.asarray(masks[k], bool)
            data.append((city, keep, _pairs(city, self.law)))
        if self.constraint == "none":
            x = np.concatenate(
                [
                    np.column_stack([p["log_mass_o"], p["log_mass_d"], p["f"], p["same"]])[
                        keep.ravel()
                    ]
                    for _, keep, p in data
                ]
            )
            y = np.concatenate([c.flows.ravel()[keep.ravel()] for c, keep, _ in data])  # type: ignore[union-attr]
            glm = _poisson(x, y, intercept=True)
            a, b, g, c = (float(v) for v in glm.coef_)
            self.params_ = {
                "a_origin_mass": a,
                "b_destination_mass": b,
                "gamma": -g,
                "c_same_region": c,
            }
            self.intercept_ = float(glm.intercept_)
            return self
        self.intercept_ = 0.0
        if self.constraint == "production":

            def loss(theta: np.ndarray) -> float:
                b, g, c = theta
                total = 0.0
                for city, keep, p in data:
                    eta = (b * p["log_mass_d"] - g * p["f"] + c * p["same"]).reshape(city.n, city.n)
                    eta = np.where(keep, eta, -np.inf)
                    top = eta.max(axis=1, keepdims=True)
                    top = np.where(np.isfinite(top), top, 0.0)
                    lse = np.log(np.exp(eta - top).sum(axis=1, keepdims=True)) + top
                    t = np.where(keep, city.flows, 0.0)  # type: ignore[arg-type]
                    total -= float((t * np.where(keep, eta - lse, 0.0)).sum())
                return total

            theta = _minimise(loss, np.array([0.5, 1.0, 0.0]))
            self.params_ = dict(
                zip(
                    ("b_destination_mass", "gamma", "c_same_region"), map(float, theta), strict=True
                )
            )
            return self

        def deviance(theta: np.ndarray) -> float:
            g, c = theta
            total = 0.0
            for city, keep, p in data:
                t = np.where(keep, city.flows, 0.0)  # type: ignore[arg-type]
                seed = np.where(
                    keep, np.exp((-g * p["f"] + c * p["same"]).reshape(city.n, city.n)), 0.0
                )
                mu = furness(seed, t.sum(axis=1), t.sum(axis=0), iterations=200, tol=1e-6)
                total += float((mu - t * np.log(np.maximum(mu, 1e-300)))[keep].sum())
            return total

        theta = _minimise(deviance, np.array([1.0, 0.0]))
        self.params_ = {"gamma": float(theta[0]), "c_same_region": float(theta[1])}
        return self

    def predict(
        self,
        city: City,
        origin_totals: np.ndarray | None = None,
        destination_totals: np.ndarray | None = None,
    ) -> np.ndarray:
        """``(N, N)`` expected flows; constrained forms need the margins (see :class:`MarginModel`)."""
        p = _pairs(city, self.law)
        n, q = city.n, self.params_
        kernel = -q["gamma"] * p["f"] + q["c_same_region"] * p["same"]
        if self.constraint == "none":
            eta = (
                self.intercept_
                + q["a_origin_mass"] * p["log_mass_o"]
                + q["b_destination_mass"] * p["log_mass_d"]
                + kernel
            )
            return np.exp(eta).reshape(n, n)
        if origin_totals is None:
            raise HumanscapeError("a constrained gravity model needs origin totals")
        if self.constraint == "production":
            eta = (q["b_destination_mass"] * p["log_mass_d"] + kernel).reshape(n, n)
            share = np.exp(eta - eta.max(axis=1, keepdims=True))
            share /= share.sum(axis=1, keepdims=True)
            return origin_totals[:, None] * share
        if destination_totals is None:
            raise HumanscapeError("a doubly constrained gravity model needs destination totals")
        return furness(np.exp(kernel.reshape(n, n)), origin_totals, destination_totals)


def furness(
    seed: np.ndarray,
    origin_totals: np.ndarray,
    destination_totals: np.ndarray,
    *,
    iterations: int = 500,
    tol: float = 1e-8,
) -> np.ndarray:
    """Iterative proportional fitting (Furness 1965): scale rows and columns of ``seed`` to the margins.

    Destination totals are first rescaled to sum to the origin totals. Rows or columns whose seed
    is all zero stay zero.
    """
    o = np.asarray(origin_totals, np.float64)
    d = np.asarray(destination_totals, np.float64)
    d = d * (o.sum() / d.sum()) if d.sum() > 0 else d
    t = np.asarray(seed, np.float64).copy()
    for _ in range(iterations):
        rows = t.sum(axis=1)
        t *= np.divide(o, rows, out=np.zeros_like(o), where=rows > 0)[:, None]
        cols = t.sum(axis=0)
        t *= np.divide(d, cols, out=np.zeros_like(d), where=cols > 0)[None, :]
        if np.abs(t.sum(axis=1) - o).max() <= tol * max(o.max(), 1.0):
            break
    return t


def radiation(city: City, origin_totals: np.ndarray) -> np.ndarray:
    """Radiation-model flows ``(N, N)`` with the finite-size correction (module docstring)."""
    m = city.mass()
    s = intervening_population(city.distance_km, m)
    big_m = m.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        p = m[:, None] * m[None, :] / ((m[:, None] + s) * (m[:, None] + m[None, :] + s))
        p = np.nan_to_num(p) / np.maximum(1 - m / big_m, 1e-9)[:, None]
    np.fill_diagonal(p, 0.0)
    return origin_totals[:, None] * p


class MarginModel:
    """Origin and destination totals ``O_i``, ``D_j`` from node features (Poisson gradient boosting)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _model(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=300,
            learning_rate=0.05,
            min_samples_leaf=20,
            l2_regularization=1.0,
            random_state=self.seed,
        )

    def fit(self, nodes: list[np.ndarray], cities: list[City]) -> MarginModel:
        x = np.concatenate(nodes)
        out = np.concatenate([c.flows.sum(axis=1) for c in cities])  # type: ignore[union-attr]
        into = np.concatenate([c.flows.sum(axis=0) for c in cities])  # type: ignore[union-attr]
        self.origin_ = self._model().fit(x, out)
        self.destination_ = self._model().fit(x, into)
        return self

    def predict(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.origin_.predict(nodes), self.destination_.predict(nodes)
