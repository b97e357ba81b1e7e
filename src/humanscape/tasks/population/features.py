"""Frozen chip features for population heads (issue 9, item 7; Rolf et al. 2021, Huang et al. 2021).

Three featurisers of ``(n, bands, H, W)`` reflectance chips, each fitted on training chips only:

``stats``
    Per-band mean and standard deviation, plus the mean and standard deviation of NDVI
    ``(NIR - red) / (NIR + red)`` and NDBI ``(SWIR1 - NIR) / (SWIR1 + NIR)`` (Zha et al. 2003)
    when the bands are there: the random-forest baseline of the benchmark.
``mosaiks``
    MOSAIKS random convolutional features (:class:`~humanscape.models.random_features.RandomConvFeatures`,
    Rolf et al. 2021, Methods eq. 1) on every band of the chip.
``encoder``
    The embedding of a shipped (or saved) encoder, on the encoder's own bands.

Heads (scikit-learn, on the log target): ``ridge`` (signed square root of each feature, z-scored,
ridge with the penalty chosen by efficient leave-one-out, as MOSAIKS fits its ridge), ``hgb``
(histogram gradient boosting), ``rf`` (random forest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from humanscape.errors import HumanscapeError

FEATURES = ("stats", "mosaiks", "encoder")
HEADS = ("ridge", "hgb", "rf")
#: Ridge penalties searched (efficient leave-one-out, scikit-learn ``RidgeCV``).
RIDGE_ALPHAS = np.logspace(-2, 5, 30)


def band_statistics(images: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """``stats`` features: per-band mean and std, then NDVI / NDBI mean and std (module docstring).

    NaN (nodata) pixels are ignored; a band that is NaN over a whole chip gives 0.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != len(bands):
        raise HumanscapeError(f"{len(bands)} band names for images of shape {images.shape}")
    with np.errstate(all="ignore"):
        columns = [np.nanmean(images, axis=(2, 3)), np.nanstd(images, axis=(2, 3))]
        index = {b: i for i, b in enumerate(bands)}
        for a, b in (("B08", "B04"), ("B11", "B08")):  # NDVI = (NIR - red) / (NIR + red); NDBI
            if a in index and b in index:
                x, y = images[:, index[a]], images[:, index[b]]
                ratio = (x - y) / (x + y)
                ratio[~np.isfinite(ratio)] = np.nan
                columns += [np.nanmean(ratio, axis=(1, 2))[:, None]]
                columns += [np.nanstd(ratio, axis=(1, 2))[:, None]]
    return np.nan_to_num(np.concatenate(columns, axis=1), nan=0.0).astype(np.float32)


def signed_sqrt(x: np.ndarray) -> np.ndarray:
    """``sign(x) sqrt(|x|)``: tames the heavy right tail of rectified-response features."""
    return np.sign(x) * np.sqrt(np.abs(x))


def make_head(name: str, seed: int = 0) -> BaseEstimator:
    """A fresh scikit-learn regressor of kind ``name`` (see the module docstring)."""
    if name == "ridge":
        return make_pipeline(
            FunctionTransformer(signed_sqrt), StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)
        )
    if name == "hgb":
        return HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=seed)
    if name == "rf":
        return RandomForestRegressor(
            n_estimators=500, min_samples_leaf=2, n_jobs=-1, random_state=seed
        )
    raise HumanscapeError(f"unknown head '{name}'", fix=f"use one of {', '.join(HEADS)}")


class ClippedRegressor(RegressorMixin, BaseEstimator):
    """A regressor whose predictions are clipped to the range of its training targets.

    A linear head extrapolates wildly on a chip unlike any it was fitted on (cloud, snow, sea
    glint); population on the log scale has natural bounds, those seen in training.
    """

    def __init__(self, head: str = "ridge", seed: int = 0) -> None:
        self.head, self.seed = head, seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClippedRegressor:
        self.model_ = make_head(self.head, self.seed).fit(X, y)
        self.low_, self.high_ = float(np.min(y)), float(np.max(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.clip(self.model_.predict(X), self.low_, self.high_)
