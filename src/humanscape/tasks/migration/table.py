"""Census tables for migration models: reading, checking and standardising (Runfola et al. 2022).

A census table has one row per municipality: an id column, numeric census aggregates and (to fit
or evaluate) the target, the number of people who left. Real tables are messy, and each mess has
one rule here:

- a *missing-value sentinel* (the Mexican IPUMS aggregates use ``-1`` for "the sample could not
  give this") is declared with ``missing=`` and becomes a missing value, never a count;
- non-numeric columns are refused by name, or dropped when asked (``drop_text=True``);
- constant columns carry no information and are dropped with a warning that counts them;
- missing or duplicate ids, a target with missing or negative values are errors.

:class:`~humanscape.data.standardise.Standardiser` is the paper's "z-score standardisation is applied to all input
information" (Sec. 3.3), fitted on training rows only, with two additions a real table needs:
heavy-tailed non-negative columns (skewness > 2 on the training rows, e.g. population and income
totals) are ``log1p``-transformed before z-scoring, and every column with missing values gets a
0/1 *missing* indicator (the value itself is set to the training mean, i.e. z = 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape.data.chiptable import read_table
from humanscape.data.standardise import Standardiser  # noqa: F401  (re-exported)
from humanscape.errors import HumanscapeError

log = logging.getLogger(__name__)


@dataclass
class CensusTable:
    """A checked census table.

    Attributes
    ----------
    ids
        Municipality ids as strings, unique.
    features
        Numeric census columns (float64), missing values as NaN.
    target
        The outflow (None when the table has no target, e.g. for prediction).
    groups
        Optional region of each row (for transfer between regions), as strings.
    notes
        Warnings raised while reading (dropped columns, missing values), one line each.
    id_column, missing
        The id column's name and the missing-value code the table was read with (a fitted model
        keeps both, so that ``migration predict`` reads new tables the same way).
    """

    ids: pd.Series
    features: pd.DataFrame
    target: np.ndarray | None = None
    groups: pd.Series | None = None
    notes: list[str] = field(default_factory=list)
    id_column: str = "id"
    missing: float | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: np.ndarray) -> CensusTable:
        """The rows at positions ``rows``."""
        return CensusTable(
            self.ids.iloc[rows].reset_index(drop=True),
            self.features.iloc[rows].reset_index(drop=True),
            None if self.target is None else self.target[rows],
            None if self.groups is None else self.groups.iloc[rows].reset_index(drop=True),
            list(self.notes),
            self.id_column,
            self.missing,
        )


def _columns_text(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def read_census(
    path: str | Path,
    *,
    id_column: str,
    target: str | None = None,
    missing: float | None = None,
    drop_text: bool = False,
    group_column: str | None = None,
    columns: list[str] | None = None,
) -> CensusTable:
    """Read and check a census CSV/Parquet table (see the module docstring for the rules).

    ``columns`` fixes the feature columns (a fitted model's): they must all be present, extra
    columns are ignored, and constant columns are kept (the model was fitted with them).
    """
    path = Path(path)
    table = read_table(path, what="census table")
    table.columns = [str(c).strip() for c in table.columns]
    needed = [id_column, *(c for c in (target, group_column) if c)]
    for column in needed:
        if column not in table.columns:
            raise HumanscapeError(
                f"census table has no column '{column}' (columns: "
                f"{_columns_text(list(table.columns))})",
                path=path,
                fix="name an existing column (--id-column, --target, --region-column)",
            )
    ids = table[id_column]
    if ids.isna().any():
        raise HumanscapeError(
            f"{int(ids.isna().sum())} row(s) have no id in '{id_column}'",
            path=path,
            fix="give every municipality an id, or remove those rows",
        )
    ids = ids.astype(str).str.strip()
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise HumanscapeError(
            f"{len(duplicated)} duplicate id(s) in '{id_column}', first '{duplicated.iloc[0]}'",
            path=path,
            fix="one row per municipality",
        )
    y = None
    if target is not None:
        values = pd.to_numeric(table[target], errors="coerce")
        bad = int(values.isna().sum())
        if bad:
            raise HumanscapeError(
                f"target '{target}' has {bad} missing or non-numeric value(s)",
                path=path,
                fix="remove those rows, or predict them with 'migration predict'",
            )
        negative = int((values < 0).sum())
        if negative:
            raise HumanscapeError(
                f"target '{target}' has {negative} negative value(s) (a count of migrants)",
                path=path,
                fix="remove those rows, or recode a missing-value sentinel",
            )
        y = values.to_numpy(np.float64)
    notes: list[str] = []
    rest = [c for c in table.columns if c not in needed]
    if columns is not None:
        absent = [c for c in columns if c not in table.columns]
        if absent:
            raise HumanscapeError(
                f"census table lacks {len(absent)} column(s) the model was fitted on: "
                f"{_columns_text(absent)}",
                path=path,
                fix="give a table with the same census columns as the training table",
            )
        rest = list(columns)
    features = table[rest]
    text = [c for c in rest if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        if not drop_text or columns is not None:
            raise HumanscapeError(
                f"{len(text)} non-numeric column(s): {_columns_text(text)}",
                path=path,
                fix="drop them with --drop, or recode them as numbers",
            )
        notes.append(f"dropped {len(text)} non-numeric column(s): {_columns_text(text)}")
        features = features.drop(columns=text)
    features = features.astype(np.float64)
    if missing is not None:
        n_missing = int((features == missing).to_numpy().sum())
        features = features.mask(features == missing)
        if n_missing:
            notes.append(
                f"{n_missing} value(s) equal to the missing-value code {missing:g} treated as missing"
            )
    if columns is None:
        constant = [c for c in features.columns if features[c].nunique(dropna=True) <= 1]
        if constant:
            notes.append(f"dropped {len(constant)} constant column(s): {_columns_text(constant)}")
            features = features.drop(columns=constant)
        if features.shape[1] == 0:
            raise HumanscapeError(
                "census table has no usable numeric column besides the id and target",
                path=path,
                fix="give census variables as numeric columns",
            )
    groups = None
    if group_column is not None:
        groups = table[group_column].astype(str).str.strip()
    return CensusTable(
        ids.reset_index(drop=True),
        features.reset_index(drop=True),
        y,
        groups,
        notes,
        id_column,
        missing,
    )
