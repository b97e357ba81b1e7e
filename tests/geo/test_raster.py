from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from humanscape.errors import EmptyInputError, MissingBandError, NotARasterError
from humanscape.geo.raster import GridSpec, RasterWriter, open_scene, write_raster


def test_real_jp2_bands_at_10_20_60m_are_aligned_to_10m(berlin_dir):
    scene = open_scene(berlin_dir)
    assert scene.sensor.name == "sentinel2_l1c" and scene.date.isoformat() == "2017-02-16"
    assert scene.grid.res == (10.0, 10.0) and (scene.height, scene.width) == (768, 1536)
    assert len(scene.band_names) == 13
    data = scene.read(["B04", "B11", "B01"])
    assert data.shape == (3, 768, 1536) and np.isfinite(data).all()
    # Upsampled 20 m / 60 m bands average back to their native pixels.
    with rasterio.open(next(Path(berlin_dir).glob("*_B11.jp2"))) as src:
        native20 = src.read(1).astype(np.float32) * 1e-4
    back20 = data[1].reshape(384, 2, 768, 2).mean((1, 3))
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(back20[inner] - native20[inner]).mean() < 0.03 * native20.mean()
    with rasterio.open(next(Path(berlin_dir).glob("*_B01.jp2"))) as src:
        native60 = src.read(1).astype(np.float32) * 1e-4
    back60 = data[2].reshape(128, 6, 256, 6).mean((1, 3))
    assert np.corrcoef(back60[inner].ravel(), native60[inner].ravel())[0, 1] > 0.98


def test_windowed_read_equals_slice_of_full_read(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B02", "B8A"])
    full = scene.read()
    win = Window(700, 300, 123, 77)
    np.testing.assert_array_equal(scene.read(window=win), full[:, 300:377, 700:823])


def test_resolution_option_builds_a_coarser_grid(berlin_dir):
    scene = open_scene(berlin_dir, bands=["red"], resolution=20)
    assert scene.grid.res == (20.0, 20.0) and scene.width == 768


def test_nodata_becomes_nan(tmp_path, band_folder):
    scene = open_scene(band_folder)
    path = Path(scene.sources[0].path)
    with rasterio.open(path, "r+") as src:
        arr = src.read(1)
        arr[:3, :3] = 0
        src.write(arr, 1)
    scene = open_scene(band_folder)
    assert np.isnan(scene.read(["B02"])[0, :3, :3]).all()
    assert not scene.valid_mask()[:3, :3].any()


def test_band_order_is_canonical_and_selection_by_role(band_folder):
    scene = open_scene(band_folder)
    assert scene.band_names == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert open_scene(band_folder, bands=["nir", "red"]).band_names == ["B08", "B04"]


def test_missing_band_is_refused_naming_the_scene(band_folder):
    with pytest.raises(MissingBandError, match=r"scene: band 'B05' not found \(scene has B02"):
        open_scene(band_folder, bands=["B05"])


def test_not_a_raster_and_empty_glob_are_clear_errors(tmp_path):
    bogus = tmp_path / "broken.tif"
    bogus.write_text("this is not a GeoTIFF")
    with pytest.raises(NotARasterError, match="broken.tif: not a readable raster"):
        open_scene(bogus)
    with pytest.raises(EmptyInputError, match="glob pattern matches no file"):
        open_scene(str(tmp_path / "nothing_*.tif"))


def test_writer_is_atomic_and_keeps_georeference(tmp_path, band_folder):
    grid = open_scene(band_folder).grid
    target = tmp_path / "out.tif"
    with (
        pytest.raises(RuntimeError),
        RasterWriter(target, grid, count=1, units="count", band_names=["x"]) as w,
    ):
        w.write(np.ones((1, 10, 10), np.float32), Window(0, 0, 10, 10))
        raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.glob("*.tmp*")) == []
    data = np.arange(grid.width * grid.height, dtype=np.float32).reshape(grid.shape)
    write_raster(target, data, grid, units="count", nodata=-1, band_names=["values"])
    with rasterio.open(target) as src:
        assert src.crs == grid.crs and src.transform == grid.transform
        assert src.nodata == -1 and src.descriptions == ("values",)
        np.testing.assert_array_equal(src.read(1), data)


def test_cog_output_is_cloud_optimised(tmp_path):
    from affine import Affine
    from rasterio.crs import CRS

    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 0, 0, -10, 5000), 600, 600)
    path = write_raster(
        tmp_path / "c.tif",
        np.random.default_rng(0).random((600, 600), dtype=np.float32),
        grid,
        units="probability",
        cog=True,
    )
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1)
    # a stack of more than MAX_COG_BANDS bands (embeddings) stays a tiled GeoTIFF
    stack = np.zeros((33, 600, 600), np.float32)
    with rasterio.open(write_raster(tmp_path / "s.tif", stack, grid, units="x", cog=True)) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG" and src.count == 33


def test_single_multiband_file_needs_band_names_when_ambiguous(tmp_path):
    from affine import Affine
    from rasterio.crs import CRS

    grid = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 0, 0, -10, 5000), 8, 8)
    path = write_raster(tmp_path / "five.tif", np.ones((5, 8, 8), np.uint16), grid, units="dn")
    with pytest.raises(MissingBandError, match="cannot tell which band is which"):
        open_scene(path)
    scene = open_scene(path, band_names=["B02", "B03", "B04", "B08", "B11"])
    assert scene.read(["red"]).shape == (1, 8, 8)


def test_aligned_raster_reprojects_a_mask_by_nearest_neighbour_by_hand(tmp_path):
    """A class raster in EPSG:4326 read on a UTM 32633 grid: each target pixel takes the class of
    the source pixel holding its centre (transformed with pyproj)."""
    from affine import Affine
    from pyproj import Transformer
    from rasterio.crs import CRS

    from humanscape.geo.raster import AlignedRaster

    src_grid = GridSpec(CRS.from_epsg(4326), Affine(0.001, 0, 13.0, 0, -0.001, 52.6), 60, 40)
    classes = np.random.default_rng(0).integers(0, 5, (40, 60)).astype(np.uint8)
    path = write_raster(tmp_path / "classes.tif", classes, src_grid, units="class")
    target = GridSpec(CRS.from_epsg(32633), Affine(50, 0, 365000, 0, -50, 5828000), 40, 40)
    with AlignedRaster(path, target) as reader:
        got = reader.read()
    assert set(np.unique(got)) <= set(range(5))  # nearest: no blended classes
    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    rows, cols = np.mgrid[0:40, 0:40]
    x, y = target.transform * (cols.ravel() + 0.5, rows.ravel() + 0.5)
    lon, lat = to_lonlat.transform(x, y)
    src_col = np.floor((np.asarray(lon) - 13.0) / 0.001).astype(int)
    src_row = np.floor((52.6 - np.asarray(lat)) / 0.001).astype(int)
    inside = (src_col >= 1) & (src_col < 59) & (src_row >= 1) & (src_row < 39)
    expected = classes[src_row[inside], src_col[inside]]
    # GDAL's warper approximates the transform to within 1/8 pixel: allow the rare boundary pixel
    assert (got.ravel()[inside] == expected).mean() > 0.97


def test_thirteen_unnamed_layers_in_eurosat_or_esa_order_are_told_apart(tmp_path):
    """A real EuroSAT MS chip stores B01..B12 then B8A; the same layers in ESA order (B8A after
    B08, as Earth Engine exports them) open to the same bands: the dark cirrus layer tells which."""
    from humanscape.data import samples

    chip = samples.eurosat_ms()["image"].iloc[0]
    with rasterio.open(chip) as src:
        layers, profile = src.read(), src.profile
    eurosat = open_scene(chip)
    # EuroSAT order: layer 13 is B8A, layer 10 is the cirrus band B10
    assert [s.index for s in eurosat.sources if s.band.name in ("B8A", "B10", "B11")] == [
        13,
        10,
        11,
    ]
    np.testing.assert_array_equal(eurosat.read_raw("B8A"), layers[12])
    esa = np.concatenate([layers[:8], layers[12:13], layers[8:12]])
    with rasterio.open(tmp_path / "esa.tif", "w", **profile) as dst:
        dst.write(esa)
    reordered = open_scene(tmp_path / "esa.tif")
    for band in ("B8A", "B09", "B10", "B11", "B12"):
        np.testing.assert_array_equal(reordered.read_raw(band), eurosat.read_raw(band))
    # the chip-table reader tells them apart the same way
    from humanscape.data.chiptable import read_chip

    a, b = read_chip(chip), read_chip(tmp_path / "esa.tif")
    for band in ("B8A", "B09", "B10", "B11", "B12"):
        np.testing.assert_array_equal(b.data[b.bands.index(band)], a.data[a.bands.index(band)])
    assert a.bands[12] == "B8A" and b.bands[8] == "B8A"
