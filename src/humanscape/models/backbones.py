"""CNN backbones from timm, for any number of input bands.

Three ways to feed N spectral bands to a network designed for RGB:

``native``
    The first convolution takes N channels (timm ``in_chans=N``).
``conv1x1``
    A learned 1 x 1 convolution maps the N bands to 3 channels in front of a 3-channel network
    (Huang et al. 2021, Sec. IV.B: "we implemented 1 × 1 Conv layers, commonly-used layers for
    image fusion and dimensionality reduction [43], to reduce the number of channels from four to
    three, consistent with the situation where the initial weights from ImageNet were derived").
``samescaled``
    3-band weights widened to N bands: the mean of the RGB filters is copied to every extra band
    and all filters are scaled by 3/N (Yeh et al. 2020, Nature Communications, Methods:
    "samescaled" initialisation), so that an input whose bands are all equal gives the same
    response as before widening.

Backbone names are timm names (``resnet18``, ``resnet50``, ``densenet121``, ``vgg16_bn``,
``efficientnet_b0``, ``legacy_xception`` ...) plus ``xception`` (Chollet's Xception, timm
``legacy_xception``) and ``resnet18_half`` (ResNet-18 with half the channels, 2.8 M parameters:
humanscape's shipped CPU-trainable encoder), and ``mosaiks_<K>``: K random convolutional
filters, fitted from images rather than trained (:class:`~humanscape.models.random_features.RandomConvBody`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import timm
import torch
from torch import nn

from humanscape.errors import HumanscapeError

Adapter = Literal["native", "conv1x1", "samescaled"]
ADAPTERS = ("native", "conv1x1", "samescaled")

#: How many of the last stages :meth:`Backbone.multiscale` pools.
MULTISCALE_STAGES = 3

#: Names the paper methods use, mapped to timm names.
ALIASES = {"xception": "legacy_xception"}
#: The architectures the task papers use; any other timm name works too.
PAPER_BACKBONES = ("resnet18", "resnet50", "densenet121", "vgg16_bn", "xception", "efficientnet_b0")


def _create(name: str, in_chans: int) -> nn.Module:
    from humanscape.models.random_features import RandomConvBody, mosaiks_filters

    k = mosaiks_filters(name)
    if k is not None:  # random convolutional features (MOSAIKS): filters fitted, not trained
        return RandomConvBody(k, in_chans)
    if name == "resnet18_half":
        from timm.models.resnet import BasicBlock, ResNet

        model = ResNet(
            block=BasicBlock,
            layers=(2, 2, 2, 2),
            channels=(32, 64, 128, 256),
            in_chans=in_chans,
            num_classes=0,
        )
        model.pretrained_cfg = {"first_conv": "conv1"}
        return model
    timm_name = ALIASES.get(name, name)
    if not timm.is_model(timm_name):
        raise HumanscapeError(
            f"unknown backbone '{name}'",
            fix=f"use a timm model name, e.g. {', '.join(PAPER_BACKBONES)} or resnet18_half",
        )
    return timm.create_model(timm_name, pretrained=False, in_chans=in_chans, num_classes=0)


def first_conv_key(model: nn.Module) -> str:
    """State-dict key of the first convolution's weight of a timm model (from its pretrained_cfg)."""
    path = getattr(model, "pretrained_cfg", {}).get("first_conv")
    if not path:
        raise HumanscapeError(f"cannot find the first convolution of {type(model).__name__}")
    module = model.get_submodule(path)
    if isinstance(module, nn.Conv2d):
        return f"{path}.weight"
    for name, sub in module.named_modules():  # wrapped, e.g. ConvNormAct
        if isinstance(sub, nn.Conv2d):
            return f"{path}.{name}.weight"
    raise HumanscapeError(f"no convolution under {path} in {type(model).__name__}")


class Backbone(nn.Module):
    """A feature extractor: ``(batch, in_chans, H, W) -> (batch, num_features)``.

    Attributes
    ----------
    name, in_chans, adapter
        What was built.
    num_features
        Length of the output vector.
    """

    def __init__(self, name: str, in_chans: int = 3, adapter: Adapter = "native") -> None:
        super().__init__()
        if adapter not in ADAPTERS:
            raise HumanscapeError(
                f"unknown adapter '{adapter}'", fix=f"use one of {', '.join(ADAPTERS)}"
            )
        if in_chans < 1:
            raise HumanscapeError(f"in_chans must be at least 1, got {in_chans}")
        self.name, self.in_chans, self.adapter = name, in_chans, adapter
        if adapter == "conv1x1" and in_chans != 3:
            self.stem = nn.Conv2d(in_chans, 3, kernel_size=1)
            self.body = _create(name, 3)
        else:
            self.stem = nn.Identity()
            self.body = _create(name, in_chans)
        self.num_features = int(self.body.num_features)
        if getattr(self.body, "pre_logits", None) is not None and hasattr(
            self.body, "head_hidden_size"
        ):
            self.num_features = int(self.body.head_hidden_size)  # e.g. vgg16_bn: 4096 pre-logits

    @property
    def activation_bytes_per_pixel(self) -> int:
        """Peak bytes of a frozen forward pass per input pixel (batch planning): about the
        output width for ImageNet-style CNNs (measured, :func:`~humanscape.models.embed.batch_for`),
        the body's own figure where it states one (random features)."""
        return int(getattr(self.body, "activation_bytes_per_pixel", self.num_features))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise HumanscapeError(
                f"backbone expects (batch, {self.in_chans}, H, W), got {tuple(x.shape)}",
                fix="pass images with the encoder's bands in its band order",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.body(self.stem(x))

    @property
    def multiscale_features(self) -> int:
        """Length of :meth:`multiscale`'s output: the channels of the last stages, summed."""
        info = self.body.feature_info  # a timm FeatureInfo or a list of dicts, by model
        channels = info.channels() if hasattr(info, "channels") else [f["num_chs"] for f in info]
        return int(sum(channels[-MULTISCALE_STAGES:]))

    def multiscale(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled feature maps of the last three stages, concatenated.

        Small chips (EuroSAT's 64 px) leave a 2 x 2 map after the last stage of an ImageNet-style
        network; the earlier, finer stages keep texture that the last one has pooled away. The
        concatenation is the hypercolumn idea (Hariharan et al. 2015) applied to whole-image
        embeddings; it uses timm's ``forward_intermediates``.
        """
        self._check(x)
        try:
            maps = self.body.forward_intermediates(
                self.stem(x), indices=MULTISCALE_STAGES, intermediates_only=True
            )
        except (AttributeError, NotImplementedError) as exc:
            raise HumanscapeError(
                f"backbone '{self.name}' does not expose intermediate stages",
                fix="use pooling='last' for this backbone",
            ) from exc
        return torch.cat([m.mean(dim=(2, 3)) for m in maps], dim=1)


def samescale_weight(
    weight: torch.Tensor, n_bands: int, rgb_index: Sequence[int] = (0, 1, 2)
) -> torch.Tensor:
    """Widen a first-conv weight ``(out, 3, k, k)`` to ``(out, n_bands, k, k)`` ("samescaled").

    Yeh et al. (2020): the RGB filters keep their positions ``rgb_index`` in the new band order,
    every other band gets the mean RGB filter, and all are multiplied by ``3 / n_bands``.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise HumanscapeError(
            f"samescaled widening needs a 3-band weight, got shape {tuple(weight.shape)}"
        )
    if len(rgb_index) != 3 or len(set(rgb_index)) != 3 or max(rgb_index) >= n_bands:
        raise HumanscapeError(f"rgb_index {tuple(rgb_index)} does not fit {n_bands} bands")
    mean = weight.mean(dim=1, keepdim=True)
    out = mean.repeat(1, n_bands, 1, 1)
    for src, dst in enumerate(rgb_index):
        out[:, dst] = weight[:, src]
    return out * (3.0 / n_bands)


def widen_backbone(rgb: Backbone, n_bands: int, rgb_index: Sequence[int] = (0, 1, 2)) -> Backbone:
    """A ``samescaled`` copy of a 3-band backbone that takes ``n_bands`` (other weights shared by value)."""
    if rgb.in_chans != 3 or rgb.adapter == "conv1x1":
        raise HumanscapeError("only a native 3-band backbone can be widened")
    wide = Backbone(rgb.name, n_bands, "samescaled")
    state = {k: v.clone() for k, v in rgb.state_dict().items()}
    key = "body." + first_conv_key(rgb.body)
    state[key] = samescale_weight(state[key], n_bands, rgb_index)
    wide.load_state_dict(state)
    return wide
