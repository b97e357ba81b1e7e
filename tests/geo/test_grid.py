import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import Polygon, box

from humanscape.data.chips import chip_scene, mosaic_chips
from humanscape.data.chiptable import read_chip, read_chip_table
from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo import grid as g
from humanscape.geo.raster import open_scene


def test_chips_remosaic_exactly_to_their_raster(berlin_dir, tmp_path):
    scene = open_scene(berlin_dir, bands=["B02", "B8A", "B12"])
    cells = g.regular_grid(scene.grid, 700)  # 70 px cells: partial cells at the right/bottom edge
    table = chip_scene(scene, cells, tmp_path / "c", progress=False)
    assert len(table) == cells.n_rows * cells.n_cols == 11 * 22
    back = mosaic_chips(read_chip_table(tmp_path / "c" / "chips.csv"), "/", scene.grid, cells)
    np.testing.assert_array_equal(back, scene.read())


def test_grid_cells_align_with_raster_origin(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    cells = g.regular_grid(scene.grid, 1000)
    left, bottom, right, top = cells.cell_bounds(0, 0)
    assert (left, top) == (scene.grid.bounds[0], scene.grid.bounds[3])
    assert (right - left, top - bottom) == (1000, 1000)
    assert cells.cell_bounds(2, 3)[0] == left + 3000 and cells.cell_id(2, 3) == 2 * cells.n_cols + 3
    assert cells.row_col(cells.cell_id(5, 7)) == (5, 7)
    with pytest.raises(HumanscapeError, match="not a whole number"):
        g.regular_grid(scene.grid, 1005)
    with pytest.raises(HumanscapeError, match="unknown cell id"):
        cells.row_col(10**6)


def test_arcsec_grid_is_aligned_to_the_global_30_arcsecond_lattice(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    cells = g.arcsec_grid(scene.grid.bounds, scene.crs, arcsec=30, cell_px=90)
    step = 30 / 3600
    left, bottom, right, top = cells.cell_bounds(0, 0)
    assert right - left == pytest.approx(step) and top - bottom == pytest.approx(step)
    assert (left + 180) / step == pytest.approx(round((left + 180) / step), abs=1e-6)
    assert (90 - top) / step == pytest.approx(round((90 - top) / step), abs=1e-6)
    assert cells.crs.to_epsg() == 4326 and len(cells) > 100


def test_neighbourhood_chip_contains_the_cell_chip_at_its_centre(tmp_path, synthetic_scene):
    scene = open_scene(synthetic_scene, bands=["B04", "B08"])
    cells = g.regular_grid(scene.grid, 160)  # 16 px
    one = chip_scene(scene, cells, tmp_path / "n1", progress=False)
    three = chip_scene(scene, cells, tmp_path / "n3", neighbors=3, progress=False)
    rec1 = one.set_index("cell_id").loc[cells.cell_id(2, 3)]
    rec3 = three.set_index("cell_id").loc[cells.cell_id(2, 3)]
    c1 = read_chip(tmp_path / "n1" / rec1["image"]).data
    c3 = read_chip(tmp_path / "n3" / rec3["image"]).data
    assert c3.shape == (2, 48, 48)
    np.testing.assert_array_equal(c3[:, 16:32, 16:32], c1)
    corner = read_chip(tmp_path / "n3" / three.set_index("cell_id").loc[0, "image"]).data
    assert np.isnan(corner[:, :16, :]).all()  # outside the raster: nodata padding
    assert cells.neighbourhood(0, 0, 3) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with pytest.raises(HumanscapeError, match="must be odd"):
        cells.neighbourhood(1, 1, 2)


def test_chip_table_holds_geometry_crs_and_relative_paths(tmp_path, synthetic_scene):
    scene = open_scene(synthetic_scene, bands=["B04"])
    chip_scene(scene, g.regular_grid(scene.grid, 320), tmp_path / "c", progress=False)
    raw = pd.read_csv(tmp_path / "c" / "chips.csv")
    assert raw["image"].str.startswith("chips/").all()
    assert set(raw.columns) >= {"image", "cell_id", "row", "col", "geometry", "crs"}
    gdf = gpd.GeoDataFrame(raw, geometry=gpd.GeoSeries.from_wkt(raw["geometry"]), crs=raw["crs"][0])
    assert gdf.crs == scene.crs and gdf.geometry.area.iloc[0] == pytest.approx(320 * 320)
    with rasterio.open(tmp_path / "c" / raw["image"][0]) as src:
        assert src.crs == scene.crs and src.descriptions == ("B04",)


def test_nodata_only_chips_are_skipped_and_reading_one_is_refused(tmp_path, synthetic_scene):
    with rasterio.open(synthetic_scene, "r+") as src:
        data = src.read()
        data[:, :32, :32] = 0
        src.write(data)
    scene = open_scene(synthetic_scene, bands=["B04"])
    table = chip_scene(scene, g.regular_grid(scene.grid, 320), tmp_path / "c", progress=False)
    assert 0 not in table["cell_id"].tolist() and len(table) == 3 * 4 - 1
    from humanscape.geo.raster import write_raster

    empty = write_raster(
        tmp_path / "empty.tif",
        np.full((1, 4, 4), np.nan, np.float32),
        scene.grid.window_grid(rasterio.windows.Window(0, 0, 4, 4)),
        units="reflectance",
        nodata=float("nan"),
    )
    with pytest.raises(EmptyInputError, match="empty.tif: chip holds only nodata"):
        read_chip(empty)


def test_tiles_over_polygon_cover_it(synthetic_scene):
    scene = open_scene(synthetic_scene, bands=["B04"])
    left, bottom, right, top = scene.grid.bounds
    poly = Polygon([(left + 10, top - 10), (left + 500, top - 10), (left + 10, top - 700)])
    tiles = g.tiles_over_polygon(poly, scene.grid, size=32)
    assert all(t.width == 32 and t.col_off % 32 == 0 and t.row_off % 32 == 0 for t in tiles)
    covered = [box(*scene.grid.window_grid(t).bounds) for t in tiles]
    assert gpd.GeoSeries(covered).union_all().contains(poly)
    assert len(tiles) < 2 * 3  # the triangle misses the bottom-right tiles


def test_tiles_over_polygon_stride_and_alignment():
    from affine import Affine
    from rasterio.crs import CRS

    from humanscape.geo.raster import GridSpec

    pixels = GridSpec(CRS.from_epsg(32633), Affine(10, 0, 0, 0, -10, 5000), 400, 400)
    # a 1 km cell = pixels 100..200 in both directions
    cell = box(1000, 5000 - 2000, 2000, 5000 - 1000)
    inside = g.tiles_over_polygon(
        cell, pixels, size=64, stride=36, min_overlap=1.0, align="polygon"
    )
    assert [(w.col_off, w.row_off) for w in inside] == [
        (100, 100),
        (136, 100),
        (100, 136),
        (136, 136),
    ]
    # counted from the raster origin only 108 (108 + 64 <= 200) fits on each axis
    grid = g.tiles_over_polygon(cell, pixels, size=64, stride=36, min_overlap=1.0)
    assert [(w.col_off, w.row_off) for w in grid] == [(108, 108)]
    # default stride = size, any overlap: 64 px tiles touching pixels 100..200 start at 64, 128, 192
    edge = g.tiles_over_polygon(cell, pixels, size=64)
    assert sorted({w.col_off for w in edge}) == [64, 128, 192]
    with pytest.raises(HumanscapeError, match="unknown tile alignment"):
        g.tiles_over_polygon(cell, pixels, size=64, align="centre")


def test_tiles_wholly_inside_are_the_same_whatever_the_districts_crs(monkeypatch):
    from rasterio.transform import from_origin

    pixels = g.GridSpec("EPSG:32633", from_origin(390000, 5830000, 10, 10), 1000, 1000)
    # 49 districts of 2 x 3 tiles of 32 px (320 m), edges on tile edges: 6 tiles wholly inside each
    polygons = [
        box(390000 + 320 * i, 5830000 - 320 * (j + 3), 390000 + 320 * (i + 2), 5830000 - 320 * j)
        for i in range(0, 20, 3)
        for j in range(0, 20, 3)
    ]
    native = gpd.GeoSeries(polygons, crs="EPSG:32633")
    via_wgs84 = native.to_crs("EPSG:4326").to_crs("EPSG:32633")  # edges move by ~1e-10 m

    def tiles(series):
        return [
            [
                (w.col_off, w.row_off)
                for w in g.tiles_over_polygon(p, pixels, size=32, min_overlap=1)
            ]
            for p in series
        ]

    assert sum(map(len, tiles(native))) == 49 * 6
    assert tiles(via_wgs84) == tiles(native)
    # without the tolerance the round trip drops 126 of the 294 tiles
    monkeypatch.setattr(g, "OVERLAP_TOLERANCE", 0.0)
    assert sum(map(len, tiles(via_wgs84))) < 49 * 6
