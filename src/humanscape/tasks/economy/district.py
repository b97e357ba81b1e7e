"""District features, district augmentation and the district regressor (Park et al. 2022, step 3).

District vector (eq. 9-12): for each encoder's 3 principal components, the mean and standard
deviation over the district's tiles, and the sum of the (positive-shifted) hyperlocal scores::

    r_i = [mu(e'_1(D_i)) .. mu(e'_M(D_i)), sigma(e'_1(D_i)) .. sigma(e'_M(D_i)), sum_d f(d)]

They are computed from sufficient statistics (tile count, sum and sum of squares of each
component, score sum), so the union of two districts has its exact vector without touching tiles.

Regressor (eq. 13-14): a random forest ``h`` (200 trees) fitted on ``ln(y_i / sum_d f(d))``;
the estimate is ``y_i = sum_d f(d) * exp(h(r_i))`` and ``exp(h(r_i))`` is the district factor.
Without hyperlocal scoring (the paper's ablation) the forest is fitted on ``ln y_i`` from
``[mu, sigma]`` alone.

District augmentation: the unions ``D_i ∪ D_j`` of training district pairs, labelled by the sum of
the two labels (counts: population, GDP) or their weighted average (rates: income per head; weights
= tile counts unless given), grow ``N`` training rows to ``N + C(N, 2)``; above ``max_pairs`` pairs
a random subset of pairs is drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from humanscape.errors import HumanscapeError

KINDS = ("count", "rate")

log = logging.getLogger(__name__)


@dataclass
class DistrictTiles:
    """Districts as tiles: ``images`` ``(tiles, bands, H, W)``, each tile's ``district`` index
    into ``names`` (the district ids). What the economy model fits and predicts on."""

    images: np.ndarray
    district: np.ndarray
    names: list[str]

    def __post_init__(self) -> None:
        self.district = np.asarray(self.district, dtype=np.int64)
        if len(self.district) != len(self.images):
            raise HumanscapeError(
                f"{len(self.district)} district indices for {len(self.images)} tiles"
            )
        if len(self.district) and (
            self.district.min() < 0 or self.district.max() >= len(self.names)
        ):
            raise HumanscapeError("a tile's district index is outside the district names")

    def subset(self, districts: np.ndarray) -> DistrictTiles:
        """Only the districts at positions ``districts`` (their tiles, renumbered)."""
        districts = np.asarray(districts, dtype=np.int64)
        remap = np.full(len(self.names), -1, dtype=np.int64)
        remap[districts] = np.arange(len(districts))
        keep = remap[self.district] >= 0
        return DistrictTiles(
            self.images[keep], remap[self.district[keep]], [self.names[i] for i in districts]
        )


@dataclass
class DistrictStats:
    """Sufficient statistics of the tiles of each district (one row per district).

    ``n`` tiles, ``sums`` / ``squares`` ``(districts, components)`` of the projected encoder
    features (all encoders side by side), ``score_sum`` of positive scores.
    """

    n: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    score_sum: np.ndarray
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.n)

    def subset(self, index: np.ndarray) -> DistrictStats:
        names = [self.names[i] for i in index] if self.names else []
        return DistrictStats(
            self.n[index], self.sums[index], self.squares[index], self.score_sum[index], names
        )

    def select(self, columns: np.ndarray | list[int]) -> DistrictStats:
        """The same districts with only the feature ``columns`` (e.g. one encoder's components)."""
        return DistrictStats(
            self.n, self.sums[:, columns], self.squares[:, columns], self.score_sum, self.names
        )

    def vectors(self, *, features: bool = True, std: bool = True, score: bool = True) -> np.ndarray:
        """District vectors ``[mean, std, score sum]`` (eq. 12), parts selectable for ablations
        and baselines (``std=False``: the mean embedding alone)."""
        n = self.n[:, None].astype(np.float64)
        mean = self.sums / n
        sd = np.sqrt(np.maximum(self.squares / n - mean**2, 0.0))
        parts = ([mean, sd] if std else [mean]) if features else []
        if score:
            parts.append(self.score_sum[:, None])
        if not parts:
            raise HumanscapeError("a district vector needs the features or the score sum")
        return np.concatenate(parts, axis=1)

    def union(self, pairs: np.ndarray) -> DistrictStats:
        """Statistics of ``D_i ∪ D_j`` for each row ``(i, j)`` of ``pairs``."""
        i, j = pairs[:, 0], pairs[:, 1]
        return DistrictStats(
            self.n[i] + self.n[j],
            self.sums[i] + self.sums[j],
            self.squares[i] + self.squares[j],
            self.score_sum[i] + self.score_sum[j],
        )


def district_stats(
    district: np.ndarray,
    components: np.ndarray,
    positive_scores: np.ndarray,
    *,
    names: list[str] | None = None,
) -> DistrictStats:
    """Statistics per district from tile values; ``district`` is each tile's index 0..D-1."""
    district = np.asarray(district, dtype=np.int64)
    n_districts = len(names) if names is not None else int(district.max()) + 1
    n = np.bincount(district, minlength=n_districts).astype(np.float64)
    if (n == 0).any():
        first = int(np.flatnonzero(n == 0)[0])
        label = names[first] if names else str(first)
        raise HumanscapeError(
            f"district '{label}' has no tile", fix="give every district at least one tile"
        )
    comps = np.asarray(components, dtype=np.float64).reshape(len(district), -1)
    sums = np.stack([np.bincount(district, c, n_districts) for c in comps.T], 1)
    squares = np.stack([np.bincount(district, c * c, n_districts) for c in comps.T], 1)
    score_sum = np.bincount(district, np.asarray(positive_scores, np.float64), n_districts)
    return DistrictStats(
        n,
        sums.reshape(n_districts, -1),
        squares.reshape(n_districts, -1),
        score_sum,
        list(names or []),
    )


def district_pairs(n: int, max_pairs: int | None, seed: int = 0) -> np.ndarray:
    """All ``C(n, 2)`` pairs ``i < j`` (or a random ``max_pairs`` of them), shape ``(P, 2)``."""
    i, j = np.triu_indices(n, k=1)
    pairs = np.c_[i, j]
    if max_pairs is not None and len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = pairs[np.sort(pick)]
    return pairs


def augment_districts(
    stats: DistrictStats,
    y: np.ndarray,
    *,
    kind: str = "count",
    weights: np.ndarray | None = None,
    max_pairs: int | None = 5000,
    seed: int = 0,
) -> tuple[DistrictStats, np.ndarray]:
    """The paper's district augmentation: ``N`` districts + their pairwise unions.

    Union labels: ``y_i + y_j`` for ``count``; ``(w_i y_i + w_j y_j) / (w_i + w_j)`` for ``rate``
    with ``w`` the ``weights`` (default: tile counts).
    """
    if kind not in KINDS:
        raise HumanscapeError(f"unknown indicator kind '{kind}'", fix=f"use one of {KINDS}")
    y = np.asarray(y, dtype=np.float64)
    pairs = district_pairs(len(stats), max_pairs, seed)
    union = stats.union(pairs)
    i, j = pairs[:, 0], pairs[:, 1]
    if kind == "count":
        y_union = y[i] + y[j]
    else:
        w = stats.n if weights is None else np.asarray(weights, dtype=np.float64)
        y_union = (w[i] * y[i] + w[j] * y[j]) / (w[i] + w[j])
    combined = DistrictStats(
        np.r_[stats.n, union.n],
        np.r_[stats.sums, union.sums],
        np.r_[stats.squares, union.squares],
        np.r_[stats.score_sum, union.score_sum],
    )
    return combined, np.r_[y, y_union]


def log_ratio(y: np.ndarray, score_sum: np.ndarray) -> np.ndarray:
    """Eq. 14's target ``ln(y / sum f)``; ``y`` must be positive."""
    y = np.asarray(y, dtype=np.float64)
    if (y <= 0).any() or not np.isfinite(y).all():
        raise HumanscapeError(
            f"{int((y <= 0).sum())} indicator value(s) are zero or negative; eq. 14 takes ln(y)",
            fix="drop those districts, or use an indicator that is positive everywhere",
        )
    return np.log(y / np.asarray(score_sum, dtype=np.float64))


LOG_MARGIN = float(np.log(10.0))  # predictions up to 10x beyond the most extreme training district


class DistrictRegressor:
    """``h`` of eq. 13-14: a random forest on district vectors (see the module docstring).

    Parameters
    ----------
    n_estimators
        Trees (200 in the paper).
    hyperlocal
        Use the score sum (``False``: the "without hyperlocal scoring" ablation).
    augment, max_pairs, kind
        District augmentation and how union labels combine.
    std
        Include the within-district standard deviations (``False``: mean embedding only).
    head
        ``forest`` (the paper) or ``ridge`` (cross-validated ridge on standardised vectors: the
        MOSAIKS baseline's head).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        hyperlocal: bool = True,
        augment: bool = True,
        max_pairs: int | None = 5000,
        kind: str = "count",
        std: bool = True,
        head: str = "forest",
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise HumanscapeError(f"unknown indicator kind '{kind}'", fix=f"use one of {KINDS}")
        if head not in ("forest", "ridge"):
            raise HumanscapeError(f"unknown head '{head}'", fix="use forest or ridge")
        self.std, self.head = std, head
        self.n_estimators, self.hyperlocal, self.augment = n_estimators, hyperlocal, augment
        self.max_pairs, self.kind, self.seed, self.n_jobs = max_pairs, kind, seed, n_jobs

    def fit(
        self, stats: DistrictStats, y: np.ndarray, weights: np.ndarray | None = None
    ) -> DistrictRegressor:
        y = np.asarray(y, dtype=np.float64)
        log_ratio(y, np.ones_like(y))  # refuses zeros / negatives before any work
        if self.augment and len(stats) >= 2:
            stats, y = augment_districts(
                stats, y, kind=self.kind, weights=weights, max_pairs=self.max_pairs, seed=self.seed
            )
        X = stats.vectors(std=self.std, score=self.hyperlocal)
        if self.hyperlocal:
            # eq. 14 has no finite target for a district whose tiles all sit on the score floor
            usable = stats.score_sum > 0
            if not usable.any():
                raise HumanscapeError(
                    "every district's tiles sit on the score floor (score sum 0): eq. 14 has "
                    "nothing to learn from",
                    fix="check the score model and the tiles, or fit without hyperlocal scores",
                )
            if not usable.all():
                log.warning(
                    "%d of %d districts have no tile above the score floor and are left out of "
                    "the fit of eq. 14 (eq. 13 estimates 0 for such districts)",
                    int((~usable).sum()),
                    len(usable),
                )
            X, y, score_sum = X[usable], y[usable], stats.score_sum[usable]
            target = log_ratio(y, score_sum)
        else:
            target = np.log(y)
        self.target_range_ = (float(target.min()), float(target.max()))
        if self.head == "forest":
            self.forest_ = RandomForestRegressor(
                self.n_estimators, random_state=self.seed, n_jobs=self.n_jobs
            ).fit(X, target)
        else:
            self.forest_ = make_pipeline(
                StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15))
            ).fit(X, target)
        return self

    def factor(self, stats: DistrictStats) -> np.ndarray:
        """The district factor ``exp(h(r_i))`` (with ``hyperlocal=False``: the estimate itself).

        ``h`` is held to the training targets' range widened by :data:`LOG_MARGIN` on each side: a
        forest stays inside it anyway, a ridge head on 512 random features can extrapolate to
        ``exp(80)`` on one odd district and turn a whole evaluation's R2 into ``-1e38``."""
        h = self.forest_.predict(stats.vectors(std=self.std, score=self.hyperlocal))
        low, high = self.target_range_
        return np.exp(np.clip(h, low - LOG_MARGIN, high + LOG_MARGIN))

    def predict(self, stats: DistrictStats) -> np.ndarray:
        """Eq. 13: ``sum f * exp(h(r))``."""
        factor = self.factor(stats)
        return stats.score_sum * factor if self.hyperlocal else factor
