"""`humanscape population disaggregate` on the real Berlin scene and census (1 km cells summed
into 2 km blocks): exact sums per unit, and bad units refused in one line."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.features import rasterize
from shapely.affinity import translate

from humanscape.cli import cli
from humanscape.data import samples

SCENE = str(samples.sample_path("berlin", "IMG_DATA"))


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    cells = samples.berlin_census_cells()
    rc = cells["district"].str.extract(r"r(\d+)c(\d+)").astype(int)
    cells["block"] = (rc[0] // 2).astype(str) + "_" + (rc[1] // 2).astype(str)
    blocks = cells.dissolve("block", aggfunc={"population": "sum"}).reset_index()
    path = tmp_path_factory.mktemp("units") / "blocks.gpkg"
    blocks.to_crs("EPSG:4326").to_file(path)  # another CRS than the scene: reprojected
    return path, blocks


def run(*args):
    return CliRunner().invoke(
        cli, ["population", "disaggregate", SCENE, "--sensor", "sentinel2_l1c", *map(str, args)]
    )


@pytest.mark.parametrize("method", ["auto", "areal", "rf"])
def test_people_per_cell_sum_exactly_to_each_unit(blocks, tmp_path, method):
    path, table = blocks
    out = tmp_path / "pop.tif"
    result = run(
        "--units",
        path,
        "--count-column",
        "population",
        "--id-column",
        "block",
        "--cell",
        1000,
        "--method",
        method,
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "32 units, 3,892 people; 3,892 placed" in result.output
    with rasterio.open(out) as src:
        people, transform, shape = src.read(1), src.transform, (src.height, src.width)
        names = ("population", "population_lower_90", "population_upper_90")
        assert src.descriptions == names and src.units == ("people",) * 3
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # a map: COG by default
        lower, upper, q = src.read(2), src.read(3), float(src.tags()["band_halfwidth_log1p"])
    # the band by hand: expm1(log1p(p) -+ q), clipped at 0 people
    inside = np.isfinite(people)
    np.testing.assert_allclose(upper[inside], np.expm1(np.log1p(people[inside]) + q), rtol=1e-4)
    expected = np.expm1(np.maximum(np.log1p(people[inside]) - q, 0))
    np.testing.assert_allclose(lower[inside], expected, rtol=1e-4, atol=1e-4)
    assert (lower[inside] <= people[inside]).all() and "90 % band: x/÷" in result.output
    index = rasterize(
        [(g, i) for i, g in enumerate(table.geometry)],
        out_shape=shape,
        transform=transform,
        fill=-1,
    )
    sums = np.bincount(index[index >= 0], np.nan_to_num(people[index >= 0]), len(table))
    np.testing.assert_allclose(sums, table["population"], rtol=1e-5)
    assert np.isnan(people[index < 0]).all()


def test_bad_units_are_refused_in_one_line(blocks, tmp_path):
    path, table = blocks
    missing = run("--units", path, "--count-column", "people", "--out", tmp_path / "a.tif")
    assert (
        missing.exit_code == 2
        and "no column 'people' (columns: block, population)" in missing.output
    )
    negative = table.copy()
    negative.loc[0, "population"] = -5
    negative.to_file(tmp_path / "neg.gpkg")
    result = run(
        "--units",
        tmp_path / "neg.gpkg",
        "--count-column",
        "population",
        "--out",
        tmp_path / "b.tif",
    )
    assert result.exit_code == 2 and "negative count" in result.output
    overlapping = gpd.GeoDataFrame(
        {"population": [10.0, 20.0]},
        geometry=[table.geometry[0], table.geometry[0].buffer(500)],
        crs=table.crs,
    )
    overlapping.to_file(tmp_path / "over.gpkg")
    result = run(
        "--units",
        tmp_path / "over.gpkg",
        "--count-column",
        "population",
        "--out",
        tmp_path / "c.tif",
    )
    assert result.exit_code == 2 and "units overlap" in result.output
    far = gpd.GeoDataFrame(
        {"population": [10.0]},
        geometry=[translate(table.geometry[0], 1e6)],
        crs=table.crs,
    )
    far.to_file(tmp_path / "far.gpkg")
    result = run(
        "--units",
        tmp_path / "far.gpkg",
        "--count-column",
        "population",
        "--out",
        tmp_path / "d.tif",
    )
    assert result.exit_code == 2 and "no unit covers a cell centre" in result.output
    assert not any(tmp_path.glob("*.tif"))


def test_evaluate_map_scores_the_map_beside_areal_weighting(blocks, tmp_path):
    path, _ = blocks
    out = tmp_path / "areal.tif"
    args = ("--units", path, "--count-column", "population", "--cell", 1000)
    assert run(*args, "--method", "areal", "--out", out).exit_code == 0
    census = samples.sample_path("berlin", "population_1km_eurostat.tif")
    result = CliRunner().invoke(
        cli,
        ["population", "evaluate-map", str(out), "--reference", str(census), "--units", str(path),
         "--count-column", "population", "--min-fraction", "0.99", "--png", str(tmp_path / "m.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "areal weighting (same units)" in result.output
    from humanscape.tasks.population.dasymetric import evaluate_map

    frame = evaluate_map(
        out, census, units_path=path, count_column="population", min_fraction=0.99
    ).table
    # an areal map scored beside areal weighting from the same units: the same numbers
    assert frame["n_cells"].tolist() == [105, 105]
    columns = ["r2", "r2_log1p", "mae"]
    np.testing.assert_allclose(
        frame.loc[0, columns].to_numpy(dtype=float),
        frame.loc[1, columns].to_numpy(dtype=float),
        rtol=1e-5,
    )
    assert abs(frame.loc[0, "total_error"]) < 0.01
    assert (tmp_path / "m.png").exists()


def test_map_on_the_cells_of_a_reference_grid(blocks, tmp_path):
    path, table = blocks
    census = samples.sample_path("berlin", "population_1km_eurostat.tif")
    out = tmp_path / "on_census.tif"
    result = run("--units", path, "--count-column", "population", "--grid", census, "--out", out)
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as got, rasterio.open(census) as ref:
        assert got.transform == ref.transform and got.shape == ref.shape
        assert np.nansum(got.read(1)) == pytest.approx(table["population"].sum(), rel=1e-6)
        profile = ref.profile | {
            "transform": ref.transform * rasterio.Affine.translation(0.0005, 0)
        }  # 0.5 m
        shifted = tmp_path / "shifted.tif"
        with rasterio.open(shifted, "w", **profile) as dst:  # cells start inside a scene pixel
            dst.write(ref.read())
    bad = run(
        "--units",
        path,
        "--count-column",
        "population",
        "--grid",
        shifted,
        "--out",
        tmp_path / "b.tif",
    )
    assert bad.exit_code == 2 and "not aligned to the scene's pixels" in bad.output
    assert not (tmp_path / "b.tif").exists()


def test_a_saved_model_maps_other_units_and_alone(blocks, tmp_path):
    path, table = blocks
    model = tmp_path / "model"
    args = ("--units", path, "--count-column", "population", "--cell", 1000)
    fitted = run(*args, "--method", "rf", "--save-model", model, "--out", tmp_path / "a.tif")
    assert fitted.exit_code == 0, fitted.output
    assert (model / "config.json").exists() and (model / "model.skops").exists()
    # other units (the first eight blocks as one unit) mapped with the saved model
    merged = gpd.GeoDataFrame(
        {"population": [table["population"][:8].sum()]},
        geometry=[table.geometry[:8].union_all()],
        crs=table.crs,
    )
    merged.to_file(tmp_path / "one.gpkg")
    again = run("--units", tmp_path / "one.gpkg", "--count-column", "population", "--cell", 1000,
                "--model", model, "--out", tmp_path / "b.tif")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "fitted on another scene's units" in again.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        first, second, transform = a.read(1), b.read(1), a.transform
        q_saved = float(a.tags()["band_halfwidth_log1p"])
        assert float(b.tags()["band_halfwidth_log1p"]) == pytest.approx(q_saved)
    assert np.nansum(second) == pytest.approx(merged["population"][0], rel=1e-5)
    # the saved forest's weights: within each original block, both maps are one weight per cell
    # scaled to a count, so their ratio is one number per block
    index = rasterize(
        [(g, i) for i, g in enumerate(table.geometry[:8])],
        out_shape=first.shape,
        transform=transform,
        fill=-1,
    )
    checked = 0
    for k in range(8):
        cells = (index == k) & (first > 0)  # blocks of 0 people have no ratio
        if cells.any():
            ratio = second[cells] / first[cells]
            assert np.ptp(ratio) < 1e-4 * ratio.mean()
            checked += 1
    assert checked >= 4
    # no units: the density alone, unconstrained
    alone = run("--cell", 1000, "--model", model, "--out", tmp_path / "c.tif")
    assert alone.exit_code == 0 and "not constrained to any census" in alone.output
    with rasterio.open(tmp_path / "c.tif") as c:
        assert np.nansum(c.read(1)) > 0
    # a model fitted without land use refuses cells that have it
    osm = samples.sample_path("berlin", "osm_landuse.gpkg")
    refused = run(*args, "--model", model, "--landuse", osm, "--out", tmp_path / "d.tif")
    assert refused.exit_code == 2 and "landuse_share" in refused.output
    nothing = run("--cell", 1000, "--out", tmp_path / "e.tif")
    assert nothing.exit_code == 2 and "no census units to learn from" in nothing.output
    assert not (tmp_path / "d.tif").exists() and not (tmp_path / "e.tif").exists()


def test_missing_counts_and_a_scene_without_a_needed_band_are_refused(blocks, tmp_path):
    path, table = blocks
    nan = table.copy()
    nan.loc[3, "population"] = np.nan
    nan.to_file(tmp_path / "nan.gpkg")
    result = run(
        "--units", tmp_path / "nan.gpkg", "--count-column", "population", "--out", tmp_path / "a.tif"
    )  # fmt: skip
    assert result.exit_code == 2 and "missing" in result.output, result.output
    from humanscape.geo.raster import write_raster

    with samples.berlin_scene(["B02", "B03", "B04", "B08"]) as scene:
        rgbn = write_raster(
            tmp_path / "rgbn.tif",
            scene.read(),
            scene.grid,
            units="reflectance",
            band_names=["B02", "B03", "B04", "B08"],
        )
    result = CliRunner().invoke(
        cli,
        ["population", "disaggregate", str(rgbn), "--units", str(path), "--count-column",
         "population", "--out", str(tmp_path / "b.tif")],
    )  # fmt: skip
    assert result.exit_code == 2 and "need the green, red, NIR, SWIR 1" in result.output, (
        result.output
    )
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.glob("[ab].tif"))
