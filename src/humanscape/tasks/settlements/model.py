"""The pixel classifiers of Tingzon et al. (2020), Sec. 5, as one scikit-learn estimator.

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
linear models see standardised features. A fitted model is saved as a folder: ``config.json``
(hyperparameters, feature names, seed, versions) and ``model.skops`` (scikit-learn's safe format:
loading it instantiates only trusted scikit-learn and numpy types and never runs code; Jakubowski
et al., skops). Older folders holding a pickle (``model.joblib``) load only with
``trust_pickle=True``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from humanscape import __version__
from humanscape._atomic import atomic_folder
from humanscape.data.splits import Split
from humanscape.errors import HumanscapeError

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


class SettlementClassifier(ClassifierMixin, BaseEstimator):
    """Pixel classifier: ``fit(X, y)``, ``predict_proba(X)``, ``save`` / ``load``.

    Parameters
    ----------
    model
        ``lr``, ``svm`` or ``rf`` (see module docstring).
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

    def __init__(
        self,
        model: str = "rf",
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
        self.model = model
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
    def _check_params(self) -> None:
        if self.model not in MODELS:
            raise HumanscapeError(
                f"unknown model '{self.model}'", fix=f"use one of {', '.join(MODELS)} (or auto)"
            )
        if self.model == "rf" and int(self.n_estimators) < 1:
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
                    cv=calibration_cv,
                ),
            )
        if self.model == "hgb":
            return make_pipeline(
                HistGradientBoostingClassifier(
                    max_iter=int(self.max_iter),
                    learning_rate=self.learning_rate,
                    max_leaf_nodes=int(self.max_leaf_nodes),
                    early_stopping=False,
                    random_state=self.seed,
                )
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
        if self.model != "svm":
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
        self._check_params()
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
        if not hasattr(self, "estimator_"):
            raise HumanscapeError("model is not fitted", fix="call fit first or load a saved model")
        return self.estimator_.predict_proba(self._matrix(X)).astype(np.float32)

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """1 where p(settlement) >= 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    # -- persistence
    def save(
        self,
        folder: str | Path,
        extra: dict[str, Any] | None = None,
        tables: dict[str, pd.DataFrame] | None = None,
    ) -> Path:
        """Write ``config.json``, ``model.skops`` and ``tables`` (CSV) into ``folder``, atomically
        as a whole (a previous model folder there is replaced)."""
        import skops.io as sio

        with atomic_folder(folder, marker="model.skops") as tmp:
            for name, table in (tables or {}).items():
                table.to_csv(tmp / name, index=False)
            sio.dump(self.estimator_, tmp / "model.skops")
            config = {
                "params": self.get_params(),
                "feature_names": self.feature_names_,
                "humanscape_version": __version__,
                "sklearn_version": sklearn.__version__,
                **(extra or {}),
            }
            (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, *, trust_pickle: bool = False) -> SettlementClassifier:
        """Load a folder written by :meth:`save`; no code in it runs.

        Only types scikit-learn, numpy and scipy trust are instantiated from ``model.skops``; a
        file naming any other type is refused. A folder from an older humanscape holding
        ``model.joblib`` (a pickle, which runs code when loaded) is read only with
        ``trust_pickle=True``.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise HumanscapeError(
                "model folder does not exist",
                path=folder,
                fix="point --model at a folder written by 'settlements fit'",
            )
        config_path = folder / "config.json"
        if not config_path.exists():
            raise HumanscapeError(
                "config.json missing",
                path=folder,
                fix="point --model at a folder written by 'settlements fit'",
            )
        try:
            config = json.loads(config_path.read_text())
            model = cls(**config["params"])
            model.feature_names_ = list(config["feature_names"])
            model.recipe_ = {
                "periods": config.get("periods"),
                "texture_window": config.get("texture_window"),
            }
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise HumanscapeError(
                f"not a settlement model configuration ({type(exc).__name__}: {exc})",
                path=config_path,
                fix="re-create the model with 'settlements fit'",
            ) from None
        model.classes_ = np.array([0, 1])
        weights = folder / "model.skops"
        if weights.exists():
            model.estimator_ = _load_skops(weights)
        elif (folder / "model.joblib").exists():
            if not trust_pickle:
                raise HumanscapeError(
                    "model.joblib is a pickle, and loading a pickle runs whatever code it holds",
                    path=folder / "model.joblib",
                    fix="re-fit with this version (saves model.skops), or pass --trust-pickle if "
                    "you made this folder yourself",
                )
            import joblib

            try:
                model.estimator_ = joblib.load(folder / "model.joblib")
            except Exception as exc:  # a pickle can fail in any way
                raise HumanscapeError(
                    f"cannot read the pickle ({type(exc).__name__})", path=folder / "model.joblib"
                ) from None
        else:
            raise HumanscapeError(
                "model.skops missing",
                path=folder,
                fix="point --model at a folder written by 'settlements fit'",
            )
        return model


#: Types skops does not trust by default that humanscape's own pipelines hold: plain data
#: containers of numpy and scikit-learn (no callables). Anything else in a model file is refused.
SKOPS_TRUSTED = (
    "numpy.dtype",
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

    Candidates are every model in ``models`` and, when the sample has labelled negatives, every
    ``complement_weight``. Each is scored by :func:`trusted_average_precision` on the held-out
    fold of every split (folds whose held-out part lacks a class are skipped), and the best mean
    wins. Forests are compared with at most ``selection_trees`` trees (the ranking of settings
    is stable well before the paper's 800) and the winner is refitted with ``base``'s trees.
    Returns the refitted best estimator and the table of scores (one row per candidate).
    """
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV

    base = base or SettlementClassifier()
    labelled = "kind" in sample.columns and (sample["kind"] == "labelled").any()
    grid: dict[str, list[object]] = {"model": list(models)}
    if labelled and (sample["kind"].isin(COMPLEMENT_KINDS)).any():
        grid["complement_weight"] = list(complement_weights)
    y = sample["label"].to_numpy()
    cv = [(s.train, s.test) for s in splits if np.unique(y[s.train]).size == 2]
    cv = [(tr, te) for tr, te in cv if np.unique(y[te]).size == 2]
    if len(cv) < 2:
        raise HumanscapeError(
            "fewer than two spatial folds hold both classes, so the model cannot be chosen by CV",
            fix="use smaller blocks (--block-km), more groups, or give --model lr|svm|rf",
        )
    probe = clone(base).set_params(n_estimators=min(int(base.n_estimators), selection_trees))
    search = GridSearchCV(
        probe, grid, scoring=trusted_average_precision, cv=cv, refit=False, error_score="raise"
    )
    search.fit(sample, y)
    table = pd.DataFrame(search.cv_results_)
    keep = [
        c
        for c in table.columns
        if c.startswith("param_") or c in ("mean_test_score", "std_test_score", "rank_test_score")
    ]
    table = table[keep].rename(columns=lambda c: c.removeprefix("param_"))
    best = clone(base).set_params(**search.best_params_).fit(sample, y)
    log.info("chosen by spatial CV: %s", search.best_params_)
    return best, table.sort_values("rank_test_score").reset_index(drop=True)
