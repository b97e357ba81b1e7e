"""The pixel classifiers of Tingzon et al. (2020), Sec. 5, as one scikit-learn-style estimator.

- ``lr``: logistic regression with an L1 penalty, C = 1;
- ``svm``: linear support vector machine (C = 1) with Platt-scaled probabilities;
- ``rf``: random forest with the authors' tuned setting: 800 trees, max_depth 12,
  min_samples_split 15, min_samples_leaf 2.

Missing feature values (a period with no clear observation) are imputed with the training median;
linear models see standardised features. ``n_jobs`` is passed to scikit-learn. Saved as a folder:
``config.json`` (hyperparameters, feature names, seed, versions) and ``model.joblib``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from humanscape import __version__
from humanscape._atomic import atomic_output
from humanscape.errors import HumanscapeError

MODELS = ("lr", "svm", "rf")
#: Bookkeeping columns of a pixel sample (everything else is a feature).
META_COLUMNS = ("row", "col", "label", "kind", "settlement", "group", "x", "y")


def feature_columns(sample: pd.DataFrame) -> list[str]:
    """The feature columns of a pixel sample: every column but the bookkeeping ones."""
    return [c for c in sample.columns if c not in META_COLUMNS]


class SettlementClassifier:
    """Pixel classifier: ``fit(X, y)``, ``predict_proba(X) -> p(settlement)``, ``save`` / ``load``.

    Parameters
    ----------
    model
        ``lr``, ``svm`` or ``rf`` (see module docstring).
    features
        Feature names to use (default: all columns of ``X`` at fit time); e.g. raw bands only.
    n_estimators, max_depth, min_samples_split, min_samples_leaf
        Random forest settings (default: the authors' tuned values).
    C
        Inverse regularisation of ``lr`` and ``svm``.
    n_jobs, seed
        Passed to scikit-learn.
    """

    def __init__(
        self,
        model: str = "rf",
        *,
        features: Sequence[str] | None = None,
        n_estimators: int = 800,
        max_depth: int | None = 12,
        min_samples_split: int = 15,
        min_samples_leaf: int = 2,
        C: float = 1.0,
        n_jobs: int | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.features = None if features is None else list(features)
        self.n_estimators, self.max_depth = n_estimators, max_depth
        self.min_samples_split, self.min_samples_leaf = min_samples_split, min_samples_leaf
        self.C, self.n_jobs, self.seed = C, n_jobs, seed

    def get_params(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "model",
                "features",
                "n_estimators",
                "max_depth",
                "min_samples_split",
                "min_samples_leaf",
                "C",
                "n_jobs",
                "seed",
            )
        }

    def _build(self) -> Pipeline:
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        if self.model == "lr":
            return make_pipeline(
                impute,
                StandardScaler(),
                LogisticRegression(
                    l1_ratio=1.0,
                    C=self.C,
                    solver="liblinear",
                    max_iter=2000,
                    random_state=self.seed,
                ),
            )
        if self.model == "svm":
            return make_pipeline(
                impute,
                StandardScaler(),
                CalibratedClassifierCV(
                    LinearSVC(C=self.C, max_iter=5000, random_state=self.seed),
                    method="sigmoid",
                    cv=3,
                ),
            )
        if self.model == "rf":
            return make_pipeline(
                impute,
                RandomForestClassifier(
                    n_estimators=self.n_estimators,
                    max_depth=self.max_depth,
                    min_samples_split=self.min_samples_split,
                    min_samples_leaf=self.min_samples_leaf,
                    n_jobs=self.n_jobs,
                    random_state=self.seed,
                ),
            )
        raise HumanscapeError(
            f"unknown model '{self.model}'", fix=f"use one of {', '.join(MODELS)}"
        )

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        names = (
            self.feature_names_
            if hasattr(self, "feature_names_")
            else (self.features or feature_columns(X))
        )
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise HumanscapeError(
                f"{len(missing)} feature(s) missing, first: {missing[0]}",
                fix="predict on a feature stack built like the training one (same periods and options)",
            )
        return X[names].to_numpy(np.float32)

    def fit(self, X: pd.DataFrame, y: Sequence[int]) -> SettlementClassifier:
        y = np.asarray(y, int)
        if np.unique(y).size < 2:
            raise HumanscapeError(
                "training data has one class only", fix="sample both positives and negatives"
            )
        self.feature_names_ = self.features or feature_columns(X)
        self.estimator_ = self._build().fit(self._matrix(X), y)
        return self

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Probability of the settlement class for each row."""
        if not hasattr(self, "estimator_"):
            raise HumanscapeError("model is not fitted", fix="call fit first or load a saved model")
        matrix = X if isinstance(X, np.ndarray) else self._matrix(X)
        return self.estimator_.predict_proba(matrix)[:, 1].astype(np.float32)

    def save(self, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(folder / "model.joblib") as tmp:
            joblib.dump(self.estimator_, tmp)
        config = {
            "params": self.get_params(),
            "feature_names": self.feature_names_,
            "humanscape_version": __version__,
            "sklearn_version": sklearn.__version__,
            **(extra or {}),
        }
        with atomic_output(folder / "config.json") as tmp:
            tmp.write_text(json.dumps(config, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SettlementClassifier:
        folder = Path(folder)
        for name in ("config.json", "model.joblib"):
            if not (folder / name).exists():
                raise HumanscapeError(
                    f"{name} missing",
                    path=folder,
                    fix="point --model at a folder written by 'settlements fit'",
                )
        config = json.loads((folder / "config.json").read_text())
        model = cls(**config["params"])
        model.feature_names_ = config["feature_names"]
        model.estimator_ = joblib.load(folder / "model.joblib")
        return model
