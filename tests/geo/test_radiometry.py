"""Radiometry end to end: product digital numbers -> scene -> composite -> features, by hand.

Each product is written in its provider's layout with digital numbers chosen here, so every
expected reflectance is computed in the test from the product specification:

- Sentinel-2 L1C (baseline < 04.00): ``DN / 10000``;
- Sentinel-2 L2A, baseline 05.09 with ``BOA_ADD_OFFSET = -1000`` in ``MTD_MSIL2A.xml``:
  ``(DN - 1000) / 10000``;
- Landsat 8 Collection 2 Level-2: ``DN * 2.75e-5 - 0.2``.

A period with two dates goes through a composite (written in reflectance, read back), a period
with one date is read directly: both must give the same reflectance scale (the bug this replaces
applied 1e-4 a second time to composites).
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from humanscape.geo.composite import CloudMask, composite, parse_periods
from humanscape.geo.indices import compute_indices
from humanscape.geo.radiometry import decide
from humanscape.geo.raster import open_scene
from humanscape.tasks.settlements.features import read_feature_names, settlement_features
from tests.geo import products


def _dn(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1100, 4000, (n, n)).astype(np.uint16)


def _s2_dn(seed: int) -> dict[str, np.ndarray]:
    # 10 m bands vary per pixel; 20 m bands are constant, so upsampling cannot change them
    return {
        "B03": _dn(seed, 32),
        "B04": _dn(seed + 1, 32),
        "B08": _dn(seed + 2, 32),
        "B11": np.uint16(2500 + 100 * seed),
        "B12": np.uint16(1800 + 50 * seed),
    }


def _landsat_dn(seed: int) -> dict[str, np.ndarray]:
    return {b: _dn(seed + i, 12) for i, b in enumerate(("B3", "B4", "B5", "B6", "B7"))}


CASES = {
    # name: (write one date, DN per date, scale, offset, roles -> band names, pixel count per side)
    "sentinel2_l1c": (
        lambda tmp, day, dn: products.s2_l1c_granule(tmp / day, day, dn),
        _s2_dn,
        1e-4,
        0.0,
        {"green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"},
        32,
    ),
    "sentinel2_l2a_baseline_0509": (
        lambda tmp, day, dn: products.s2_l2a_safe(tmp, day, dn),
        _s2_dn,
        1e-4,
        -0.1,
        {"green": "B03", "red": "B04", "nir": "B08", "swir1": "B11", "swir2": "B12"},
        32,
    ),
    "landsat8_c2_l2": (
        lambda tmp, day, dn: products.landsat_c2_l2(tmp / day, day, dn),
        _landsat_dn,
        2.75e-5,
        -0.2,
        {"green": "B3", "red": "B4", "nir": "B5", "swir1": "B6", "swir2": "B7"},
        12,
    ),
}


def _hand(dn, scale: float, offset: float, n: int) -> np.ndarray:
    """Reflectance by hand, in float32 as the product specification's formula."""
    values = np.broadcast_to(np.asarray(dn, np.float32), (n, n))
    return values * np.float32(scale) + np.float32(offset)


@pytest.mark.parametrize("product", list(CASES))
def test_multi_date_features_equal_hand_computed_reflectance(product, tmp_path):
    write, make_dn, scale, offset, roles, n = CASES[product]
    # period A: two dates (a composite); period B: one date (read directly). L1C dates lie before
    # baseline 04.00 (no offset); the others carry their level's offset whatever the date.
    year = 2017 if product == "sentinel2_l1c" else 2023
    days = [f"{year}0301", f"{year}0601", f"{year + 1}0701"]
    dns = [make_dn(i) for i in range(3)]
    scenes = [open_scene(write(tmp_path, d, dn)) for d, dn in zip(days, dns, strict=True)]
    assert {s.sensor.family for s in scenes} == {scenes[0].sensor.family}
    out = settlement_features(
        scenes,
        tmp_path / "features.tif",
        periods=parse_periods(f"{year},{year + 1}"),
        progress=False,
    )
    names = read_feature_names(out)
    with rasterio.open(out) as src:
        stack = src.read()
        units = src.units
    feature = {name: stack[i] for i, name in enumerate(names)}
    for period, dates in ((str(year), [0, 1]), (str(year + 1), [2])):
        hand = {}
        for role, band in roles.items():
            per_date = [_hand(dns[t][band], scale, offset, n) for t in dates]
            # median of two dates: mean of the lower and upper value, as the composite computes it
            hand[role] = (
                per_date[0]
                if len(per_date) == 1
                else (np.minimum(*per_date) + np.maximum(*per_date)) * np.float32(0.5)
            )
            np.testing.assert_allclose(
                feature[f"{period}_{band}"], hand[role], rtol=1e-6, atol=1e-7, err_msg=band
            )
        expected = compute_indices(hand, ["NDVI", "NDBI", "BAEI"])
        for i, index in enumerate(["NDVI", "NDBI", "BAEI"]):
            np.testing.assert_allclose(
                feature[f"{period}_{index}"], expected[i], rtol=1e-5, atol=1e-6, err_msg=index
            )
    assert units[names.index(f"{year}_NDVI")] == "index"
    assert units[names.index(f"{year + 1}_{roles['red']}")] == "reflectance"


def test_l2a_offset_comes_from_product_metadata_not_from_the_date(tmp_path):
    # a 2019 acquisition downloaded into a folder without the product name: the date alone would
    # say "before baseline 04.00, no offset", the metadata says -1000 (reprocessed archive)
    dn = {"B04": _dn(0, 32)}
    safe = products.s2_l2a_safe(tmp_path, "20190105", dn, product_name=False)
    scene = open_scene(safe)
    assert scene.sensor.level == "surface" and "MTD_MSIL2A.xml" in scene.sensor.description
    np.testing.assert_allclose(scene.read(["B04"])[0], _hand(dn["B04"], 1e-4, -0.1, 32), rtol=1e-6)
    # the same files with a metadata file saying "no offset" (baseline 02.14)
    plain = products.s2_l2a_safe(
        tmp_path / "old", "20190105", dn, offset=0, baseline="02.14", product_name=False
    )
    np.testing.assert_allclose(
        open_scene(plain).read(["B04"])[0], _hand(dn["B04"], 1e-4, 0.0, 32), rtol=1e-6
    )


def test_l2a_safe_reads_each_band_at_its_finest_resolution(tmp_path):
    dn = {"B04": _dn(0, 32), "B11": np.uint16(2000), "SCL": np.uint16(4)}
    scene = open_scene(products.s2_l2a_safe(tmp_path, "20230105", dn))
    assert scene.sensor.name == "sentinel2_l2a" and scene.date.isoformat() == "2023-01-05"
    assert scene.band_names == ["B04", "B11", "SCL"] and scene.grid.res == (10.0, 10.0)
    assert scene.sources[0].path.parent.name == "R10m"  # not the 20 m copy of B04
    np.testing.assert_array_equal(scene.read_raw("SCL"), np.full((32, 32), 4))


def test_a_reflectance_raster_is_never_scaled_again(tmp_path):
    scene = open_scene(products.s2_l1c_granule(tmp_path / "s", "20170301", _s2_dn(0)))
    out = composite([scene, scene], tmp_path / "c.tif", progress=False)
    with rasterio.open(out) as src:
        assert src.units[:2] == ("reflectance", "reflectance")
        assert src.units[-1] == "count"
        radiometry = decide(src, 2, scene.sensor.band("B04"), scene.sensor)
    assert radiometry.is_identity and radiometry.units == "reflectance"
    # even read as L2A (whose DN offset is -0.1), a reflectance file stays as it is
    again = open_scene(out, sensor="sentinel2_l2a")
    np.testing.assert_allclose(again.read(["B04"]), scene.read(["B04"]), rtol=1e-6)


def test_composite_mask_kinds_across_several_windows_by_hand(tmp_path, monkeypatch):
    """QA_PIXEL, SCL, QA60 and probability masks inside a composite, windows of 16 px."""
    from humanscape.geo import composite as comp

    monkeypatch.setattr(comp, "STACK_BUDGET_BYTES", 16 * 16 * 4 * 3 * 3)  # -> 16 px windows
    rng = np.random.default_rng(5)
    n = 40
    red = [rng.integers(1000, 3000, (n, n)).astype(np.uint16) for _ in range(3)]
    scl = [rng.choice([4, 5, 8, 9, 3], (n, n)).astype(np.uint16) for _ in range(3)]
    qa = [rng.choice([0, 1 << 10, 1 << 11, 2], (n, n)).astype(np.uint16) for _ in range(3)]
    prob = [rng.integers(0, 100, (n, n)).astype(np.uint8) for _ in range(3)]
    cases = {
        "scl": ("SCL", scl, lambda v: ~np.isin(v, (0, 1, 3, 8, 9, 10))),
        "qa60": ("QA60", qa, lambda v: (v & ((1 << 10) | (1 << 11))) == 0),
        "probability": (None, prob, lambda v: v / 100.0 < 0.4),
    }
    for kind, (band, masks, clear_by_hand) in cases.items():
        scenes, files = [], []
        for t in range(3):
            folder = tmp_path / kind / f"d{t}"
            folder.mkdir(parents=True)
            day = f"2017030{t + 1}"
            products.write_band(folder / f"T33UUU_{day}T1_B04.tif", red[t], products.grid(10, n))
            if band:
                products.write_band(
                    folder / f"T33UUU_{day}T1_{band}.tif", masks[t], products.grid(10, n)
                )
            else:
                files.append(
                    products.write_band(tmp_path / f"p{t}.tif", masks[t], products.grid(10, n))
                )
            sensor = "sentinel2_l2a_pre0400" if band == "SCL" else "sentinel2_l1c"
            scenes.append(open_scene(folder, sensor=sensor))
        mask = CloudMask(kind) if band else CloudMask("probability", files, 0.4)
        out = comp.composite(scenes, tmp_path / f"{kind}.tif", cloud_mask=mask, progress=False)
        with rasterio.open(out) as src:
            got, count = src.read(1), src.read(2)
        clear = np.stack([clear_by_hand(m) for m in masks])
        values = np.where(clear, np.stack(red).astype(np.float32) * np.float32(1e-4), np.nan)
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
            expected = np.nanmedian(values, axis=0)
        np.testing.assert_array_equal(count, clear.sum(0), err_msg=kind)
        np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True, err_msg=kind)


def test_landsat_qa_pixel_mask_in_a_composite_by_hand(tmp_path):
    n = 12
    rng = np.random.default_rng(3)
    red = [rng.integers(8000, 20000, (n, n)).astype(np.uint16) for _ in range(3)]
    qa = [rng.choice([0b1000000, 0b1000, 0b10000, 1, 0b100000], (n, n)).astype(np.uint16)
          for _ in range(3)]  # fmt: skip
    scenes = [
        open_scene(products.landsat_c2_l2(tmp_path / f"d{t}", f"2020010{t + 1}", {"B4": red[t], "QA_PIXEL": qa[t]}))
        for t in range(3)
    ]  # fmt: skip
    out = composite(scenes, tmp_path / "c.tif", cloud_mask=CloudMask("qa_pixel"), progress=False)
    with rasterio.open(out) as src:
        got, count = src.read(1), src.read(2)
    clear = np.stack([(q & 0b111111) == 0 for q in qa])
    refl = np.stack(red).astype(np.float32) * np.float32(2.75e-5) + np.float32(-0.2)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(np.where(clear, refl, np.nan), axis=0)
    np.testing.assert_array_equal(count, clear.sum(0))
    np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


def test_quality_bands_are_nearest_whatever_band_is_read_first(tmp_path):
    # one 20 m file holding red and SCL, read on a 10 m grid: SCL classes 4 and 9 side by side
    # must never become 5..8 (8 = cloud), even after red was read (bilinear) first
    where = products.grid(20, 8)
    scl = np.tile(np.array([4, 9], np.uint16), (8, 4))
    red = np.random.default_rng(0).integers(500, 3000, (8, 8)).astype(np.uint16)
    path = tmp_path / "T33UUU_20230105T101329_stack.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=2, dtype="uint16",
        crs=where.crs, transform=where.transform,
    ) as dst:  # fmt: skip
        dst.write(np.stack([red, scl]))
    scene = open_scene(path, sensor="sentinel2_l2a", band_names=["B04", "SCL"], resolution=10)
    scene.read(["B04"])
    values = np.unique(scene.read_raw("SCL"))
    assert set(values.tolist()) <= {4, 9}, values
    smooth = scene.read(["B04"])[0]
    assert len(np.unique(smooth[np.isfinite(smooth)])) > 64  # red really is interpolated
