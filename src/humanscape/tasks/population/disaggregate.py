"""Census counts of units (districts) spread over grid cells: dasymetric disaggregation.

Every method gives each cell ``c`` of unit ``u`` a weight ``w_c >= 0`` and people

    p_c = N_u * w_c / sum_{c' in u} w_c'                                          (1)

so that the cells of a unit sum **exactly** to its census count ``N_u``. A unit whose weights are
all zero falls back to its cells' valid area. Methods (the weights):

- ``areal``: areal weighting, ``w_c`` = the cell's valid area (uniform density within a unit).
- ``binary``: binary dasymetric mapping, ``w_c = a_c (s_c + floor)``, ``s_c`` the cell's share
  under the given land-use classes (``landuse_share``, e.g. OSM residential) or else its built-up
  share from the imagery; ``floor`` keeps people outside the mask (farms, unmapped houses).
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

:func:`select_method` scores candidates by **blocks of blocks**, an allocation check the units
allow: neighbouring units are grouped (k-means of their centroids, about four a group), each
candidate, fitted on the units of the other groups (leave one group out), spreads a group's count
over its units, and the score is the share of people misplaced, ``sum_u |N_u_hat - N_u| / (2 sum_u
N_u)`` (the RMSE of ``log(1 + unit count)`` is reported beside it). That scores what a method does
(the allocation within a unit), one level up. ``auto`` weighs ``areal``, ``binary`` (floors 0.01
and 0.1) and ``rf``; ``occupancy`` only by name (on Berlin it ranked with the forest on unit
totals but placed people within units far worse). The best candidate
replaces areal weighting only when it improves on it by ``MARGIN`` (10 %): with a handful of units
the check is noisy, and the baseline is the safe default.

:func:`interval_halfwidth` turns the same check into a 90 % band per cell. The allocation errors
of the units (``m_1`` cells each, in ``log(1 + people)``) give a split-conformal quantile ``q_1``
and an RMSE ``s_1``; groups of groups give ``s_2`` for children of ``m_2`` cells, and the decay of
the error with size, ``s(m) = s_1 (m / m_1)^(-gamma / 2)``, extrapolates to one cell:

    q_cell = q_1 * m_1^(gamma / 2),  gamma = clip(2 log(s_1 / s_2) / log(m_2 / m_1), 0, 1)   (3)

(``gamma = 1``: independent cell errors; ``0``: errors shared by a unit's cells). Measuring
``gamma`` takes ``MIN_UNITS_FOR_BAND`` units (8 groups of 4, 2 groups of groups); with fewer the
band is not written (a guess of ``gamma`` moved coverage on Berlin from 0.43 to 0.99). A cell's
band is ``expm1(log1p(p_c) -+ q_cell)``, the lower end clipped at 0 people.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from humanscape.errors import HumanscapeError
from humanscape.models.estimator import TaskModel

METHODS = ("areal", "binary", "rf", "occupancy")
MARGIN = 0.1  # relative improvement over areal weighting a candidate needs to be chosen
GROUP_SIZE = 4  # units per group in the blocks-of-blocks check


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


REFIT = "population disaggregate --save-model DIR"


class Disaggregator(TaskModel):
    """One method, fitted on the units of a scene; :meth:`weights` for the cells of any scene.

    A model folder (kind ``humanscape.population.disaggregation``) keeps the method, the
    covariate names and their standardisation, the forest (skops) and the band half-width of
    eq. 3, so that a fitted model maps a neighbouring scene (``--model``)."""

    kind = "humanscape.population.disaggregation"
    what = "disaggregation model"
    refit = REFIT
    fitted_attribute = "names_"

    def __init__(
        self,
        method: str = "rf",
        *,
        floor: float = 0.05,
        lam: float = 1.0,
        n_estimators: int = 300,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.floor = floor
        self.lam = lam
        self.n_estimators = n_estimators
        self.seed = seed
        self._validate_params()

    def _validate_params(self) -> None:
        if self.method not in METHODS:
            raise HumanscapeError(
                f"unknown disaggregation method '{self.method}'",
                fix=f"use one of {', '.join(METHODS)}",
            )
        if not self.floor >= 0:
            raise HumanscapeError(f"floor must be >= 0, got {self.floor}")

    def fit(self, covariates: np.ndarray, units: Units, names: Sequence[str] = ()) -> Disaggregator:
        """Learn the method's density from ``units`` (``names``: the covariates' columns)."""
        self._validate_params()
        x = np.asarray(covariates, dtype=np.float64)
        names = list(names) or [f"x{i}" for i in range(x.shape[1])]
        if len(names) != x.shape[1]:
            raise HumanscapeError(f"{len(names)} names for {x.shape[1]} covariates")
        z, self.mean_, self.std_ = standardise(x)
        inside = units.unit >= 0
        if self.method == "areal":
            self.density_ = float(units.counts.sum() / max(units.unit_area().sum(), 1e-12))
        elif self.method == "binary" and not {"landuse_share", "built_share"} & set(names):
            raise HumanscapeError(
                "binary dasymetric mapping needs a landuse_share or built_share covariate"
            )
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
        self.names_ = names
        return self

    def check_covariates(self, names: Sequence[str]) -> None:
        """Refuse covariates other than those the model was fitted on, naming what is missing."""
        self.check_fitted()
        missing = [n for n in self.names_ if n not in names]
        if missing or len(names) != len(self.names_):
            raise HumanscapeError(
                f"the model was fitted on the covariates {', '.join(self.names_)}; these cells "
                f"have {', '.join(names)}"
                + (f" (missing: {', '.join(missing)})" if missing else ""),
                fix="give the same inputs as at fit (--landuse for landuse_share)",
            )

    def halfwidth_or_none(self) -> float | None:
        """The band half-width of eq. 3 measured at fit (None: too few units to measure it)."""
        return getattr(self, "halfwidth_", None)

    @property
    def has_density(self) -> bool:
        """Whether :meth:`density` is people per km² (binary weights are only relative)."""
        return self.method != "binary"

    def density(self, covariates: np.ndarray) -> np.ndarray:
        """People per km² of each cell before the rescaling of eq. 1 (binary: a relative weight)."""
        self.check_fitted()
        x = np.asarray(covariates, dtype=np.float64)
        z = np.nan_to_num((x - self.mean_) / self.std_, nan=0.0)
        if self.method == "areal":
            return np.full(len(x), self.density_)
        if self.method == "binary":
            mask = "landuse_share" if "landuse_share" in self.names_ else "built_share"
            return np.nan_to_num(x[:, self.names_.index(mask)], nan=0.0) + self.floor
        if self.method == "occupancy":
            eta = np.clip(self.beta_[0] + z @ self.beta_[1:], -30, 30)
            return np.exp(eta)
        return np.exp(self.forest_.predict(z))

    def weights(self, covariates: np.ndarray, area: np.ndarray) -> np.ndarray:
        return self.density(covariates) * np.asarray(area, dtype=np.float64)

    def predict(self, covariates: np.ndarray) -> np.ndarray:
        """:meth:`density` (the contract's point estimate: people per km²)."""
        return self.density(covariates)

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        state: dict[str, Any] = {
            "names": self.names_,
            "mean": self.mean_,
            "std": self.std_,
            "halfwidth": getattr(self, "halfwidth_", None),
        }
        if self.method == "areal":
            state["density"] = self.density_
        elif self.method == "occupancy":
            state["beta"] = self.beta_
        elif self.method == "rf":
            import skops.io as sio

            sio.dump(self.forest_, folder / "model.skops")
        return state

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        self.names_ = list(state["names"])
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.std_ = np.asarray(state["std"], dtype=np.float64)
        if state.get("halfwidth") is not None:
            self.halfwidth_ = float(state["halfwidth"])
        if self.method == "areal":
            self.density_ = float(state["density"])
        elif self.method == "occupancy":
            self.beta_ = np.asarray(state["beta"], dtype=np.float64)
        elif self.method == "rf":
            from humanscape.models.sklearn_io import load_skops

            trusted = ["numpy.dtype", "sklearn.tree._tree.Tree"]
            self.forest_ = load_skops(folder / "model.skops", trusted=trusted, refit=REFIT)


def predicted_totals(model: Disaggregator, covariates: np.ndarray, units: Units) -> np.ndarray:
    """Each unit's people as the method predicts them before eq. 1 (density x area, summed)."""
    w = model.weights(covariates, units.area)
    inside = units.unit >= 0
    return np.bincount(units.unit[inside], w[inside], units.n_units)


@dataclass(frozen=True)
class Candidate:
    """A method and its settings, as :func:`select_method` compares them."""

    method: str
    floor: float = 0.05

    @property
    def label(self) -> str:
        return f"binary(floor={self.floor:g})" if self.method == "binary" else self.method

    def model(self, seed: int = 0) -> Disaggregator:
        return Disaggregator(self.method, floor=self.floor, seed=seed)


#: the candidates of ``--method auto``. The occupancy model is asked for by name: it scores well
#: one level up but extrapolates to cells more extreme than any unit mean (docs/benchmarks.md).
AUTO = (
    Candidate("areal"),
    Candidate("binary", 0.01),
    Candidate("binary", 0.1),
    Candidate("rf"),
)
#: units a band needs: groups of groups (eq. 3) from 8 groups of 4
MIN_UNITS_FOR_BAND = 2 * GROUP_SIZE * GROUP_SIZE


def unit_centroids(units: Units, n_cols: int) -> np.ndarray:
    """``(n_units, 2)`` mean (row, col) of each unit's cells on a grid ``n_cols`` wide."""
    inside = units.unit >= 0
    rows, cols = np.divmod(np.flatnonzero(inside), n_cols)
    n = np.maximum(np.bincount(units.unit[inside], minlength=units.n_units), 1)
    return np.column_stack(
        [
            np.bincount(units.unit[inside], rows, units.n_units) / n,
            np.bincount(units.unit[inside], cols, units.n_units) / n,
        ]
    )


def group_units(centroids: np.ndarray, size: int = GROUP_SIZE, seed: int = 0) -> np.ndarray:
    """Neighbouring units in groups of about ``size`` (k-means of the centroids); group per unit."""
    from sklearn.cluster import KMeans

    if len(centroids) < 2 * 2:
        return np.zeros(len(centroids), dtype=np.int64)  # one group: the whole scene
    k = max(2, len(centroids) // size)
    return KMeans(k, n_init=10, random_state=seed).fit_predict(centroids)


def coarsen(units: Units, groups: np.ndarray) -> Units:
    """The groups as units: their counts the sums of their units' counts."""
    n = int(groups.max()) + 1
    unit = np.where(units.unit >= 0, groups[np.maximum(units.unit, 0)], -1)
    return Units(unit, units.area, np.bincount(groups, units.counts, n), [str(i) for i in range(n)])


def allocated(
    candidate: Candidate,
    covariates: np.ndarray,
    units: Units,
    names: Sequence[str],
    groups: np.ndarray,
    seed: int = 0,
) -> np.ndarray:
    """Each unit's people when ``candidate``, fitted on the units of the other groups, spreads
    its group's count over the cells of the group's units (leave one group out: the model never
    saw the units it splits, and learns from nearly as many units as the real fit)."""
    coarse = coarsen(units, groups)
    inside = units.unit >= 0
    n_groups = coarse.n_units
    people = np.zeros(len(units.unit))
    for g in range(n_groups):
        others = groups != g
        fit_on = _subset(units, others) if others.any() and n_groups > 1 else coarse
        model = candidate.model(seed).fit(covariates, fit_on, names)
        cells = inside & (coarse.unit == g)
        w = np.zeros(len(units.unit))
        w[cells] = model.weights(covariates[cells], units.area[cells])  # the group's cells only
        spread = redistribute(
            w, Units(np.where(cells, 0, -1), units.area, coarse.counts[[g]], ["g"])
        )
        people[cells] = spread[cells]
    return np.bincount(units.unit[inside], people[inside], units.n_units)


def misplaced_share(estimate: np.ndarray, counts: np.ndarray) -> float:
    """The share of people placed in the wrong unit, ``sum |estimate - count| / (2 sum count)``
    (0: all in place; 1: all misplaced)."""
    return float(np.abs(estimate - counts).sum() / max(2 * counts.sum(), 1e-12))


@dataclass
class Selection:
    """What :func:`select_method` measured: RMSE per candidate label, the one chosen, and its
    unit errors (for :func:`interval_halfwidth`)."""

    scores: dict[str, float]
    rmse_log: dict[str, float]
    chosen: Candidate
    errors: np.ndarray


def select_method(
    covariates: np.ndarray,
    units: Units,
    names: Sequence[str],
    centroids: np.ndarray,
    *,
    candidates: Sequence[Candidate] = AUTO,
    seed: int = 0,
) -> Selection:
    """Blocks-of-blocks share of people misplaced per candidate (module docstring); the best,
    unless it beats areal weighting by less than ``MARGIN``. Binary candidates need a
    ``landuse_share`` or ``built_share`` covariate and are left out without one."""
    masks = {"landuse_share", "built_share"} & set(names)
    candidates = [c for c in candidates if c.method != "binary" or masks]
    groups = group_units(centroids, seed=seed)
    estimates = {c.label: allocated(c, covariates, units, names, groups, seed) for c in candidates}
    scores = {k: misplaced_share(e, units.counts) for k, e in estimates.items()}
    errors = {k: np.log1p(e) - np.log1p(units.counts) for k, e in estimates.items()}
    rmse_log = {k: float(np.sqrt(np.mean(e**2))) for k, e in errors.items()}
    by_label = {c.label: c for c in candidates}
    best = min(scores, key=scores.__getitem__)
    if "areal" in scores and scores[best] > (1 - MARGIN) * scores["areal"]:
        best = "areal"
    return Selection(scores, rmse_log, by_label[best], errors[best])


def conformal_quantile(residuals: np.ndarray, level: float = 0.9) -> float:
    """Split-conformal quantile of ``|residuals|``: the ceil((n + 1) level)-th smallest (inf when
    n is too small for the level)."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    rank = int(np.ceil((len(r) + 1) * level))
    return float(r[rank - 1]) if rank <= len(r) else float("inf")


def interval_halfwidth(
    candidate: Candidate,
    covariates: np.ndarray,
    units: Units,
    names: Sequence[str],
    centroids: np.ndarray,
    *,
    errors: np.ndarray | None = None,
    level: float = 0.9,
    seed: int = 0,
) -> tuple[float | None, dict[str, float]]:
    """Eq. 3: the half-width ``q_cell`` of the band in ``log(1 + people)`` (None with fewer than
    ``MIN_UNITS_FOR_BAND`` units) and what it came from (``q_1``, ``m_1``, ``rmse_1``,
    ``rmse_2``, ``m_2``, ``gamma``). ``errors``: the units' log errors when already measured."""
    groups = group_units(centroids, seed=seed)
    if errors is None:
        errors = _log_errors(allocated(candidate, covariates, units, names, groups, seed), units)
    inside = units.unit >= 0
    cells = np.bincount(units.unit[inside], units.area[inside] > 0, units.n_units)
    info = {
        "q_1": conformal_quantile(errors, level),
        "m_1": float(np.median(cells)),
        "rmse_1": float(np.sqrt(np.mean(errors**2))),
    }
    n_groups = int(groups.max()) + 1
    if units.n_units < MIN_UNITS_FOR_BAND or n_groups < 2 * GROUP_SIZE:
        return None, info
    coarse = coarsen(units, groups)
    group_xy = (
        np.column_stack([np.bincount(groups, centroids[:, j], n_groups) for j in range(2)])
        / np.bincount(groups, minlength=n_groups)[:, None]
    )
    upper = group_units(group_xy, seed=seed)
    e2 = _log_errors(allocated(candidate, covariates, coarse, names, upper, seed), coarse)
    info["rmse_2"] = float(np.sqrt(np.mean(e2**2)))
    info["m_2"] = float(np.median(np.bincount(groups, cells, n_groups)))
    gamma = 0.0
    if info["rmse_2"] > 0 and info["rmse_1"] > 0 and info["m_2"] > info["m_1"]:
        ratio = np.log(info["rmse_1"] / info["rmse_2"]) / np.log(info["m_2"] / info["m_1"])
        gamma = float(np.clip(2 * ratio, 0, 1))
    info["gamma"] = gamma
    q_cell = info["q_1"] * max(info["m_1"], 1.0) ** (gamma / 2)
    info["q_cell"] = q_cell
    return (q_cell if np.isfinite(q_cell) else None), info


def interval_band(people: np.ndarray, halfwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """The band ``expm1(log1p(p) -+ q)`` of each cell, the lower end clipped at 0 people."""
    log_p = np.log1p(np.maximum(people, 0))
    return np.expm1(np.maximum(log_p - halfwidth, 0.0)), np.expm1(log_p + halfwidth)


def _log_errors(estimate: np.ndarray, units: Units) -> np.ndarray:
    return np.log1p(estimate) - np.log1p(units.counts)


def _subset(units: Units, keep: np.ndarray) -> Units:
    """The units of ``keep`` (bool over units), renumbered; cells of the others leave every unit."""
    new_index = np.full(units.n_units, -1)
    new_index[keep] = np.arange(int(keep.sum()))
    unit = np.where(units.unit >= 0, new_index[np.maximum(units.unit, 0)], -1)
    ids = [i for i, k in zip(units.ids, keep, strict=True) if k]
    return Units(unit, units.area, units.counts[keep], ids)
