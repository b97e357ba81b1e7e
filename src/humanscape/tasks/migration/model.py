"""Municipal migration outflow from census tables and imagery, as one estimator (Runfola et al. 2022).

:class:`MigrationModel` fits one of:

- the four networks of Table 2 (:mod:`~humanscape.tasks.migration.nets`): ``signature+imagery``
  (the paper's model), ``signature`` (without imagery), ``dense`` (the linear baseline) and
  ``imagery`` (imagery only);
- two tree ensembles on the same standardised census inputs: ``hgb`` (scikit-learn histogram
  gradient boosting with the Poisson loss, the natural loss for counts) and ``rf`` (random forest);
- ``ridge``: ridge regression on the same inputs (penalty by leave-one-out, ``RidgeCV``),
  estimates clipped at 0: the linear baseline, which held up best between states elsewhere;
- ``ensemble`` (the default, the best measured): the mean of ``hgb`` and a ridge-penalised Poisson
  GLM (log link, ``PoissonRegressor``) whose linear predictor is clamped to the range it took on
  the training rows, so that it never extrapolates an exponential beyond what it has seen (without
  the clamp one held-out state got r2 = -46 from a few huge estimates).

Rows given to :meth:`MigrationModel.fit` are split once (seeded), the same way for every method so
that methods are compared on equal data: 70 % *fitting* rows, 15 % *validation* rows (early
stopping of the networks and of the boosted trees; the forest and the GLM do not look at them) and
15 % *calibration* rows, never trained on, which give split-conformal intervals
(:mod:`humanscape.evaluate.uncertainty`). Intervals are conformal on the ``log1p`` scale and mapped
back, so they are multiplicative (a municipality of 50 migrants does not get the +-800 band of one
of 4000) and keep their coverage. With too few calibration rows for the level asked (fewer than
``1 / alpha - 1``) no finite interval exists: ``predict_interval`` then says so instead of
returning ``[0, inf]``.

A fitted model is a folder (:class:`~humanscape.models.estimator.TaskModel`): ``config.json``
(hyperparameters, census columns, standardisation, image normalisation, the blueprint layout of
every epoch, conformal quantile, the id column and missing-value code of the census table, seed,
versions) and ``weights.safetensors`` (networks) or ``model.skops`` (trees).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.torch import save_file

from humanscape.errors import HumanscapeError
from humanscape.evaluate.uncertainty import SplitConformal
from humanscape.models.estimator import TaskModel, finite_or
from humanscape.models.heads import band_normalisation
from humanscape.models.model_folder import load_net_weights
from humanscape.models.training import fit_module
from humanscape.tasks.migration.imagery import MunicipalImages
from humanscape.tasks.migration.nets import NET_KINDS, MigrationNet, RowDataset
from humanscape.tasks.migration.table import CensusTable, Standardiser

log = logging.getLogger(__name__)

WHAT, REFIT = "migration model", "migration fit"
#: Methods fitted by scikit-learn on the standardised census inputs.
TREE_KINDS = ("ensemble", "hgb", "rf", "ridge")
MODEL_KINDS = (*NET_KINDS, *TREE_KINDS)
#: The model class's own default: the best one measured on the shared table, on random splits
#: and between states (docs/benchmarks.md, migration section). ``migration fit`` defaults to
#: ``auto`` (:data:`AUTO_CANDIDATES` chosen by cross-validation on the user's table).
DEFAULT_MODEL = "ensemble"
#: What ``--method auto`` chooses among; ``rf`` is the baseline (the forest a reviewer tries first).
AUTO_CANDIDATES = ("ensemble", "hgb", "rf", "ridge")
AUTO_BASELINE = "rf"
#: Ridge penalty of the Poisson GLM of the ``ensemble`` model.
GLM_ALPHA = 0.1
#: Types a saved tree model may hold besides scikit-learn's own estimators (skops allow-list).
SKOPS_TRUSTED = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


def _split(n: int, shares: list[float], seed: int) -> list[np.ndarray]:
    """Random disjoint index sets of the given shares of ``n`` (the rest first)."""
    order = np.random.default_rng([seed, 11]).permutation(n)
    sizes = [max(1, int(round(s * n))) for s in shares]
    if sum(sizes) >= n:
        raise HumanscapeError(
            f"{n} municipalities are too few to hold out calibration and validation rows",
            fix="give at least 20 municipalities",
        )
    out, start = [], 0
    for size in sizes:
        out.append(np.sort(order[start : start + size]))
        start += size
    return [np.sort(order[start:]), *out]


class MigrationModel(TaskModel):
    """Outflow per municipality (see the module docstring).

    Parameters
    ----------
    method
        One of :data:`MODEL_KINDS`.
    epochs, patience, batch_size, lr
        Network training (paper: 250 epochs, batch 64, learning rate 0.001, Adam betas 0.5, 0.9).
    blueprint_lr
        Learning rate of the signature blueprint (see :mod:`~humanscape.tasks.migration.nets`).
    tau, tau_end, anneal_share
        Blueprint temperature from ``tau`` to ``tau_end`` over ``anneal_share`` of the epochs.
    n_estimators
        Trees of ``rf`` / most boosting iterations of ``hgb``.
    alpha
        Conformal intervals of level ``1 - alpha`` (0.1: 90 %).
    calibration, validation
        Shares of the fitting rows held out for conformal calibration and early stopping.
    max_tiles
        Image tiles drawn per municipality and training step.
    seed
        Seed of every random choice.
    """

    kind = "humanscape.migration"
    what = WHAT
    refit = REFIT
    fitted_attribute = "standardiser_"

    def __init__(
        self,
        method: str = DEFAULT_MODEL,
        *,
        epochs: int = 250,
        patience: int = 40,
        batch_size: int = 64,
        lr: float = 1e-3,
        blueprint_lr: float = 0.02,
        tau: float = 3.0,
        tau_end: float = 0.05,
        anneal_share: float = 0.4,
        n_estimators: int = 300,
        alpha: float = 0.1,
        calibration: float = 0.15,
        validation: float = 0.15,
        max_tiles: int = 16,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.epochs, self.patience, self.batch_size, self.lr = epochs, patience, batch_size, lr
        self.blueprint_lr = blueprint_lr
        self.tau, self.tau_end, self.anneal_share = tau, tau_end, anneal_share
        self.n_estimators, self.alpha = n_estimators, alpha
        self.calibration, self.validation = calibration, validation
        self.max_tiles, self.seed = max_tiles, seed

    def _validate_params(self) -> None:
        if self.method == "auto":
            raise HumanscapeError(
                "method 'auto' is chosen before fitting",
                fix="fit through select_method / 'migration fit', or name a method",
            )
        self._choice("migration method", self.method, MODEL_KINDS)
        if not 0 < self.alpha < 1:
            raise HumanscapeError(f"alpha must be in (0, 1), got {self.alpha}")

    @property
    def uses_images(self) -> bool:
        return "imagery" in self.method

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        table: CensusTable,
        images: MunicipalImages | None = None,
        *,
        work_dir: str | Path | None = None,
        progress: bool = True,
    ) -> MigrationModel:
        """Fit on every row of ``table`` (minus the held-out calibration/validation rows)."""
        self._validate_params()
        if table.target is None:
            raise HumanscapeError("the census table has no target", fix="give --target")
        if self.uses_images and images is None:
            raise HumanscapeError(
                f"method '{self.method}' needs image tiles", fix="give --images TILES.csv"
            )
        fit_rows, calib_rows, val_rows = _split(
            len(table), [self.calibration, self.validation], self.seed
        )
        self.standardiser_ = Standardiser().fit(table.features.iloc[fit_rows])
        self.variables_ = self.standardiser_.names_
        x = self.standardiser_.transform(table.features)
        y = np.asarray(table.target, dtype=np.float64)
        self.layouts_: list[list[list[int]]] = []
        self.bands_: list[str] = []
        self.image_mean_: list[float] = []
        self.image_std_: list[float] = []
        if self.method in TREE_KINDS:
            self.estimator_ = self._tree(len(fit_rows))
            if self.method in ("hgb", "ensemble"):  # boosting stops early on the validation rows
                self.estimator_.fit(x[fit_rows], y[fit_rows], X_val=x[val_rows], y_val=y[val_rows])
            else:
                self.estimator_.fit(x[fit_rows], y[fit_rows])
            if self.method == "ensemble":
                from sklearn.linear_model import PoissonRegressor

                self.glm_ = PoissonRegressor(alpha=GLM_ALPHA, max_iter=3000)
                self.glm_.fit(x[fit_rows], y[fit_rows])
                eta = x[fit_rows] @ self.glm_.coef_ + self.glm_.intercept_
                self.eta_range_ = (float(eta.min()), float(eta.max()))
        else:
            self._fit_net(table, x, y, images, fit_rows, val_rows, work_dir, progress)
        self.n_fit_ = int(len(fit_rows))
        self.id_column_ = table.id_column
        self.missing_ = table.missing
        predicted = self._predict_x(x[calib_rows], table.ids.iloc[calib_rows].tolist(), images)
        self.conformal_ = SplitConformal(self.alpha, inverse=np.expm1).fit(
            np.log1p(y[calib_rows]), np.log1p(predicted)
        )
        return self

    def _tree(self, n_rows: int) -> Any:
        if self.method == "ridge":
            from sklearn.linear_model import RidgeCV

            return RidgeCV(alphas=np.logspace(-2, 4, 13))
        if self.method in ("hgb", "ensemble"):
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(
                loss="poisson",
                max_iter=self.n_estimators,
                early_stopping=True,
                n_iter_no_change=20,
                learning_rate=0.05,
                # scikit-learn's 20 rows per leaf allow no split in a table of 40 municipalities
                min_samples_leaf=max(2, min(20, n_rows // 10)),
                random_state=self.seed,
            )
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=2, n_jobs=-1, random_state=self.seed
        )

    def _fit_net(
        self,
        table: CensusTable,
        x: np.ndarray,
        y: np.ndarray,
        images: MunicipalImages | None,
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
        work_dir: str | Path | None,
        progress: bool,
    ) -> None:
        median = float(np.median(y[fit_rows]))
        self.scale_ = float(np.mean(np.abs(y[fit_rows] - median))) or 1.0
        in_chans = 0
        if self.uses_images and images is not None:
            owners = images.owners_of(table.ids.tolist())
            used = np.concatenate([owners[r] for r in fit_rows])
            self.image_mean_, self.image_std_ = band_normalisation(images.tiles[used])
            self.bands_ = list(images.bands)
            in_chans = len(self.bands_)
        self.net_ = self._build(x.shape[1], in_chans)
        if self.uses_images and images is not None:
            self.net_.attach_tiles(self._normalised(images.tiles), owners)
        fit_module(
            self.net_,
            RowDataset(x, y / self.scale_, fit_rows),
            epochs=self.epochs,
            batch_size=self.batch_size,
            work_dir=work_dir,
            seed=self.seed,
            progress=progress,
            drop_last=False,
            val_dataset=RowDataset(x, y / self.scale_, val_rows),
            patience=self.patience,
            min_epochs=self._anneal_epochs + 1 if "signature" in self.method else None,
        )
        self.net_.eval()
        self.layouts_ = list(self.net_.layouts)

    @property
    def _anneal_epochs(self) -> int:
        """Epochs over which the blueprint temperature falls to ``tau_end``."""
        return max(1, int(round(self.anneal_share * self.epochs)))

    def _build(self, n_variables: int, in_chans: int) -> MigrationNet:
        return MigrationNet(
            self.method,
            n_variables,
            in_chans,
            seed=self.seed,
            tau=self.tau,
            tau_end=self.tau_end,
            anneal_epochs=self._anneal_epochs,
            lr=self.lr,
            blueprint_lr=self.blueprint_lr,
            max_tiles=self.max_tiles,
        )

    def _normalised(self, tiles: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.image_mean_, dtype=np.float32)[None, :, None, None]
        std = np.asarray(self.image_std_, dtype=np.float32)[None, :, None, None]
        return np.nan_to_num((tiles - mean) / std).astype(np.float32)

    # -- prediction -------------------------------------------------------------------------
    def _predict_x(
        self, x: np.ndarray, ids: list[str], images: MunicipalImages | None
    ) -> np.ndarray:
        if self.method in TREE_KINDS:
            estimate = self.estimator_.predict(x)
            if self.method == "ensemble":
                eta = np.clip(x @ self.glm_.coef_ + self.glm_.intercept_, *self.eta_range_)
                estimate = 0.5 * (estimate + np.exp(eta))
            return np.clip(estimate, 0, None)
        if self.uses_images:
            if images is None:
                raise HumanscapeError(
                    f"method '{self.method}' needs image tiles", fix="give --images TILES.csv"
                )
            if list(images.bands) != self.bands_:
                images_bands = ", ".join(images.bands)
                raise HumanscapeError(
                    f"tiles have bands {images_bands}, the model was fitted on {', '.join(self.bands_)}",
                    path=images.source or None,
                    fix="cut the tiles with the model's bands",
                )
            self.net_.attach_tiles(self._normalised(images.tiles), images.owners_of(ids))
        return np.clip(self.net_.predict_rows(x) * self.scale_, 0, None)

    def predict_features(
        self, features: pd.DataFrame, ids: list[str], images: MunicipalImages | None = None
    ) -> np.ndarray:
        """Point estimates of the outflow for census ``features`` (the fitted columns)."""
        self.check_fitted()
        return self._predict_x(self.standardiser_.transform(features), ids, images)

    def predict(self, table: CensusTable, images: MunicipalImages | None = None) -> np.ndarray:
        """The outflow of every municipality of ``table`` (point estimates)."""
        return self.predict_features(table.features, table.ids.tolist(), images)

    @property
    def has_intervals(self) -> bool:
        """Whether the calibration rows were enough for a finite interval of level ``1 - alpha``."""
        return bool(np.isfinite(self.conformal_.quantile_))

    def predict_interval(
        self, table: CensusTable, images: MunicipalImages | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, lower, upper)``: the conformal ``1 - alpha`` interval of each estimate.

        Refused when the model's calibration rows were too few for that level (see module)."""
        estimate = self.predict(table, images)
        if not self.has_intervals:
            raise HumanscapeError(
                f"{self.conformal_.n_calibration_} calibration municipalities are too few for "
                f"{100 * (1 - self.alpha):.0f} % intervals (at least {int(np.ceil(1 / self.alpha - 1))} "
                "are needed)",
                fix="fit on more municipalities, or with a larger alpha (--alpha 0.2)",
            )
        lower, upper = self.conformal_.interval(np.log1p(estimate))
        return estimate, np.clip(lower, 0, None), upper

    # -- persistence ------------------------------------------------------------------------
    def _state(self, folder: Path) -> dict[str, Any]:
        state: dict[str, Any] = {
            "standardiser": self.standardiser_.to_config(),
            "variables": self.variables_,
            "n_fit": self.n_fit_,
            "id_column": self.id_column_,
            "missing": self.missing_,
            "conformal_quantile": self.conformal_.quantile_,
            "n_calibration": self.conformal_.n_calibration_,
            "layouts": self.layouts_,
            "bands": self.bands_,
            "image_mean": self.image_mean_,
            "image_std": self.image_std_,
        }
        if self.method in TREE_KINDS:
            import skops.io as sio

            sio.dump(self.estimator_, folder / "model.skops")
            if self.method == "ensemble":
                sio.dump(self.glm_, folder / "glm.skops")
                state["eta_range"] = list(self.eta_range_)
        else:
            state["scale"] = self.scale_
            state["in_chans"] = len(self.bands_)
            weights = {k: v.contiguous() for k, v in self.net_.state_dict().items()}
            save_file(weights, str(folder / "weights.safetensors"))
        return state

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        self.standardiser_ = Standardiser.from_config(state["standardiser"])
        self.variables_ = list(state["variables"])
        self.n_fit_ = int(state["n_fit"])
        self.id_column_ = state.get("id_column")
        self.missing_ = state.get("missing")
        self.conformal_ = SplitConformal(self.alpha, inverse=np.expm1)
        self.conformal_.quantile_ = finite_or(state["conformal_quantile"], float("inf"))
        self.conformal_.n_calibration_ = int(state["n_calibration"])
        self.layouts_ = state["layouts"]
        self.bands_ = list(state["bands"])
        self.image_mean_ = list(state["image_mean"])
        self.image_std_ = list(state["image_std"])
        if self.method in TREE_KINDS:
            from humanscape.models.sklearn_io import load_skops

            self.estimator_ = load_skops(folder / "model.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
            if self.method == "ensemble":
                low, high = state["eta_range"]
                self.eta_range_ = (float(low), float(high))
                self.glm_ = load_skops(folder / "glm.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
        else:
            self.scale_ = float(state["scale"])
            self.net_ = load_net_weights(
                self._build(len(self.variables_), int(state["in_chans"])),
                folder / "weights.safetensors",
                REFIT,
            )


def prediction_table(
    model: MigrationModel, table: CensusTable, images: MunicipalImages | None = None
) -> pd.DataFrame:
    """``id``, ``prediction``, ``lower``, ``upper`` per municipality (the interval columns are
    empty when the model has no finite interval: :attr:`MigrationModel.has_intervals`)."""
    if model.has_intervals:
        estimate, lower, upper = model.predict_interval(table, images)
    else:
        estimate = model.predict(table, images)
        lower = upper = np.full(len(estimate), np.nan)
    return pd.DataFrame(
        {"id": table.ids.to_numpy(), "prediction": estimate, "lower": lower, "upper": upper}
    )
