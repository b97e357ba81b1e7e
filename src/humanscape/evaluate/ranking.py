"""Precision and recall at a validation budget: the evaluation of Tingzon et al. (2020), results and Fig. 4.

Field validators visit the highest-scoring pixels (or settlements) first. For every budget of the
top ``x`` percent, ``x = 1..100``, precision = tp / k and recall = tp / P, where k = ceil(x n / 100)
items are visited and P is the number of positives. A *settlement* (a label polygon or a negative
500 m block) is scored by the mean of its top 10 % pixel probabilities, "since only a proportion of
pixels in a settlement need to be identified for the settlement to be detected".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from humanscape.errors import HumanscapeError


def precision_recall_at_top(
    scores: Sequence[float], labels: Sequence[int], percents: Sequence[int] = tuple(range(1, 101))
) -> pd.DataFrame:
    """``percent``, ``k``, ``precision``, ``recall`` when the top ``percent`` % by score are visited.

    Ties are broken by input order (stable sort), so results are reproducible.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=int)
    if s.shape != y.shape or s.ndim != 1:
        raise HumanscapeError(
            f"scores and labels must be 1-D of one length, got {s.shape} and {y.shape}"
        )
    if s.size == 0:
        raise HumanscapeError("no item to rank")
    order = np.argsort(-s, kind="stable")
    hits = np.cumsum(y[order])
    n, positives = s.size, max(int(y.sum()), 1)
    rows = []
    for x in percents:
        k = max(1, int(np.ceil(x * n / 100)))
        tp = int(hits[k - 1])
        rows.append({"percent": int(x), "k": k, "precision": tp / k, "recall": tp / positives})
    return pd.DataFrame(rows)


def settlement_scores(
    scores: Sequence[float], settlements: Sequence[object], labels: Sequence[int], top: float = 0.1
) -> pd.DataFrame:
    """Per settlement: ``score`` = mean of its top ``top`` fraction of pixel scores (at least one pixel),
    ``label`` = its pixels' label (max), ``n_pixels``."""
    frame = pd.DataFrame(
        {
            "settlement": np.asarray(settlements),
            "score": np.asarray(scores, float),
            "label": np.asarray(labels, int),
        }
    )

    def top_mean(values: pd.Series) -> float:
        v = np.sort(values.to_numpy())[::-1]
        return float(v[: max(1, int(np.ceil(top * v.size)))].mean())

    grouped = frame.groupby("settlement", sort=False)
    return pd.DataFrame(
        {
            "score": grouped["score"].agg(top_mean),
            "label": grouped["label"].max(),
            "n_pixels": grouped.size(),
        }
    ).reset_index()


def pr_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the precision-recall curve (average precision); NaN when one class is absent."""
    y = np.asarray(labels, int)
    if y.min() == y.max():
        return float("nan")
    return float(average_precision_score(y, np.asarray(scores, float)))
