"""Spatially honest cross-validation of settlement classifiers and the paper's curves.

Tingzon et al. (2020, model evaluation and Fig. 4) use leave-one-municipality-out CV and report pixel-level and
settlement-level precision and recall at the top x % for each held-out municipality. humanscape
does the same when groups are given, and spatial block CV otherwise (square blocks of
``block_size`` metres shuffled into ``n_folds`` folds), always with a ``buffer`` between training
and test locations (:class:`~humanscape.data.splits.SpatialFolds`).

**Metrics at the true class balance.** A held-out fold is scored on what a user would map there,
not on the training sample's balance (about half positive, which flatters precision):

- polygon labels: every valid pixel of the held-out blocks (uniformly subsampled to at most
  ``max_test_pixels``), positive inside a positive polygon, negative elsewhere (ignored classes
  and ``exclude`` polygons left out);
- point labels: the labelled points of the held-out blocks, all classes as they come.

Settlement-level scores rank label polygons (positives) and 500 m cells (negatives), each scored
by the mean of its top 10 % pixels, as the paper does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from humanscape._atomic import atomic_folder
from humanscape.data.splits import SpatialFolds
from humanscape.errors import HumanscapeError
from humanscape.evaluate.ranking import pr_auc, precision_recall_at_top, settlement_scores
from humanscape.tasks.settlements.model import (
    TRUSTED_KINDS,
    SettlementClassifier,
    select_model,
)
from humanscape.tasks.settlements.sampling import LabelRasters, attach_features, block_index

log = logging.getLogger(__name__)


def make_folds(
    rasters: LabelRasters,
    *,
    block_size: float = 2000.0,
    n_folds: int = 4,
    buffer: float = 250.0,
    seed: int = 0,
) -> SpatialFolds:
    """Leave-one-group-out folds with 2+ groups, else ``n_folds`` folds of square blocks."""
    grid = rasters.grid
    origin = (grid.bounds[0], grid.bounds[3])
    if len(rasters.group_names) >= 2:
        return SpatialFolds.groups(
            rasters.group, origin, grid.res[0], list(rasters.group_names), buffer=buffer
        )
    return SpatialFolds.blocks(grid.bounds, block_size, n_folds=n_folds, buffer=buffer, seed=seed)


def held_out(
    features: str | Path,
    rasters: LabelRasters,
    sample: pd.DataFrame,
    folds: SpatialFolds,
    k: int,
    *,
    points: bool,
    max_test_pixels: int = 200_000,
    seed: int = 0,
) -> pd.DataFrame:
    """The test set of fold ``k`` at its true class balance (see module docstring)."""
    if points:
        fold = folds.fold_at(sample["x"].to_numpy(), sample["y"].to_numpy())
        return sample[(fold == k) & sample["kind"].isin(TRUSTED_KINDS).to_numpy()]
    grid = rasters.grid
    rows, cols = np.nonzero(rasters.valid & ~rasters.ignored & (rasters.group >= 0))
    x, y = grid.transform * (cols + 0.5, rows + 0.5)
    inside = folds.fold_at(x, y) == k
    rows, cols = rows[inside], cols[inside]
    if rows.size > max_test_pixels:
        take = np.sort(
            np.random.default_rng([seed, k]).choice(rows.size, max_test_pixels, replace=False)
        )
        rows, cols = rows[take], cols[take]
    pos = rasters.positive[rows, cols]
    blocks, _ = block_index(grid, 500.0)
    table = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "label": (pos > 0).astype(int),
            "kind": np.where(pos > 0, "positive", "area"),
            "settlement": np.where(
                pos > 0, [f"p{i}" for i in pos], [f"c{b}" for b in blocks[rows, cols]]
            ),
            "group": rasters.group_names[np.maximum(rasters.group[rows, cols], 0)],
        }
    )
    return attach_features(table, features, grid)


@dataclass
class CVResult:
    """Out-of-fold scores and the curves / PR-AUC derived from them."""

    model: str
    predictions: pd.DataFrame  # fold, group, settlement, label, score
    splits: list[str] = field(default_factory=list)

    def curves(self) -> pd.DataFrame:
        """Precision/recall at top 1..100 % per fold, pixel and settlement level, plus ``pooled``."""
        rows = []
        for fold, part in [
            *self.predictions.groupby("fold", sort=False),
            ("pooled", self.predictions),
        ]:
            if part["label"].nunique() < 2:
                log.warning("fold %s has one class only; its curve is skipped", fold)
                continue
            pix = precision_recall_at_top(part["score"], part["label"]).assign(level="pixel")
            sett = settlement_scores(
                part["score"], part["fold"].astype(str) + ":" + part["settlement"], part["label"]
            )
            st = precision_recall_at_top(sett["score"], sett["label"]).assign(level="settlement")
            rows.append(pd.concat([pix, st]).assign(fold=fold, model=self.model))
        return pd.concat(rows, ignore_index=True)

    def table(self) -> pd.DataFrame:
        """Per fold and pooled: PR-AUC (pixel, settlement), precision and recall at the top 10 %."""
        rows = []
        for fold, part in [
            *self.predictions.groupby("fold", sort=False),
            ("pooled", self.predictions),
        ]:
            sett = settlement_scores(
                part["score"], part["fold"].astype(str) + ":" + part["settlement"], part["label"]
            )
            at10 = precision_recall_at_top(part["score"], part["label"], [10]).iloc[0]
            s10 = precision_recall_at_top(sett["score"], sett["label"], [10]).iloc[0]
            rows.append(
                {
                    "model": self.model,
                    "fold": fold,
                    "n_pixels": len(part),
                    "n_positive": int(part["label"].sum()),
                    "prevalence": float(part["label"].mean()),
                    "pr_auc_pixel": pr_auc(part["score"], part["label"]),
                    "pr_auc_settlement": pr_auc(sett["score"], sett["label"]),
                    "precision_top10_pixel": at10["precision"],
                    "recall_top10_pixel": at10["recall"],
                    "precision_top10_settlement": s10["precision"],
                    "recall_top10_settlement": s10["recall"],
                }
            )
        return pd.DataFrame(rows)


def cross_validate(
    features: str | Path,
    sample: pd.DataFrame,
    classifier: SettlementClassifier | str,
    rasters: LabelRasters,
    folds: SpatialFolds,
    *,
    points: bool = False,
    max_test_pixels: int = 200_000,
    seed: int = 0,
) -> CVResult:
    """Out-of-fold settlement probabilities at the true class balance of every held-out fold.

    For fold ``k`` the classifier is fitted on the sample outside fold ``k`` and its buffer, and
    scored on :func:`held_out`. ``classifier="auto"`` chooses the model inside each training part
    by an inner spatial CV (:func:`~humanscape.tasks.settlements.model.select_model`), so that the
    score of the choice is itself held out.
    """
    from tqdm.auto import tqdm

    name = classifier if isinstance(classifier, str) else classifier.method
    parts = []
    for k in tqdm(range(len(folds)), desc=f"{name}: folds", unit="fold"):
        split = folds.split(sample["x"].to_numpy(), sample["y"].to_numpy(), k)
        train = sample.iloc[split.train]
        if train["label"].nunique() < 2:
            raise HumanscapeError(
                f"{split.name}: the training part has one class only",
                fix="use more groups, smaller blocks (--block-km) or a smaller --buffer-m",
            )
        test = held_out(
            features,
            rasters,
            sample,
            folds,
            k,
            points=points,
            max_test_pixels=max_test_pixels,
            seed=seed,
        )
        if test.empty:
            log.warning("%s: no held-out data; fold skipped", split.name)
            continue
        if isinstance(classifier, str):
            inner = SpatialFolds.blocks(
                _bounds(train),
                _inner_block(folds, train),
                n_folds=3,
                buffer=folds.buffer,
                seed=seed + 1 + k,
            )
            clf, _ = select_model(train, inner.splits(train["x"].to_numpy(), train["y"].to_numpy()))
        else:
            clf = clone(classifier).fit(train, train["label"])
        parts.append(
            pd.DataFrame(
                {
                    "fold": split.name,
                    "group": test["group"].to_numpy(),
                    "settlement": test["settlement"].to_numpy(),
                    "label": test["label"].to_numpy(),
                    "score": clf.predict_proba(test)[:, 1],
                }
            )
        )
        log.info(
            "%s: %s; held out %d (%.2f %% positive)",
            name,
            split.describe(),
            len(test),
            100 * test["label"].mean(),
        )
    if not parts:
        raise HumanscapeError("no fold has held-out data", fix="check the labels and the folds")
    return CVResult(name, pd.concat(parts, ignore_index=True), list(folds.names))


def _bounds(sample: pd.DataFrame) -> tuple[float, float, float, float]:
    return (
        float(sample["x"].min()) - 1,
        float(sample["y"].min()) - 1,
        float(sample["x"].max()) + 1,
        float(sample["y"].max()) + 1,
    )


def _inner_block(folds: SpatialFolds, train: pd.DataFrame) -> float:
    """Block size for the inner CV: the outer blocks' cell scale, at least 2 buffers."""
    left, bottom, right, top = _bounds(train)
    side = max(right - left, top - bottom)
    return max(2.5 * folds.buffer + 1, min(side / 3, 2000.0))


def write_report(results: Sequence[CVResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``curves.csv``, ``table.csv`` and one PNG of curves per fold (all models on it).

    The folder is written atomically (a previous report folder there is replaced).
    """
    from humanscape.report.settlements import curves_png

    out_dir = Path(out_dir)
    curves = pd.concat([r.curves() for r in results], ignore_index=True)
    table = pd.concat([r.table() for r in results], ignore_index=True)
    names = {"curves": "curves.csv", "table": "table.csv"}
    with atomic_folder(out_dir, written_by="settlements evaluate") as tmp:
        curves.to_csv(tmp / names["curves"], index=False)
        table.to_csv(tmp / names["table"], index=False)
        for fold, part in curves.groupby("fold", sort=False):
            prevalence = float(table.loc[table["fold"] == fold, "prevalence"].iloc[0])
            name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(fold))
            curves_png(part, str(fold), prevalence, tmp / f"curves_{name}.png")
            names[f"png_{name}"] = f"curves_{name}.png"
    return {key: out_dir / name for key, name in names.items()}
