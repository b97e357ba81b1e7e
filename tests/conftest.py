"""Shared fixtures: small real samples (shipped in the package) and tiny synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from humanscape.data import samples
from humanscape.data.synthetic import SyntheticWorld
from humanscape.geo.raster import GridSpec, write_raster


@pytest.fixture(scope="session")
def berlin_dir() -> Path:
    return samples.sample_path("berlin", "IMG_DATA")


@pytest.fixture(scope="session")
def small_world() -> SyntheticWorld:
    return SyntheticWorld(96, 128, seed=7)


@pytest.fixture()
def synthetic_scene(tmp_path: Path, small_world: SyntheticWorld) -> Path:
    """A 13-band Sentinel-2 L1C-like GeoTIFF (uint16 DN) from the synthetic world."""
    return small_world.write_scene(tmp_path / "synthetic_T00XXX_20200101.tif")


def make_band_folder(
    folder: Path,
    *,
    crs: int = 32633,
    origin=(500000.0, 5800000.0),
    size=40,
    date: str = "20200101",
    value: int = 1000,
    bands=("B02", "B03", "B04", "B08", "B11", "B12"),
    seed: int = 0,
) -> Path:
    """Write one single-band GeoTIFF per Sentinel-2 band (10 m bands at 10 m, others at 20 m)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for band in bands:
        res = 10 if band in ("B02", "B03", "B04", "B08") else 20
        n = size * 10 // res
        grid = GridSpec(CRS.from_epsg(crs), Affine(res, 0, origin[0], 0, -res, origin[1]), n, n)
        data = (value + rng.integers(0, 500, (n, n))).astype(np.uint16)
        write_raster(folder / f"T33UUU_{date}T100000_{band}.tif", data, grid, units="dn")
    return folder


@pytest.fixture()
def band_folder(tmp_path: Path) -> Path:
    return make_band_folder(tmp_path / "scene")


def read_all(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as src:
        return src.read(), src.profile


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``humanscape demo --quick`` run once per session (every step of the demo, tiny training
    budgets): its folder and what it printed. The demo test checks them; the README tour runs on
    the models it fitted."""
    from click.testing import CliRunner

    from humanscape.cli import cli

    out = tmp_path_factory.mktemp("demo") / "demo-output"
    result = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output
