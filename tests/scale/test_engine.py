"""The tiled engine: tiled == untiled (with halo), resume, Dask workers, dead workers, bad input."""

from __future__ import annotations

import errno
import os
import socket
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from humanscape.data.synthetic import SyntheticWorld
from humanscape.errors import HumanscapeError
from humanscape.geo.raster import GridSpec, RasterSpec, open_scene
from humanscape.scale import engine as engine_module
from humanscape.scale import run_map, tile_folder
from humanscape.tasks.settlements.features import FeatureStack
from humanscape.tasks.settlements.model import SettlementClassifier
from humanscape.tasks.settlements.predict import SettlementMap

# The test jobs below are shipped to Dask workers by value (the workers need not import tests/).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = GridSpec(rasterio.crs.CRS.from_epsg(32633), rasterio.Affine(10, 0, 0, 0, -10, 500), 50, 37)


class RowColMap:
    """Pixel (r, c) of band b holds 1000 b + 100 r + c / 10: every value known by hand."""

    def __init__(
        self, grid: GridSpec = GRID, *, fail_at: int | None = None, log: Path | None = None
    ):
        self.spec = RasterSpec(grid, ("a", "b"), "index")
        self.fail_at = fail_at
        self.log = log
        self.calls = 0

    def compute(self, window: Window) -> np.ndarray:
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            raise KeyboardInterrupt  # an interruption after ``fail_at`` tiles
        if self.log is not None:
            with open(self.log, "a") as f:
                f.write(f"{int(window.row_off)},{int(window.col_off)}\n")
        rows = np.arange(window.row_off, window.row_off + window.height)[:, None]
        cols = np.arange(window.col_off, window.col_off + window.width)[None, :]
        base = (100.0 * rows + cols / 10.0).astype(np.float32)
        return np.stack([base, base + 1000.0])

    def sources(self) -> list[str]:
        return []

    def token(self) -> str:
        return "rowcol"


class DiesOnce(RowColMap):
    """Kills its worker process the first time it computes the tile at (16, 16)."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def compute(self, window: Window) -> np.ndarray:
        if (int(window.row_off), int(window.col_off)) == (16, 16) and not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)
        return super().compute(window)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_each_pixel_gets_the_value_its_formula_gives(tmp_path):
    out = run_map(RowColMap(), tmp_path / "m.tif", tile=16, workers=0, progress=False)
    data = _read(out)
    assert data.shape == (2, 37, 50)
    assert data[0, 0, 0] == 0.0
    assert data[0, 36, 49] == pytest.approx(3600 + 4.9)  # last pixel of a partial edge tile
    assert data[1, 17, 3] == pytest.approx(1000 + 1700 + 0.3)
    with rasterio.open(out) as src:
        assert src.descriptions == ("a", "b") and src.transform == GRID.transform
    assert not tile_folder(out).exists()  # the tiles are removed once the map is written


@pytest.fixture(scope="module")
def settlement_job(tmp_path_factory):
    """The fused settlement map (features with a 5 px texture window + boosting) on a tiny world."""
    folder = tmp_path_factory.mktemp("scale")
    world = SyntheticWorld(72, 88, seed=3, settlements_per_km2=6.0)
    scenes = [open_scene(world.write_scene(folder / f"s_2018060{p}.tif", period=p)) for p in (0, 1)]
    stack = FeatureStack(scenes, ["p0", "p1"], texture=True, texture_window=5)
    full = stack.compute(Window(0, 0, stack.spec.grid.width, stack.spec.grid.height))
    matrix = full.reshape(full.shape[0], -1).T
    rng = np.random.default_rng(0)
    take = rng.choice(matrix.shape[0], 600, replace=False)
    labels = (matrix[take, stack.names.index("p1_NDBI")] > np.nanmedian(matrix[:, 0])).astype(int)
    labels[:2] = [0, 1]
    clf = SettlementClassifier("hgb", max_iter=15, features=stack.names).fit(matrix[take], labels)
    return SettlementMap(clf, stack, change=True), full


def test_tiled_output_equals_the_untiled_computation_exactly(settlement_job, tmp_path):
    job, full = settlement_job
    whole = job.compute(Window(0, 0, 88, 72))
    assert np.isfinite(whole[0]).mean() > 0.99
    tiled = _read(run_map(job, tmp_path / "p.tif", tile=16, workers=0, progress=False))
    np.testing.assert_array_equal(tiled, whole)  # texture near tile edges sees its halo
    # the feature stack on its own, cut in 16 px tiles, is the one computed on the whole scene
    stack = job.stack
    features = _read(run_map(stack, tmp_path / "f.tif", tile=16, workers=0, progress=False))
    np.testing.assert_array_equal(features, full)


def test_an_interrupted_run_resumes_with_only_the_missing_tiles(tmp_path):
    out = tmp_path / "m.tif"
    with pytest.raises(KeyboardInterrupt):
        run_map(RowColMap(fail_at=5), out, tile=16, workers=0, progress=False)
    assert not out.exists()  # no half-written map
    kept = sorted(p.name for p in tile_folder(out).glob("*.tif"))
    assert len(kept) == 5  # 3 x 4 = 12 tiles, 5 finished before the interruption
    log = tmp_path / "computed.txt"
    run_map(RowColMap(log=log), out, tile=16, workers=0, progress=False)
    assert len(log.read_text().split()) == 12 - 5
    clean = run_map(RowColMap(), tmp_path / "clean.tif", tile=16, workers=0, progress=False)
    assert out.read_bytes() == clean.read_bytes()


def test_a_changed_job_starts_over_instead_of_mixing_tiles(tmp_path):
    out = tmp_path / "m.tif"
    with pytest.raises(KeyboardInterrupt):
        run_map(RowColMap(fail_at=3), out, tile=16, workers=0, progress=False)
    log = tmp_path / "computed.txt"
    run_map(RowColMap(log=log), out, tile=32, workers=0, progress=False)  # another tile size
    assert len(log.read_text().split()) == 2 * 2


def test_a_foreign_folder_in_the_tiles_place_is_refused(tmp_path):
    out = tmp_path / "m.tif"
    tile_folder(out).mkdir()
    (tile_folder(out) / "mine.txt").write_text("user data")
    with pytest.raises(HumanscapeError, match="not a humanscape tile folder"):
        run_map(RowColMap(), out, workers=0, progress=False)
    assert (tile_folder(out) / "mine.txt").exists()


def test_two_dask_workers_write_the_same_bytes_as_one(settlement_job, tmp_path):
    job, _ = settlement_job
    one = run_map(job, tmp_path / "one.tif", tile=24, workers=1, progress=False)
    two = run_map(job, tmp_path / "two.tif", tile=24, workers=2, progress=False)
    local = run_map(job, tmp_path / "here.tif", tile=24, workers=0, progress=False)
    assert one.read_bytes() == two.read_bytes() == local.read_bytes()


def test_the_tile_of_a_killed_worker_is_retried(tmp_path):
    marker = tmp_path / "died.txt"
    out = run_map(DiesOnce(marker), tmp_path / "m.tif", tile=16, workers=2, progress=False)
    assert marker.exists()  # a worker did die on that tile
    clean = run_map(RowColMap(), tmp_path / "clean.tif", tile=16, workers=0, progress=False)
    np.testing.assert_array_equal(_read(out), _read(clean))


def test_a_scheduler_that_does_not_answer_fails_fast_and_writes_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and nothing listens once the socket is closed
    out = tmp_path / "m.tif"
    start = time.perf_counter()
    with pytest.raises(HumanscapeError, match="no Dask scheduler answers") as err:
        run_map(RowColMap(), out, scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=2)
    assert time.perf_counter() - start < 15
    assert err.value.path == f"tcp://127.0.0.1:{port}"
    assert not out.exists() and not tile_folder(out).exists()


def test_inputs_a_worker_cannot_read_are_refused_before_any_tile(tmp_path):
    class Unreadable(RowColMap):
        def sources(self) -> list[str]:
            return [str(tmp_path / "missing.tif")]

    with pytest.raises(HumanscapeError, match="cannot read this input") as err:
        run_map(Unreadable(), tmp_path / "m.tif", tile=16, workers=2, progress=False)
    assert err.value.path == str(tmp_path / "missing.tif")
    assert "shared file system" in err.value.fix
    assert not list(tile_folder(tmp_path / "m.tif").glob("*.tif"))


def test_a_full_disk_is_a_clean_error_and_keeps_finished_tiles(tmp_path, monkeypatch):
    put = engine_module.TileStore.put
    calls = {"n": 0}

    def filling(self, window, array):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        put(self, window, array)

    monkeypatch.setattr(engine_module.TileStore, "put", filling)
    out = tmp_path / "m.tif"
    with pytest.raises(HumanscapeError, match="no space left") as err:
        run_map(RowColMap(), out, tile=16, workers=0, progress=False)
    assert "run the same command again" in err.value.fix
    assert not out.exists()
    assert len(list(tile_folder(out).glob("*.tif"))) == 3


def test_a_wrongly_shaped_tile_is_a_bug_report_not_a_map(tmp_path):
    class Wrong(RowColMap):
        def compute(self, window):
            return super().compute(window)[:1]

    with pytest.raises(HumanscapeError, match="shape"):
        run_map(Wrong(), tmp_path / "m.tif", tile=16, workers=0, progress=False)
