import warnings

import numpy as np
import pytest
import rasterio

from humanscape.data import samples
from humanscape.errors import CRSMismatchError, HumanscapeError
from humanscape.geo import composite as comp
from humanscape.geo.raster import open_scene


def test_period_parsing():
    p = comp.Period.parse("2015-2016")
    assert (p.start.isoformat(), p.end.isoformat()) == ("2015-01-01", "2016-12-31")
    assert [x.name for x in comp.parse_periods("2015-2016,2017-2018,2019-2020")] == [
        "2015-2016",
        "2017-2018",
        "2019-2020",
    ]
    assert comp.Period.parse("2015-06-01:2016-05-31").end.isoformat() == "2016-05-31"
    with pytest.raises(HumanscapeError, match="cannot read period"):
        comp.Period.parse("spring")


def test_real_landsat_fmask_composite_counts_and_median(tmp_path):
    series = samples.landsat_timeseries()
    period = comp.Period.parse("2010-2011")
    scenes = [series[i] for i in comp.scenes_in_period(series, period)]
    assert len(scenes) > 10
    out = comp.composite(
        scenes, tmp_path / "c.tif", cloud_mask=comp.CloudMask("fmask"), progress=False
    )
    with rasterio.open(out) as src:
        result = src.read()
        assert src.descriptions == ("B3", "B4", "B5", "valid_count")
    # by hand: stack, mask with Fmask (0 clear land, 1 water), median
    stack = np.stack([s.read(["B3", "B4", "B5"]) for s in scenes])
    clear = np.stack([np.isin(s.read_raw("FMASK"), (0, 1)) for s in scenes])
    clear &= np.all(np.isfinite(stack), axis=1)
    np.testing.assert_array_equal(result[3], clear.sum(0))
    masked = np.where(clear[:, None], stack, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(masked, axis=0)
    np.testing.assert_allclose(result[:3], expected, rtol=1e-6, equal_nan=True)
    assert (result[3] > 0).mean() > 0.9  # most pixels have clear observations


def test_cloud_masking_raises_the_median_ndvi_of_the_real_slovenia_series():
    ts = samples.slovenia_timeseries()
    stack = ts.ndvi[:, None]
    usable = ts.is_data  # eo-learn's IS_VALID already excludes CLM clouds
    raw, n_raw = comp.composite_array(stack, usable)
    masked, n_masked = comp.composite_array(stack, usable & ~ts.cloud_mask)
    assert (n_masked <= n_raw).all() and n_masked.min() > 0
    np.testing.assert_array_equal(n_masked, (usable & ~ts.cloud_mask).sum(0))
    forest = ts.lulc == 2
    assert masked[0][forest].mean() > raw[0][forest].mean()  # clouds depress NDVI


def test_min_composite_equals_the_minimum_of_clear_dates_by_hand():
    ts = samples.slovenia_timeseries()
    clear = comp.probability_clear(ts.cloud_probability, 0.4)
    low, count = comp.composite_array(ts.ndvi[:, None], clear, method="min")
    usable = clear & np.isfinite(ts.ndvi)
    expected = np.where(usable, ts.ndvi, np.inf).min(axis=0)
    expected[~usable.any(axis=0)] = np.nan
    np.testing.assert_array_equal(low[0], expected)
    np.testing.assert_array_equal(count, usable.sum(axis=0))


def test_probability_threshold_uses_the_declared_maximum():
    # 30 % and 50 % cloud probability stored as percent, 8-bit (x 2.55) and 0..1
    assert comp.probability_clear(np.array([30, 50], np.uint8), 0.4, 100).tolist() == [True, False]
    assert comp.probability_clear(np.array([76, 128], np.uint8), 0.4, 255).tolist() == [True, False]
    assert comp.probability_clear(np.array([0.3, 0.5, np.nan]), 0.4).tolist() == [
        True,
        False,
        False,
    ]
    # a window whose values all lie below 1 is still percent when the file is percent
    assert comp.probability_clear(np.array([1, 0], np.uint8), 0.4, 100).tolist() == [True, True]


def test_qa_decoders():
    assert comp.qa_pixel_clear(np.array([0b1000000, 0b1000, 0b10000, 1])).tolist() == [
        True,
        False,
        False,
        False,
    ]
    assert comp.scl_clear(np.array([4, 5, 8, 9, 3, 0])).tolist() == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]
    assert comp.qa60_clear(np.array([0, 1024, 2048])).tolist() == [True, False, False]
    assert comp.fmask_clear(np.array([0, 1, 2, 3, 4, 255])).tolist() == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_crs_mismatch_between_scenes_is_refused(tmp_path):
    from tests.conftest import make_band_folder

    a = open_scene(make_band_folder(tmp_path / "a"))
    b = open_scene(make_band_folder(tmp_path / "b", crs=32632))
    with pytest.raises(CRSMismatchError, match=r"b: scene is in EPSG:32632 .* reproject"):
        comp.composite([a, b], tmp_path / "c.tif", progress=False)
    assert not (tmp_path / "c.tif").exists()


def test_all_cloudy_pixels_are_nan_with_zero_count(tmp_path):
    from humanscape.geo.raster import write_raster
    from tests.conftest import make_band_folder

    scenes = [
        open_scene(make_band_folder(tmp_path / f"s{i}", date=f"2020010{i + 1}", seed=i))
        for i in range(3)
    ]
    masks = []
    for i, s in enumerate(scenes):
        cloud = np.zeros(s.grid.shape, np.uint8)
        cloud[:5, :5] = 1  # always cloudy corner
        if i == 0:
            cloud[10:, 10:] = 1
        masks.append(write_raster(tmp_path / f"m{i}.tif", cloud, s.grid, units="class"))
    out = comp.composite(
        scenes, tmp_path / "c.tif", cloud_mask=comp.CloudMask("raster", masks), progress=False
    )
    with rasterio.open(out) as src:
        data = src.read()
    assert np.isnan(data[:-1, :5, :5]).all() and (data[-1, :5, :5] == 0).all()
    assert (data[-1, 20:, 20:] == 2).all() and (data[-1, 6:9, 6:9] == 3).all()
