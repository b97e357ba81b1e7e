"""Training pixels for settlement mapping (Tingzon et al. 2020, ground truth: labelled settlements and random 500 m grid blocks).

- **Positives**: every pixel inside a settlement polygon (or the pixel of each labelled point).
- **Labelled negatives** (beyond the paper): features of the label file whose class is not
  positive (other land-cover classes, formal housing, ...), kind ``labelled``: the hard negatives
  a user has, often right next to settlements. Up to ``labelled_per_group`` pixels per group.
- **Random-block negatives** (the paper's, kept as a complement): per group (municipality), random
  500 m x 500 m blocks that hold no positive pixel (at least ``min_blocks`` of them, 30 in the
  paper), from which ``negatives_per_group`` pixels are drawn (30,000 in the paper), split between
  formal settlement (40 %) and unoccupied land (60 %) when a land-use layer says which is which.
  Where labelled negatives exist, how much this complement weighs in training is a hyperparameter
  of the classifier (``complement_weight``), chosen by spatial CV on the labelled data.
- Each sample keeps its ``group`` and its ``settlement`` (the polygon for a positive, the labelled
  feature for a labelled negative, the 500 m block for a random one): the units of the paper's
  settlement-level evaluation.

The class balance is reported per group (``balance`` attribute of the returned frame and the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from shapely.geometry import Point

from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo.grid import GridSpec
from humanscape.geo.inputs import open_grid
from humanscape.geo.vector import clip_or_empty, rasterize
from humanscape.tasks.settlements.features import read_feature_names

log = logging.getLogger(__name__)


@dataclass
class LabelSpec:
    """Which labelled features are positive, which are negative, which are neither.

    ``column=None`` takes every feature of ``labels`` as positive (the paper's setting: settlement
    polygons only). With a class ``column``, features whose value is in ``positive`` are positive;
    the others are labelled negatives, or only those in ``negative`` when it is given (values in
    neither are ignored: never trained on, never drawn as random negatives, never evaluated).
    """

    labels: gpd.GeoDataFrame
    column: str | None = None
    positive: Sequence[object] = ()
    source: str = "labels"
    negative: Sequence[object] | None = None

    def _values(self) -> pd.Series:
        if self.column not in self.labels.columns:
            raise HumanscapeError(
                f"no column '{self.column}' (columns: {', '.join(map(str, self.labels.columns))})",
                path=self.source,
                fix="choose the column that holds the class (--label-column)",
            )
        return self.labels[self.column].astype(str)

    def positives(self) -> gpd.GeoDataFrame:
        if self.column is None:
            return self.labels
        values = self._values()
        wanted = [str(v) for v in self.positive]
        keep = self.labels[values.isin(wanted)]
        if keep.empty:
            present = sorted(values.dropna().unique())[:20]
            raise HumanscapeError(
                f"value(s) {', '.join(wanted)} never occur in column '{self.column}' (values: {', '.join(present)})",
                path=self.source,
                fix="choose a value that occurs (--positive)",
            )
        return keep

    def negatives(self) -> gpd.GeoDataFrame:
        """Labelled negative features (empty without a class column)."""
        if self.column is None:
            return self.labels.iloc[:0]
        values = self._values()
        is_neg = ~values.isin([str(v) for v in self.positive])
        if self.negative is not None:
            wanted = [str(v) for v in self.negative]
            missing = [v for v in wanted if v not in set(values)]
            if missing:
                raise HumanscapeError(
                    f"negative value(s) {', '.join(missing)} never occur in column '{self.column}'",
                    path=self.source,
                    fix="choose values that occur (--negative)",
                )
            is_neg &= values.isin(wanted)
        return self.labels[is_neg]

    def ignored(self) -> gpd.GeoDataFrame:
        """Features that are neither positive nor negative."""
        if self.column is None or self.negative is None:
            return self.labels.iloc[:0]
        values = self._values()
        known = [str(v) for v in (*self.positive, *self.negative)]
        return self.labels[~values.isin(known)]

    @property
    def points(self) -> bool:
        """True when every label is a point (evaluation then uses the labelled points only)."""
        return bool(self.labels.geom_type.isin(["Point", "MultiPoint"]).all())


def _as_polygons(gdf: gpd.GeoDataFrame, grid: GridSpec) -> gpd.GeoDataFrame:
    """Points become the square of the pixel they fall in; polygons stay."""
    gdf = gdf.to_crs(grid.crs) if gdf.crs != grid.crs else gdf
    if gdf.geom_type.isin(["Point", "MultiPoint"]).any():
        half = grid.res[0] / 2
        gdf = gdf.copy()
        gdf["geometry"] = [
            g.buffer(half, cap_style="square") if isinstance(g, Point) else g for g in gdf.geometry
        ]
    return gdf


def block_index(grid: GridSpec, block_size: float = 500.0) -> tuple[np.ndarray, int]:
    """Per-pixel id of the ``block_size`` block (aligned to the raster origin) and the blocks per row."""
    block_px = max(1, int(round(block_size / grid.res[0])))
    n_cols = -(-grid.width // block_px)
    rows = np.arange(grid.height) // block_px
    cols = np.arange(grid.width) // block_px
    return (rows[:, None] * n_cols + cols[None, :]).astype(np.int64), n_cols


@dataclass
class LabelRasters:
    """Labels burnt onto the feature grid, shared by sampling and evaluation.

    ``positive`` / ``negative`` hold 1-based feature ids (0 = none); ``ignored`` marks features of
    neither class and ``exclude`` polygons; ``valid`` pixels have features; ``group`` holds group
    ids (-1 outside every group).
    """

    grid: GridSpec
    positive: np.ndarray
    negative: np.ndarray
    ignored: np.ndarray
    valid: np.ndarray
    group: np.ndarray
    group_names: np.ndarray


def _feature_ids(
    gdf: gpd.GeoDataFrame, grid: GridSpec, source: str, *, required: bool
) -> np.ndarray:
    """1-based id of the feature covering each pixel (0: none); points become their pixel.

    With ``required`` a layer that misses the grid is an error (:class:`NoOverlapError` from
    :func:`rasterize`), else it burns nothing.
    """
    features = _as_polygons(gdf, grid) if len(gdf) else gdf
    if not required:
        features = clip_or_empty(features, grid) if len(features) else features
        if not len(features):
            return np.zeros(grid.shape, np.int32)
    return rasterize(
        features.assign(_id=np.arange(1, len(features) + 1)),
        grid,
        column="_id",
        dtype="int32",
        source=source,
    )


def label_rasters(
    features: str | Path,
    labels: LabelSpec,
    *,
    groups: gpd.GeoDataFrame | None = None,
    group_column: str | None = None,
    exclude: gpd.GeoDataFrame | None = None,
) -> LabelRasters:
    """Burn positives, labelled negatives, ignored areas and groups onto the feature grid."""
    grid = open_grid(features)
    pos_id = _feature_ids(labels.positives(), grid, labels.source, required=True)
    if (pos_id > 0).sum() == 0:
        raise EmptyInputError(
            "no positive pixel: the label polygons are smaller than a pixel or outside the raster",
            path=labels.source,
            fix="check the labels' CRS and extent",
        )
    neg_id = _feature_ids(labels.negatives(), grid, labels.source, required=False)
    neg_id[pos_id > 0] = 0  # where classes overlap, the positive label wins
    ignored = np.zeros(grid.shape, bool)
    for layer in (labels.ignored(), exclude):
        if layer is not None and len(layer):
            inside = clip_or_empty(_as_polygons(layer, grid), grid)
            if len(inside):
                ignored |= rasterize(inside, grid).astype(bool)
    ignored &= pos_id == 0

    if groups is not None:
        if group_column is None or group_column not in groups.columns:
            raise HumanscapeError(
                f"group layer needs a column naming the group (got {group_column!r}; "
                f"columns: {', '.join(map(str, groups.columns))})",
                fix="pass --group-column",
            )
        codes, uniques = pd.factorize(groups[group_column].astype(str))
        group_raster = (
            rasterize(
                groups.assign(_g=codes + 1), grid, column="_g", dtype="int32", source="groups"
            )
            - 1
        )
        group_names = np.asarray(uniques)
        unassigned = int(((pos_id > 0) & (group_raster < 0)).sum())
        if unassigned:
            total = int((pos_id > 0).sum())
            if unassigned == total:
                raise HumanscapeError(
                    "no positive pixel lies inside a group polygon",
                    path="groups",
                    fix="check that the group layer covers the labels",
                )
            log.warning(
                "%d of %d positive pixels lie outside every group polygon and are dropped",
                unassigned,
                total,
            )
    else:
        group_raster = np.zeros(grid.shape, np.int32)
        group_names = np.array(["all"])
    return LabelRasters(
        grid, pos_id, neg_id, ignored, _valid_mask(str(features), grid), group_raster, group_names
    )


def sample_pixels(
    features: str,
    labels: LabelSpec,
    *,
    groups: gpd.GeoDataFrame | None = None,
    group_column: str | None = None,
    landuse: gpd.GeoDataFrame | None = None,
    landuse_column: str | None = None,
    formal_values: Sequence[object] = (),
    negatives_per_group: int = 30_000,
    labelled_per_group: int | None = None,
    formal_fraction: float = 0.4,
    min_blocks: int = 30,
    block_size: float = 500.0,
    exclude: gpd.GeoDataFrame | None = None,
    seed: int = 0,
    rasters: LabelRasters | None = None,
) -> pd.DataFrame:
    """Sample training pixels from a feature stack (see module docstring).

    Returns one row per pixel: the features (named as in the stack), ``label`` (1/0), ``group``,
    ``settlement`` (``p<i>`` polygon, ``n<i>`` labelled negative, ``b<j>`` block), ``kind``
    (``positive``, ``labelled``, ``formal``, ``unoccupied``), ``row``, ``col``, ``x``, ``y``.
    ``exclude`` polygons (e.g. all residential land when it is not the positive class) are never
    sampled as negatives. ``labelled_per_group`` caps the labelled negative pixels per group
    (default: ``negatives_per_group``).
    """
    if negatives_per_group < 0:
        raise HumanscapeError(
            f"negatives per group must be 0 or more, got {negatives_per_group}",
            fix="use e.g. --negatives 30000 (the paper's value)",
        )
    r = rasters or label_rasters(
        features, labels, groups=groups, group_column=group_column, exclude=exclude
    )
    grid = r.grid
    rng = np.random.default_rng(seed)
    cap = negatives_per_group if labelled_per_group is None else labelled_per_group
    pos_id, neg_id, valid = r.positive, r.negative, r.valid

    formal = np.zeros(grid.shape, bool)
    if landuse is not None and formal_values:
        spec = LabelSpec(landuse, landuse_column, formal_values, "landuse")
        formal = rasterize(_as_polygons(spec.positives(), grid), grid).astype(bool)

    blocks, _ = block_index(grid, block_size)
    pos_blocks = np.unique(blocks[pos_id > 0])
    n_blocks = int(blocks.max()) + 1
    picks: list[pd.DataFrame] = []
    balance = []
    for g, gname in enumerate(r.group_names):
        in_group = r.group == g
        p_rows, p_cols = np.nonzero((pos_id > 0) & in_group & valid)
        picks.append(
            _frame(p_rows, p_cols, 1, "positive", [f"p{i}" for i in pos_id[p_rows, p_cols]], gname)
        )
        n_rows, n_cols = np.nonzero((neg_id > 0) & in_group & valid)
        if n_rows.size > cap:
            take = np.sort(rng.choice(n_rows.size, cap, replace=False))
            n_rows, n_cols = n_rows[take], n_cols[take]
        picks.append(
            _frame(n_rows, n_cols, 0, "labelled", [f"n{i}" for i in neg_id[n_rows, n_cols]], gname)
        )

        candidate = in_group & valid & (pos_id == 0) & ~r.ignored & ~np.isin(blocks, pos_blocks)
        cand_blocks = np.unique(blocks[candidate])
        rng.shuffle(cand_blocks)
        n_formal = int(round(negatives_per_group * formal_fraction)) if formal.any() else 0
        wanted = {"formal": n_formal, "unoccupied": negatives_per_group - n_formal}
        per_block = {
            "formal": np.bincount(blocks[candidate & formal], minlength=n_blocks),
            "unoccupied": np.bincount(blocks[candidate & ~formal], minlength=n_blocks),
        }
        chosen: list[int] = []
        got = {"formal": 0, "unoccupied": 0}
        for (
            block
        ) in cand_blocks:  # add blocks until both kinds can be filled and min_blocks reached
            if len(chosen) >= min_blocks and all(got[k] >= wanted[k] for k in wanted):
                break
            chosen.append(int(block))
            for k in got:
                got[k] += int(per_block[k][block])
        sel = candidate & np.isin(blocks, chosen)
        for kind, mask in (("formal", sel & formal), ("unoccupied", sel & ~formal)):
            rows, cols = np.nonzero(mask)
            n = min(wanted[kind], rows.size)
            if n < wanted[kind] and wanted[kind]:
                log.warning(
                    "group %s: only %d %s negative pixels available (%d wanted)",
                    gname,
                    rows.size,
                    kind,
                    wanted[kind],
                )
            take = rng.choice(rows.size, n, replace=False) if n else np.array([], int)
            settlement = [f"b{b}" for b in blocks[rows[take], cols[take]]]
            picks.append(_frame(rows[take], cols[take], 0, kind, settlement, gname))
        balance.append(
            {
                "group": gname,
                "positive": int(p_rows.size),
                "negative_labelled": int(n_rows.size),
                "negative_formal": min(wanted["formal"], got["formal"]),
                "negative_unoccupied": min(wanted["unoccupied"], got["unoccupied"]),
                "negative_blocks": len(chosen),
            }
        )
    table = pd.concat(picks, ignore_index=True)
    if (table["label"] == 0).sum() == 0:
        raise EmptyInputError(
            "no negative pixel could be sampled", fix="labels cover everything; add unlabelled area"
        )
    table = attach_features(table, features, grid)
    table.attrs["balance"] = pd.DataFrame(balance)
    for rec in balance:
        log.info("class balance %s", rec)
    return table


def _frame(rows, cols, label: int, kind: str, settlement: list[str], group: object) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "label": label,
            "kind": kind,
            "settlement": settlement,
            "group": group,
        }
    )


def _valid_mask(features: str, grid: GridSpec) -> np.ndarray:
    """True where the first feature band has data (read window by window)."""
    out = np.zeros(grid.shape, bool)
    with rasterio.open(features) as src:
        for _, window in src.block_windows(1):
            r, c = int(window.row_off), int(window.col_off)
            out[r : r + int(window.height), c : c + int(window.width)] = np.isfinite(
                src.read(1, window=window)
            )
    return out


def attach_features(table: pd.DataFrame, features: str | Path, grid: GridSpec) -> pd.DataFrame:
    """Add the feature values at ``row``, ``col`` (read window by window) and pixel-centre ``x, y``."""
    names = read_feature_names(features)
    values = np.full((len(table), len(names)), np.nan, np.float32)
    rows, cols = table["row"].to_numpy(), table["col"].to_numpy()
    with rasterio.open(features) as src:
        for window in grid.windows(1024):
            r0, c0 = int(window.row_off), int(window.col_off)
            inside = (
                (rows >= r0)
                & (rows < r0 + window.height)
                & (cols >= c0)
                & (cols < c0 + window.width)
            )
            if inside.any():
                block = src.read(window=window)
                values[inside] = block[:, rows[inside] - r0, cols[inside] - c0].T
    x, y = grid.transform @ (cols + 0.5, rows + 0.5)
    out = pd.concat([table.reset_index(drop=True), pd.DataFrame(values, columns=names)], axis=1)
    out["x"], out["y"] = x, y
    return out
