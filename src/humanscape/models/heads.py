"""A backbone with one regression output, and the regression losses the task papers use.

Huang et al. (2021, Sec. IV.B, Fig. 3): the backbone's feature maps are global-average-pooled,
flattened, passed through dropout (0.5) and one neuron with a linear activation. timm backbones
built with ``num_classes=0`` end in exactly that pooling, so :class:`RegressionNet` is
``Dropout(Backbone(x)) -> Linear(num_features, 1)``. The same net scores tiles for Park et al.
(2022, eq. 4: one output ``f``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from humanscape.errors import HumanscapeError
from humanscape.models.backbones import Backbone


def log_cosh_loss(predicted: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean log-cosh loss ``1/s Σ log(cosh(p̂ - p))`` (Huang et al. 2021, eq. 4).

    Computed as ``d + softplus(-2 d) - log 2`` (``log cosh d = |d| + log(1 + e^{-2|d|}) - log 2``,
    symmetric), which does not overflow for large ``d``: about ``d² / 2`` for small errors and
    ``|d| - log 2`` for large ones, so one outlier pulls less than under the squared error.
    """
    if predicted.shape != observed.shape:
        raise HumanscapeError(
            f"prediction shape {tuple(predicted.shape)} != target shape {tuple(observed.shape)}"
        )
    d = predicted - observed
    return (d + F.softplus(-2.0 * d) - math.log(2.0)).mean()


class RegressionNet(nn.Module):
    """``backbone -> global average pooling -> dropout -> linear`` with ``outputs`` values.

    Parameters
    ----------
    backbone
        A :class:`~humanscape.models.backbones.Backbone` (its output is already pooled).
    dropout
        Dropout ratio before the output layer (0.5 in Huang et al. 2021).
    input_size
        When set, inputs are resized (bilinear) to ``input_size`` x ``input_size`` first: Huang
        et al. resize every nbr(n) patch to 256 x 256 so that one network serves every n.
    outputs
        Number of output neurons (1: one scalar per image).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        dropout: float = 0.5,
        input_size: int | None = None,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise HumanscapeError(f"dropout must be in [0, 1), got {dropout}")
        if input_size is not None and input_size < 8:
            raise HumanscapeError(f"input size must be at least 8 px, got {input_size}")
        self.backbone = backbone
        self.input_size = input_size
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.num_features, outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of (resized) ``x``: ``(batch, num_features)``."""
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size,) * 2:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x))).squeeze(-1)


def dihedral_views(x: torch.Tensor, all_eight: bool = True) -> list[torch.Tensor]:
    """The 8 rotations and mirror images of ``(batch, bands, H, W)`` (or ``[x]``): test-time
    augmentation for overhead imagery, which has no canonical orientation."""
    if not all_eight:
        return [x]
    views = quarter_turns(x)
    return views + [v.flip(3) for v in views]


def quarter_turns(x: torch.Tensor) -> list[torch.Tensor]:
    """``torch.rot90(x, k, dims=(2, 3))`` for k = 0..3, written with flips and transposes (the
    same values), which ``torch.onnx`` exports: ONNX has no rot90 (ONNX Runtime inference)."""
    return [x, x.flip(3).transpose(2, 3), x.flip(2).flip(3), x.transpose(2, 3).flip(3)]


def band_normalisation(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of ``(n, bands, H, W)`` images, NaN ignored."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(images, axis=(0, 2, 3))
        std = np.maximum(np.nanstd(images, axis=(0, 2, 3)), 1e-6)
    return [float(m) for m in mean], [float(s) for s in std]


def regression_net(
    arch: str,
    bands: Sequence[str],
    *,
    dropout: float,
    input_size: int | None = None,
    adapter: str = "native",
) -> tuple[RegressionNet, tuple[list[float], list[float]] | None]:
    """A one-output net on ``bands``: a shipped (or saved) encoder's backbone, fine-tuned, with its
    normalisation ``(mean, std)`` (its bands must equal ``bands``), or a timm backbone ``arch``
    from random init with band ``adapter`` (normalisation ``None``: the caller's statistics)."""
    from pathlib import Path

    from humanscape.models.registry import list_weights, load_encoder

    if arch in {e.name for e in list_weights()} or Path(arch).exists():
        encoder = load_encoder(arch)
        if list(encoder.bands) != list(bands):
            raise HumanscapeError(
                f"encoder '{arch}' takes bands {','.join(encoder.bands)}, the model has {','.join(bands)}",
                fix=f"use --bands {','.join(encoder.bands)} with this encoder",
            )
        net = RegressionNet(encoder.backbone, dropout=dropout, input_size=input_size)
        return net, (encoder.mean.flatten().tolist(), encoder.std.flatten().tolist())
    backbone = Backbone(arch, len(bands), adapter)  # type: ignore[arg-type]
    return RegressionNet(backbone, dropout=dropout, input_size=input_size), None
