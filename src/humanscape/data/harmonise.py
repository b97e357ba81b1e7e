"""Radiometric harmonisation of a scene to a model's training imagery (per-band quantile matching).

A model trained on chips from one set of places, seasons and processing levels meets a scene
whose reflectances are distributed differently (a winter scene, haze, L1C top-of-atmosphere
against L2A surface reflectance). A model keeps the per-band quantiles of its training pixels
(:func:`band_quantiles`, 101 levels); before predicting, each band of the scene is sent through
the monotone piecewise-linear map that takes the scene's quantiles to the training quantiles
(histogram matching, Gonzalez & Woods, *Digital Image Processing*, Sec. 3.3.2):

    x' = F_train^-1(F_scene(x)),

with ``F`` the empirical distribution functions interpolated between the 101 quantiles (values
beyond the scene's extremes keep the slope of the nearest end segment). It assumes the scene holds
roughly the mix of land covers the training chips held; on a scene of mostly water or forest it
would brighten or darken what is there. Measured on the Berlin winter scene with a model of the
EuroSAT chips (``bench/population.py --part berlin``, docs/benchmarks.md) it beat no
harmonisation (r2 log1p -0.40 against -0.62, total -84 % against -94 %) and per-scene
standardisation (each band's median and inter-quartile range moved onto the training chips':
r2 on counts -21.7 against -0.36); ``population predict --scene`` uses it by default and
``--harmonise none`` switches it off. It does not make that model transfer to that scene.

The scene's quantiles come from :func:`scene_quantiles`: a fixed grid of windows read from the
scene (memory does not grow with the scene).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from humanscape.errors import HumanscapeError
from humanscape.geo.scene import Scene

#: Percentile levels of the stored quantiles (0, 1, ..., 100).
LEVELS = np.linspace(0.0, 100.0, 101)
#: Pixels per band the quantiles are estimated from (a random sample beyond this).
MAX_PIXELS = 400_000
#: Harmonisation choices of the CLI.
HARMONISE = ("quantile", "none")


def band_quantiles(
    images: np.ndarray, *, max_pixels: int = MAX_PIXELS, seed: int = 0
) -> np.ndarray:
    """Per-band quantiles ``(bands, 101)`` of ``(n, bands, H, W)`` or ``(bands, H, W)`` pixels,
    NaN ignored (a random sample of ``max_pixels`` valid pixels per band when there are more)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise HumanscapeError(f"expected (n, bands, H, W) images, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    out = np.empty((x.shape[1], LEVELS.size), dtype=np.float64)
    for b in range(x.shape[1]):
        values = x[:, b].ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise HumanscapeError(f"band {b + 1} has no valid pixel to estimate its distribution")
        if values.size > max_pixels:
            values = rng.choice(values, max_pixels, replace=False)
        out[b] = np.percentile(values, LEVELS)
    return out


def scene_quantiles(
    scene: Scene, bands: Sequence[str], *, windows: int = 16, size: int = 512
) -> np.ndarray:
    """Per-band quantiles ``(bands, 101)`` of a scene from a ``sqrt(windows)``-square grid of
    ``size`` px windows spread evenly over it (reflectance; nodata left out)."""
    side = max(1, int(round(np.sqrt(windows))))
    size = min(size, scene.width, scene.height)
    cols = np.linspace(0, scene.width - size, side).round().astype(int)
    rows = np.linspace(0, scene.height - size, side).round().astype(int)
    parts = [
        scene.read(bands, Window(int(c), int(r), size, size))
        for r in np.unique(rows)
        for c in np.unique(cols)
    ]
    try:
        return band_quantiles(np.stack(parts))
    except HumanscapeError:
        raise HumanscapeError(
            "a band has no valid pixel in the scene",
            path=scene.name,
            fix="give a scene with data in every band, or --harmonise none",
        ) from None


def _increasing(q: np.ndarray) -> np.ndarray:
    """Quantiles made strictly increasing (ties, e.g. a saturated band, broken by a tiny step)."""
    step = 1e-6 * max(1.0, float(np.abs(q).max()))
    out = np.array(q, dtype=np.float64)
    for i in range(1, out.size):
        if out[i] <= out[i - 1]:
            out[i] = out[i - 1] + step
    return out


@dataclass(frozen=True)
class QuantileMatch:
    """The per-band map from a scene's quantiles ``source`` to the training quantiles ``target``
    (both ``(bands, 101)``); called on ``(n, bands, H, W)`` or ``(bands, H, W)`` arrays."""

    source: np.ndarray
    target: np.ndarray

    def __post_init__(self) -> None:
        if self.source.shape != self.target.shape:
            raise HumanscapeError(
                f"scene quantiles {self.source.shape} and training quantiles "
                f"{self.target.shape} differ in shape"
            )
        # ties broken once here, not on every batch of chips
        object.__setattr__(self, "_knots", np.stack([_increasing(q) for q in self.source]))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        out = np.empty_like(x)
        band_axis = x.ndim - 3
        for b in range(self.source.shape[0]):
            src, dst = self._knots[b], self.target[b]
            v = np.take(x, b, axis=band_axis).astype(np.float64)
            mapped = np.interp(v, src, dst)
            low, high = v < src[0], v > src[-1]  # beyond the ends: the end segments' slopes
            lo_slope = (dst[1] - dst[0]) / (src[1] - src[0])
            hi_slope = (dst[-1] - dst[-2]) / (src[-1] - src[-2])
            mapped[low] = dst[0] + (v[low] - src[0]) * lo_slope
            mapped[high] = dst[-1] + (v[high] - src[-1]) * hi_slope
            index = [slice(None)] * x.ndim
            index[band_axis] = b
            out[tuple(index)] = mapped  # NaN stays NaN (np.interp keeps it)
        return out

    def median_shift(self) -> np.ndarray:
        """Training median minus scene median, per band (what the map moves the middle by)."""
        return self.target[:, 50] - self.source[:, 50]
