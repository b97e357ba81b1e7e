"""The CLI end to end, and the bad-input contract: one line naming the file, exit 2, no partial output."""

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from humanscape.cli import cli
from tests.conftest import make_band_folder

runner = CliRunner()


def run(*args: str):
    return runner.invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_info_lists_bands_crs_resolution(berlin_dir):
    result = run("info", berlin_dir)
    assert result.exit_code == 0, result.output
    assert (
        "EPSG:32633" in result.output and "B8A" in result.output and "native 60 m" in result.output
    )


def test_indices_command_writes_named_bands(band_folder, tmp_path):
    out = tmp_path / "idx.tif"
    result = run("indices", band_folder, "--out", out, "--indices", "NDVI", "--indices", "ndbi")
    assert result.exit_code == 0, result.output
    with rasterio.open(out) as src:
        assert src.descriptions == ("NDVI", "NDBI") and src.res == (10.0, 10.0)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"  # maps are COGs by default
    plain = tmp_path / "plain.tif"
    assert (
        run("indices", band_folder, "--out", plain, "--indices", "NDVI", "--no-cog").exit_code == 0
    )
    with rasterio.open(plain) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG"


def test_composite_command_with_period_filter(tmp_path):
    folders = [
        make_band_folder(tmp_path / f"s{i}", date=d, seed=i)
        for i, d in enumerate(["20150301", "20160701", "20180101"])
    ]
    out = tmp_path / "c.tif"
    result = run("composite", *folders, "--out", out, "--period", "2015-2016", "--bands", "B04")
    assert result.exit_code == 0, result.output
    assert "from 2 scenes" in result.output
    with rasterio.open(out) as src:
        assert src.descriptions == ("B04", "valid_count") and src.read(2).max() == 2
    result = run("composite", *folders, "--out", tmp_path / "none.tif", "--period", "2030")
    assert_one_line_error(result, "no scene was acquired in period 2030")


def test_chip_command_writes_chips_and_table(band_folder, tmp_path):
    result = run("chip", band_folder, "--cell", 100, "--out", tmp_path / "chips", "--neighbors", 3)
    assert result.exit_code == 0, result.output
    table = (tmp_path / "chips" / "chips.csv").read_text().splitlines()
    assert len(table) == 1 + 16 and table[0].startswith("image,")


# --- bad input: one test per case ------------------------------------------------------------


def test_missing_band(band_folder, tmp_path):
    for f in band_folder.glob("*_B11.tif"):
        f.unlink()
    out = tmp_path / "idx.tif"
    result = run("indices", band_folder, "--out", out, "--indices", "NDBI")
    assert_one_line_error(result, str(band_folder), "swir1", "fix:")
    assert not out.exists()


def test_file_that_is_not_a_raster(tmp_path):
    bogus = tmp_path / "scene.tif"
    bogus.write_bytes(b"II*\x00garbage")
    result = run("indices", bogus, "--out", tmp_path / "x.tif")
    assert_one_line_error(result, "scene.tif", "not a readable raster")
    assert not (tmp_path / "x.tif").exists()


def test_crs_mismatch_between_scenes_to_composite(tmp_path):
    a = make_band_folder(tmp_path / "a", date="20150101")
    b = make_band_folder(tmp_path / "b", date="20150601", crs=32632)
    out = tmp_path / "c.tif"
    result = run("composite", a, b, "--out", out)
    assert_one_line_error(result, str(b), "EPSG:32632", "reproject")
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_labels_that_do_not_overlap_the_features(band_folder, tmp_path):
    from shapely.geometry import box

    features = tmp_path / "f.tif"
    assert run("settlements", "features", band_folder, "-o", features).exit_code == 0
    far = tmp_path / "far.gpkg"
    gpd.GeoDataFrame(geometry=[box(10, 10, 11, 11)], crs=4326).to_file(far)
    result = run("settlements", "fit", features, "--labels", far, "-o", tmp_path / "m")
    assert_one_line_error(result, "far.gpkg: no feature overlaps the raster", "fix:")
    assert not (tmp_path / "m").exists()


def test_empty_glob(tmp_path):
    result = run("info", str(tmp_path / "missing_*.jp2"))
    assert_one_line_error(result, "missing_*.jp2", "glob pattern matches no file")


def test_chip_of_nodata_only(tmp_path):
    folder = make_band_folder(tmp_path / "s", bands=("B04",))
    for f in folder.glob("*.tif"):
        with rasterio.open(f, "r+") as src:
            src.write(np.zeros((1, src.height, src.width), np.uint16))
    out = tmp_path / "chips"
    result = run("chip", folder, "--cell", 100, "--out", out)
    assert_one_line_error(result, str(folder), "nodata only")
    assert not (out / "chips.csv").exists()


@pytest.mark.timeout(900)  # the whole demo chain, about 3-4 minutes on 2 cores
def test_demo_runs_on_shipped_data_and_prints_outputs(demo_output):
    out, printed = demo_output
    for name in (
        "berlin_rgb.png",
        "berlin_indices.tif",
        "berlin_chips/chips.csv",
        "summary.json",
        "economy/berlin_score.png",
        "economy/berlin_districts.csv",
    ):
        assert (out / name).exists(), name
        assert str(out / name) in printed.replace("\n", "") or name in printed
    with rasterio.open(out / "berlin_indices.tif") as src:
        assert src.count == 10 and src.crs.to_epsg() == 32633


def test_version_flag():
    from humanscape import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"humanscape, version {__version__}"


def test_info_reads_a_gdal_virtual_path_untouched(berlin_dir):
    # /vsimem/ stands for any /vsi... or URL path: GDAL must get it exactly as given
    from rasterio.io import MemoryFile

    from humanscape.geo.files import GdalPath

    band = next(berlin_dir.glob("*_B04*.jp2"))
    with MemoryFile(band.read_bytes(), filename="T33UUU_20200101T100000_B04.jp2") as mem:
        assert mem.name.startswith("/vsimem/")
        result = run("info", mem.name)
        assert result.exit_code == 0, result.output
        assert "B04" in result.output and "EPSG:32633" in result.output
    url = GdalPath("https://host.example/tiles/T33_B04.tif?sig=a//b")
    assert str(url) == "/vsicurl/https://host.example/tiles/T33_B04.tif?sig=a//b"
    assert url.name == "T33_B04.tif"
    s3 = GdalPath("/vsis3/bucket/x/T33_B8A.tif")
    assert str(s3) == "/vsis3/bucket/x/T33_B8A.tif" and s3.name == "T33_B8A.tif"


def test_library_logs_are_quiet_unless_verbose(tmp_path):
    # Dask distributed logs ~30 INFO lines for a 2-worker job from this and the worker processes
    import subprocess
    import sys

    scene = make_band_folder(tmp_path / "scene", size=200)

    def stderr(*flags: str) -> str:
        args = [*flags, "indices", str(scene), "--workers", "2", "--tile", "64"]
        code = "from humanscape.cli import main; main()"
        cmd = [sys.executable, "-c", code, *args, "-o", str(tmp_path / "i.tif")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "INFO" not in stderr()
    assert "INFO distributed" in stderr("--verbose")


def test_one_rule_for_existing_outputs(band_folder, tmp_path):
    # a folder output replaces a folder humanscape wrote or an empty one, never a user's folder
    out = tmp_path / "chips"
    assert run("chip", band_folder, "--cell", "100", "--out", out).exit_code == 0
    assert (out / ".humanscape.json").exists()
    assert run("chip", band_folder, "--cell", "200", "--out", out).exit_code == 0  # replaced
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    assert_one_line_error(
        run("chip", band_folder, "--cell", "100", "--out", user),
        "mine",
        "not written by humanscape",
    )
    assert (user / "notes.txt").read_text() == "keep me" and len(list(user.iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("chip", band_folder, "--cell", "100", "--out", empty).exit_code == 0
    # a file output replaces a file; a folder where the file goes, or the input itself, is refused
    tif = tmp_path / "idx.tif"
    tif.write_bytes(b"old")
    assert run("indices", band_folder, "--out", tif).exit_code == 0
    assert rasterio.open(tif).count == 10
    assert_one_line_error(run("indices", band_folder, "--out", user), "mine")
    band = next(band_folder.glob("*B04.tif"))
    assert_one_line_error(run("indices", band_folder, "--out", band), "B04")
