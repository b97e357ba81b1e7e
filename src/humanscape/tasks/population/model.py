"""Population per grid cell from Sentinel-2 chips (Huang et al. 2021), as one estimator.

:class:`PopulationModel` predicts the people living in a chip's grid cell. It averages, on the
log scale, one or both of two members:

``cnn``
    The paper's end-to-end network (Sec. IV.B, Fig. 3): a backbone (VGG-16, ResNet-50, Xception,
    DenseNet-121, ResNet-18, or a shipped SimCLR encoder to fine-tune) over the chosen bands,
    global average pooling, dropout 0.5 and one linear output
    (:class:`~humanscape.models.heads.RegressionNet`), trained on the log target with the log-cosh
    loss (eq. 4) and Adam (Sec. IV.C; learning rate 1e-4 in the paper), batch 32, with random
    90-degree rotations and flips, and early stopping on a spatially grouped validation split,
    through Lightning (:func:`~humanscape.models.training.fit_module`).
``features``
    A scikit-learn head (ridge by default) on frozen features of the chip
    (:mod:`humanscape.tasks.population.features`: band statistics, MOSAIKS random features, a
    shipped encoder's embedding), fitted on the same training split.

The target is ``log(1 + p)`` (``log1p``, default) or the paper's ``log(p)`` with ``p = 0`` mapped
to 0 (``log``, Sec. IV.A); predictions are mapped back to people and are never negative.

Validation data (a spatially grouped 20 % of the chips, never seen in fitting) serve the early
stopping, then three things "beyond the paper": the split-conformal interval of level
``1 - alpha`` (:class:`~humanscape.evaluate.uncertainty.SplitConformal`, on the log scale,
mapped back to counts), an optional isotonic bias correction
(:class:`~humanscape.tasks.population.census.IsotonicBiasCorrection`; conformal residuals are
then taken from predictions corrected by a map fitted on the other half of the validation
groups: cross-fitting), and the validation metrics stored with the model. The model also keeps the per-band quantiles of its
training pixels, so that a scene can be harmonised to them before prediction
(:mod:`humanscape.data.harmonise`).

A fitted model is a folder (:class:`~humanscape.models.estimator.TaskModel`): ``config.json``
(hyperparameters, bands, normalisation, seed, calibration, validation metrics, versions),
``cnn.safetensors`` (network state dict), ``head.skops`` and ``mosaiks.safetensors`` (the feature
head and random filters), and the fit's metric tables as CSV. Nothing in it runs code when loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file
from torch.utils.data import TensorDataset

from humanscape.data.chiptable import EUROSAT_MS_ORDER
from humanscape.data.harmonise import band_quantiles
from humanscape.data.splits import Split
from humanscape.errors import HumanscapeError
from humanscape.evaluate.regression import agreement, bias_analysis
from humanscape.evaluate.uncertainty import SplitConformal
from humanscape.models.augment import RadiometricJitter
from humanscape.models.estimator import TaskModel, finite_or
from humanscape.models.heads import (
    RegressionNet,
    band_normalisation,
    dihedral_views,
)
from humanscape.models.model_folder import read_weights
from humanscape.models.random_features import RandomConvFeatures
from humanscape.models.training import fit_module
from humanscape.tasks.population.census import IsotonicBiasCorrection
from humanscape.tasks.population.features import (
    FEATURES,
    HEADS,
    ClippedRegressor,
    band_statistics,
)
from humanscape.tasks.population.network import (
    TARGETS,
    PopulationRegressor,
    build_net,
    from_target,
    spatial_validation,
    to_target,
)

log = logging.getLogger(__name__)

REFIT = "population fit"

METHODS = ("cnn", "features", "ensemble")
#: The paper's four architectures, ResNet-18, and the shipped encoders (fine-tuned) by name.
#: Paper's band list (Sec. III.A): R, G, B, NIR.
RGBN = ("B02", "B03", "B04", "B08")
#: The 13 Sentinel-2 bands of EuroSAT-style chips: the default bands of the feature head.
S2_BANDS = EUROSAT_MS_ORDER
#: Types a saved feature head may hold besides scikit-learn's own (skops allow-list).
SKOPS_TRUSTED = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "humanscape.tasks.population.features.ClippedRegressor",
    "humanscape.tasks.population.features.signed_sqrt",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn.utils._bunch.Bunch",
)


# --- the estimator ------------------------------------------------------------------------------


class PopulationModel(TaskModel):
    """People per grid cell from chips (see the module docstring).

    Parameters
    ----------
    method
        ``cnn``, ``features`` or ``ensemble`` (mean of both on the log scale).
    arch
        CNN backbone: ``resnet18``, ``vgg16_bn``, ``resnet50``, ``xception``, ``densenet121``, any
        timm name, or a shipped encoder name (fine-tuned from its SimCLR weights).
    bands
        Input bands of the CNN by name, in order (a shipped encoder ``arch`` takes its own).
    feature_bands
        Bands of the feature head (default the 13 Sentinel-2 bands; ``None``: ``bands``).
    features, head
        Frozen features (subset of ``stats``, ``mosaiks``, ``encoder``) and the head on them.
    encoder
        Shipped encoder used by the ``encoder`` features.
    input_size
        Side the CNN resizes every chip to (Huang et al.: 256; ``None``: as read).
    epochs, batch_size, lr, patience, dropout
        CNN training (Adam; early stopping after ``patience`` epochs without a better validation loss).
    target
        ``log1p`` or ``log`` (see :func:`to_target`).
    alpha
        Miscoverage of the conformal interval (0.1: 90 %).
    bias_correction
        Fit the isotonic bias correction on validation predictions and apply it.
    mosaiks_filters
        K of the MOSAIKS features (2K values).
    tta
        Test-time augmentation: the CNN's prediction is the mean over the chip's 8 rotations and
        mirror images (overhead imagery has no canonical orientation; training saw all 8).
    cnn_seeds
        Number of CNNs trained from different seeds and averaged (a deep ensemble,
        Lakshminarayanan et al. 2017); seeds ``seed``, ``seed + 1`` ...
    radiometric_jitter
        Train the CNN on chips jittered with haze, brightness and per-band gain
        (:class:`~humanscape.models.augment.RadiometricJitter`, path radiance = the 99th
        percentile of the training reflectances), so that it meets other dates and atmospheres.
    seed
        Seed of the split, the initialisation, the batches and the random features.
    """

    kind = "humanscape.population"
    what = "population model"
    refit = REFIT
    fitted_attribute = "conformal_"

    def __init__(
        self,
        *,
        method: str = "ensemble",
        arch: str = "resnet18",
        bands: Sequence[str] = RGBN,
        feature_bands: Sequence[str] | None = S2_BANDS,
        features: Sequence[str] = ("stats",),
        head: str = "ridge",
        encoder: str = "simclr_resnet18half_eurosat_ms",
        input_size: int | None = None,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 1e-3,
        patience: int = 10,
        dropout: float = 0.5,
        target: str = "log1p",
        alpha: float = 0.1,
        bias_correction: bool = False,
        mosaiks_filters: int = 512,
        tta: bool = True,
        cnn_seeds: int = 3,
        radiometric_jitter: bool = False,
        seed: int = 0,
    ) -> None:
        self.method, self.arch, self.bands = method, arch, bands
        self.features, self.head, self.encoder = features, head, encoder
        self.feature_bands = feature_bands
        self.input_size, self.epochs, self.batch_size = input_size, epochs, batch_size
        self.lr, self.patience, self.dropout = lr, patience, dropout
        self.target, self.alpha, self.bias_correction = target, alpha, bias_correction
        self.mosaiks_filters, self.tta, self.seed = mosaiks_filters, tta, seed
        self.cnn_seeds, self.radiometric_jitter = cnn_seeds, radiometric_jitter

    def _validate_params(self) -> None:
        self._choice("population method", self.method, METHODS)
        self._choice("target", self.target, TARGETS)
        self._choice("head", self.head, HEADS)
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or (self.uses_features and not self.features):
            raise HumanscapeError(
                f"unknown or no features {unknown}", fix=f"use some of {', '.join(FEATURES)}"
            )
        if not 0 < self.alpha < 1:
            raise HumanscapeError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.cnn_seeds < 1:
            raise HumanscapeError(f"cnn_seeds must be at least 1, got {self.cnn_seeds}")
        if not self.bands:
            raise HumanscapeError("no input band given", fix="give --bands, e.g. B02,B03,B04,B08")

    @property
    def uses_cnn(self) -> bool:
        return self.method in ("cnn", "ensemble")

    @property
    def uses_features(self) -> bool:
        return self.method in ("features", "ensemble")

    @property
    def cnn_bands(self) -> list[str]:
        """Bands of the CNN: ``bands``, or a shipped encoder's own when ``arch`` names one."""
        from humanscape.models.registry import list_weights

        for entry in list_weights():
            if entry.name == self.arch:
                return list(entry.bands)
        return list(self.bands)

    @property
    def head_bands(self) -> list[str]:
        """Bands of the feature head: ``feature_bands``, else ``bands``."""
        return list(self.feature_bands) if self.feature_bands else list(self.bands)

    @property
    def input_bands(self) -> list[str]:
        """Bands the model reads from a chip: its own, then the feature encoder's."""
        out: list[str] = []
        for names in (
            self.cnn_bands if self.uses_cnn else [],
            self.head_bands if self.uses_features else [],
        ):
            out += [b for b in names if b not in out]
        if self.uses_features and "encoder" in self.features:
            out += [b for b in self._feature_encoder().bands if b not in out]
        return out

    # -- members
    def _feature_encoder(self) -> Any:
        if not hasattr(self, "_encoder_cache"):
            from humanscape.models.registry import load_encoder

            self._encoder_cache = load_encoder(self.encoder)
        return self._encoder_cache

    def _select(self, images: np.ndarray, names: Sequence[str]) -> np.ndarray:
        index = [self.input_bands.index(b) for b in names]
        return images[:, index]

    def _feature_matrix(self, images: np.ndarray) -> np.ndarray:
        own = self._select(images, self.head_bands)
        parts = []
        if "stats" in self.features:
            parts.append(band_statistics(own, self.head_bands))
        if "mosaiks" in self.features:
            parts.append(self.mosaiks_.transform(np.nan_to_num(own)))
        if "encoder" in self.features:
            from humanscape.models.embed import embed_array

            encoder = self._feature_encoder()
            parts.append(embed_array(encoder, self._select(images, encoder.bands)))
        return np.concatenate(parts, axis=1)

    def _fit_features(self, images: np.ndarray, y: np.ndarray) -> None:
        if "mosaiks" in self.features:
            self.mosaiks_ = RandomConvFeatures(self.mosaiks_filters, seed=self.seed).fit(
                np.nan_to_num(self._select(images, self.head_bands))
            )
        self.head_ = ClippedRegressor(self.head, self.seed).fit(self._feature_matrix(images), y)

    def _fit_cnn(
        self,
        images: np.ndarray,
        y: np.ndarray,
        val: tuple[np.ndarray, np.ndarray] | None,
        work_dir: str | Path | None,
        progress: bool,
    ) -> None:
        own = self._select(images, self.cnn_bands)
        self.nets_: list[RegressionNet] = []
        self.epochs_run_: list[int] = []
        for k in range(self.cnn_seeds):
            seed = self.seed + k
            torch.manual_seed(seed)
            net, mean, std = build_net(
                self.arch, self.cnn_bands, input_size=self.input_size, dropout=self.dropout
            )
            if mean is None or std is None:
                mean, std = band_normalisation(own)
            self.norm_ = {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}
            jitter = None
            if self.radiometric_jitter:
                rows = [self.input_bands.index(b) for b in self.cnn_bands]
                jitter = RadiometricJitter(tuple(float(v) for v in self.band_quantiles_[rows, 99]))
            module = PopulationRegressor(net, mean, std, self.lr, jitter)
            train = TensorDataset(torch.from_numpy(own), torch.from_numpy(y.astype(np.float32)))
            val_set = None
            if val is not None:
                val_set = TensorDataset(
                    torch.from_numpy(self._select(val[0], self.cnn_bands)),
                    torch.from_numpy(val[1].astype(np.float32)),
                )
            fit_module(
                module,
                train,
                epochs=self.epochs,
                batch_size=self.batch_size,
                work_dir=Path(work_dir) / f"cnn{k}" if work_dir is not None else None,
                seed=seed,
                progress=progress,
                val_dataset=val_set,
                patience=self.patience,
            )
            self.nets_.append(module.net.eval())
            self.epochs_run_.append(int(module.current_epoch))

    @torch.inference_mode()
    def _cnn_predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        own = self._select(images, self.cnn_bands)
        mean = torch.tensor(self.norm_["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.norm_["std"]).view(1, -1, 1, 1)
        out = []
        for start in range(0, len(own), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(own[start : start + batch_size]))
            x = torch.nan_to_num((x - mean) / std, nan=0.0)
            views = dihedral_views(x, self.tta)
            out.append(
                torch.stack([net.eval()(v) for net in self.nets_ for v in views]).mean(0).numpy()
            )
        return np.concatenate(out).astype(np.float64)

    def raw_log_predict(self, images: np.ndarray) -> np.ndarray:
        """Members' mean prediction on the log scale, before bias correction."""
        self._check_fitted(images)
        preds = []
        if self.uses_cnn:
            preds.append(self._cnn_predict(images))
        if self.uses_features:
            preds.append(self.head_.predict(self._feature_matrix(images)))
        return np.mean(preds, axis=0)

    def _check_fitted(self, images: np.ndarray) -> None:
        self.check_fitted()
        if images.ndim != 4 or images.shape[1] != len(self.input_bands):
            raise HumanscapeError(
                f"the model reads {len(self.input_bands)} bands ({', '.join(self.input_bands)}), "
                f"got images of shape {tuple(images.shape)}"
            )

    # -- public API
    def fit(
        self,
        images: np.ndarray,
        population: np.ndarray,
        *,
        locations: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        validation: Split | None = None,
        block_m: float = 50_000.0,
        work_dir: str | Path | None = None,
        progress: bool = True,
    ) -> PopulationModel:
        """Fit on ``(n, len(input_bands), H, W)`` reflectance chips and their population counts.

        The validation split is ``validation`` if given, else :func:`spatial_validation` of
        ``groups`` or ``locations`` (metres, in ``block_m`` blocks). ``work_dir`` keeps the CNN's
        checkpoints (an interrupted fit started again resumes).
        """
        self._validate_params()
        images = np.asarray(images, dtype=np.float32)
        population = np.asarray(population, dtype=np.float64)
        if (
            images.ndim != 4
            or images.shape[1] != len(self.input_bands)
            or len(images) != len(population)
        ):
            raise HumanscapeError(
                f"{len(population)} counts for images of shape {tuple(images.shape)}; the model reads "
                f"{len(self.input_bands)} bands ({', '.join(self.input_bands)})"
            )
        if not np.isfinite(population).all() or (population < 0).any():
            raise HumanscapeError("population counts must be finite and not negative")
        split = validation or spatial_validation(locations, groups, block_m=block_m, seed=self.seed)
        if split.train.size < 2 or split.test.size < 2:
            raise HumanscapeError(
                f"{split.describe()}: too few chips to fit and validate",
                fix="give more chips (a few dozen at least)",
            )
        self.validation_name_ = split.name
        self.chip_shape_ = (int(images.shape[2]), int(images.shape[3]))
        self.band_quantiles_ = band_quantiles(images[split.train], seed=self.seed)
        y = to_target(population, self.target)
        tr, va = split.train, split.test
        if self.uses_features:
            self._fit_features(images[tr], y[tr])
        if self.uses_cnn:
            self._fit_cnn(images[tr], y[tr], (images[va], y[va]), work_dir, progress)
        self.conformal_ = SplitConformal(self.alpha)  # marks the model fitted for prediction
        raw = self.raw_log_predict(images[va])
        corrected = self._calibrate(raw, y[va], groups[va] if groups is not None else va)
        counts = from_target(corrected, self.target)
        self.validation_ = {
            "n_train": int(tr.size),
            "n_validation": int(va.size),
            "log": agreement(y[va], corrected),
            "counts": agreement(population[va], counts),
            "bias_before": bias_analysis(y[va], raw),
        }
        return self

    def _calibrate(self, raw: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Bias correction and conformal quantile from validation predictions (cross-fitted);
        returns the validation predictions as corrected by maps that did not see them."""
        corrected = raw
        if self.bias_correction:
            self.isotonic_ = IsotonicBiasCorrection().fit(raw, y)
            _, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
            half = np.random.default_rng(self.seed).permutation(index.max() + 1)[index] % 2 == 0
            corrected = raw.copy()
            for part in (half, ~half):
                if part.sum() >= 2 and (~part).sum() >= 2:
                    other = IsotonicBiasCorrection().fit(raw[~part], y[~part])
                    corrected[part] = other.transform(raw[part])
        self.conformal_ = SplitConformal(self.alpha).fit(y, corrected)
        return corrected

    def log_predict(self, images: np.ndarray) -> np.ndarray:
        """Prediction on the target's log scale (bias-corrected when the model corrects)."""
        raw = self.raw_log_predict(images)
        return self.isotonic_.transform(raw) if hasattr(self, "isotonic_") else raw

    def predict(self, images: np.ndarray) -> np.ndarray:
        """People in each chip's cell."""
        return from_target(self.log_predict(images), self.target)

    def predict_interval(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prediction, lower, upper)`` in people; the interval has level ``1 - alpha``."""
        logp = self.log_predict(images)
        lower, upper = self.conformal_.interval(logp)
        return (
            from_target(logp, self.target),
            from_target(lower, self.target),
            from_target(upper, self.target),
        )

    def predict_map_values(self, images: np.ndarray) -> np.ndarray:
        """``(n, 3)`` float32: people (:meth:`predict`) and the interval's lower and upper ends,
        from one forward pass (what a map cell holds)."""
        logp = self.log_predict(images)
        lower, upper = self.conformal_.interval(logp)
        return np.stack(
            [
                from_target(logp, self.target),
                from_target(lower, self.target),
                from_target(upper, self.target),
            ],
            axis=1,
        ).astype(np.float32)

    def chip_predictor(self, token: str = "") -> Any:
        """This model as a chip predictor of a map (``predict-chips``): people per chip with the
        interval (:class:`~humanscape.tasks.population.mapping.PopulationChips`)."""
        from humanscape.tasks.population.mapping import PopulationChips

        self.check_fitted()
        return PopulationChips(self, token)

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        state: dict[str, Any] = {
            "input_bands": self.input_bands,
            "validation_split": self.validation_name_,
            "chip_shape": list(self.chip_shape_),
            "validation": self.validation_,
            "band_quantiles": np.round(self.band_quantiles_, 6).tolist(),
            "conformal": {
                "alpha": self.alpha,
                "quantile": self.conformal_.quantile_,
                "n_calibration": self.conformal_.n_calibration_,
            },
        }
        if hasattr(self, "isotonic_"):
            iso = self.isotonic_.map_
            state["isotonic"] = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
        if self.uses_cnn:
            state["normalisation"] = self.norm_
            state["epochs_run"] = self.epochs_run_
            weights = {
                f"{i}.{k}": v.detach().contiguous().cpu()
                for i, net in enumerate(self.nets_)
                for k, v in net.state_dict().items()
            }
            save_file(weights, str(folder / "cnn.safetensors"))
        if self.uses_features:
            sio.dump(self.head_, folder / "head.skops")
            if hasattr(self, "mosaiks_"):
                m = self.mosaiks_
                save_numpy(
                    {"weight": m.weight_, "offset": m.offset_}, str(folder / "mosaiks.safetensors")
                )
        return state

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        self.conformal_ = SplitConformal(state["conformal"]["alpha"])
        self.conformal_.quantile_ = finite_or(state["conformal"]["quantile"], float("inf"))
        self.conformal_.n_calibration_ = int(state["conformal"]["n_calibration"])
        self.validation_ = state.get("validation", {})
        self.validation_name_ = state.get("validation_split", "")
        self.chip_shape_ = tuple(int(v) for v in state["chip_shape"])
        if "band_quantiles" in state:
            self.band_quantiles_ = np.asarray(state["band_quantiles"], dtype=np.float64)
        if "isotonic" in state:
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip").fit(
                state["isotonic"]["x"], state["isotonic"]["y"]
            )
            self.isotonic_ = IsotonicBiasCorrection()
            self.isotonic_.map_ = iso
        if self.uses_cnn:
            self.norm_ = state["normalisation"]
            self.epochs_run_ = state.get("epochs_run", [])
            weights = read_weights(folder / "cnn.safetensors", load_file, REFIT)
            self.nets_ = []
            for i in range(self.cnn_seeds):
                net, _, _ = build_net(
                    self.arch, self.cnn_bands, input_size=self.input_size, dropout=self.dropout
                )
                part = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(f"{i}.")}
                _load_state(net, part, folder / "cnn.safetensors")
                self.nets_.append(net.eval())
        if self.uses_features:
            self.head_ = _load_head(folder / "head.skops")
            if "mosaiks" in self.features:
                arrays = read_weights(folder / "mosaiks.safetensors", load_numpy, REFIT)
                m = RandomConvFeatures(self.mosaiks_filters, seed=self.seed)
                m.weight_, m.offset_ = arrays["weight"], arrays["offset"]
                m.n_bands_ = int(m.weight_.shape[1])
                self.mosaiks_ = m


def _load_state(net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise HumanscapeError(
            f"weights do not fit the configured network: {str(exc)[:160]}",
            path=path,
            fix="config.json and cnn.safetensors must come from one 'population fit' run",
        ) from None


def _load_head(path: Path) -> ClippedRegressor:
    from humanscape.models.sklearn_io import load_skops

    head = load_skops(path, trusted=SKOPS_TRUSTED, refit="population fit")
    if not isinstance(head, ClippedRegressor):
        raise HumanscapeError("the head file holds no population head", path=path)
    return head
