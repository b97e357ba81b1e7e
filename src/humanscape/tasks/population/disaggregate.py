"""Census counts of units (districts) spread over grid cells: dasymetric disaggregation.

Every method gives each cell ``c`` of unit ``u`` a weight ``w_c >= 0`` and people

    p_c = N_u * w_c / sum_{c' in u} w_c'                                          (1)

so that the cells of a unit sum **exactly** to its census count ``N_u``. A unit whose weights are
all zero falls back to its cells' valid area. Methods (the weights):

- ``areal``: areal weighting, ``w_c`` = the cell's valid area (uniform density within a unit).
- ``binary``: binary dasymetric mapping, ``w_c`` = the cell's built-up share (covariates).
- ``rf``: random-forest dasymetric mapping (Stevens et al. 2015, WorldPop): a random forest
  learns ``log density`` of the units, ``log((N_u + 1) / A_u)``, from the units' mean covariates
  (area-weighted); applied to each cell's covariates it gives ``w_c = exp(f(x_c)) a_c``.
- ``occupancy``: weakly supervised occupancy (after POPCORN, Metzger et al. 2024, which trains a
  network so that its cell densities sum to the unit counts): a log-linear density
  ``w_c = a_c exp(beta . z_c)`` on standardised covariates ``z``, fitted so that the log unit sums
  match the log counts,

      L(beta) = sum_u (log sum_{c in u} w_c - log(N_u + 1))^2 + lambda |beta|^2        (2)

  (a smooth problem in a handful of parameters, solved by L-BFGS with its exact gradient; it
  learns from as few as 8 units, where a forest on 8 rows cannot).

:func:`select_method` scores the methods by leave-units-out cross-validation: each method, fitted
on the other units, predicts the held-out units' totals (the sum of its cell densities times
area; areal weighting predicts the training units' mean density); the score is the root mean
squared error of ``log(1 + total)``. Lower is better; the best is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from humanscape.errors import HumanscapeError

METHODS = ("areal", "binary", "rf", "occupancy")


@dataclass
class Units:
    """Units burned onto the cells: ``unit`` (n_cells,) index into ``counts`` or -1 (no unit),
    ``area`` (n_cells,) valid area of each cell in km², ``counts`` (n_units,) census counts."""

    unit: np.ndarray
    area: np.ndarray
    counts: np.ndarray
    ids: list[str]

    def __post_init__(self) -> None:
        self.unit = np.asarray(self.unit, dtype=np.int64)
        self.area = np.asarray(self.area, dtype=np.float64)
        self.counts = np.asarray(self.counts, dtype=np.float64)
        if self.unit.shape != self.area.shape:
            raise HumanscapeError("unit index and cell areas differ in length")
        if not np.isfinite(self.counts).all() or (self.counts < 0).any():
            raise HumanscapeError(
                "unit counts must be finite and not negative", fix="check the count column"
            )
        if self.unit.max(initial=-1) >= len(self.counts):
            raise HumanscapeError("a cell points to a unit that does not exist")

    @property
    def n_units(self) -> int:
        return len(self.counts)

    def unit_area(self) -> np.ndarray:
        inside = self.unit >= 0
        return np.bincount(self.unit[inside], self.area[inside], self.n_units)

    def without_cells(self) -> list[str]:
        """Ids of units with people and no valid cell (their people cannot be placed)."""
        empty = (self.unit_area() <= 0) & (self.counts > 0)
        return [self.ids[i] for i in np.flatnonzero(empty)]


def redistribute(weights: np.ndarray, units: Units) -> np.ndarray:
    """Eq. 1: people per cell, summing exactly to each unit's count; NaN outside every unit."""
    w = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    inside = units.unit >= 0
    idx = units.unit[inside]
    total = np.bincount(idx, w[inside], units.n_units)
    # a unit without weight falls back to areal weighting
    fallback = total[idx] <= 0
    w_in = np.where(fallback, units.area[inside], w[inside])
    total = np.bincount(idx, w_in, units.n_units)
    out = np.full(weights.shape, np.nan)
    share = np.divide(w_in, total[idx], out=np.zeros_like(w_in), where=total[idx] > 0)
    out[inside] = units.counts[idx] * share
    return out


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covariates standardised over the valid cells of the scene (NaN -> 0, the mean)."""
    mean = np.nanmean(x, axis=0)
    std = np.nanstd(x, axis=0)
    std = np.where(std > 0, std, 1.0)
    z = (x - mean) / std
    return np.nan_to_num(z, nan=0.0), mean, std


def occupancy_loss(
    beta: np.ndarray, z: np.ndarray, units: Units, lam: float
) -> tuple[float, np.ndarray]:
    """Eq. 2 and its gradient; ``beta[0]`` is the intercept (not penalised)."""
    inside = units.unit >= 0
    idx, a, zi = units.unit[inside], units.area[inside], z[inside]
    design = np.column_stack([np.ones(len(zi)), zi])
    eta = np.clip(design @ beta, -30, 30)
    w = a * np.exp(eta)
    total = np.bincount(idx, w, units.n_units)
    keep = total > 0
    residual = np.zeros(units.n_units)
    residual[keep] = np.log(total[keep]) - np.log1p(units.counts[keep])
    penalty = lam * float((beta[1:] ** 2).sum())
    loss = float((residual**2).sum()) + penalty
    # d log total_u / d beta = sum_c w_c x_c / total_u
    share = np.divide(w, total[idx], out=np.zeros_like(w), where=total[idx] > 0)
    grad = 2 * (design * (residual[idx] * share)[:, None]).sum(axis=0)
    grad[1:] += 2 * lam * beta[1:]
    return loss, grad


@dataclass
class Disaggregator:
    """One method, fitted on the units of a scene; :meth:`weights` for any cells."""

    method: str = "occupancy"
    lam: float = 1.0
    n_estimators: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HumanscapeError(
                f"unknown disaggregation method '{self.method}'",
                fix=f"use one of {', '.join(METHODS)}",
            )

    def fit(self, covariates: np.ndarray, units: Units, names: Sequence[str]) -> Disaggregator:
        self.names_ = list(names)
        x = np.asarray(covariates, dtype=np.float64)
        z, self.mean_, self.std_ = standardise(x)
        inside = units.unit >= 0
        if self.method == "areal":
            self.density_ = float(units.counts.sum() / max(units.unit_area().sum(), 1e-12))
        elif self.method == "occupancy":
            start = np.zeros(z.shape[1] + 1)
            start[0] = np.log((units.counts.sum() + 1) / max(units.area[inside].sum(), 1e-12))
            result = minimize(
                occupancy_loss, start, args=(z, units, self.lam), jac=True, method="L-BFGS-B"
            )
            self.beta_ = result.x
        elif self.method == "rf":
            from sklearn.ensemble import RandomForestRegressor

            area = units.unit_area()
            usable = area > 0
            mean_z = np.zeros((units.n_units, z.shape[1]))
            for j in range(z.shape[1]):
                mean_z[:, j] = np.bincount(
                    units.unit[inside], z[inside, j] * units.area[inside], units.n_units
                )
            mean_z[usable] /= area[usable, None]
            target = np.log((units.counts[usable] + 1) / area[usable])
            self.forest_ = RandomForestRegressor(
                self.n_estimators, min_samples_leaf=1, random_state=self.seed
            ).fit(mean_z[usable], target)
        return self

    def density(self, covariates: np.ndarray) -> np.ndarray:
        """People per km² of each cell before the rescaling of eq. 1."""
        x = np.asarray(covariates, dtype=np.float64)
        z = np.nan_to_num((x - self.mean_) / self.std_, nan=0.0)
        if self.method == "areal":
            return np.full(len(x), self.density_)
        if self.method == "binary":
            built = x[:, self.names_.index("built_share")]
            return np.nan_to_num(built, nan=0.0)
        if self.method == "occupancy":
            eta = np.clip(self.beta_[0] + z @ self.beta_[1:], -30, 30)
            return np.exp(eta)
        return np.exp(self.forest_.predict(z))

    def weights(self, covariates: np.ndarray, area: np.ndarray) -> np.ndarray:
        return self.density(covariates) * np.asarray(area, dtype=np.float64)


def predicted_totals(model: Disaggregator, covariates: np.ndarray, units: Units) -> np.ndarray:
    """Each unit's people as the method predicts them before eq. 1 (density x area, summed)."""
    w = model.weights(covariates, units.area)
    inside = units.unit >= 0
    return np.bincount(units.unit[inside], w[inside], units.n_units)


def select_method(
    covariates: np.ndarray,
    units: Units,
    names: Sequence[str],
    *,
    methods: Sequence[str] = ("areal", "rf", "occupancy"),
    folds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Leave-units-out RMSE of ``log(1 + total)`` for each method (see the module docstring).

    ``binary`` predicts no totals (its weights are shares, not densities) and is not scored."""
    rng = np.random.default_rng(seed)
    n = units.n_units
    k = max(2, min(folds, n))
    fold = rng.permutation(n) % k
    scores: dict[str, float] = {}
    for method in methods:
        errors = np.zeros(n)
        for f in range(k):
            held = fold == f
            train = _subset(units, ~held)
            model = Disaggregator(method, seed=seed).fit(covariates, train, names)
            total = predicted_totals(model, covariates, units)
            errors[held] = np.log1p(total[held]) - np.log1p(units.counts[held])
        scores[method] = float(np.sqrt(np.mean(errors**2)))
    return scores


def _subset(units: Units, keep: np.ndarray) -> Units:
    """The units of ``keep`` (bool over units), renumbered; cells of the others leave every unit."""
    new_index = np.full(units.n_units, -1)
    new_index[keep] = np.arange(int(keep.sum()))
    unit = np.where(units.unit >= 0, new_index[np.maximum(units.unit, 0)], -1)
    ids = [i for i, k in zip(units.ids, keep, strict=True) if k]
    return Units(unit, units.area, units.counts[keep], ids)
