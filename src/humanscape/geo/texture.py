"""Texture features over a moving window: local variance and GLCM contrast / homogeneity.

Tingzon et al. (2020, Sec. 6.1) trace their main false positives (bare land, new formal
settlements) to the lack of texture and recommend "texture features in future studies as was done in
[Wurm et al. 2017]". humanscape computes, per pixel, over a ``w x w`` window:

- local variance ``E[x^2] - E[x]^2``;
- GLCM contrast and homogeneity (Haralick et al. 1973) of the band quantised to ``levels`` grey
  levels, for the offsets (0, 1) and (1, 0), symmetric, averaged. For a normalised co-occurrence
  matrix P, contrast = sum P(i,j) (i-j)^2 and homogeneity = sum P(i,j) / (1 + (i-j)^2), which are the
  window means of ``(q_p - q_p+d)^2`` and ``1 / (1 + (q_p - q_p+d)^2)`` over the pixel pairs: computed
  with box filters, so a whole raster costs a few array passes instead of one GLCM per pixel.
  (Pairs are counted at the window's anchor pixel, so the window is offset by at most one pixel from
  a strict per-window GLCM.)

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


def local_variance(band: np.ndarray, window: int = 7) -> np.ndarray:
    """Variance of ``band`` in a ``window x window`` neighbourhood (NaN treated as the local mean)."""
    x = np.nan_to_num(
        band.astype(np.float64), nan=float(np.nanmean(band)) if np.isfinite(band).any() else 0.0
    )
    mean = ndimage.uniform_filter(x, window, mode="reflect")
    sq = ndimage.uniform_filter(x * x, window, mode="reflect")
    return np.maximum(sq - mean * mean, 0).astype(np.float32)


def glcm_contrast_homogeneity(q: np.ndarray, window: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """GLCM contrast and homogeneity of grey levels ``q`` over ``window``, offsets (0,1) and (1,0)."""
    q = np.nan_to_num(q.astype(np.float64), nan=0.0)
    contrast = np.zeros_like(q)
    homogeneity = np.zeros_like(q)
    for axis in (0, 1):
        diff2 = np.zeros_like(q)
        if axis == 1:
            diff2[:, :-1] = (q[:, :-1] - q[:, 1:]) ** 2
            diff2[:, -1] = diff2[:, -2] if q.shape[1] > 1 else 0
        else:
            diff2[:-1] = (q[:-1] - q[1:]) ** 2
            diff2[-1] = diff2[-2] if q.shape[0] > 1 else 0
        contrast += ndimage.uniform_filter(diff2, window, mode="reflect")
        homogeneity += ndimage.uniform_filter(1.0 / (1.0 + diff2), window, mode="reflect")
    return (contrast / 2).astype(np.float32), (homogeneity / 2).astype(np.float32)


def texture_stack(
    band: np.ndarray, *, lo: float, hi: float, window: int = 7, levels: int = 16
) -> np.ndarray:
    """``(3, rows, cols)``: local variance, GLCM contrast, GLCM homogeneity (see module docstring)."""
    contrast, homogeneity = glcm_contrast_homogeneity(quantize(band, lo, hi, levels), window)
    out = np.stack([local_variance(band, window), contrast, homogeneity])
    out[:, ~np.isfinite(band)] = np.nan
    return out
