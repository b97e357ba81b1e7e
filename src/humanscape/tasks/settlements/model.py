"""The pixel classifiers of Tingzon et al. (2020; logistic regression, linear SVM, random forest), as one scikit-learn estimator.

- ``lr``: logistic regression with an L1 penalty, C = 1;
- ``svm``: linear support vector machine (C = 1) with Platt-scaled probabilities, calibrated on
  spatial folds (groups of ``calibration_block`` metres) so that calibration pixels are never the
  neighbours of the pixels the SVM was fitted on;
- ``rf``: random forest with the authors' tuned setting: 800 trees, max_depth 12,
  min_samples_split 15, min_samples_leaf 2;
- ``hgb`` (beyond the paper, the CLI default): scikit-learn's histogram gradient boosting, 50
  rounds of 15-leaf trees at learning rate 0.2, missing values handled natively. A pixel walks 50
  shallow trees instead of 800 trees of depth 12: on the Berlin benchmark
  (``bench/settlements.py --part models``, spatial CV at the true balance) it predicts about 15x
  faster than the paper's forest with a higher held-out PR-AUC (0.585 vs 0.564), which is what makes
  country-scale maps affordable (docs/benchmarks.md).

:class:`SettlementClassifier` is a scikit-learn estimator (``BaseEstimator``): ``clone``,
``GridSearchCV`` and pipelines work, and :func:`select_model` chooses the classifier (and the
weight of the random-block negatives) by spatially grouped cross-validation.

Missing feature values (a period with no clear observation) are imputed with the training median;
linear models see standardised features. A fitted model is saved as a folder
(:class:`~humanscape.models.estimator.TaskModel`): ``config.json`` (hyperparameters, feature
names, the feature recipe, seed, versions), ``model.skops`` (scikit-learn's safe format: loading it
instantiates only trusted scikit-learn and numpy types and never runs code; Jakubowski et al.,
skops) and the class balance and candidate tables of the fit as CSV.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from humanscape.data.splits import Split
from humanscape.errors import HumanscapeError
from humanscape.models.estimator import TaskModel

log = logging.getLogger(__name__)

MODELS = ("lr", "svm", "rf", "hgb")
#: Bookkeeping columns of a pixel sample (everything else is a feature).
META_COLUMNS = ("row", "col", "label", "kind", "settlement", "group", "x", "y")
#: Sample kinds drawn at random from blocks without positives (the paper's negatives).
COMPLEMENT_KINDS = ("formal", "unoccupied")
#: Sample kinds whose label a person gave.
TRUSTED_KINDS = ("positive", "labelled")


def feature_columns(sample: pd.DataFrame) -> list[str]:
    """The feature columns of a pixel sample: every column but the bookkeeping ones."""
    return [c for c in sample.columns if c not in META_COLUMNS]


class QuantileCodes(TransformerMixin, BaseEstimator):
    """Each feature replaced by the index of its quantile bin: the binning of scikit-learn's
    histogram gradient boosting (``max_bins`` bins at the unweighted quantiles, ``averaged_inverted_cdf``;
    the distinct values when there are fewer), done once before the booster.

    The booster then sees at most ``max_bins`` distinct values per feature and keeps them as its
    bins, so its splits are those of binning the raw features. Why not let it bin: with sample
    weights (the random-block negatives' weight) scikit-learn bins at weighted quantiles, one
    weighted percentile at a time: 5.4 s instead of 0.05 s for 70,000 pixels x 31 features
    (``settlements fit`` on the Berlin demo: 77 s -> 8 s). Weights still weigh the loss. Missing
    values stay missing (the booster sends them to the better side of each split).
    """

    def __init__(self, max_bins: int = 255) -> None:
        self.max_bins = max_bins

    def fit(self, X: np.ndarray, y: object = None) -> QuantileCodes:
        X = np.asarray(X, dtype=np.float64)
        self.thresholds_ = [self._thresholds(X[:, j]) for j in range(X.shape[1])]
        return self

    def _thresholds(self, column: np.ndarray) -> np.ndarray:
        values = np.unique(column[np.isfinite(column)])
        if len(values) <= 1:
            return np.empty(0)
        if len(values) <= self.max_bins:
            return (values[1:] + values[:-1]) / 2
        percentiles = np.linspace(0, 100, num=self.max_bins + 1)[1:-1]
        cuts = np.percentile(
            column[np.isfinite(column)], percentiles, method="averaged_inverted_cdf"
        )
        return np.unique(cuts)

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape, dtype=np.float32)
        for j, cuts in enumerate(self.thresholds_):
            out[:, j] = np.searchsorted(cuts, X[:, j], side="left")
        out[np.isnan(X)] = np.nan
        return out


class SettlementClassifier(ClassifierMixin, TaskModel):
    """Pixel classifier: ``fit(X, y)``, ``predict_proba(X)``, ``save`` / ``load``.

    Parameters
    ----------
    method
        ``hgb``, ``rf``, ``lr`` or ``svm`` (see module docstring).
    features
        Feature names to use (default: all feature columns of ``X`` at fit time).
    n_estimators, max_depth, min_samples_split, min_samples_leaf
        Random forest settings (default: the authors' tuned values).
    max_iter, learning_rate, max_leaf_nodes
        Boosting rounds, shrinkage and leaves per tree of ``hgb``.
    C
        Inverse regularisation of ``lr`` and ``svm``.
    complement_weight
        Total weight of the random-block negatives relative to the labelled negatives, when ``X``
        has a ``kind`` column and labelled negatives exist (1: equal total weight; 0: left out).
        Without labelled negatives every sample weighs 1 (the paper's setting).
    calibration_folds, calibration_block
        Spatial folds for the SVM's Platt scaling: ``x, y`` of the samples grouped into blocks of
        ``calibration_block`` metres, ``calibration_folds`` group folds.
    n_jobs, seed
        Passed to scikit-learn.
    """

    kind = "humanscape.settlements"
    what = "settlement model"
    refit = "settlements fit"
    fitted_attribute = "estimator_"

    def __init__(
        self,
        method: str = "rf",
        *,
        features: Sequence[str] | None = None,
        n_estimators: int = 800,
        max_depth: int | None = 12,
        min_samples_split: int = 15,
        min_samples_leaf: int = 2,
        max_iter: int = 50,
        learning_rate: float = 0.2,
        max_leaf_nodes: int = 15,
        C: float = 1.0,
        complement_weight: float = 1.0,
        calibration_folds: int = 3,
        calibration_block: float = 2000.0,
        n_jobs: int | None = None,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.features = features
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.C = C
        self.complement_weight = complement_weight
        self.calibration_folds = calibration_folds
        self.calibration_block = calibration_block
        self.n_jobs = n_jobs
        self.seed = seed

    # -- building
    def _validate_params(self) -> None:
        self._choice("settlement method", self.method, MODELS)
        if self.method == "rf" and int(self.n_estimators) < 1:
            raise HumanscapeError(
                f"a random forest needs at least 1 tree, got {self.n_estimators}",
                fix="use e.g. --n-estimators 800 (the paper's value)",
            )
        if not self.complement_weight >= 0:
            raise HumanscapeError(
                f"complement_weight must be 0 or more, got {self.complement_weight}"
            )

    def _build(self, calibration_cv: object) -> Pipeline:
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        if self.method == "lr":
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
        if self.method == "svm":
            return make_pipeline(
                impute,
                StandardScaler(),
                CalibratedClassifierCV(
                    LinearSVC(C=self.C, max_iter=5000, random_state=self.seed),
                    method="sigmoid",
                    cv=calibration_cv,
                ),
            )
        if self.method == "hgb":
            return make_pipeline(
                QuantileCodes(),
                HistGradientBoostingClassifier(
                    max_iter=int(self.max_iter),
                    learning_rate=self.learning_rate,
                    max_leaf_nodes=int(self.max_leaf_nodes),
                    early_stopping=False,
                    random_state=self.seed,
                ),
            )
        return make_pipeline(
            impute,
            RandomForestClassifier(
                n_estimators=int(self.n_estimators),
                max_depth=self.max_depth,
                min_samples_split=self.min_samples_split,
                min_samples_leaf=self.min_samples_leaf,
                n_jobs=self.n_jobs,
                random_state=self.seed,
            ),
        )

    def _matrix(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        if isinstance(X, np.ndarray):
            return X.astype(np.float32, copy=False)
        names = getattr(self, "feature_names_", None) or self._names(X)
        missing = [n for n in names if n not in X.columns]
        if missing:
            raise HumanscapeError(
                f"{len(missing)} feature(s) missing, first: {missing[0]}",
                fix="predict on a feature stack built like the training one (same periods and options)",
            )
        return X[names].to_numpy(np.float32)

    def _names(self, X: pd.DataFrame) -> list[str]:
        return list(self.features) if self.features is not None else feature_columns(X)

    def sample_weights(self, X: pd.DataFrame) -> np.ndarray | None:
        """Weights that give the random-block negatives ``complement_weight`` times the total
        weight of the labelled negatives (``None``: all samples weigh 1)."""
        if not isinstance(X, pd.DataFrame) or "kind" not in X.columns:
            return None
        kind = X["kind"].to_numpy()
        labelled = int((kind == "labelled").sum())
        complement = np.isin(kind, COMPLEMENT_KINDS)
        if labelled == 0 or not complement.any():
            return None
        weights = np.ones(len(X))
        weights[complement] = self.complement_weight * labelled / complement.sum()
        return weights

    def _calibration_cv(self, X: pd.DataFrame | np.ndarray, y: np.ndarray) -> object:
        """Spatial group folds for the SVM's calibration (stratified folds without coordinates)."""
        if self.method != "svm":
            return None
        if isinstance(X, pd.DataFrame) and {"x", "y"} <= set(X.columns):
            blocks = np.floor(X[["x", "y"]].to_numpy(float) / self.calibration_block)
            groups = np.unique(blocks, axis=0, return_inverse=True)[1].ravel()
            n = min(self.calibration_folds, np.unique(groups).size)
            if n >= 2:
                from sklearn.model_selection import GroupKFold

                folds = [
                    (tr, te)
                    for tr, te in GroupKFold(n_splits=n).split(blocks, y, groups)
                    if np.unique(y[tr]).size == 2
                ]
                if len(folds) >= 2:
                    return folds
        log.info("SVM calibration: no coordinates for spatial folds; stratified folds instead")
        return self.calibration_folds

    # -- estimator API
    def fit(self, X: pd.DataFrame | np.ndarray, y: Sequence[int]) -> SettlementClassifier:
        """Fit on a pixel sample (:func:`~humanscape.tasks.settlements.sampling.sample_pixels`)."""
        self._validate_params()
        y = np.asarray(y, int)
        if np.unique(y).size < 2:
            raise HumanscapeError(
                "training data has one class only", fix="sample both positives and negatives"
            )
        if isinstance(X, np.ndarray):
            if self.features is None:
                raise HumanscapeError("fitting on an array needs features= (the column names)")
            self.feature_names_ = list(self.features)
        else:
            self.feature_names_ = self._names(X)
        self.classes_ = np.array([0, 1])
        estimator = self._build(self._calibration_cv(X, y))
        weights = self.sample_weights(X)
        matrix = self._matrix(X)
        if weights is None:
            self.estimator_ = estimator.fit(matrix, y)
        else:
            step = estimator.steps[-1][0]
            self.estimator_ = estimator.fit(matrix, y, **{f"{step}__sample_weight": weights})
        return self

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """``(n, 2)`` probabilities of [not settlement, settlement] for each row."""
        self.check_fitted()
        return self.estimator_.predict_proba(self._matrix(X)).astype(np.float32)

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """1 where p(settlement) >= 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    # -- persistence
    @property
    def recipe(self) -> dict[str, Any]:
        """How the training features were made (periods, texture window), for predicting from
        composites; empty for a model fitted on an array."""
        return (
            {k: self.info_.get(k) for k in ("periods", "texture_window")}
            if hasattr(self, "info_")
            else {}
        )

    def _state(self, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        sio.dump(self.estimator_, folder / "model.skops")
        return {"feature_names": self.feature_names_}

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        self.feature_names_ = list(state["feature_names"])
        self.classes_ = np.array([0, 1])
        self.estimator_ = _load_skops(folder / "model.skops")


#: Types skops does not trust by default that humanscape's own pipelines hold: plain data
#: containers of numpy and scikit-learn (no callables). Anything else in a model file is refused.
SKOPS_TRUSTED = (
    "numpy.dtype",
    "humanscape.tasks.settlements.model.QuantileCodes",
    "sklearn.tree._tree.Tree",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn.utils._bunch.Bunch",
)


def _load_skops(path: Path) -> Pipeline:
    from humanscape.models.sklearn_io import load_skops

    estimator = load_skops(path, trusted=SKOPS_TRUSTED, refit="settlements fit")
    if not isinstance(estimator, Pipeline):
        raise HumanscapeError("the model file holds no scikit-learn pipeline", path=path)
    return estimator


def trusted_average_precision(
    estimator: SettlementClassifier, X: pd.DataFrame, y: Sequence[int]
) -> float:
    """PR-AUC on the held-out samples whose label a person gave, when there are such negatives.

    With labelled negatives in ``X`` (``kind == "labelled"``) the random-block negatives are not
    trusted truth and are left out of the score; otherwise every sample counts (the paper's setting).
    """
    y = np.asarray(y, int)
    keep = np.ones(len(y), bool)
    if isinstance(X, pd.DataFrame) and "kind" in X.columns and (X["kind"] == "labelled").any():
        keep = X["kind"].isin(TRUSTED_KINDS).to_numpy()
    if np.unique(y[keep]).size < 2:
        return float("nan")
    return float(
        average_precision_score(
            y[keep],
            estimator.predict_proba(X[keep] if isinstance(X, pd.DataFrame) else X[keep])[:, 1],
        )
    )


def select_model(
    sample: pd.DataFrame,
    splits: Sequence[Split],
    *,
    base: SettlementClassifier | None = None,
    models: Sequence[str] = MODELS,
    complement_weights: Sequence[float] = (0.0, 0.25, 1.0),
    selection_trees: int = 200,
) -> tuple[SettlementClassifier, pd.DataFrame]:
    """Choose model (and random-block negative weight) by spatial CV; return it refitted on all.

    Candidates are every method in ``models`` and, when the sample has labelled negatives, every
    ``complement_weight``. Each is scored by :func:`trusted_average_precision` on the held-out
    fold of every split (folds whose held-out part lacks a class are skipped), and the best mean
    wins. Forests are compared with at most ``selection_trees`` trees (the ranking of settings
    is stable well before the paper's 800) and the winner is refitted with ``base``'s trees.
    Returns the refitted best estimator and the table of scores (one row per candidate).
    """
    from sklearn.base import clone
    from sklearn.model_selection import ParameterGrid, cross_val_score
    from tqdm.auto import tqdm

    base = base or SettlementClassifier()
    labelled = "kind" in sample.columns and (sample["kind"] == "labelled").any()
    grid: dict[str, list[object]] = {"method": list(models)}
    if labelled and (sample["kind"].isin(COMPLEMENT_KINDS)).any():
        grid["complement_weight"] = list(complement_weights)
    y = sample["label"].to_numpy()
    cv = [(s.train, s.test) for s in splits if np.unique(y[s.train]).size == 2]
    cv = [(tr, te) for tr, te in cv if np.unique(y[te]).size == 2]
    if len(cv) < 2:
        raise HumanscapeError(
            "fewer than two spatial folds hold both classes, so the model cannot be chosen by CV",
            fix="use smaller blocks (--block-km), more groups, or give --method lr|svm|rf|hgb",
        )
    probe = clone(base).set_params(n_estimators=min(int(base.n_estimators), selection_trees))
    rows = []
    candidates = list(ParameterGrid(grid))
    for params in tqdm(candidates, desc="spatial CV of candidates", unit="candidate"):
        scores = cross_val_score(
            clone(probe).set_params(**params),
            sample,
            y,
            cv=cv,
            scoring=trusted_average_precision,
            error_score="raise",
        )
        rows.append({**params, "mean_test_score": scores.mean(), "std_test_score": scores.std()})
    table = pd.DataFrame(rows)
    table["rank_test_score"] = table["mean_test_score"].rank(ascending=False, method="min")
    table = table.sort_values(["rank_test_score"], kind="stable").reset_index(drop=True)
    best_params = {k: table.iloc[0][k] for k in grid}
    best = clone(base).set_params(**best_params).fit(sample, y)
    log.info("chosen by spatial CV: %s", best_params)
    return best, table
