"""The pieces of Huang et al.'s (2021) chip regression below the estimator: the log target
(Sec. IV.A), a spatially held-out validation split, the Lightning module that trains the network
with the log-cosh loss (eq. 4, Sec. IV.C) and the network itself (Sec. IV.B, Fig. 3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from humanscape.data.splits import Split, block_folds
from humanscape.errors import HumanscapeError
from humanscape.evaluate.regression import log_population
from humanscape.models.augment import RadiometricJitter
from humanscape.models.heads import RegressionNet, log_cosh_loss, regression_net
from humanscape.models.training import LightningModule

TARGETS = ("log1p", "log")
#: The four networks the paper compares; they take RGBN through a 1 x 1 convolution (Sec. IV.B).
PAPER_ARCHS = ("vgg16_bn", "resnet50", "xception", "densenet121")


def to_target(population: np.ndarray, kind: str = "log1p") -> np.ndarray:
    """Counts -> model target: ``log1p``, or the paper's ``log`` (eq. 1's floor, then log; Sec. IV.A)."""
    if kind == "log1p":
        return np.log1p(np.asarray(population, dtype=np.float64))
    if kind == "log":
        return log_population(population)
    raise HumanscapeError(f"unknown target '{kind}'", fix=f"use one of {', '.join(TARGETS)}")


def from_target(values: np.ndarray, kind: str = "log1p") -> np.ndarray:
    """Model target -> people (never negative)."""
    v = np.asarray(values, dtype=np.float64)
    return np.maximum(np.expm1(v) if kind == "log1p" else np.exp(v), 0.0)


def spatial_validation(
    locations: np.ndarray | None,
    groups: np.ndarray | None,
    *,
    fraction: float = 0.2,
    block_m: float = 50_000.0,
    seed: int = 0,
) -> Split:
    """A spatially grouped train / validation split: whole groups (or ``block_m`` blocks) held out.

    ``groups`` (e.g. a district column) win over ``locations`` (metres); the validation share is
    the fold of ``round(1 / fraction)`` random block folds (or group folds) with seed ``seed``.
    """
    n_folds = max(2, round(1 / fraction))
    if groups is not None:
        _, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        if index.max() + 1 < 2:
            raise HumanscapeError(
                "one group only: cannot hold a group out", fix="give two or more groups"
            )
        assignment = np.random.default_rng(seed).permutation(index.max() + 1) % n_folds
        fold = assignment[index]
        val = np.flatnonzero(fold == 0)
        return Split(np.flatnonzero(fold != 0), val, f"validation: groups fold 0/{n_folds}")
    if locations is None:
        raise HumanscapeError("a spatial split needs chip locations or groups")
    blocks = np.floor(np.asarray(locations) / block_m).astype(np.int64)
    n_blocks = len(np.unique(blocks, axis=0))
    folds = (
        block_folds(
            np.asarray(locations),
            block_m,
            n_folds=min(n_folds, n_blocks),
            scheme="random",
            seed=seed,
        )
        if n_blocks >= 2
        else None
    )
    if folds is None:
        raise HumanscapeError(
            f"every chip lies in one {block_m / 1000:g} km block: no spatial validation possible",
            fix="give --group-column COLUMN, or smaller --block-km",
        )
    return Split(folds[0].train, folds[0].test, f"validation: {folds[0].name}")


# --- the CNN member -----------------------------------------------------------------------------


class PopulationRegressor(LightningModule):
    """Lightning module: radiometric jitter (haze, brightness, per-band gain; optional), normalise,
    augment (rot90 / flip), log-cosh loss on the log target."""

    def __init__(
        self,
        net: RegressionNet,
        mean: Sequence[float],
        std: Sequence[float],
        lr: float,
        jitter: RadiometricJitter | None = None,
    ) -> None:
        super().__init__()
        self.net, self.lr, self.jitter = net, lr, jitter
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return torch.nan_to_num(x, nan=0.0)  # nodata -> band mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        if self.jitter is not None:
            x = self.jitter(x)
        x = self.normalise(x)
        k = int(torch.randint(4, (1,)))
        x = torch.rot90(x, k, dims=(2, 3))
        if bool(torch.rand(1) < 0.5):
            x = x.flip(3)
        loss = log_cosh_loss(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val_loss", log_cosh_loss(self(x), y), prog_bar=True, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr, betas=(0.9, 0.999))


def build_net(
    arch: str, bands: Sequence[str], *, input_size: int | None, dropout: float
) -> tuple[RegressionNet, list[float] | None, list[float] | None]:
    """The network of ``arch`` (:func:`~humanscape.models.heads.regression_net`): the paper's four
    take their bands through a 1 x 1 convolution (Sec. IV.B), other timm names natively."""
    adapter = "conv1x1" if arch in PAPER_ARCHS else "native"
    net, norm = regression_net(arch, bands, dropout=dropout, input_size=input_size, adapter=adapter)
    mean, std = norm if norm is not None else (None, None)
    return net, mean, std
