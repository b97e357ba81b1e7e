"""Spatial train/test splits that do not leak through spatial autocorrelation.

Tingzon et al. (2020, model evaluation) validate leave-one-municipality-out "to overcome data leakages brought
about by spatial autocorrelation and to measure the model's generalizability when applied to new
and unseen geographies". humanscape makes such splits the default and reports their sizes:

- :func:`random_split`: the naive baseline (optimistic when samples are spatially correlated);
- :func:`block_folds`: square blocks of ``block_size`` metres assigned to folds; with two folds
  and ``scheme="checkerboard"`` a k-km checkerboard (Roberts et al. 2017, block CV);
- :func:`leave_one_group_out`: one fold per group (municipality, district, city);
- :func:`region_holdout`: named groups as the test set.
"""

from __future__ import annotations

import math
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
    """One split per distinct group, testing on that group (LOGO CV, Tingzon et al. 2020)."""
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


@dataclass
class SpatialFolds:
    """Spatial folds over a raster's extent, with a buffer between training and test data.

    Folds are laid on a coarse raster of ``cell`` metres (``fold[r, c]`` = fold id, -1 outside
    every fold): square blocks assigned to folds (:meth:`blocks`), or groups such as
    municipalities, one fold each (:meth:`groups`). For fold ``k`` the test set is every location
    in fold ``k``; training uses locations of the other folds farther than ``buffer`` from fold
    ``k`` (Roberts et al. 2017, blocked cross-validation with a buffer; Valavi et al. 2019
    blockCV), so that spatial autocorrelation and moving-window features cannot leak across the
    boundary. Distances are measured on the coarse raster (to within ``cell`` / 2).

    Attributes
    ----------
    fold
        ``(rows, cols)`` int array of fold ids on the coarse raster.
    origin, cell
        Upper-left corner (x, y) and cell size of the coarse raster (CRS units, metres).
    buffer
        Minimum distance between training and test locations.
    names
        One name per fold, e.g. ``block2000m fold 0/4`` or ``group=north``.
    """

    fold: np.ndarray
    origin: tuple[float, float]
    cell: float
    buffer: float
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def blocks(
        cls,
        bounds: Sequence[float],
        block_size: float,
        *,
        n_folds: int = 4,
        buffer: float = 250.0,
        seed: int = 0,
        scheme: Literal["random", "checkerboard"] = "random",
    ) -> SpatialFolds:
        """Square blocks of ``block_size`` from the upper-left corner of ``bounds``, in folds.

        ``random`` assigns shuffled blocks to folds in turn (balanced counts); ``checkerboard``
        uses ``(bx + by) mod n_folds``.
        """
        if not block_size > 0:
            raise HumanscapeError(
                f"block size must be positive, got {block_size:g}", fix="use e.g. --block-km 2"
            )
        if n_folds < 2:
            raise HumanscapeError(f"spatial CV needs at least 2 folds, got {n_folds}")
        if not 0 <= buffer < block_size:
            raise HumanscapeError(
                f"buffer {buffer:g} m must be at least 0 and smaller than the block ({block_size:g} m)",
                fix="use a smaller --buffer-m or larger blocks",
            )
        left, bottom, right, top = bounds
        per_block = max(
            1, math.ceil(block_size / max(min(buffer, block_size) / 4, block_size / 40))
        )
        cell = block_size / per_block
        n_bx = max(1, math.ceil((right - left) / block_size))
        n_by = max(1, math.ceil((top - bottom) / block_size))
        if scheme == "checkerboard":
            by, bx = np.mgrid[0:n_by, 0:n_bx]
            block_fold = (bx + by) % n_folds
        else:
            order = np.random.default_rng(seed).permutation(n_bx * n_by)
            block_fold = np.empty(n_bx * n_by, np.int64)
            block_fold[order] = np.arange(n_bx * n_by) % n_folds
            block_fold = block_fold.reshape(n_by, n_bx)
        used = np.unique(block_fold)
        if used.size < n_folds:
            raise HumanscapeError(
                f"{block_size:g} m blocks make {n_bx * n_by} block(s) over this extent, fewer than "
                f"{n_folds} folds",
                fix="use smaller blocks (--block-km) or fewer folds (--folds)",
            )
        fold = np.repeat(np.repeat(block_fold, per_block, axis=0), per_block, axis=1)
        names = [f"block{block_size:g}m fold {k}/{n_folds}" for k in range(n_folds)]
        return cls(fold, (left, top), cell, float(buffer), names)

    @classmethod
    def groups(
        cls,
        group_of_pixel: np.ndarray,
        origin: tuple[float, float],
        pixel: float,
        names: Sequence[str],
        *,
        buffer: float = 250.0,
    ) -> SpatialFolds:
        """One fold per group from a pixel raster of group ids (``-1`` = no group)."""
        if len(names) < 2:
            raise HumanscapeError(
                f"leave-one-group-out needs 2 or more groups, got {len(names)}",
                fix="give more group polygons, or leave --group-polygons out for block CV",
            )
        step = max(1, int(round(max(buffer / 4, pixel) / pixel)))
        coarse = group_of_pixel[::step, ::step].astype(np.int64)
        return cls(coarse, origin, pixel * step, float(buffer), [f"group={n}" for n in names])

    def fold_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fold id at locations ``(x, y)``; -1 outside the raster or every fold."""
        col = np.floor((np.asarray(x, float) - self.origin[0]) / self.cell).astype(np.int64)
        row = np.floor((self.origin[1] - np.asarray(y, float)) / self.cell).astype(np.int64)
        inside = (row >= 0) & (row < self.fold.shape[0]) & (col >= 0) & (col < self.fold.shape[1])
        out = np.full(col.shape, -1, np.int64)
        out[inside] = self.fold[row[inside], col[inside]]
        return out

    def distance_to(self, k: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Distance from ``(x, y)`` to the nearest cell of fold ``k`` (cell centres)."""
        from scipy.ndimage import distance_transform_edt

        cells = distance_transform_edt(self.fold != k) * self.cell
        col = np.clip(
            np.floor((np.asarray(x, float) - self.origin[0]) / self.cell).astype(np.int64),
            0,
            self.fold.shape[1] - 1,
        )
        row = np.clip(
            np.floor((self.origin[1] - np.asarray(y, float)) / self.cell).astype(np.int64),
            0,
            self.fold.shape[0] - 1,
        )
        return cells[row, col]

    def split(self, x: np.ndarray, y: np.ndarray, k: int) -> Split:
        """Training (other folds, beyond the buffer) and test (fold ``k``) indices of locations."""
        fold = self.fold_at(x, y)
        test = fold == k
        train = (fold >= 0) & ~test
        if self.buffer > 0 and train.any():
            idx = np.flatnonzero(train)
            # cell-centre distances are exact to within one cell: keep only what is surely far
            dist = self.distance_to(k, np.asarray(x)[idx], np.asarray(y)[idx]) - self.cell
            far = dist >= self.buffer
            train[idx[~far]] = False
        return Split(np.flatnonzero(train), np.flatnonzero(test), self.names[k])

    def splits(self, x: np.ndarray, y: np.ndarray) -> list[Split]:
        """:meth:`split` for every fold."""
        return [self.split(x, y, k) for k in range(len(self))]
