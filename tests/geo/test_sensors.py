import numpy as np
import pytest

from humanscape.errors import HumanscapeError, MissingBandError
from humanscape.geo import sensors
from humanscape.geo.indices import INDICES, compute_indices, required_roles
from humanscape.geo.products import parse_acquisition
from humanscape.geo.radiometry import to_reflectance


def test_sentinel2_band_table_has_13_bands_with_native_resolutions():
    s2 = sensors.SENTINEL2_L1C
    refl = s2.reflectance_bands
    assert refl == [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    ]
    res = {b.name: b.resolution_m for b in s2.bands}
    assert [n for n, r in res.items() if r == 10] == ["B02", "B03", "B04", "B08"]
    assert {n for n, r in res.items() if r == 60} == {"B01", "B09", "B10", "QA60"}
    assert s2.band("B8A").wavelength_nm == pytest.approx(864.7)
    assert (
        s2.band("red").name == "B04" and s2.band("b4").name == "B04" and s2.band("B4").name == "B04"
    )


def test_l2a_baseline_0400_offset_and_l1c_scale():
    dn = np.array([[1000, 3000]], dtype=np.uint16)
    l1c, l2a = sensors.SENTINEL2_L1C.band("B04"), sensors.SENTINEL2_L2A.band("B04")
    # by hand: L1C 1000 / 10000 = 0.1; L2A baseline 04.00 (1000 - 1000) / 10000 = 0
    assert to_reflectance(dn, l1c.scale, l1c.offset)[0].tolist() == pytest.approx([0.1, 0.3])
    assert to_reflectance(dn, l2a.scale, l2a.offset)[0].tolist() == pytest.approx(
        [0.0, 0.2], abs=1e-6
    )
    assert "B10" not in sensors.SENTINEL2_L2A.band_names  # no cirrus band in L2A
    assert sensors.SENTINEL2_L2A.level == "surface" and sensors.SENTINEL2_L1C.level == "toa"


def test_landsat_collection2_scale_offset_and_roles():
    oli = sensors.LANDSAT8_OLI
    assert oli.band("nir").name == "B5" and oli.band("swir1").name == "B6"
    assert (
        sensors.LANDSAT5_TM.band("nir").name == "B4"
        and sensors.LANDSAT7_ETM.band("swir2").name == "B7"
    )
    red = oli.band("SR_B4")
    assert to_reflectance(np.array([7273]), red.scale, red.offset)[0] == pytest.approx(
        7273 * 2.75e-5 - 0.2, abs=1e-6
    )
    assert oli.nodata == 0  # DN 0 is nodata in Collection 2
    thermal = oli.band("ST_B10")
    assert thermal.kind == "thermal" and thermal.scale == pytest.approx(0.00341802)
    assert sensors.LANDSAT8_OLI_L1.needs_metadata and sensors.LANDSAT8_OLI_L1.level == "toa"
    assert sensors.LANDSAT7_ETM_C1.band("B3").scale == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "name",
    [
        "sentinel2_l1c",
        "sentinel2_l2a",
        "landsat5_tm",
        "landsat7_etm",
        "landsat8_oli",
        "landsat9_oli",
    ],
)
def test_every_index_works_on_every_sensor(name):
    sensor = sensors.get_sensor(name)
    roles = sensor.roles()
    assert set(required_roles()) <= set(roles), f"{name} lacks roles for the indices"
    bands = {r: np.full((2, 2), 0.2 + 0.05 * i, np.float32) for i, r in enumerate(required_roles())}
    out = compute_indices(bands)
    assert out.shape == (len(INDICES), 2, 2) and np.isfinite(out).all()


def test_unknown_sensor_and_band_are_clear_errors():
    with pytest.raises(HumanscapeError, match="unknown sensor"):
        sensors.get_sensor("sentinel3")
    with pytest.raises(MissingBandError, match="no band or role 'B99'"):
        sensors.SENTINEL2_L1C.band("B99")


@pytest.mark.parametrize(
    ("name", "sensor", "day"),
    [
        ("T33UUU_20170216T102101_B04.jp2", "sentinel2_l1c", "2017-02-16"),
        (
            "S2B_MSIL2A_20230105T101329_N0509_R022_T32TQM_20230105T112503",
            "sentinel2_l2a",
            "2023-01-05",
        ),
        ("S2A_MSIL2A_20190105T101329_N0211_R022_T32TQM", "sentinel2_l2a_pre0400", "2019-01-05"),
        ("LE70350322012177EDC00_b3.tif", "landsat7_etm_c1", "2012-06-25"),
        ("LC08_L2SP_044034_20200105_20200823_02_T1_SR_B4.TIF", "landsat8_oli", "2020-01-05"),
        ("LT05_L2SP_035032_20080506_20200829_02_T1_QA_PIXEL.TIF", "landsat5_tm", "2008-05-06"),
        # Level-2A band file (resolution suffix) and a band file inside a .SAFE product
        ("T32TQM_20230105T101329_B04_10m.jp2", "sentinel2_l2a", "2023-01-05"),
        (
            "S2A_MSIL1C_20180105T101329_N0500_R022_T32TQM_20230105T1.SAFE/GRANULE/L1C_T32TQM/"
            "IMG_DATA/T32TQM_20180105T101329_B04.jp2",
            "sentinel2_l1c_n0400",  # reprocessed: baseline 05.00 for a 2018 date
            "2018-01-05",
        ),
        # Collection 1 vs 2, Level-1 vs Level-2
        ("LC08_L1TP_044034_20200105_20200823_02_T1_B4.TIF", "landsat8_oli_l1", "2020-01-05"),
        ("LE07_L1TP_035032_20120625_20160909_01_T1_sr_band3.tif", "landsat7_etm_c1", "2012-06-25"),
        ("LE07_L1TP_035032_20120625_20160909_01_T1_B3.TIF", "landsat7_etm_l1", "2012-06-25"),
        ("LC08_L1TP_044034_20200105_20200823_01_T1_sr_band4.tif", "landsat8_oli_c1", "2020-01-05"),
    ],
)
def test_parse_acquisition_reads_sensor_and_date(name, sensor, day):
    acq = parse_acquisition(name)
    assert acq.sensor == sensor and acq.date.isoformat() == day
