"""An encoder: a backbone plus the band list and normalisation it was trained with.

Users ask pretrained weights exactly this ("which bands, which normalisation?", TorchGeo issues
#693, #1042), so an :class:`Encoder` carries both and refuses input that does not match. It is saved
as a folder (DESIGN.md conventions): ``config.json`` (architecture, adapter, bands, input units,
mean/std, training metadata) and ``model.safetensors`` (the state dict; never a pickle).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from humanscape import __version__
from humanscape._atomic import atomic_output
from humanscape.errors import HumanscapeError
from humanscape.models.backbones import Adapter, Backbone
from humanscape.models.heads import quarter_turns

#: ``rgb8``: 8-bit display values 0..255 (JPEG / PNG chips); ``reflectance``: 0..1 reflectance.
InputUnits = Literal["rgb8", "reflectance"]
#: ``last``: the backbone's pooled last stage; ``multiscale``: the last three stages, pooled and
#: concatenated (:meth:`~humanscape.models.backbones.Backbone.multiscale`).
Pooling = Literal["last", "multiscale"]
POOLINGS = ("last", "multiscale")


class Encoder(nn.Module):
    """Backbone + bands + normalisation: ``(batch, len(bands), H, W) -> (batch, num_features)``.

    Parameters
    ----------
    arch
        Backbone name (see :mod:`humanscape.models.backbones`).
    bands
        Band names in input order, e.g. ``["red", "green", "blue"]`` or Sentinel-2 names.
    mean, std
        Per-band statistics in ``units``; input is normalised as ``(x - mean) / std``.
    units
        ``rgb8`` or ``reflectance``.
    adapter
        How bands enter the backbone (``native``, ``conv1x1``, ``samescaled``).
    input_scale
        Bilinear resampling factor applied to the normalised input before the backbone when
        embedding. ImageNet-style stems downsample 4x at once; 64 px chips seen at 2x keep a
        4 x 4 map after the last stage instead of 2 x 2. Training (SimCLR, DeepCluster) feeds the
        backbone directly and does not use it.
    pooling
        ``last`` or ``multiscale`` (see :data:`Pooling`); used when embedding.
    orientations
        1, 4 or 8: the embedding is the mean over the image's 90-degree rotations (4) and their
        mirror images (8). Overhead imagery has no canonical orientation and SimCLR was trained
        to be invariant to these transforms; averaging removes what invariance is left (the
        dihedral-group averaging of rotation-equivariant remote-sensing models). Costs that many
        forward passes.
    metadata
        Free-form provenance (training data, epochs, seed, licence, probe accuracy ...).
    """

    def __init__(
        self,
        arch: str,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        units: InputUnits = "reflectance",
        adapter: Adapter = "native",
        input_scale: float = 1.0,
        pooling: Pooling = "last",
        orientations: int = 1,
        metadata: dict[str, Any] | None = None,
        backbone: Backbone | None = None,
    ) -> None:
        super().__init__()
        if not (len(bands) == len(mean) == len(std)):
            raise HumanscapeError(f"{len(bands)} bands but {len(mean)} means and {len(std)} stds")
        if any(s <= 0 for s in std):
            raise HumanscapeError("normalisation std must be positive")
        if pooling not in POOLINGS:
            raise HumanscapeError(
                f"unknown pooling '{pooling}'", fix=f"use one of {', '.join(POOLINGS)}"
            )
        if not 0 < input_scale <= 8:
            raise HumanscapeError(f"input_scale must be in (0, 8], got {input_scale}")
        self.arch, self.bands, self.units, self.adapter = arch, list(bands), units, adapter
        if orientations not in (1, 4, 8):
            raise HumanscapeError(f"orientations must be 1, 4 or 8, got {orientations}")
        self.input_scale, self.pooling = float(input_scale), pooling
        self.orientations = int(orientations)
        self.metadata = dict(metadata or {})
        self.backbone = backbone if backbone is not None else Backbone(arch, len(bands), adapter)
        if self.backbone.in_chans != len(bands):
            raise HumanscapeError(
                f"backbone takes {self.backbone.in_chans} bands, encoder declares {len(bands)}"
            )
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def num_features(self) -> int:
        """Length of the embedding :meth:`forward` returns."""
        if self.pooling == "multiscale":
            return self.backbone.multiscale_features
        return self.backbone.num_features

    def plain(self) -> Encoder:
        """This encoder with the textbook embedding (x1, last stage, 1 orientation), sharing weights."""
        return self._rebuild(recipe=False, backbone=self.backbone).train(self.training)

    def untrained(self) -> Encoder:
        """The same architecture, bands, normalisation and recipe with fresh random weights
        (the random-init baseline of a probe); seed with ``torch.manual_seed`` first."""
        return self._rebuild(recipe=True, backbone=None).eval()

    def _rebuild(self, *, recipe: bool, backbone: Backbone | None) -> Encoder:
        """An encoder of the same bands and normalisation; the recipe and metadata kept or not."""
        settings: dict[str, Any] = (
            {
                "input_scale": self.input_scale,
                "pooling": self.pooling,
                "orientations": self.orientations,
            }
            if recipe
            else {"metadata": self.metadata}
        )
        return Encoder(
            self.arch,
            self.bands,
            self.mean.flatten().tolist(),
            self.std.flatten().tolist(),
            units=self.units,
            adapter=self.adapter,
            backbone=backbone,
            **settings,
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per band."""
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != len(self.bands):
            raise HumanscapeError(
                f"encoder takes {len(self.bands)} bands ({', '.join(self.bands)}), got input of shape {tuple(x.shape)}",
                fix="select the encoder's bands, in its order",
            )
        x = self.normalize(x)
        if self.input_scale != 1.0:
            x = F.interpolate(
                x, scale_factor=self.input_scale, mode="bilinear", align_corners=False
            )
        if self.orientations > 1:
            views = quarter_turns(x)
            if self.orientations == 8:
                views += [v.flip(3) for v in views]
            n = x.shape[0]
            feats = self._pooled(torch.cat(views))
            return feats.view(len(views), n, -1).mean(dim=0)
        return self._pooled(x)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooling == "multiscale":
            return self.backbone.multiscale(x)
        return self.backbone(x)

    # -- persistence
    def config(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "adapter": self.adapter,
            "input_scale": self.input_scale,
            "pooling": self.pooling,
            "orientations": self.orientations,
            "bands": self.bands,
            "units": self.units,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
            "num_features": self.num_features,
            "humanscape_version": __version__,
            "metadata": self.metadata,
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder`` (each atomically)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.backbone.state_dict().items()}
        with atomic_output(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        with atomic_output(folder / "config.json") as tmp:
            tmp.write_text(json.dumps(self.config(), indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Encoder:
        """Load an encoder saved by :meth:`save`."""
        folder = Path(folder)
        config_path, weights_path = folder / "config.json", folder / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.exists():
                raise HumanscapeError(
                    "encoder file missing",
                    path=path,
                    fix="point at a folder with config.json and model.safetensors",
                )
        try:
            config = json.loads(config_path.read_text())
            encoder = cls(
                config["arch"],
                config["bands"],
                config["mean"],
                config["std"],
                units=config.get("units", "reflectance"),
                adapter=config.get("adapter", "native"),
                input_scale=config.get("input_scale", 1.0),
                pooling=config.get("pooling", "last"),
                orientations=int(config.get("orientations", 1)),
                metadata=config.get("metadata"),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise HumanscapeError(
                f"invalid encoder config: {type(exc).__name__}: {exc}",
                path=config_path,
                fix="the folder must come from Encoder.save (config.json + model.safetensors)",
            ) from None
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError) as exc:
            raise HumanscapeError(
                f"not a readable safetensors file ({exc})",
                path=weights_path,
                fix="the file is truncated or corrupt; copy the encoder folder again",
            ) from None
        try:
            encoder.backbone.load_state_dict(state)
        except RuntimeError as exc:
            raise HumanscapeError(
                f"weights do not fit a {config['arch']} with {len(config['bands'])} bands: {str(exc)[:200]}",
                path=weights_path,
                fix="the config and the weights must come from the same model",
            ) from exc
        return encoder.eval()
