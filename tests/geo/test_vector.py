import geopandas as gpd
import numpy as np
import pytest
from rasterio.windows import Window
from shapely.geometry import box

from humanscape.data import samples
from humanscape.errors import NoOverlapError
from humanscape.geo import vector
from humanscape.geo.raster import open_scene


def test_rasterize_real_osm_residential_onto_the_berlin_grid(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    landuse = samples.berlin_landuse()
    residential = landuse[landuse["fclass"] == "residential"]
    mask = vector.rasterize(residential, scene.grid)
    area_px = mask.sum() * 100
    clipped = residential.clip(box(*scene.grid.bounds)).union_all().area
    assert area_px == pytest.approx(clipped, rel=0.05)


def test_rasterize_reprojects_vectors_in_another_crs(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    left, bottom, right, top = scene.grid.bounds
    square = gpd.GeoDataFrame(
        geometry=[box(left + 1000, bottom + 1000, left + 2000, bottom + 2000)], crs=scene.crs
    )
    in_utm = vector.rasterize(square, scene.grid)
    in_wgs = vector.rasterize(square.to_crs(4326), scene.grid)
    assert in_utm.sum() == 10000 and abs(int(in_wgs.sum()) - 10000) < 150


def test_no_overlap_is_refused_naming_the_file(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    far = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)], crs=4326)
    with pytest.raises(NoOverlapError, match="labels.gpkg: no feature overlaps the raster"):
        vector.rasterize(far, scene.grid, source="labels.gpkg")


def test_polygonize_recovers_blobs_with_scores(berlin_dir):
    scene = open_scene(berlin_dir, bands=["B04"])
    grid = scene.grid.window_grid(Window(0, 0, 50, 40))
    scores = np.zeros(grid.shape, np.float32)
    scores[5:10, 5:15] = 0.9
    scores[20:30, 30:35] = 0.6
    scores[0, 49] = np.nan
    polys = vector.polygonize(scores, grid, threshold=0.5)
    assert len(polys) == 2 and polys.crs == grid.crs
    assert polys["area_m2"].tolist() == pytest.approx([5000, 5000])
    assert polys["score_mean"].tolist() == pytest.approx([0.9, 0.6])
    assert len(vector.polygonize(scores, grid, threshold=0.5, min_area=6000)) == 0


def test_write_vector_roundtrip_keeps_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 10, 10)], crs=32633)
    for suffix in (".gpkg", ".parquet", ".geojson"):
        out = vector.write_vector(gdf, tmp_path / f"x{suffix}")
        assert vector.read_vector(out).crs.to_epsg() == 32633
