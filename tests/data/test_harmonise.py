"""Quantile matching of a scene to training chips, and radiometric jitter (issue 22, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS

from humanscape.data.harmonise import QuantileMatch, band_quantiles, scene_quantiles
from humanscape.errors import HumanscapeError
from humanscape.geo.raster import GridSpec, open_scene, write_raster
from humanscape.models.augment import RadiometricJitter


def test_band_quantiles_are_the_percentiles_of_each_band():
    # band 0: 0, 1, ..., 100 -> its k-th percentile is k; band 1: 10 x that, one NaN ignored
    values = np.arange(101, dtype=np.float32).reshape(1, 1, 1, 101)
    images = np.concatenate([values, 10 * values], axis=1)
    images[0, 1, 0, 0] = np.nan  # 1 .. 100 x 10: k-th percentile 10 + 9.9 k
    q = band_quantiles(images)
    assert q.shape == (2, 101)
    np.testing.assert_allclose(q[0], np.arange(101), atol=1e-9)
    np.testing.assert_allclose(q[1, [0, 50, 100]], [10, 505, 1000], atol=1e-4)
    with pytest.raises(HumanscapeError, match="no valid pixel"):
        band_quantiles(np.full((1, 1, 2, 2), np.nan))


def test_quantile_matching_maps_a_shifted_band_back():
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 0.05, size=(50, 1, 16, 16)).astype(np.float32)
    scene = 0.6 * train + 0.04  # a hazier, flatter scene: x' = (x - 0.04) / 0.6 undoes it
    match = QuantileMatch(band_quantiles(scene), band_quantiles(train))
    back = match(scene)
    np.testing.assert_allclose(back, train, atol=2e-3)
    # by hand: a scene value of 0.1 is the training value (0.1 - 0.04) / 0.6 = 0.1
    assert match(np.full((1, 1, 1), 0.1, np.float32))[0, 0, 0] == pytest.approx(0.1, abs=2e-3)
    assert match.median_shift()[0] == pytest.approx(np.median(train) - np.median(scene), abs=1e-3)


def test_quantile_matching_by_hand_beyond_the_ends_and_on_nan():
    source = np.linspace(0.2, 0.7, 101)[None]  # scene 0.2 .. 0.7
    target = np.linspace(0.0, 1.0, 101)[None]  # training 0 .. 1: slope 2
    match = QuantileMatch(source, target)
    x = np.array([[[0.45, 0.75, 0.1, np.nan]]], np.float32)
    out = match(x)
    np.testing.assert_allclose(out[0, 0, :3], [0.5, 1.1, -0.2], atol=1e-5)
    assert np.isnan(out[0, 0, 3])
    with pytest.raises(HumanscapeError, match="differ in shape"):
        QuantileMatch(source, np.zeros((2, 101)))


def test_scene_quantiles_read_the_scene_in_windows(tmp_path):
    values = np.arange(64 * 64, dtype=np.float32).reshape(1, 64, 64) / 4096
    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 500000, 0, -10, 5800000), 64, 64)
    path = write_raster(tmp_path / "s.tif", values, grid, units="reflectance", band_names=["B04"])
    scene = open_scene(path)
    q = scene_quantiles(scene, ["B04"], windows=4, size=512)  # one window: the whole scene
    np.testing.assert_allclose(q[0], np.percentile(values, np.arange(101)), atol=1e-6)
    q = scene_quantiles(scene, ["B04"], windows=4, size=16)  # four 16 px windows at the corners
    corners = np.concatenate(
        [values[0, r : r + 16, c : c + 16].ravel() for r in (0, 48) for c in (0, 48)]
    )
    np.testing.assert_allclose(q[0], np.percentile(corners, np.arange(101)), atol=1e-6)


def test_radiometric_jitter_by_hand():
    x = torch.tensor([[[[0.1]], [[0.3]]]])  # one chip, two bands, one pixel
    airlight = torch.tensor([0.5, 0.4])
    out = RadiometricJitter.apply(
        x, airlight, torch.tensor([0.2]), torch.tensor([1.5]), torch.tensor([[1.0, 2.0]])
    )
    # band 0: (0.8 x 0.1 + 0.2 x 0.5) x 1.5 = 0.27; band 1: (0.8 x 0.3 + 0.2 x 0.4) x 3 = 0.96
    np.testing.assert_allclose(out.flatten().numpy(), [0.27, 0.96], rtol=1e-6)
    never = RadiometricJitter((0.5, 0.4), p=0.0)
    assert torch.equal(never(x), x)
    always = RadiometricJitter((0.5, 0.4), haze=0.3, gain=0.2, band_gain=0.1, p=1.0)
    batch = always(x.repeat(500, 1, 1, 1), torch.Generator().manual_seed(0))
    # a haze fraction of at most 0.3 and gains within exp(+-0.3) bound every value
    low, high = 0.1 * np.exp(-0.3), (0.7 * 0.1 + 0.3 * 0.5) * np.exp(0.3)
    assert low - 1e-6 <= float(batch[:, 0].min()) and float(batch[:, 0].max()) <= high + 1e-6
    assert float(batch[:, 0].std()) > 0.01  # it does vary
