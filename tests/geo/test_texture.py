"""Texture features against scikit-image's GLCM and numpy's variance, window by window."""

import numpy as np
import pytest
from skimage.feature import graycomatrix, graycoprops

from humanscape.geo.texture import glcm_contrast_homogeneity, local_variance, quantize


def _skimage(window: np.ndarray, levels: int) -> tuple[float, float]:
    glcm = graycomatrix(
        window.astype(np.uint8), [1], [0, np.pi / 2], levels=levels, symmetric=True, normed=True
    )
    return graycoprops(glcm, "contrast").mean(), graycoprops(glcm, "homogeneity").mean()


@pytest.mark.parametrize("size", [3, 5, 7])
def test_glcm_equals_skimage_on_every_window_including_the_edges(size):
    q = np.random.default_rng(size).integers(0, 8, (14, 17)).astype(np.float32)
    contrast, homogeneity = glcm_contrast_homogeneity(q, size)
    h = size // 2
    for r in range(q.shape[0]):
        for c in range(q.shape[1]):
            window = q[max(r - h, 0) : r + h + 1, max(c - h, 0) : c + h + 1]
            expected = _skimage(window, 8)
            assert contrast[r, c] == pytest.approx(expected[0], rel=1e-5), (r, c)
            assert homogeneity[r, c] == pytest.approx(expected[1], rel=1e-5), (r, c)


def test_glcm_leaves_out_pairs_with_nodata():
    q = np.array([[0, 3, 3], [1, np.nan, 2], [0, 0, 1]], np.float32)
    contrast, homogeneity = glcm_contrast_homogeneity(q, 3)
    # centre window: valid horizontal pairs (0,3) (3,3) (0,0) (0,1); vertical (0,1) (3,2)... by hand
    horizontal = [(0, 3), (3, 3), (0, 0), (0, 1)]
    vertical = [(0, 1), (3, 2), (1, 0)]
    c_h = np.mean([(a - b) ** 2 for a, b in horizontal])
    c_v = np.mean([(a - b) ** 2 for a, b in vertical])
    h_h = np.mean([1 / (1 + (a - b) ** 2) for a, b in horizontal])
    h_v = np.mean([1 / (1 + (a - b) ** 2) for a, b in vertical])
    assert contrast[1, 1] == pytest.approx((c_h + c_v) / 2)
    assert homogeneity[1, 1] == pytest.approx((h_h + h_v) / 2)


def test_local_variance_equals_numpy_over_the_valid_pixels_of_each_window():
    band = np.random.default_rng(3).random((9, 11)).astype(np.float32)
    band[4, 5] = np.nan
    var = local_variance(band, 5)
    for r, c in [(0, 0), (4, 5), (6, 8), (8, 10)]:
        window = band[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3]
        assert var[r, c] == pytest.approx(np.nanvar(window.astype(np.float64)), rel=1e-5)


def test_quantize_maps_the_range_onto_levels_by_hand():
    band = np.array([0.0, 0.05, 0.1, 0.2, 0.5, np.nan], np.float32)
    q = quantize(band, lo=0.0, hi=0.2, levels=4)
    assert q[:5].tolist() == [0, 1, 2, 3, 3] and np.isnan(q[5])
