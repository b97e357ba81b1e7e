"""The hyperlocal score model ``f`` of Park et al. (2022, step 1, eq. 4-6), as one estimator.

A backbone (ResNet-18 in the paper; any timm name or a shipped SimCLR encoder to fine-tune) ends
in global average pooling, dropout and one linear output: the tile's score ``f``
(:class:`~humanscape.models.heads.RegressionNet`). It is trained with the ordinal cross-entropy of
:mod:`humanscape.tasks.economy.ordinal` on hard or soft uninhabited / rural / urban labels,
through Lightning (:func:`~humanscape.models.training.fit_module`: GPU when present, checkpoints
every epoch, resume, early stopping on a grouped validation split), with random 90-degree
rotations, flips, mild resized crops and per-band brightness / contrast jitter. Prediction averages
the 8 rotations and mirror images of each tile (test-time augmentation) and clamps to
``[t_min, t_max]``.

The paper trains 100 epochs with Adam at 1e-4 from ImageNet weights; with no pretrained weights
here the default is Adam at 1e-3 from random initialisation with early stopping (measured in
``bench/economy.py``).

The simplest strong baseline is a candidate too (issue 23): a random forest on per-band chip
statistics, and so are random convolutional features read by a logistic regression (``mosaiks``),
both classifying the tiles' classes, their scores placed in the band of eq. 4 of the most probable
level (:mod:`humanscape.tasks.economy.candidates`). On 4,961 held-out EuroSAT RGB chips the forest
beat the CNN (0.883 against 0.846 accuracy). ``method="auto"`` (the default) fits the three on the
same training tiles, scores them on the held-out validation groups the CNN's early stopping
already holds out (one split: the CNN is fitted once), keeps the best by 3-class accuracy (the
forest on ties) and records the table (``selection_``). A classifier, once chosen, is refitted on
every tile.

A fitted model is a folder (:class:`~humanscape.models.estimator.TaskModel`): ``config.json``
(params, method, bands, units, normalisation, thresholds, validation metrics, training table) and
``score.safetensors`` (CNN), or ``score_forest.skops`` / ``score_mosaiks.skops`` (+ its filters in
``score_mosaiks.safetensors``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch.utils.data import TensorDataset

from humanscape.data.splits import Split
from humanscape.errors import HumanscapeError
from humanscape.evaluate.selection import Selection, select_candidate
from humanscape.models.augment import SatelliteAugment
from humanscape.models.estimator import TaskModel
from humanscape.models.heads import (
    RegressionNet,
    band_normalisation,
    dihedral_views,
    regression_net,
)
from humanscape.models.model_folder import load_net_weights
from humanscape.models.training import LightningModule, fit_module
from humanscape.tasks.economy.candidates import (
    KINDS,
    MOSAIKS_FILTERS,
    LevelClassifier,
    banded_score,
)
from humanscape.tasks.economy.ordinal import LEVELS, Thresholds, classify, ordinal_loss

WHAT, REFIT = "score model", "economy fit-score"

#: Default bands: RGB + NIR of Sentinel-2 (multispectral chips); RGB images use red, green, blue.
RGBN = ("B02", "B03", "B04", "B08")
RGB8 = ("red", "green", "blue")
#: ``auto``: the best of the others on held-out groups; ``cnn``: the paper's network; ``forest``: a
#: random forest on chip statistics (the baseline); ``mosaiks``: random convolutional features and a
#: logistic regression.
METHODS = ("auto", "cnn", *KINDS)
AUTO_BASELINE = "forest"


class ScoreModule(LightningModule):
    """Lightning module: normalise, augment, ordinal cross-entropy (eq. 6) on the score."""

    def __init__(
        self,
        net: RegressionNet,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        thresholds: Thresholds,
        lr: float,
        augment: SatelliteAugment | None = None,
    ) -> None:
        super().__init__()
        self.net, self.lr, self.thresholds = net, lr, thresholds
        self.augment = augment or SatelliteAugment(
            crop_scale=(0.6, 1.0), brightness=0.1, contrast=0.1
        )
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num((x - self.mean) / self.std, nan=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = ordinal_loss(self.net(self.augment(self.normalise(x))), y, self.thresholds)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        score = self(x)
        self.log("val_loss", ordinal_loss(score, y, self.thresholds), prog_bar=True, on_epoch=True)
        level = (score >= self.thresholds.t1).long() + (score >= self.thresholds.t2).long()
        self.log("val_acc", (level == y.argmax(-1)).float().mean(), prog_bar=True, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def build_score_net(
    arch: str, bands: Sequence[str], *, dropout: float, input_size: int | None = None
) -> tuple[RegressionNet, Any]:
    """A one-output net on ``bands`` (:func:`~humanscape.models.heads.regression_net`, bands fed
    natively) and its normalisation ``(mean, std)`` when it is a shipped encoder's."""
    return regression_net(arch, bands, dropout=dropout, input_size=input_size)


class ScoreModel(TaskModel):
    """Hyperlocal economic score per tile (see the module docstring).

    Parameters
    ----------
    method
        ``auto`` (default: the best of the others on held-out groups), ``cnn`` (the paper's
        network), ``forest`` (random forest on chip statistics, the baseline) or ``mosaiks``
        (random convolutional features and a logistic regression).
    arch
        Backbone of the CNN: ``resnet18`` (paper), ``resnet18_half``, any timm name, or a shipped
        encoder.
    bands
        Input bands by name (``B02,B03,B04,B08``; ``red,green,blue`` for RGB images).
    t1, t2, t_min, t_max
        Level thresholds and clamp range (eq. 4-6; paper 0, 10, -10, 20).
    epochs, batch_size, lr, patience, dropout
        Training (Adam; early stopping on the validation loss after ``patience`` epochs).
    input_size
        Resize every tile to this side first (bilinear). 64 px EuroSAT-size tiles shrink to 2 x 2
        cells by the end of a ResNet; upsampling them x2 (128) keeps more spatial detail (the
        shipped encoders' recipe).
    tta
        Average the 8 rotations / mirror images of each tile at prediction.
    mosaiks_filters
        K of the ``mosaiks`` candidate's random convolutional features (2K features; 1024 measured
        in docs/benchmarks.md).
    seed
        Seed of the split, the initialisation and the batches.
    """

    kind = "humanscape.economy.score"
    what = WHAT
    refit = REFIT
    fitted_attribute = "method_"

    def __init__(
        self,
        *,
        method: str = "auto",
        arch: str = "resnet18",
        bands: Sequence[str] = RGBN,
        t1: float = 0.0,
        t2: float = 10.0,
        t_min: float = -10.0,
        t_max: float = 20.0,
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 1e-3,
        patience: int = 8,
        dropout: float = 0.2,
        input_size: int | None = None,
        tta: bool = True,
        mosaiks_filters: int = MOSAIKS_FILTERS,
        seed: int = 0,
    ) -> None:
        self.method, self.arch, self.bands = method, arch, bands
        self.t1, self.t2, self.t_min, self.t_max = t1, t2, t_min, t_max
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.patience, self.dropout, self.tta, self.seed = patience, dropout, tta, seed
        self.input_size, self.mosaiks_filters = input_size, mosaiks_filters

    @property
    def thresholds(self) -> Thresholds:
        """The level thresholds and clamp range of eq. 4-6."""
        return Thresholds(self.t1, self.t2, self.t_min, self.t_max)

    def _validate_params(self) -> None:
        self._choice("method", self.method, METHODS)
        if not 1 <= int(self.mosaiks_filters) <= 65536:
            raise HumanscapeError(
                f"mosaiks_filters must be 1 .. 65536, got {self.mosaiks_filters}",
                fix="e.g. 1024 (the measured default)",
            )
        if not self.bands:
            raise HumanscapeError("no input band given", fix="give --bands, e.g. B02,B03,B04,B08")
        if not self.t_min < self.t1 < self.t2 < self.t_max:
            raise HumanscapeError(
                f"thresholds must satisfy t_min < t1 < t2 < t_max, got {self.t_min}, {self.t1}, "
                f"{self.t2}, {self.t_max}",
                fix="e.g. --t-min -10 --t1 0 --t2 10 --t-max 20 (the paper's values)",
            )

    # -- fitting
    def fit(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        *,
        groups: np.ndarray | None = None,
        validation: Split | None = None,
        units: str = "reflectance",
        work_dir: str | Path | None = None,
        progress: bool = True,
        source: str = "",
        classes: np.ndarray | None = None,
    ) -> ScoreModel:
        """Fit on ``(n, len(bands), H, W)`` tiles and ``(n, 3)`` level probabilities (or ``(n,)``
        level indices). Validation: ``validation``, else 20 % of the ``groups`` (whole groups
        held out; default each tile its own group). ``classes``: each tile's land-cover class
        where a class -> level mapping made the levels (the classifiers learn them)."""
        self._validate_params()
        images = np.asarray(images, dtype=np.float32)
        targets = np.asarray(targets, dtype=np.float32)
        if targets.ndim == 1:
            targets = np.eye(3, dtype=np.float32)[targets.astype(np.int64)]
        if images.ndim != 4 or images.shape[1] != len(self.bands) or len(images) != len(targets):
            raise HumanscapeError(
                f"{len(targets)} labels for tiles of shape {tuple(images.shape)}; the model reads "
                f"{len(self.bands)} bands ({', '.join(self.bands)})"
            )
        split = validation or grouped_validation(
            groups if groups is not None else np.arange(len(images)), seed=self.seed
        )
        if split.train.size < 2 or split.test.size < 1:
            raise HumanscapeError(
                f"{split.describe()}: too few tiles to fit and validate", fix="give more tiles"
            )
        tr, va = split.train, split.test
        levels = targets.argmax(1)
        held: dict[str, np.ndarray] = {}  # candidate -> scores of the validation tiles
        if self.method in ("cnn", "auto"):
            self._fit_net(images, targets, split, work_dir=work_dir, progress=progress)
            held["cnn"] = self._net_scores(images[va])
        fine = None if classes is None else np.asarray(classes)
        fitted: dict[str, tuple[LevelClassifier, np.ndarray]] = {}
        for kind in KINDS:
            if self.method in (kind, "auto"):
                clf = LevelClassifier(kind, seed=self.seed, filters=self.mosaiks_filters)
                clf.fit(images[tr], targets[tr], None if fine is None else fine[tr])
                x_va = clf.features(images[va])
                held[kind] = banded_score(clf.probabilities_of(x_va), self.thresholds)
                fitted[kind] = (clf, x_va)
        metrics = {k: score_metrics(v, levels[va], self.thresholds) for k, v in held.items()}
        self.selection_: Selection | None = None
        chosen = self.method
        if self.method == "auto":
            self.selection_ = select_candidate(
                list(held),
                lambda name, _tr, _te: metrics[name]["accuracy"],
                [(tr, va)],
                baseline=AUTO_BASELINE,
                metric="accuracy",
                min_splits=1,
            )
            chosen = self.selection_.chosen
        self.method_ = chosen
        if chosen in KINDS:  # the held-out tiles have served: refit on every tile
            clf, x_va = fitted[chosen]
            x_all = np.empty((len(images), x_va.shape[1]))
            x_all[tr], x_all[va] = clf.train_features_, x_va
            self.classifier_ = clf.fit_classifier(x_all, targets, fine)
            del clf.train_features_
            self.__dict__.pop("net_", None)
            self.norm_ = {"mean": [], "std": []}
            self.epochs_run_ = 0
        else:
            self.__dict__.pop("classifier_", None)
        self.units_, self.chip_shape_ = units, (int(images.shape[2]), int(images.shape[3]))
        self.info_ = {"training_table": str(source)} if source else {}
        self.validation_ = metrics[chosen] | {"n_train": int(tr.size), "n_validation": int(va.size)}
        self.validation_name_ = split.name
        return self

    def _fit_net(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        split: Split,
        *,
        work_dir: str | Path | None,
        progress: bool,
    ) -> None:
        """The CNN on the split's training tiles, early stopping on its validation tiles."""
        torch.manual_seed(self.seed)
        net, norm = build_score_net(
            self.arch, self.bands, dropout=self.dropout, input_size=self.input_size
        )
        with torch.no_grad():  # start every tile in the middle level: t1 < f < t2
            net.head.bias.fill_((self.t1 + self.t2) / 2)
        tr, va = split.train, split.test
        mean, std = norm or band_normalisation(images[tr])
        self.norm_ = {"mean": list(map(float, mean)), "std": list(map(float, std))}
        module = ScoreModule(net, mean, std, thresholds=self.thresholds, lr=self.lr)
        fit_module(
            module,
            TensorDataset(torch.from_numpy(images[tr]), torch.from_numpy(targets[tr])),
            epochs=self.epochs,
            batch_size=self.batch_size,
            work_dir=work_dir,
            seed=self.seed,
            progress=progress,
            val_dataset=TensorDataset(torch.from_numpy(images[va]), torch.from_numpy(targets[va])),
            patience=self.patience,
        )
        self.net_ = module.net.eval()
        self.epochs_run_ = int(module.current_epoch)

    # -- prediction
    def _check_fitted(self, images: np.ndarray) -> None:
        self.check_fitted()
        if images.ndim != 4 or images.shape[1] != len(self.bands):
            raise HumanscapeError(
                f"the score model reads {len(self.bands)} bands ({', '.join(self.bands)}), got "
                f"tiles of shape {tuple(images.shape)}"
            )

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.norm_["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(self.norm_["std"]).view(1, -1, 1, 1)
        return torch.nan_to_num((x - mean) / std, nan=0.0)

    def predict(self, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Score of each tile, clamped to ``[t_min, t_max]``: the CNN's (mean over the 8 views
        with ``tta``) or the classifier's (:func:`~humanscape.tasks.economy.candidates.
        banded_score`)."""
        images = np.asarray(images, dtype=np.float32)
        self._check_fitted(images)
        if not self.has_net:
            return self.classifier_.score(images, self.thresholds)
        return self._net_scores(images, batch_size)

    @torch.inference_mode()
    def _net_scores(self, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
        net = self.net_.eval()
        out = []
        for start in range(0, len(images), batch_size):
            x = self._normalise(torch.from_numpy(images[start : start + batch_size]))
            out.append(torch.stack([net(v) for v in dihedral_views(x, self.tta)]).mean(0))
        scores = torch.cat(out).double().numpy() if out else np.empty(0)
        return np.clip(scores, self.t_min, self.t_max)

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Level index (0 uninhabited, 1 rural, 2 urban) of each tile (eq. 4)."""
        return classify(self.predict(images), self.thresholds)

    def features(self, images: np.ndarray) -> np.ndarray:
        """What the score is read from: the pooled backbone features ``(n, num_features)`` of the
        CNN, or the classifier's features (chip statistics ``(n, 5 * bands)``, random features
        ``(n, 2K)``)."""
        images = np.asarray(images, dtype=np.float32)
        self._check_fitted(images)
        if not self.has_net:
            return self.classifier_.features(images)
        return pooled_features(self.net_, self.norm_, images)

    def scores_of_features(self, features: np.ndarray) -> np.ndarray:
        """The scores :meth:`predict` gives, from :meth:`features` already computed (a classifier
        score model: its features are computed once where both are needed)."""
        if self.has_net:
            raise HumanscapeError("a CNN score model scores images, not features")
        return banded_score(self.classifier_.probabilities_of(features), self.thresholds)

    @property
    def has_net(self) -> bool:
        """Whether the fitted score is a network (step-2 encoders fine-tune a copy of it)."""
        self.check_fitted()
        return self.method_ not in KINDS

    def copy_net(self) -> RegressionNet:
        """A trainable copy of the fitted network (step 2 encoders start from it)."""
        if not self.has_net:
            raise HumanscapeError(
                f"the score model is a {self.method_} classifier: it has no network for step-2 "
                "encoders to fine-tune",
                fix="economy fit --n-clusters '' (the classifier's features), or fit-score "
                "--method cnn",
            )
        return copy.deepcopy(self.net_).train()

    def chip_predictor(self, token: str = "") -> Any:
        """This model as a chip predictor of a map (``predict-chips``, ``economy score --scene``):
        score and level per tile (:class:`ScoreChips`)."""
        self.check_fitted()
        return ScoreChips(self, token)

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        classifier: dict[str, Any] = {}
        if not self.has_net:
            classifier = self.classifier_.save(folder)
        else:
            weights = {k: v.detach().contiguous().cpu() for k, v in self.net_.state_dict().items()}
            save_file(weights, str(folder / "score.safetensors"))
        return {
            "method": self.method_,
            "levels": list(LEVELS),
            "units": self.units_,
            "chip_shape": list(self.chip_shape_),
            "normalisation": self.norm_,
            "epochs_run": self.epochs_run_,
            "validation_split": self.validation_name_,
            "validation": self.validation_,
            "classifier": classifier,
        }

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        self.method_ = state.get("method", "cnn")
        self.norm_ = state["normalisation"]
        self.units_ = state["units"]
        self.chip_shape_ = tuple(state["chip_shape"])
        self.epochs_run_ = int(state.get("epochs_run", 0))
        self.validation_ = state.get("validation", {})
        self.validation_name_ = state.get("validation_split", "")
        if self.method_ in KINDS:
            state = state.get("classifier") or {"kind": self.method_}
            self.classifier_ = LevelClassifier.load(folder, state, REFIT)
            return
        weights = folder / "score.safetensors"
        net, _ = build_score_net(
            self.arch, self.bands, dropout=self.dropout, input_size=self.input_size
        )
        self.net_ = load_net_weights(net, weights, REFIT)


@torch.inference_mode()
def pooled_features(
    net: RegressionNet, norm: dict[str, list[float]], images: np.ndarray, batch_size: int = 128
) -> np.ndarray:
    """Pooled backbone features ``(n, num_features)`` of ``net`` on normalised ``images``."""
    mean = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    net = net.eval()
    out = [
        net.features(torch.nan_to_num((torch.from_numpy(images[i : i + batch_size]) - mean) / std))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out).double().numpy() if out else np.empty((0, net.backbone.num_features))


def grouped_validation(groups: np.ndarray, *, fraction: float = 0.2, seed: int = 0) -> Split:
    """Whole groups held out: a random ``fraction`` of the distinct groups (at least one)."""
    _, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(index.max()) + 1
    if n_groups < 2:
        raise HumanscapeError(
            "one group only: cannot hold a group out", fix="give two or more groups"
        )
    order = np.random.default_rng(seed).permutation(n_groups)
    held = set(order[: max(1, round(fraction * n_groups))].tolist())
    is_val = np.array([g in held for g in index])
    return Split(
        np.flatnonzero(~is_val),
        np.flatnonzero(is_val),
        f"validation: {len(held)} of {n_groups} groups",
    )


def score_metrics(scores: np.ndarray, levels: np.ndarray, th: Thresholds) -> dict[str, float]:
    """3-class accuracy of eq. 4, Spearman between score and level, per-level mean score."""
    from scipy.stats import spearmanr

    predicted = classify(scores, th)
    levels = np.asarray(levels)
    rho = spearmanr(scores, levels).statistic if len(np.unique(levels)) > 1 else float("nan")
    out = {"accuracy": float((predicted == levels).mean()), "spearman": float(rho)}
    for k, name in enumerate(LEVELS):
        if (levels == k).any():
            out[f"mean_score_{name}"] = float(np.mean(scores[levels == k]))
    return out


class ScoreChips:
    """The hyperlocal score model as a chip predictor: score and level (eq. 4) per tile."""

    outputs = ("score", "level")
    units = ("score", "level")

    def __init__(self, model: ScoreModel, token: str = "") -> None:
        self.model = model
        self.bands = list(model.bands)
        self._token = token

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        from humanscape.scale.chips import set_worker_threads

        set_worker_threads()
        scores = self.model.predict(chips)
        return np.stack([scores, classify(scores, self.model.thresholds)], axis=1)

    def token(self) -> str:
        if not self._token:  # a model not read from a folder: hash the fitted model itself
            import joblib

            self._token = joblib.hash(self.model)
        return f"score {self._token} {self.model.thresholds}"
