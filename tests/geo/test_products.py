"""Products recognised as they come: levels, baselines, collections, layouts, and what is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio

from humanscape.errors import HumanscapeError
from humanscape.geo.composite import composite
from humanscape.geo.raster import open_scene
from tests.geo import products


def test_a_folder_with_two_dates_of_the_same_bands_is_refused_with_the_dates(tmp_path):
    folder = products.s2_l1c_granule(tmp_path / "mixed", "20170301", {"B04": np.uint16(1000)})
    products.s2_l1c_granule(folder, "20170416", {"B04": np.uint16(1200)})
    with pytest.raises(HumanscapeError, match=r"2 acquisitions \(2017-03-01, 2017-04-16\)"):
        open_scene(folder)


def test_a_sensor_forced_onto_another_sensors_files_is_refused(tmp_path):
    folder = products.landsat_c2_l2(tmp_path / "ls", "20200105", {"B5": np.uint16(9000)})
    with pytest.raises(HumanscapeError, match=r"--sensor sentinel2_l1c is a sentinel2 sensor"):
        open_scene(folder, sensor="sentinel2_l1c")  # B5 would become the red edge
    assert (
        open_scene(folder).band_names == ["B5"]
        and open_scene(folder).sensor.band("B5").role == "nir"
    )


def test_landsat_level1_needs_its_mtl_and_applies_sun_elevation(tmp_path):
    folder = tmp_path / "l1"
    folder.mkdir()
    pid = "LC08_L1TP_044034_20200105_20200823_02_T1"
    dn = np.full((4, 4), 20000, np.uint16)
    products.write_band(folder / f"{pid}_B4.TIF", dn, products.grid(30, 4))
    with pytest.raises(HumanscapeError, match=r"needs the scene's \*_MTL.txt"):
        open_scene(folder)
    (folder / f"{pid}_MTL.txt").write_text(
        "GROUP = LANDSAT_METADATA_FILE\n"
        "  GROUP = IMAGE_ATTRIBUTES\n    SUN_ELEVATION = 30.0\n  END_GROUP = IMAGE_ATTRIBUTES\n"
        "  GROUP = LEVEL1_RADIOMETRIC_RESCALING\n"
        + "".join(
            f"    REFLECTANCE_MULT_BAND_{b} = 2.0000E-05\n    REFLECTANCE_ADD_BAND_{b} = -0.100000\n"
            for b in range(1, 10)
        )
        + "  END_GROUP = LEVEL1_RADIOMETRIC_RESCALING\nEND_GROUP = LANDSAT_METADATA_FILE\nEND\n"
    )
    scene = open_scene(folder)
    assert scene.sensor.level == "toa" and scene.sensor.name == "landsat8_oli_l1"
    # by hand: (2e-5 * 20000 - 0.1) / sin(30 deg) = 0.3 / 0.5 = 0.6
    np.testing.assert_allclose(scene.read(["red"]), 0.6, rtol=1e-6)
    assert math.isclose(scene.sensor.band("B4").scale, 2e-5 / 0.5)


def test_landsat_collection1_surface_reflectance_scale(tmp_path):
    folder = tmp_path / "c1"
    folder.mkdir()
    pid = "LE07_L1TP_035032_20120625_20160909_01_T1"
    products.write_band(
        folder / f"{pid}_pixel_qa.tif", np.full((4, 4), 66, np.uint16), products.grid(30, 4)
    )
    products.write_band(
        folder / f"{pid}_sr_band3.tif", np.full((4, 4), 1234, np.int16), products.grid(30, 4)
    )
    scene = open_scene(folder)
    assert scene.sensor.name == "landsat7_etm_c1" and scene.band_names == ["B3", "QA_PIXEL"]
    np.testing.assert_allclose(scene.read(["B3"]), 0.1234, rtol=1e-6)


def test_mixing_processing_levels_in_a_composite_is_refused(tmp_path):
    l1c = open_scene(products.s2_l1c_granule(tmp_path / "a", "20230301", {"B04": np.uint16(2000)}))
    l2a = open_scene(products.s2_l2a_safe(tmp_path, "20230601", {"B04": np.uint16(2000)}))
    with pytest.raises(HumanscapeError, match="never mixes processing levels"):
        composite([l1c, l2a], tmp_path / "c.tif", progress=False)
    assert not (tmp_path / "c.tif").exists()


def test_a_full_13_band_composite_keeps_valid_count_out_of_the_bands(tmp_path):
    # 13 reflectance bands + valid_count = 14 layers = the L1C table with QA60: the layer count
    # must not decide; the band descriptions do
    from humanscape.geo.sensors import SENTINEL2_L1C

    dn = {b: np.uint16(1000 + 10 * i) for i, b in enumerate(SENTINEL2_L1C.reflectance_bands)}
    scene = open_scene(products.s2_l1c_granule(tmp_path / "s", "20170301", dn))
    out = composite([scene], tmp_path / "c.tif", progress=False)
    with rasterio.open(out) as src:
        assert src.count == 14
    again = open_scene(out)
    assert "QA60" not in again.band_names and len(again.band_names) == 13
    assert again.sensor.name == "sentinel2_l1c"  # from the composite's sensor tag
