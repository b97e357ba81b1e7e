"""Texture features over a moving window: local variance and GLCM contrast / homogeneity.

Tingzon et al. (2020, error analysis) trace their main false positives (bare land, new formal
settlements) to the lack of texture and recommend "texture features in future studies as was done in
[Wurm et al. 2017]". humanscape computes, per pixel, over the ``w x w`` window centred on it:

- local variance ``E[x^2] - E[x]^2`` of the valid (finite) pixels of the window;
- GLCM contrast and homogeneity (Haralick et al. 1973) of the band quantised to ``levels`` grey
  levels, for the offsets (0, 1) and (1, 0), symmetric, normalised, averaged over the two offsets
  (``skimage.feature.graycoprops`` of ``graycomatrix(window, [1], [0, pi/2])``, averaged). For a
  normalised co-occurrence matrix P, contrast = sum P(i,j) (i-j)^2 and homogeneity =
  sum P(i,j) / (1 + (i-j)^2): the means of ``(q_p - q_p+d)^2`` and ``1 / (1 + (q_p - q_p+d)^2)``
  over the pixel pairs inside the window. They are computed exactly with box filters over the pair
  anchors (a ``w x (w-1)`` box for horizontal pairs, ``(w-1) x w`` for vertical ones), so a whole
  raster costs a few array passes instead of one GLCM per pixel. Pairs with a nodata pixel and
  pairs outside the raster do not count (windows at the edge are truncated, as a GLCM of the
  truncated window); a window with no valid pair is NaN.

Windowed use needs a halo of :func:`halo` pixels around each read window.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

TEXTURE_FEATURES = ("var", "glcm_contrast", "glcm_homogeneity")


def halo(window: int) -> int:
    """Pixels of context needed on each side of a block for a ``window``-wide texture."""
    return window // 2 + 1


def quantize(band: np.ndarray, lo: float, hi: float, levels: int = 16) -> np.ndarray:
    """Grey levels 0..levels-1 of ``band`` linearly between ``lo`` and ``hi`` (NaN stays NaN)."""
    q = np.floor((band - lo) / max(hi - lo, 1e-12) * levels)
    return np.clip(q, 0, levels - 1).astype(np.float32)


def _box_sum(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sum over a box of ``size`` anchored as scipy's uniform filter (zero outside the array).

    Two direct 1-D correlations, not the running sums of ``uniform_filter``: each output is summed
    in the same order wherever the array starts, so a tile read with its halo gives bit for bit the
    values of the whole raster (running sums carry rounding along the line, ~1e-16 apart).
    """
    rows = ndimage.correlate1d(values, np.ones(size[0]), axis=0, mode="constant", cval=0.0)
    return ndimage.correlate1d(rows, np.ones(size[1]), axis=1, mode="constant", cval=0.0)


def local_variance(band: np.ndarray, window: int = 7) -> np.ndarray:
    """Variance of the finite pixels of ``band`` in the ``window x window`` neighbourhood."""
    valid = np.isfinite(band)
    x = np.where(valid, band, 0.0).astype(np.float64)
    n = _box_sum(valid.astype(np.float64), (window, window))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _box_sum(x, (window, window)) / n
        var = _box_sum(x * x, (window, window)) / n - mean * mean
    return np.where(n > 0.5, np.maximum(var, 0), np.nan).astype(np.float32)


def glcm_contrast_homogeneity(q: np.ndarray, window: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """GLCM contrast and homogeneity of grey levels ``q`` over ``window``, offsets (0,1) and (1,0)."""
    if window < 3 or window % 2 == 0:
        raise ValueError(f"texture window must be odd and at least 3, got {window}")
    valid = np.isfinite(q)
    levels = np.where(valid, q, 0.0).astype(np.float64)
    parts = []
    for axis in (1, 0):
        diff2 = np.zeros_like(levels)
        pair = np.zeros(levels.shape, bool)
        if axis == 1:
            diff2[:, :-1] = (levels[:, :-1] - levels[:, 1:]) ** 2
            pair[:, :-1] = valid[:, :-1] & valid[:, 1:]
            size = (window, window - 1)
        else:
            diff2[:-1] = (levels[:-1] - levels[1:]) ** 2
            pair[:-1] = valid[:-1] & valid[1:]
            size = (window - 1, window)
        w = pair.astype(np.float64)
        n = _box_sum(w, size)
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append(
                (_box_sum(diff2 * w, size) / n, _box_sum(w / (1.0 + diff2), size) / n, n > 0.5)
            )
    (c_h, h_h, ok_h), (c_v, h_v, ok_v) = parts
    ok = ok_h & ok_v
    with np.errstate(invalid="ignore"):
        contrast = np.where(ok, (c_h + c_v) / 2, np.nan)
        homogeneity = np.where(ok, (h_h + h_v) / 2, np.nan)
    return contrast.astype(np.float32), homogeneity.astype(np.float32)


def texture_stack(
    band: np.ndarray, *, lo: float, hi: float, window: int = 7, levels: int = 16
) -> np.ndarray:
    """``(3, rows, cols)``: local variance, GLCM contrast, GLCM homogeneity (see module docstring)."""
    contrast, homogeneity = glcm_contrast_homogeneity(quantize(band, lo, hi, levels), window)
    out = np.stack([local_variance(band, window), contrast, homogeneity])
    out[:, ~np.isfinite(band)] = np.nan
    return out
