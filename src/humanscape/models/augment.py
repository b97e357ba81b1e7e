"""Augmentations fit for satellite imagery, batched on tensors (CPU or GPU).

Chen et al. (2020) found crops + colour distortion the key pair for SimCLR. Satellite imagery has no
canonical orientation and no meaningful hue for multispectral bands, so humanscape uses:

- random resized crops (scale 0.25-1, aspect 3/4-4/3), flips and 90-degree rotations, all in one
  affine resampling per image (``grid_sample``);
- per-band brightness and contrast jitter (each band its own factor: a multispectral stand-in for
  colour jitter; no hue jitter, no grayscale);
- optional Gaussian noise.

Inputs are normalised ``(batch, bands, H, W)`` float tensors; every image gets its own draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SatelliteAugment:
    """Random view generator for contrastive / clustering training (see module docstring)."""

    crop_scale: tuple[float, float] = (0.25, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    rot90: bool = True
    brightness: float = 0.4
    contrast: float = 0.4
    noise: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        dev, dt = x.device, x.dtype

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device="cpu").to(dev, dt)

        # random resized crop as an affine map of the output grid onto the input ([-1, 1] coordinates)
        area = self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * rand(n)
        log_r = math.log(self.crop_ratio[0]) + (
            math.log(self.crop_ratio[1]) - math.log(self.crop_ratio[0])
        ) * rand(n)
        ratio = torch.exp(log_r)
        sx = torch.sqrt(area * ratio).clamp(max=1.0)
        sy = torch.sqrt(area / ratio).clamp(max=1.0)
        tx = (1 - sx) * (2 * rand(n) - 1)
        ty = (1 - sy) * (2 * rand(n) - 1)
        theta = torch.zeros(n, 2, 3, device=dev, dtype=dt)
        theta[:, 0, 0], theta[:, 1, 1] = sx, sy
        theta[:, 0, 2], theta[:, 1, 2] = tx, ty
        if self.flip:
            theta[:, 0, 0] *= torch.where(rand(n) < 0.5, -1.0, 1.0)
        if self.rot90:
            k = torch.floor(rand(n) * 4)
            cos, sin = torch.cos(k * math.pi / 2).round(), torch.sin(k * math.pi / 2).round()
            rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
            theta[:, :, :2] = rot @ theta[:, :, :2]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )

        # per-band brightness and contrast (normalised units)
        if self.contrast:
            factor = 1 + self.contrast * (2 * rand(n, c, 1, 1) - 1)
            mean = out.mean(dim=(2, 3), keepdim=True)
            out = (out - mean) * factor + mean
        if self.brightness:
            out = out + self.brightness * (2 * rand(n, c, 1, 1) - 1)
        if self.noise:
            out = out + self.noise * torch.randn(out.shape, generator=generator, device="cpu").to(
                dev, dt
            )
        return out


@dataclass
class RadiometricJitter:
    """Haze, brightness and per-band gain on *reflectance* chips: the radiometry a model meets in
    a scene of another date, atmosphere or processing level (issue 22, item 2).

    For a chip ``x`` (bands ``b``) and draws ``h`` (haze fraction), ``g`` (brightness) and ``g_b``
    (per-band gain, the stand-in for season and processing differences)::

        x' = ((1 - h) x + h L_b) g g_b

    the haze term being the single-scattering mix of the surface with a bright path radiance
    ``L_b`` (per band, e.g. the 99th percentile of the training reflectances: haze brightens dark
    surfaces most, as in the dark-object reasoning of Chavez 1988). ``h ~ U(0, haze)``,
    ``g = exp(U(-gain, gain))``, ``g_b = exp(U(-band_gain, band_gain))``, each chip jittered with
    probability ``p``.
    """

    airlight: tuple[float, ...]
    haze: float = 0.3
    gain: float = 0.2
    band_gain: float = 0.1
    p: float = 0.5

    @staticmethod
    def apply(
        x: torch.Tensor,
        airlight: torch.Tensor,
        h: torch.Tensor,
        g: torch.Tensor,
        band_g: torch.Tensor,
    ) -> torch.Tensor:
        """The jitter with given draws: ``h``, ``g`` of shape ``(n,)``, ``band_g`` ``(n, bands)``."""
        n, c = x.shape[:2]
        mixed = (1 - h.view(n, 1, 1, 1)) * x + h.view(n, 1, 1, 1) * airlight.view(1, c, 1, 1)
        return mixed * g.view(n, 1, 1, 1) * band_g.view(n, c, 1, 1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c = x.shape[:2]

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator).to(x.device, x.dtype)

        on = (rand(n) < self.p).to(x.dtype)
        h = rand(n) * self.haze * on
        g = torch.exp((2 * rand(n) - 1) * self.gain * on)
        band_g = torch.exp((2 * rand(n, c) - 1) * self.band_gain * on.view(n, 1))
        airlight = torch.tensor(self.airlight, dtype=x.dtype, device=x.device)
        return self.apply(x, airlight, h, g, band_g)
