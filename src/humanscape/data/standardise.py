"""Standardising numeric tables for models: log1p for heavy tails, z-scores, missing indicators.

Used for census tables (migration, Runfola et al. 2022, Sec. 3.3: "z-score standardization is
applied to all input information") and region features (flows). Fitted on training rows only:
heavy-tailed non-negative columns (skewness > 2 on the training rows, e.g. population and income
totals) are ``log1p``-transformed before z-scoring, every column with missing values gets a 0/1
*missing* indicator (the value itself is set to the training mean, i.e. z = 0), and z-scores are
clipped to +-10 so that one extreme row cannot dominate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Skewness above which a non-negative column is log1p-transformed (heavy-tailed counts).
SKEW_LIMIT = 2.0
#: z-scores are clipped to this range so that one extreme row cannot dominate.
Z_CLIP = 10.0


class Standardiser:
    """log1p for heavy tails, z-scores, missing indicators; fitted on training rows only.

    ``transform`` returns float32 ``(rows, A)`` where ``A`` = columns + one indicator per column
    that had missing values in training; :attr:`names_` names the ``A`` inputs.
    """

    def fit(self, features: pd.DataFrame) -> Standardiser:
        self.columns_ = [str(c) for c in features.columns]
        x = features.to_numpy(np.float64)
        self.log_ = []
        for j, _ in enumerate(self.columns_):
            col = x[:, j][np.isfinite(x[:, j])]
            skew = pd.Series(col).skew() if col.size > 2 else 0.0
            self.log_.append(bool(col.size and col.min() >= 0 and np.nan_to_num(skew) > SKEW_LIMIT))
        t = self._logged(x)
        self.mean_ = np.nanmean(t, axis=0)
        self.std_ = np.nanstd(t, axis=0)
        self.std_[~(self.std_ > 0)] = 1.0
        self.mean_ = np.nan_to_num(self.mean_)
        self.indicators_ = [c for j, c in enumerate(self.columns_) if np.isnan(x[:, j]).any()]
        return self

    def _logged(self, x: np.ndarray) -> np.ndarray:
        t = x.copy()
        for j, flag in enumerate(self.log_):
            if flag:
                t[:, j] = np.log1p(np.clip(t[:, j], 0, None))
        return t

    @property
    def names_(self) -> list[str]:
        return [*self.columns_, *(f"{c} missing" for c in self.indicators_)]

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        x = features[self.columns_].to_numpy(np.float64)
        z = (self._logged(x) - self.mean_) / self.std_
        flags = [np.isnan(x[:, self.columns_.index(c)]) for c in self.indicators_]
        z = np.clip(np.nan_to_num(z, nan=0.0), -Z_CLIP, Z_CLIP)
        if flags:
            z = np.concatenate([z, np.stack(flags, axis=1).astype(np.float64)], axis=1)
        return z.astype(np.float32)

    def to_config(self) -> dict[str, Any]:
        return {
            "columns": self.columns_,
            "log": self.log_,
            "mean": [float(v) for v in self.mean_],
            "std": [float(v) for v in self.std_],
            "indicators": self.indicators_,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Standardiser:
        self = cls()
        self.columns_ = list(config["columns"])
        self.log_ = [bool(v) for v in config["log"]]
        self.mean_ = np.asarray(config["mean"], dtype=np.float64)
        self.std_ = np.asarray(config["std"], dtype=np.float64)
        self.indicators_ = list(config["indicators"])
        if not (len(self.log_) == len(self.mean_) == len(self.std_) == len(self.columns_)):
            raise ValueError("standardiser lists differ in length")
        return self
