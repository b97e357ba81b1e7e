"""Spatially honest cross-validation of settlement classifiers and the paper's curves.

Tingzon et al. (2020, Sec. 5-6) use leave-one-municipality-out CV and report pixel-level and
settlement-level precision and recall at the top x % for each held-out municipality. With a single
area (no groups), humanscape uses spatial block CV instead: settlements (label polygons and
negative 500 m blocks) are assigned whole to checkerboard blocks of ``block_size`` metres by their
centroid, so no settlement is split between training and test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_output
from humanscape.data.splits import Split, block_folds, leave_one_group_out
from humanscape.errors import HumanscapeError
from humanscape.evaluate.ranking import pr_auc, precision_recall_at_top, settlement_scores
from humanscape.tasks.settlements.model import SettlementClassifier, feature_columns

log = logging.getLogger(__name__)


def settlement_block_folds(
    sample: pd.DataFrame, block_size: float, n_folds: int = 2
) -> list[Split]:
    """Block CV folds that keep every settlement whole (assigned by its centroid)."""
    centroids = sample.groupby("settlement")[["x", "y"]].mean()
    folds = block_folds(centroids.to_numpy(), block_size, n_folds=n_folds)
    fold_of = pd.Series(-1, index=centroids.index)
    for k, f in enumerate(folds):
        fold_of.iloc[f.test] = k
    pixel_fold = sample["settlement"].map(fold_of).to_numpy()
    return [
        Split(
            np.flatnonzero(pixel_fold != k),
            np.flatnonzero(pixel_fold == k),
            f"block{block_size:g}m fold {k}",
        )
        for k in range(n_folds)
    ]


def make_splits(sample: pd.DataFrame, *, block_size: float = 2000.0) -> list[Split]:
    """Leave-one-group-out when the sample has 2+ groups, else settlement-preserving block CV."""
    if sample["group"].nunique() >= 2:
        return list(leave_one_group_out(sample["group"].to_numpy()))
    return settlement_block_folds(sample, block_size)


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
    sample: pd.DataFrame,
    classifier: SettlementClassifier,
    *,
    splits: Sequence[Split] | None = None,
    block_size: float = 2000.0,
) -> CVResult:
    """Out-of-fold settlement probabilities for ``sample`` (from :func:`sample_pixels`)."""
    features = classifier.features or feature_columns(sample)
    splits = list(splits) if splits is not None else make_splits(sample, block_size=block_size)
    parts = []
    for split in splits:
        train, test = sample.iloc[split.train], sample.iloc[split.test]
        if train["label"].nunique() < 2:
            raise HumanscapeError(
                f"{split.name}: the training part has one class only",
                fix="use more groups or smaller blocks",
            )
        clf = SettlementClassifier(**{**classifier.get_params(), "features": features}).fit(
            train, train["label"]
        )
        parts.append(
            pd.DataFrame(
                {
                    "fold": split.name,
                    "group": test["group"].to_numpy(),
                    "settlement": test["settlement"].to_numpy(),
                    "label": test["label"].to_numpy(),
                    "score": clf.predict_proba(test),
                }
            )
        )
        log.info("%s: %s", classifier.model, split.describe())
    return CVResult(
        classifier.model, pd.concat(parts, ignore_index=True), [s.describe() for s in splits]
    )


def write_report(results: Sequence[CVResult], out_dir: str | Path) -> dict[str, Path]:
    """Write ``curves.csv``, ``table.csv`` and one PNG of curves per fold (all models on it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = pd.concat([r.curves() for r in results], ignore_index=True)
    table = pd.concat([r.table() for r in results], ignore_index=True)
    paths = {"curves": out_dir / "curves.csv", "table": out_dir / "table.csv"}
    for key, frame in (("curves", curves), ("table", table)):
        with atomic_output(paths[key]) as tmp:
            frame.to_csv(tmp, index=False)
    for fold, part in curves.groupby("fold", sort=False):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, level in zip(axes, ("pixel", "settlement"), strict=True):
            for model, m in part[part["level"] == level].groupby("model"):
                ax.plot(m["percent"], m["precision"], label=f"{model} precision")
                ax.plot(m["percent"], m["recall"], "--", label=f"{model} recall")
            ax.set(title=f"{fold}: {level} level", xlabel="top x % validated", ylim=(0, 1.02))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(fold))
        path = out_dir / f"curves_{name}.png"
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        paths[f"png_{name}"] = path
    return paths
