"""s2cloudless cloud masks for Sentinel-2 L1C scenes, window by window.

Sentinel Hub's s2cloudless (Zupanc 2017; the ``s2cloudless`` package, whose LightGBM classifier
ships in the wheel): a pixel classifier on ten top-of-atmosphere reflectances (B01, B02, B04, B05,
B08, B8A, B09, B10, B11, B12, reflectance = DN / 10000 after the baseline-04.00 offset), then

1. the probability averaged over a disk of ``average_over`` pixels (``cv2.filter2D``, reflected
   borders),
2. cloud where the averaged probability exceeds ``threshold`` (0.4),
3. the cloud mask dilated by a disk of ``dilation_size`` pixels.

Sentinel Hub runs it at 160 m (its CLP / CLM layers); the package README gives ``average_over=22,
dilation_size=11`` at 10 m, i.e. 220 m and 110 m. Here the classifier runs on a working grid of
``factor`` x ``factor`` blocks of the scene grid (by default 60 m, the resolution of B01 / B09 /
B10, so 36 times fewer pixels than at 10 m; ``bench/cloudmask.py`` measures what that costs), with
the disks scaled to keep 220 m and 110 m. Blocks are aligned to the scene grid, and each window is
read with a halo of ``average_over + dilation_size`` working pixels (clipped at the scene edge,
where the reflected border applies as on the whole scene), so a tiled run gives the whole-scene
mask.

The classifier was trained on L1C (top-of-atmosphere) reflectance; surface reflectance (L2A) is
refused, with the SCL band named as the mask to use instead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from humanscape.errors import HumanscapeError

if TYPE_CHECKING:
    from s2cloudless import S2PixelCloudDetector

    from humanscape.geo.scene import Scene

#: The ten bands the classifier reads, in its order (``s2cloudless.utils.MODEL_BANDS``).
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")

#: Disk radii of the averaging and the dilation in metres (the package README: 22 and 11 px at 10 m).
AVERAGE_OVER_M = 220.0
DILATION_M = 110.0

#: Resolution the classifier runs at by default: that of B01, B09 and B10.
WORKING_RES_M = 60.0


@functools.lru_cache(maxsize=8)
def _detector(threshold: float, average_over: int, dilation_size: int) -> S2PixelCloudDetector:
    """One detector per process and setting (loading the LightGBM model takes a moment)."""
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(
        threshold=threshold,
        all_bands=False,
        average_over=average_over,
        dilation_size=dilation_size,
    )


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks over the last two axes, ignoring NaN.

    Edge blocks may be partial (the array need not be a multiple of ``factor``); a block with no
    finite value is NaN.
    """
    if factor == 1:
        return values.astype(np.float32, copy=False)
    *lead, h, w = values.shape
    hh, ww = -(-h // factor), -(-w // factor)
    padded = np.full((*lead, hh * factor, ww * factor), np.nan, dtype=np.float32)
    padded[..., :h, :w] = values
    blocks = padded.reshape(*lead, hh, factor, ww, factor)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0).sum(axis=(-3, -1))
    count = finite.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


@dataclass(frozen=True)
class S2Cloudless:
    """s2cloudless on a working grid of ``factor`` x ``factor`` scene pixels.

    Attributes
    ----------
    threshold
        Cloud where the disk-averaged probability exceeds it (s2cloudless default 0.4).
    factor
        Scene pixels per working pixel along each axis (1 = the scene grid itself).
    average_over, dilation_size
        Disk radii in working pixels.
    """

    threshold: float
    factor: int
    average_over: int
    dilation_size: int

    @classmethod
    def for_resolution(
        cls, res_m: float, threshold: float = 0.4, working_res_m: float = WORKING_RES_M
    ) -> S2Cloudless:
        """Settings for a scene grid of ``res_m`` metres: work at ``working_res_m`` (or the grid's,
        if coarser), disks of 220 m and 110 m (at least one working pixel each)."""
        if not 0 < threshold <= 1:
            raise HumanscapeError(
                f"s2cloudless threshold {threshold:g} is outside (0, 1]",
                fix="give the probability above which a pixel is cloud, e.g. s2cloudless:0.4",
            )
        factor = max(1, round(working_res_m / res_m))
        work = res_m * factor
        return cls(
            threshold,
            factor,
            max(1, round(AVERAGE_OVER_M / work)),
            max(1, round(DILATION_M / work)),
        )

    @property
    def halo(self) -> int:
        """Working pixels beyond a window that its mask depends on."""
        return self.average_over + self.dilation_size

    def probability(self, reflectance: np.ndarray) -> np.ndarray:
        """Cloud probability of ``(10, rows, cols)`` TOA reflectance (band order
        :data:`S2CLOUDLESS_BANDS`); NaN where a band is missing."""
        if reflectance.shape[0] != len(S2CLOUDLESS_BANDS):
            raise HumanscapeError(
                f"s2cloudless reads {len(S2CLOUDLESS_BANDS)} bands, got {reflectance.shape[0]}",
                fix=f"pass {', '.join(S2CLOUDLESS_BANDS)} in that order",
            )
        pixels = np.moveaxis(reflectance, 0, -1)[None]
        detector = _detector(self.threshold, self.average_over, self.dilation_size)
        proba = detector.get_cloud_probability_maps(np.ascontiguousarray(pixels))[0]
        proba[~np.all(np.isfinite(reflectance), axis=0)] = np.nan
        return proba

    def cloudy(self, probability: np.ndarray) -> np.ndarray:
        """Averaged, thresholded and dilated cloud mask of a probability map (NaN counts as 0)."""
        detector = _detector(self.threshold, self.average_over, self.dilation_size)
        proba = np.nan_to_num(probability, nan=0.0).astype(np.float32)
        return detector.get_mask_from_prob(proba[None])[0].astype(bool)

    def clear(self, scene: Scene, window: Window) -> np.ndarray:
        """Boolean clear-sky mask of ``window`` of an L1C ``scene`` (False where data is missing).

        The scene is checked once by the caller (:func:`check_scene`, via
        :meth:`~humanscape.geo.composite.CloudMask.check`), not on every window.
        """
        f, halo = self.factor, self.halo * self.factor
        row0, col0 = int(window.row_off), int(window.col_off)
        row1, col1 = row0 + int(window.height), col0 + int(window.width)
        # the window grown by the halo, snapped outward to whole working pixels, clipped to the scene
        r0, c0 = max(0, (row0 - halo) // f * f), max(0, (col0 - halo) // f * f)
        r1 = min(scene.height, -(-(row1 + halo) // f) * f)
        c1 = min(scene.width, -(-(col1 + halo) // f) * f)
        reflectance = scene.read(list(S2CLOUDLESS_BANDS), Window(c0, r0, c1 - c0, r1 - r0))
        coarse = block_mean(reflectance, f)
        cloudy = self.cloudy(self.probability(coarse))
        fine = np.repeat(np.repeat(cloudy, f, axis=0), f, axis=1)
        fine = fine[row0 - r0 : row1 - r0, col0 - c0 : col1 - c0]
        valid = np.all(np.isfinite(reflectance[:, row0 - r0 : row1 - r0, col0 - c0 : col1 - c0]), 0)
        return ~fine & valid


def check_scene(scene: Scene) -> None:
    """Refuse surface-reflectance scenes and scenes without the ten bands (naming those they have)."""
    if scene.sensor.level != "toa":
        raise HumanscapeError(
            f"s2cloudless reads top-of-atmosphere (L1C) reflectance, but this scene is "
            f"{scene.sensor.level} reflectance ({scene.sensor.name})",
            path=scene.name,
            fix="use --cloud-mask scl for Sentinel-2 L2A (its scene classification)",
        )
    if not scene.sensor.name.startswith("sentinel2"):
        raise HumanscapeError(
            f"s2cloudless is a Sentinel-2 classifier; this scene is {scene.sensor.name}",
            path=scene.name,
            fix="use --cloud-mask fmask or qa_pixel for Landsat",
        )
    missing = [b for b in S2CLOUDLESS_BANDS if not scene.has(b)]
    if missing:
        raise HumanscapeError(
            f"s2cloudless needs bands {', '.join(S2CLOUDLESS_BANDS)}; the scene lacks "
            f"{', '.join(missing)} (has {', '.join(scene.band_names)})",
            path=scene.name,
            fix="add the missing band files (an L1C product has all 13) or use another --cloud-mask",
        )
