"""Ordinal regression with linear logits: the hyperlocal score of Park et al. (2022, step 1).

A network ``f`` gives one number per tile. Two thresholds ``t1 < t2`` split the score axis into
the three surrogate levels (eq. 4)::

    uninhabited  if f < t1,    rural  if t1 <= f < t2,    urban  if t2 <= f

and the logit vector (eq. 5)::

    l(d) = [t1 - f,  min(f - t1, t2 - f),  f - t2]

turns the score into a 3-class prediction whose arg-max is the level of eq. 4, so plain
cross-entropy on (hard or soft) level labels (eq. 6) trains a continuous, order-preserving
score. Scores are clamped to ``[t_min, t_max]`` before the logits "for numerical stability"
(paper: t1 = 0, t2 = 10, range [-10, 20]).

Labels come as level names (``uninhabited`` / ``rural`` / ``urban``) or as any class names plus a
mapping table: ``class,level`` (hard) or ``class,uninhabited,rural,urban`` (soft: the share of
annotators per level, as the paper's four-annotator labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from humanscape.data.chiptable import read_table
from humanscape.errors import HumanscapeError

#: The surrogate levels, in economic order (index = ordinal level).
LEVELS = ("uninhabited", "rural", "urban")

#: EuroSAT classes onto the levels (the data README of the project; Park et al. label the same three).
EUROSAT_LEVELS = {
    "Residential": "urban",
    "Industrial": "urban",
    "Highway": "urban",
    "AnnualCrop": "rural",
    "PermanentCrop": "rural",
    "Pasture": "rural",
    "HerbaceousVegetation": "rural",
    "Forest": "uninhabited",
    "River": "uninhabited",
    "SeaLake": "uninhabited",
}


@dataclass(frozen=True)
class Thresholds:
    """``t1 < t2`` split the levels (eq. 4); scores are clamped to ``[t_min, t_max]``."""

    t1: float = 0.0
    t2: float = 10.0
    t_min: float = -10.0
    t_max: float = 20.0

    def __post_init__(self) -> None:
        if not self.t_min < self.t1 < self.t2 < self.t_max:
            raise HumanscapeError(
                f"thresholds must satisfy t_min < t1 < t2 < t_max, got "
                f"{self.t_min:g} < {self.t1:g} < {self.t2:g} < {self.t_max:g}",
                fix="the paper uses t_min=-10, t1=0, t2=10, t_max=20",
            )


def ordinal_logits(score: torch.Tensor, th: Thresholds = Thresholds()) -> torch.Tensor:
    """Eq. 5 on clamped scores: ``(n,) -> (n, 3)`` logits ``[t1 - f, min(f - t1, t2 - f), f - t2]``."""
    f = score.clamp(th.t_min, th.t_max)
    return torch.stack([th.t1 - f, torch.minimum(f - th.t1, th.t2 - f), f - th.t2], dim=-1)


def ordinal_loss(
    score: torch.Tensor, target: torch.Tensor, th: Thresholds = Thresholds()
) -> torch.Tensor:
    """Eq. 6: mean of ``-y^T LogSoftmax(l(d))`` over the batch.

    ``target`` is ``(n,)`` level indices (hard labels) or ``(n, 3)`` level probabilities (soft).
    """
    log_p = F.log_softmax(ordinal_logits(score, th), dim=-1)
    if target.ndim == 1:
        return F.nll_loss(log_p, target.long())
    return -(target.to(log_p.dtype) * log_p).sum(-1).mean()


def classify(scores: np.ndarray, th: Thresholds = Thresholds()) -> np.ndarray:
    """Eq. 4: level index (0 uninhabited, 1 rural, 2 urban) of each score."""
    s = np.asarray(scores, dtype=np.float64)
    return (s >= th.t1).astype(np.int64) + (s >= th.t2).astype(np.int64)


def positive_scores(scores: np.ndarray, th: Thresholds = Thresholds()) -> np.ndarray:
    """Scores on a ratio scale for sums, Gini and eq. 13: ``clamp(f) - t_min``.

    Park et al. sum and compare scores (eq. 13, Table 4) but do not say how their negative range
    enters a sum or a Gini index. A Gini index needs a scale whose zero means "none": it is not
    shift-invariant (in one measurement the national Gini of scores shifted by 10, 11 and 20 was
    0.479, 0.446 and 0.274). Here zero is the floor of the clamp range, the score of a tile with
    no sign of activity the model can express (water, forest far from settlement): every tile's
    value is its distance above that floor, ``[0, t_max - t_min]`` (0 to 30 with the paper's
    range). A district whose tiles all sit on the floor sums to zero; eq. 13 then estimates 0 for
    it, and eq. 14 cannot learn from it (:class:`~humanscape.tasks.economy.district.
    DistrictRegressor` leaves such districts out of its fit and says so).
    """
    s = np.clip(np.asarray(scores, dtype=np.float64), th.t_min, th.t_max)
    return s - th.t_min


def read_mapping(path: str | Path) -> dict[str, np.ndarray]:
    """A class -> level table: ``class,level`` (hard) or ``class,uninhabited,rural,urban`` (soft).

    Returns class -> probabilities over :data:`LEVELS`. Soft rows must be non-negative and sum
    to 1 (within 1e-6).
    """
    table = read_table(path, what="class mapping")
    if "class" not in table.columns:
        raise HumanscapeError(
            f"mapping has no 'class' column (columns: {', '.join(map(str, table.columns))})",
            path=path,
            fix="write 'class,level' rows (level = uninhabited, rural or urban)",
        )
    out: dict[str, np.ndarray] = {}
    if "level" in table.columns:
        for cls, level in zip(table["class"].astype(str), table["level"].astype(str), strict=True):
            if level.strip().lower() not in LEVELS:
                raise HumanscapeError(
                    f"class '{cls}' maps to '{level}', not a level",
                    path=path,
                    fix=f"levels are {', '.join(LEVELS)}",
                )
            out[cls] = np.eye(3)[LEVELS.index(level.strip().lower())]
        return out
    if not set(LEVELS) <= set(table.columns):
        raise HumanscapeError(
            "mapping has neither a 'level' column nor the soft columns uninhabited, rural, urban",
            path=path,
            fix="write 'class,level' rows, or 'class,uninhabited,rural,urban' shares",
        )
    probs = table[list(LEVELS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(probs).all(1) | (probs < 0).any(1) | (np.abs(probs.sum(1) - 1) > 1e-6)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise HumanscapeError(
            f"soft label of class '{table['class'].iloc[row]}' is not a distribution: {probs[row]}",
            path=path,
            fix="shares must be >= 0 and sum to 1",
        )
    return dict(zip(table["class"].astype(str), probs, strict=True))


def level_targets(
    values: pd.Series,
    *,
    mapping: dict[str, np.ndarray] | None = None,
    path: str | Path = "chip table",
    column: str = "level",
    mapping_path: str | Path | None = None,
) -> np.ndarray:
    """Level probabilities ``(n, 3)`` of each row: level names directly, or classes via ``mapping``.

    Refused by name: a value outside the three levels without a mapping, a class the mapping misses.
    """
    text = values.astype(str).str.strip()
    if mapping is None:
        lower = text.str.lower()
        unknown = sorted({v for v, low in zip(text, lower, strict=True) if low not in LEVELS})
        if unknown:
            raise HumanscapeError(
                f"column '{column}' has values that are not levels: {', '.join(unknown[:5])}",
                path=path,
                fix=f"use {', '.join(LEVELS)}, or give --mapping classes.csv (class,level)",
            )
        return np.eye(3)[[LEVELS.index(v) for v in lower]]
    missing = sorted(set(text) - set(mapping))
    if missing:
        raise HumanscapeError(
            f"mapping has no row for class(es) {', '.join(missing[:5])} of column '{column}'",
            path=mapping_path or path,
            fix="add a row per class (class,level) to the mapping file",
        )
    return np.stack([mapping[v] for v in text])
