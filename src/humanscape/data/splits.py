"""Spatial train/test splits that do not leak through spatial autocorrelation.

Tingzon et al. (2020, Sec. 5) validate leave-one-municipality-out "to overcome data leakages brought
about by spatial autocorrelation and to measure the model's generalizability when applied to new
and unseen geographies". humanscape makes such splits the default and reports their sizes:

- :func:`random_split`: the naive baseline (optimistic when samples are spatially correlated);
- :func:`block_folds`: square blocks of ``block_size`` metres assigned to folds; with two folds
  and ``scheme="checkerboard"`` a k-km checkerboard (Roberts et al. 2017, block CV);
- :func:`leave_one_group_out`: one fold per group (municipality, district, city);
- :func:`region_holdout`: named groups as the test set.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from humanscape.errors import HumanscapeError


@dataclass(frozen=True)
class Split:
    """Indices of one train/test split and a name saying what was held out."""

    train: np.ndarray
    test: np.ndarray
    name: str

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": int(self.train.size), "test": int(self.test.size)}

    def describe(self) -> str:
        """One line: ``name: train N, test M (p% test)``."""
        n = self.train.size + self.test.size
        return f"{self.name}: train {self.train.size}, test {self.test.size} ({100 * self.test.size / max(n, 1):.1f}% test)"


def report(splits: Sequence[Split]) -> str:
    """All splits' sizes, one per line."""
    return "\n".join(s.describe() for s in splits)


def random_split(n: int, *, test_size: float = 0.2, seed: int = 0) -> Split:
    """Random split of ``n`` samples (the non-spatial baseline)."""
    if not 0 < test_size < 1:
        raise HumanscapeError(f"test_size must be in (0, 1), got {test_size}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = max(1, round(n * test_size))
    return Split(np.sort(order[n_test:]), np.sort(order[:n_test]), f"random(seed={seed})")


def block_ids(xy: np.ndarray, block_size: float) -> np.ndarray:
    """(bx, by) integer block coordinates of points ``xy`` ``(n, 2)`` in a projected CRS."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise HumanscapeError(f"coordinates must be (n, 2), got {xy.shape}")
    return np.floor(xy / block_size).astype(np.int64)


def block_folds(
    xy: np.ndarray,
    block_size: float,
    *,
    n_folds: int = 2,
    scheme: Literal["checkerboard", "random"] = "checkerboard",
    seed: int = 0,
) -> list[Split]:
    """Spatial block cross-validation folds.

    Points (projected coordinates, metres) are grouped into square blocks of ``block_size``. With
    ``scheme="checkerboard"`` block (bx, by) goes to fold ``(bx + by) mod n_folds`` (for two folds a
    checkerboard); with ``"random"`` blocks are shuffled into folds. Each fold is tested once.
    """
    if n_folds < 2:
        raise HumanscapeError("block CV needs at least 2 folds")
    blocks = block_ids(xy, block_size)
    if scheme == "checkerboard":
        fold = (blocks[:, 0] + blocks[:, 1]) % n_folds
    elif scheme == "random":
        _, block_index = np.unique(blocks, axis=0, return_inverse=True)
        rng = np.random.default_rng(seed)
        assignment = rng.permutation(block_index.max() + 1) % n_folds
        fold = assignment[block_index.ravel()]
    else:
        raise HumanscapeError(f"unknown block scheme '{scheme}'", fix="use checkerboard or random")
    splits = []
    for k in range(n_folds):
        test = np.flatnonzero(fold == k)
        if test.size == 0:
            raise HumanscapeError(
                f"block fold {k} is empty: {block_size:g} m blocks are too large for this extent",
                fix="use smaller blocks or fewer folds",
            )
        splits.append(
            Split(np.flatnonzero(fold != k), test, f"block{block_size:g}m fold {k}/{n_folds}")
        )
    return splits


def leave_one_group_out(groups: Sequence[object] | np.ndarray) -> Iterator[Split]:
    """One split per distinct group, testing on that group (LOGO CV, Tingzon et al. 2020, Sec. 5)."""
    groups = np.asarray(groups)
    if groups.size == 0:
        raise HumanscapeError("no groups given")
    if any(g is None or (isinstance(g, float) and np.isnan(g)) for g in groups.tolist()):
        raise HumanscapeError(
            "some samples have no group", fix="assign every sample to a group (or drop it)"
        )
    values = np.unique(groups)
    if values.size < 2:
        raise HumanscapeError(f"leave-one-group-out needs 2 or more groups, got {values.size}")
    for value in values:
        yield Split(
            np.flatnonzero(groups != value), np.flatnonzero(groups == value), f"group={value}"
        )


def region_holdout(groups: Sequence[object] | np.ndarray, test_groups: Sequence[object]) -> Split:
    """Hold out the named groups (regions, cities) as the test set."""
    groups = np.asarray(groups)
    unknown = [g for g in test_groups if g not in set(groups.tolist())]
    if unknown:
        raise HumanscapeError(
            f"unknown group(s) {unknown}", fix=f"use some of {sorted(set(groups.tolist()))[:10]}"
        )
    is_test = np.isin(groups, np.asarray(test_groups))
    return Split(np.flatnonzero(~is_test), np.flatnonzero(is_test), f"holdout={list(test_groups)}")
