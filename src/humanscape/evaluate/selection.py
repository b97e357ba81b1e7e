"""Choosing a task's model on the user's own data, the simplest strong baseline always a candidate.

A default measured on someone else's places is a promise that does not carry (issue 23): a model
that wins on the shared benchmark can lose to a random forest on a user's country. So ``fit``
commands with ``--method auto`` score a small set of candidates by cross-validation on the data
they are given (folds by place where the data have places: blocks or groups) and keep the best by
the task's metric. The baseline wins ties and keeps its place unless another candidate is better
on the mean over folds; the table of every candidate's fold scores is written into the model
folder (``candidates.csv``) and printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from humanscape.errors import HumanscapeError


@dataclass(frozen=True)
class Selection:
    """What :func:`select_candidate` measured: ``table`` (one row per candidate: ``candidate``,
    ``mean``, ``std``, ``fold_1`` ...; sorted best first, ``chosen`` marks the kept one)."""

    table: pd.DataFrame
    chosen: str
    baseline: str
    metric: str

    def lines(self) -> list[str]:
        """The table as the command prints it."""
        rows = [
            f"  {r.candidate:<12} {self.metric} {r.mean:.3f} +- {r.std:.3f}"
            + ("  <- chosen" if r.candidate == self.chosen else "")
            + ("  (baseline)" if r.candidate == self.baseline else "")
            for r in self.table.itertuples()
        ]
        folds = sum(c.startswith("fold_") for c in self.table.columns)
        how = (
            f"{folds}-fold cross-validation"
            if folds > 1
            else "one held-out split (networks are fitted once)"
        )
        return [f"candidates by {how} on the data given:", *rows]


def select_candidate(
    candidates: Sequence[str],
    score: Callable[[str, np.ndarray, np.ndarray], float],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    baseline: str,
    metric: str,
    higher_is_better: bool = True,
    report: Callable[[str], None] | None = None,
    min_splits: int = 2,
) -> Selection:
    """Score every candidate on every ``(train, test)`` split with ``score(name, train, test)``
    and choose the best mean; the ``baseline`` (which must be a candidate) unless another is
    strictly better. Folds where a candidate's score is not finite count against it (NaN mean).

    ``min_splits=1`` accepts one held-out split: for candidates too costly to fit k times (a CNN
    trained for minutes), scored on the split its early stopping already holds out."""
    if baseline not in candidates:
        raise HumanscapeError(f"the baseline {baseline!r} is not among the candidates")
    if len(splits) < max(min_splits, 1):
        raise HumanscapeError(
            f"{len(splits)} cross-validation split(s): too few to choose a model",
            fix="give more rows, or name a method",
        )
    rows = []
    for name in candidates:
        scores = []
        for k, (train, test) in enumerate(splits):
            scores.append(float(score(name, train, test)))
            if report:
                report(f"  {name} fold {k + 1}/{len(splits)}: {metric} {scores[-1]:.3f}")
        values = np.asarray(scores)
        mean = float(values.mean()) if np.isfinite(values).all() else float("nan")
        rows.append(
            {
                "candidate": name,
                "mean": mean,
                "std": float(values.std()),
                **{f"fold_{k + 1}": v for k, v in enumerate(scores)},
            }
        )
    table = pd.DataFrame(rows)
    sign = 1.0 if higher_is_better else -1.0
    key = (sign * table["mean"]).fillna(-np.inf)
    best = str(table.loc[key.idxmax(), "candidate"])
    base_key = float(key[table["candidate"] == baseline].iloc[0])
    if not float(key.max()) > base_key:
        best = baseline
    table = table.iloc[np.argsort(-key.to_numpy(), kind="stable")].reset_index(drop=True)
    table["chosen"] = table["candidate"] == best
    return Selection(table, best, baseline, metric)


def random_folds(n: int, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (train, test) splits whose test parts partition ``range(n)`` (seeded)."""
    if n < 2 * n_splits:
        raise HumanscapeError(
            f"{n} rows are too few for {n_splits} cross-validation folds",
            fix="give more rows, or name a method",
        )
    order = np.random.default_rng([seed, 23]).permutation(n)
    parts = [np.sort(p) for p in np.array_split(order, n_splits)]
    return [(np.setdiff1d(np.arange(n), p), p) for p in parts]


def group_folds(
    groups: Sequence[object], n_splits: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Splits that hold out whole groups (places): groups dealt into ``n_splits`` folds (seeded),
    at most one fold per group."""
    labels = np.asarray([str(g) for g in groups])
    unique = np.unique(labels)
    if unique.size < 2:
        raise HumanscapeError(
            "every row is in one group: no split by place is possible",
            fix="give rows from several places, or name a method",
        )
    k = min(n_splits, unique.size)
    order = np.random.default_rng([seed, 23]).permutation(unique.size)
    fold_of = {unique[i]: j % k for j, i in enumerate(order)}
    fold = np.array([fold_of[g] for g in labels])
    return [(np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k)]
