"""s2cloudless masks: settings, block means and the mask's averaging / dilation by hand, the band
order against the library's own 13-band path, tiled = whole scene, and a composite that drops the
cloud."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from humanscape.errors import HumanscapeError
from humanscape.geo import composite as comp
from humanscape.geo.raster import open_scene
from humanscape.geo.s2cloudless import S2CLOUDLESS_BANDS, S2Cloudless, block_mean
from humanscape.geo.sensors import get_sensor
from tests.geo.products import grid, write_band

# the 13 L1C bands in ESA order, from the sensor table
ALL_BANDS = tuple(b.name for b in get_sensor("sentinel2_l1c").bands if b.kind != "qa")

# top-of-atmosphere reflectance spectra (the 13 bands in ALL_BANDS order)
CLOUD = (0.45, 0.42, 0.41, 0.40, 0.42, 0.43, 0.44, 0.45, 0.45, 0.15, 0.03, 0.30, 0.20)
VEGETATION = (0.12, 0.09, 0.07, 0.05, 0.09, 0.20, 0.26, 0.30, 0.32, 0.08, 0.002, 0.15, 0.07)
SOIL = (0.13, 0.11, 0.12, 0.14, 0.17, 0.19, 0.21, 0.22, 0.24, 0.07, 0.002, 0.28, 0.22)


def l1c_scene(folder: Path, day: str, classes: np.ndarray, spectra: list[tuple]) -> Path:
    """All 13 bands at 10 m (no resampling on read), pixel ``(r, c)`` = ``spectra[classes[r, c]]``."""
    folder.mkdir(parents=True, exist_ok=True)
    where = grid(10, classes.shape[0])
    table = np.asarray(spectra, dtype=np.float64)
    for b, band in enumerate(ALL_BANDS):
        dn = np.round(table[classes, b] * 10000).astype(np.uint16)
        write_band(folder / f"T33UUU_{day}T100000_{band}.tif", dn, where)
    return folder


def test_settings_keep_220_m_and_110_m_disks_by_hand():
    # 10 m grid, 60 m working pixels: factor 6, disks 220/60 = 3.67 -> 4 and 110/60 = 1.83 -> 2
    assert S2Cloudless.for_resolution(10.0) == S2Cloudless(0.4, 6, 4, 2)
    assert S2Cloudless.for_resolution(20.0, 0.3) == S2Cloudless(0.3, 3, 4, 2)
    # the package README's 10 m setting when the classifier runs on the 10 m grid itself
    assert S2Cloudless.for_resolution(10.0, working_res_m=10.0) == S2Cloudless(0.4, 1, 22, 11)
    # a grid coarser than 60 m is its own working grid: 220/160 = 1.4 -> 1, 110/160 -> 1 (at least one)
    assert S2Cloudless.for_resolution(160.0) == S2Cloudless(0.4, 1, 1, 1)
    assert S2Cloudless.for_resolution(10.0).halo == 6
    with pytest.raises(HumanscapeError, match="outside"):
        S2Cloudless.for_resolution(10.0, 0.0)


def test_block_mean_by_hand():
    values = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    values[0, 0, 0] = np.nan
    out = block_mean(values, 2)
    # blocks: [[nan,1],[5,6]] -> 4; [[2,3],[7,8]] -> 5; [[4],[9]] -> 6.5; [[10,11],[15,16]] -> 13;
    # [[12,13],[17,18]] -> 15; [[14],[19]] -> 16.5; bottom row: [[20,21]] -> 20.5; corner [[24]] -> 24
    assert out.shape == (1, 3, 3)
    np.testing.assert_allclose(out[0, 0], [4.0, 5.0, 6.5])
    np.testing.assert_allclose(out[0, 1], [13.0, 15.0, 16.5])
    np.testing.assert_allclose(out[0, 2], [20.5, 22.5, 24.0])
    assert np.isnan(block_mean(np.full((1, 2, 2), np.nan, np.float32), 2)).all()


def test_mask_averages_thresholds_and_dilates_by_hand():
    # radius-1 disks are the 5-pixel cross; a bar of three pixels with probability 1:
    # averaged, its centre is 3/5 = 0.6 > 0.5 and its ends 2/5 = 0.4 < 0.5 -> one cloudy pixel,
    # dilated by the cross -> the cross around the bar's centre
    probability = np.zeros((7, 7), np.float32)
    probability[3, 2:5] = 1.0
    mask = S2Cloudless(0.5, 1, 1, 1).cloudy(probability)
    expected = np.zeros((7, 7), bool)
    expected[3, 2:5] = True
    expected[2:5, 3] = True
    np.testing.assert_array_equal(mask, expected)
    probability[0, 0] = np.nan  # missing data is not cloud
    np.testing.assert_array_equal(S2Cloudless(0.5, 1, 1, 1).cloudy(probability), expected)


def test_band_order_is_the_libraries_and_spectra_are_told_apart():
    from s2cloudless import S2PixelCloudDetector

    rng = np.random.default_rng(0)
    thirteen = rng.uniform(0.0, 0.5, (13, 6, 5)).astype(np.float32)
    ours = [ALL_BANDS.index(b) for b in S2CLOUDLESS_BANDS]
    got = S2Cloudless(0.4, 1, 1, 1).probability(thirteen[ours])
    library = S2PixelCloudDetector(all_bands=True).get_cloud_probability_maps(
        np.moveaxis(thirteen, 0, -1)[None]
    )[0]
    np.testing.assert_array_equal(got, library)
    spectra = np.asarray([CLOUD, VEGETATION, SOIL], np.float32).T[ours][:, :, None]
    p = S2Cloudless(0.4, 1, 1, 1).probability(spectra)[:, 0]
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] < 0.1
    spectra[3, 1, 0] = np.nan
    assert np.isnan(S2Cloudless(0.4, 1, 1, 1).probability(spectra)[1, 0])


def _blob(size: int = 96) -> np.ndarray:
    classes = np.zeros((size, size), np.intp)  # 0 = vegetation
    classes[30:66, 30:66] = 1  # 1 = cloud (36 px = six 60 m working pixels)
    return classes


def test_tiled_masks_equal_the_whole_scene_mask(tmp_path):
    scene = open_scene(l1c_scene(tmp_path / "s", "20170216", _blob(), [VEGETATION, CLOUD]))
    mask = comp.CloudMask.parse("s2cloudless")
    whole = mask.clear(scene, 0, Window(0, 0, 96, 96), None)
    tiled = np.zeros_like(whole)
    for r in range(0, 96, 40):  # 40 is no multiple of the 6-pixel working blocks
        for c in range(0, 96, 40):
            w = Window(c, r, min(40, 96 - c), min(40, 96 - r))
            tiled[r : r + w.height, c : c + w.width] = mask.clear(scene, 0, w, None)
    np.testing.assert_array_equal(tiled, whole)
    assert not whole[36:60, 36:60].any()  # the cloud's core is masked
    assert whole[:12, :12].all() and whole[-12:, -12:].all()  # far vegetation is clear


def test_composite_with_s2cloudless_drops_the_cloudy_date(tmp_path):
    size = 96
    veg, soil = np.zeros((size, size), np.intp), np.full((size, size), 2, np.intp)
    spectra = [VEGETATION, CLOUD, SOIL]
    scenes = [
        open_scene(l1c_scene(tmp_path / "a", "20170201", veg, spectra)),
        open_scene(l1c_scene(tmp_path / "b", "20170211", _blob(size), spectra)),
        open_scene(l1c_scene(tmp_path / "c", "20170221", soil, spectra)),
    ]
    out = {}
    for spec in ("none", "s2cloudless"):
        path = comp.composite(
            scenes,
            tmp_path / f"{spec}.tif",
            cloud_mask=comp.CloudMask.parse(spec),
            bands=["B04", "B08"],
            progress=False,
        )
        with rasterio.open(path) as src:
            out[spec] = src.read()
    b04, b08 = ALL_BANDS.index("B04"), ALL_BANDS.index("B08")
    # unmasked, the cloud's core is the median of vegetation, cloud and soil: soil's B04 (0.14)
    np.testing.assert_allclose(out["none"][0, 40:56, 40:56], SOIL[b04], atol=1e-6)
    # masked: the median of vegetation and soil, (0.05 + 0.14) / 2 and (0.30 + 0.22) / 2, from 2 dates
    core = out["s2cloudless"][:, 40:56, 40:56]
    np.testing.assert_allclose(core[0], (VEGETATION[b04] + SOIL[b04]) / 2, atol=1e-6)
    np.testing.assert_allclose(core[1], (VEGETATION[b08] + SOIL[b08]) / 2, atol=1e-6)
    assert (core[2] == 2).all()
    # far from the cloud all three dates count: the median is vegetation
    np.testing.assert_allclose(out["s2cloudless"][0, :10, :10], VEGETATION[b04], atol=1e-6)
    assert (out["s2cloudless"][2, :10, :10] == 3).all()


def test_s2cloudless_refuses_l2a_and_scenes_without_its_bands(tmp_path):
    from tests.geo.products import s2_l2a_safe

    few = open_scene(l1c_scene(tmp_path / "few", "20170216", _blob(12), [VEGETATION, CLOUD]))
    partial = few.select([b for b in ALL_BANDS if b != "B10"])
    with pytest.raises(HumanscapeError, match=r"lacks B10 \(has B01, B02"):
        comp.CompositeMap([partial], cloud_mask=comp.CloudMask.parse("s2cloudless"))
    l2a = open_scene(s2_l2a_safe(tmp_path / "l2a", "20230601", {"B02": 1500, "B04": 1500}))
    with pytest.raises(HumanscapeError, match=r"top-of-atmosphere .* --cloud-mask scl"):
        comp.CompositeMap([l2a], cloud_mask=comp.CloudMask.parse("s2cloudless:0.3"))
    with pytest.raises(HumanscapeError, match="takes no"):
        comp.CloudMask.parse("qa60:0.3")


def test_a_qa_mask_without_its_band_is_refused_before_any_window(tmp_path):
    from tests.conftest import make_band_folder

    scene = open_scene(make_band_folder(tmp_path / "s"))  # B02 B03 B04 B08 B11 B12, no QA60
    with pytest.raises(
        HumanscapeError, match=r"--cloud-mask qa60 reads band QA60; the scene has B02"
    ):
        comp.CompositeMap([scene], cloud_mask=comp.CloudMask.parse("qa60"))
