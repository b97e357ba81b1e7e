"""Municipal migration outflow from census tables and imagery, as one estimator (Runfola et al. 2022).

:class:`MigrationModel` fits one of:

- the four networks of Table 2 (:mod:`~humanscape.tasks.migration.nets`): ``signature+imagery``
  (the paper's model), ``signature`` (without imagery), ``dense`` (the linear baseline) and
  ``imagery`` (imagery only);
- two tree ensembles on the same standardised census inputs: ``hgb`` (scikit-learn histogram
  gradient boosting with the Poisson loss, the natural loss for counts) and ``rf`` (random forest);
- ``ensemble`` (the default, the best measured): the mean of ``hgb`` and a ridge-penalised Poisson
  GLM (log link, ``PoissonRegressor``) whose linear predictor is clamped to the range it took on
  the training rows, so that it never extrapolates an exponential beyond what it has seen (without
  the clamp one held-out state got r2 = -46 from a few huge estimates).

Rows given to :meth:`MigrationModel.fit` are split once (seeded): 15 % *calibration* rows are never
trained on and give split-conformal intervals (:mod:`humanscape.evaluate.uncertainty`); the networks
also keep 15 % *validation* rows for early stopping. Intervals are conformal on the ``log1p`` scale
and mapped back, so they are multiplicative (a municipality of 50 migrants does not get the
+-800 band of one of 4000) and keep their coverage.

A fitted model is a folder: ``config.json`` (hyperparameters, census columns, standardisation, image
normalisation, the blueprint layout of every epoch, conformal quantile, seed, version) and
``weights.safetensors`` (networks) or ``model.skops`` (trees).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from safetensors.torch import save_file

from humanscape import __version__
from humanscape._atomic import atomic_folder
from humanscape.errors import HumanscapeError
from humanscape.evaluate.uncertainty import SplitConformal
from humanscape.models.heads import band_normalisation
from humanscape.models.model_folder import config_of, load_net_weights, parsing
from humanscape.models.training import fit_module
from humanscape.tasks.migration.imagery import MunicipalImages
from humanscape.tasks.migration.nets import NET_KINDS, MigrationNet, RowDataset
from humanscape.tasks.migration.table import CensusTable, Standardiser

log = logging.getLogger(__name__)

WHAT, REFIT = "migration model", "migration fit"
TREE_KINDS = ("ensemble", "hgb", "rf")
MODEL_KINDS = (*NET_KINDS, *TREE_KINDS)
#: The model ``--model`` uses when not told: the best one measured on the real table, on random
#: splits and between states (docs/benchmarks.md, migration section).
DEFAULT_MODEL = "ensemble"
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


class MigrationModel:
    """Outflow per municipality (see the module docstring).

    Parameters
    ----------
    model
        One of :data:`MODEL_KINDS`.
    epochs, patience, batch_size, lr
        Network training (paper: 250 epochs, batch 64, learning rate 0.001, Adam betas 0.5, 0.9).
    blueprint_lr
        Learning rate of the signature blueprint (see :mod:`~humanscape.tasks.migration.nets`).
    tau, tau_end, anneal_share
        Blueprint temperature from ``tau`` to ``tau_end`` over ``anneal_share`` of the epochs.
    trees
        Trees of ``rf`` / boosting iterations of ``hgb``.
    alpha
        Conformal intervals of level ``1 - alpha`` (0.1: 90 %).
    calibration, validation
        Shares of the fitting rows held out for conformal calibration and early stopping.
    max_tiles
        Image tiles drawn per municipality and training step.
    seed
        Seed of every random choice.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        epochs: int = 250,
        patience: int = 40,
        batch_size: int = 64,
        lr: float = 1e-3,
        blueprint_lr: float = 0.02,
        tau: float = 3.0,
        tau_end: float = 0.05,
        anneal_share: float = 0.4,
        trees: int = 300,
        alpha: float = 0.1,
        calibration: float = 0.15,
        validation: float = 0.15,
        max_tiles: int = 16,
        seed: int = 0,
    ) -> None:
        if model not in MODEL_KINDS:
            raise HumanscapeError(
                f"unknown migration model '{model}'", fix=f"use one of {', '.join(MODEL_KINDS)}"
            )
        self.model = model
        self.epochs, self.patience, self.batch_size, self.lr = epochs, patience, batch_size, lr
        self.blueprint_lr = blueprint_lr
        self.tau, self.tau_end, self.anneal_share = tau, tau_end, anneal_share
        self.trees, self.alpha = trees, alpha
        self.calibration, self.validation = calibration, validation
        self.max_tiles, self.seed = max_tiles, seed

    def get_params(self) -> dict[str, Any]:
        keys = (
            "model epochs patience batch_size lr blueprint_lr tau tau_end anneal_share trees alpha "
            "calibration validation max_tiles seed"
        ).split()
        return {k: getattr(self, k) for k in keys}

    @property
    def uses_images(self) -> bool:
        return "imagery" in self.model

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
        if table.target is None:
            raise HumanscapeError("the census table has no target", fix="give --target")
        if self.uses_images and images is None:
            raise HumanscapeError(
                f"model '{self.model}' needs image tiles", fix="give --images TILES.csv"
            )
        n = len(table)
        if self.model in TREE_KINDS:
            fit_rows, calib_rows = _split(n, [self.calibration], self.seed)
            val_rows = np.zeros(0, dtype=np.int64)
        else:
            fit_rows, calib_rows, val_rows = _split(
                n, [self.calibration, self.validation], self.seed
            )
        self.standardiser_ = Standardiser().fit(table.features.iloc[fit_rows])
        self.variables_ = self.standardiser_.names_
        x = self.standardiser_.transform(table.features)
        y = np.asarray(table.target, dtype=np.float64)
        self.layouts_: list[list[list[int]]] = []
        self.bands_: list[str] = []
        self.image_mean_: list[float] = []
        self.image_std_: list[float] = []
        if self.model in TREE_KINDS:
            self.estimator_ = self._tree(len(fit_rows))
            self.estimator_.fit(x[fit_rows], y[fit_rows])
            if self.model == "ensemble":
                from sklearn.linear_model import PoissonRegressor

                self.glm_ = PoissonRegressor(alpha=GLM_ALPHA, max_iter=3000)
                self.glm_.fit(x[fit_rows], y[fit_rows])
                eta = x[fit_rows] @ self.glm_.coef_ + self.glm_.intercept_
                self.eta_range_ = (float(eta.min()), float(eta.max()))
        else:
            self._fit_net(table, x, y, images, fit_rows, val_rows, work_dir, progress)
        self.n_fit_ = int(len(fit_rows))
        predicted = self._predict_x(x[calib_rows], table.ids.iloc[calib_rows].tolist(), images)
        self.conformal_ = SplitConformal(self.alpha, inverse=np.expm1).fit(
            np.log1p(y[calib_rows]), np.log1p(predicted)
        )
        return self

    def _tree(self, n_rows: int) -> Any:
        if self.model in ("hgb", "ensemble"):
            from sklearn.ensemble import HistGradientBoostingRegressor

            return HistGradientBoostingRegressor(
                loss="poisson",
                max_iter=self.trees,
                learning_rate=0.05,
                # scikit-learn's 20 rows per leaf allow no split in a table of 40 municipalities
                min_samples_leaf=max(2, min(20, n_rows // 10)),
                random_state=self.seed,
            )
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(
            n_estimators=self.trees, min_samples_leaf=2, n_jobs=-1, random_state=self.seed
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
            min_epochs=self._anneal_epochs + 1 if "signature" in self.model else None,
        )
        self.net_.eval()
        self.layouts_ = list(self.net_.layouts)

    @property
    def _anneal_epochs(self) -> int:
        """Epochs over which the blueprint temperature falls to ``tau_end``."""
        return max(1, int(round(self.anneal_share * self.epochs)))

    def _build(self, n_variables: int, in_chans: int) -> MigrationNet:
        return MigrationNet(
            self.model,
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
    def _check_fitted(self) -> None:
        if not hasattr(self, "standardiser_"):
            raise HumanscapeError("the migration model is not fitted", fix="call fit first")

    def _predict_x(
        self, x: np.ndarray, ids: list[str], images: MunicipalImages | None
    ) -> np.ndarray:
        if self.model in TREE_KINDS:
            estimate = self.estimator_.predict(x)
            if self.model == "ensemble":
                eta = np.clip(x @ self.glm_.coef_ + self.glm_.intercept_, *self.eta_range_)
                estimate = 0.5 * (estimate + np.exp(eta))
            return np.clip(estimate, 0, None)
        if self.uses_images:
            if images is None:
                raise HumanscapeError(
                    f"model '{self.model}' needs image tiles", fix="give --images TILES.csv"
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
        self._check_fitted()
        return self._predict_x(self.standardiser_.transform(features), ids, images)

    def predict(self, table: CensusTable, images: MunicipalImages | None = None) -> pd.DataFrame:
        """``id``, ``prediction``, ``lower``, ``upper`` (conformal ``1 - alpha`` interval)."""
        estimate = self.predict_features(table.features, table.ids.tolist(), images)
        lower, upper = self.conformal_.interval(np.log1p(estimate))
        return pd.DataFrame(
            {
                "id": table.ids.to_numpy(),
                "prediction": estimate,
                "lower": np.clip(lower, 0, None),
                "upper": upper,
            }
        )

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (``config.json`` + weights)."""
        self._check_fitted()
        folder = Path(folder)
        with atomic_folder(folder, marker="config.json") as tmp:
            self.write_into(tmp)
        return folder

    def write_into(self, tmp: Path) -> None:
        """Write the model files into an existing (temporary) folder."""
        config: dict[str, Any] = {
            "kind": "migration",
            "version": __version__,
            "sklearn_version": sklearn.__version__,
            "params": self.get_params(),
            "standardiser": self.standardiser_.to_config(),
            "variables": self.variables_,
            "n_fit": self.n_fit_,
            "conformal_quantile": self.conformal_.quantile_,
            "n_calibration": self.conformal_.n_calibration_,
            "layouts": self.layouts_,
            "bands": self.bands_,
            "image_mean": self.image_mean_,
            "image_std": self.image_std_,
        }
        if self.model in TREE_KINDS:
            import skops.io as sio

            sio.dump(self.estimator_, tmp / "model.skops")
            if self.model == "ensemble":
                sio.dump(self.glm_, tmp / "glm.skops")
                config["eta_range"] = list(self.eta_range_)
        else:
            config["scale"] = self.scale_
            config["in_chans"] = len(self.bands_)
            state = {k: v.contiguous() for k, v in self.net_.state_dict().items()}
            save_file(state, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> MigrationModel:
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        config = config_of(folder, kind="migration", what=WHAT, command=REFIT)
        with parsing(folder / "config.json", WHAT, REFIT):
            model = cls(**config["params"])
            model.standardiser_ = Standardiser.from_config(config["standardiser"])
            model.variables_ = list(config["variables"])
            model.n_fit_ = int(config["n_fit"])
            model.conformal_ = SplitConformal(model.alpha, inverse=np.expm1)
            model.conformal_.quantile_ = float(config["conformal_quantile"])
            model.conformal_.n_calibration_ = int(config["n_calibration"])
            model.layouts_ = config["layouts"]
            model.bands_ = list(config["bands"])
            model.image_mean_ = list(config["image_mean"])
            model.image_std_ = list(config["image_std"])
            if model.model not in TREE_KINDS:
                model.scale_ = float(config["scale"])
                in_chans = int(config["in_chans"])
            if model.model == "ensemble":
                low, high = config["eta_range"]
                model.eta_range_ = (float(low), float(high))
        if model.model in TREE_KINDS:
            from humanscape.models.sklearn_io import load_skops

            model.estimator_ = load_skops(
                folder / "model.skops", trusted=SKOPS_TRUSTED, refit=REFIT
            )
            if model.model == "ensemble":
                model.glm_ = load_skops(folder / "glm.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
        else:
            model.net_ = load_net_weights(
                model._build(len(model.variables_), in_chans), folder / "weights.safetensors", REFIT
            )
        return model
