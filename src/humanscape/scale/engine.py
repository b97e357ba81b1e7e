"""The tiled map engine: every map humanscape writes, cut into tiles, resumable, on Dask.

A map is a :class:`~humanscape.geo.write.WindowedMap`: an output description (grid, bands, units)
and ``compute(window)``, which reads what it needs around the window itself (a halo for texture,
the chips of a CNN) so that the result never depends on how the grid is cut. :func:`run_map`

1. cuts the output grid into ``tile x tile`` windows (the tasks);
2. keeps finished tiles in ``<out>.tiles/`` (one small compressed GeoTIFF per tile plus a
   ``manifest.json`` with a fingerprint of the job: inputs, model, options, tile size). A run that
   is interrupted (Ctrl-C, a killed job, a full disk) keeps them, and the same command run again
   computes only the missing tiles; a changed job (another model, other inputs) starts over;
3. runs the missing tiles in this process or on Dask (:mod:`humanscape.scale.cluster`): the job
   (model included) is scattered to every worker once, tiles are submitted a few per worker at a
   time (memory on the client stays bounded by the tiles in flight), and results come back to the
   client, which writes them as they complete. Dask retries the tile of a worker that died
   (``distributed.scheduler.allowed-failures``, default 3); a tile that kills workers again and
   again stops the run with an error, never with a map that silently misses tiles;
4. assembles the output GeoTIFF from the tiles, in row-major order (the same bytes whatever the
   number of workers or the order tiles finished in), writes it atomically and removes the tile
   folder.

Memory is flat in the scene size: the client holds the tiles in flight, each worker one tile and
its halo, the assembly one tile.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window
from tqdm.auto import tqdm

from humanscape import __version__
from humanscape.errors import HumanscapeError
from humanscape.geo.write import RasterSpec, WindowedMap
from humanscape.scale.cluster import check_sources, connect

log = logging.getLogger(__name__)

#: Default tile side in output pixels (a 1024 x 1024 float32 band is 4 MiB).
DEFAULT_TILE = 1024
#: Tiles in flight per worker thread: enough to keep workers busy while the client writes.
IN_FLIGHT_PER_THREAD = 2
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Execution:
    """How a command runs its maps: ``workers`` (0 = this process, ``None`` = one Dask worker per
    core), an existing Dask ``scheduler``, the ``tile`` side (``None``: the job's default), and
    whether maps are written as Cloud-Optimised GeoTIFFs with overviews (``cog``, the default)."""

    workers: int | None = 0
    scheduler: str | None = None
    tile: int | None = None
    progress: bool = True
    cog: bool = True

    def run(
        self,
        job: WindowedMap,
        out: str | Path,
        *,
        desc: str,
        tile: int | None = None,
        cog: bool | None = None,
    ) -> Path:
        """:func:`run_map` with these settings (``tile``: the job's default when not set here;
        ``cog``: this execution's unless given, ``False`` for stacks that are inputs, not maps)."""
        return run_map(
            job,
            out,
            tile=self.tile or tile or DEFAULT_TILE,
            workers=self.workers,
            scheduler=self.scheduler,
            progress=self.progress,
            desc=desc,
            cog=self.cog if cog is None else cog,
        )


IN_PROCESS = Execution()


#: Tile folders that runs of this process left behind for a resume (the CLI names them).
KEPT: list[Path] = []


def _keep(store: TileStore) -> None:
    if store.folder.exists() and any(store.folder.glob("*.tif")):
        KEPT.append(store.folder)


def tile_folder(out: str | Path) -> Path:
    """Where the finished tiles of ``out`` are kept until the map is assembled."""
    out = Path(out)
    return out.with_name(out.name + ".tiles")


def fingerprint(job: WindowedMap, tile: int) -> str:
    """What the tiles depend on: the job's token, the output description and the tile size."""
    spec = job.spec
    described = {
        "token": job.token(),
        "grid": [spec.grid.crs.to_string() if spec.grid.crs else None, tuple(spec.grid.transform)]
        + [spec.grid.width, spec.grid.height],
        "bands": list(spec.band_names),
        "dtype": spec.dtype,
        "tile": tile,
        "humanscape": __version__,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def _disk_error(exc: OSError, out: Path, kept: int) -> HumanscapeError:
    return HumanscapeError(
        f"no space left on the device ({exc.strerror or exc}); {kept} finished tile(s) are kept "
        f"in {tile_folder(out)}",
        path=out,
        fix="free space (or give --out on another disk) and run the same command again to resume",
    )


class TileStore:
    """Finished tiles of one map in ``<out>.tiles/``, written atomically one GeoTIFF per tile."""

    def __init__(self, out: Path, spec: RasterSpec, key: str) -> None:
        self.out = out
        self.spec = spec
        self.key = key
        self.folder = tile_folder(out)

    @staticmethod
    def name(window: Window) -> str:
        return f"{int(window.row_off):09d}_{int(window.col_off):09d}.tif"

    def finished(self, resume: bool) -> set[str]:
        """Names of the tiles already finished for this job (empty when starting over); reads only."""
        manifest = self.folder / MANIFEST
        if not self.folder.exists():
            return set()
        if not manifest.exists():
            if any(self.folder.iterdir()):
                raise HumanscapeError(
                    "exists and is not a humanscape tile folder",
                    path=self.folder,
                    fix="move it away: humanscape keeps the finished tiles of --out there",
                )
            return set()
        if not resume or json.loads(manifest.read_text()).get("fingerprint") != self.key:
            return set()
        return {p.name for p in self.folder.glob("*.tif") if not p.name.startswith(".")}

    def start(self, finished: set[str]) -> None:
        """Create the folder, or clear it when it holds tiles of another run (or resume is off)."""
        if self.folder.exists() and not finished:
            if (self.folder / MANIFEST).exists() and any(self.folder.glob("*.tif")):
                log.warning(
                    "%s: tiles of an earlier run are discarded (starting over)", self.folder
                )
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST).write_text(
            json.dumps({"fingerprint": self.key, "output": str(self.out)}, indent=2)
        )

    def put(self, window: Window, array: np.ndarray) -> None:
        grid = self.spec.grid.window_grid(window)
        tmp = self.folder / f".{uuid.uuid4().hex[:8]}.tmp.tif"
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": self.spec.count,
            "dtype": self.spec.dtype,
            "crs": grid.crs,
            "transform": grid.transform,
            "nodata": self.spec.nodata,
            "compress": "deflate",
            "zlevel": 1,
        }
        try:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(array.astype(self.spec.dtype, copy=False))
            os.replace(tmp, self.folder / self.name(window))
        finally:
            if tmp.exists():
                tmp.unlink()

    def get(self, window: Window) -> np.ndarray:
        with rasterio.open(self.folder / self.name(window)) as src:
            return src.read()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def compute_tile(job: WindowedMap, window: Window) -> np.ndarray:
    """One tile of ``job``, checked: ``(count, height, width)`` in the output's data type."""
    array = np.asarray(job.compute(window))
    if array.ndim == 2:
        array = array[None]
    want = (job.spec.count, int(window.height), int(window.width))
    if array.shape != want:
        raise HumanscapeError(
            f"a tile came back with shape {array.shape}, expected {want} (a bug in the map job)"
        )
    return array.astype(job.spec.dtype, copy=False)


def run_map(
    job: WindowedMap,
    out: str | Path,
    *,
    tile: int = DEFAULT_TILE,
    workers: int | None = None,
    scheduler: str | None = None,
    cog: bool = False,
    resume: bool = True,
    progress: bool = True,
    desc: str | None = None,
    connect_timeout: float | None = None,
) -> Path:
    """Compute ``job`` tile by tile (resumable, on Dask) and write ``out``; see the module docstring.

    ``workers``: 0 runs the tiles in this process; N starts a LocalCluster of N single-threaded
    workers; ``None`` (default) is one worker per core, except for jobs that declare
    ``in_process_by_default`` (CNN chip maps: PyTorch uses every core of this process).
    ``scheduler``: the address of an existing Dask cluster (``workers`` is then ignored).
    """
    out = Path(out)
    if tile < 1:
        raise HumanscapeError(f"--tile must be at least 1, got {tile}", fix="use e.g. --tile 1024")
    spec = job.spec
    windows = list(spec.grid.windows(tile))
    store = TileStore(out, spec, fingerprint(job, tile))
    done = store.finished(resume)
    todo = [w for w in windows if store.name(w) not in done]
    if len(todo) < len(windows):
        log.info(
            "resuming %s: %d of %d tiles were finished before",
            out,
            len(windows) - len(todo),
            len(windows),
        )
    kwargs = {} if connect_timeout is None else {"timeout": connect_timeout}
    if workers is None and scheduler is None and getattr(job, "in_process_by_default", False):
        workers = 0
    bar = None
    try:
        with connect(workers, scheduler, tasks=len(todo), **kwargs) as client:
            store.start(done)
            bar = tqdm(
                total=len(windows),
                initial=len(windows) - len(todo),
                desc=desc or out.name,
                unit="tile",
                disable=not progress,
            )
            if client is None:
                for window in todo:
                    store.put(window, compute_tile(job, window))
                    bar.update()
            else:
                _run_on_dask(client, job, todo, store, bar)
    except OSError as exc:
        _keep(store)
        if exc.errno == errno.ENOSPC:
            raise _disk_error(exc, out, bar.n if bar is not None else 0) from None
        raise
    except BaseException:  # interrupted (Ctrl-C, SIGTERM) or failed: the tiles stay for a resume
        _keep(store)
        raise
    finally:
        if bar is not None:
            bar.close()
    missing = [w for w in windows if not (store.folder / store.name(w)).exists()]
    if missing:  # pragma: no cover - guarded: every tile is either written or an error was raised
        raise HumanscapeError(
            f"{len(missing)} tile(s) missing after the run; the map is not written",
            path=out,
            fix="run the same command again to compute them",
        )
    try:
        with spec.writer(out, cog=cog) as dst:
            for window in windows:
                dst.write(store.get(window), window)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_error(exc, out, len(windows)) from None
        raise
    store.remove()
    return out


def _run_on_dask(
    client: Any, job: WindowedMap, todo: list[Window], store: TileStore, bar: Any
) -> None:
    """Tiles as Dask tasks, a bounded number in flight, written by the client as they complete."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    check_sources(client, job.sources())
    shipped = client.scatter(job, broadcast=True, hash=False)
    threads = max(1, sum(client.nthreads().values()))
    queue = iter(todo)
    run = uuid.uuid4().hex[:8]

    def submit(window: Window) -> Any:
        key = f"humanscape-tile-{run}-{int(window.row_off)}-{int(window.col_off)}"
        future = client.submit(compute_tile, shipped, window, key=key, pure=False)
        where[future.key] = window
        live[future.key] = future
        return future

    where: dict[str, Window] = {}
    live: dict[str, Any] = {}
    first = [submit(w) for w in itertools.islice(queue, IN_FLIGHT_PER_THREAD * threads)]
    pending = as_completed(first, loop=client.loop)
    try:
        for future in pending:
            window = where.pop(future.key)
            live.pop(future.key)
            try:
                array = future.result()
            except KilledWorker as exc:
                raise HumanscapeError(
                    f"the tile at row {int(window.row_off)}, column {int(window.col_off)} killed "
                    f"its worker several times ({exc}); "
                    f"{bar.n} finished tile(s) are kept in {store.folder}",
                    path=store.out,
                    fix="give the workers more memory or use a smaller --tile, then run the same "
                    "command again to resume",
                ) from None
            except FutureCancelledError:
                raise HumanscapeError(
                    "the Dask cluster cancelled a tile (the scheduler or the client shut down); "
                    f"{bar.n} finished tile(s) are kept in {store.folder}",
                    path=store.out,
                    fix="run the same command again to resume",
                ) from None
            store.put(window, array)
            future.release()
            bar.update()
            nxt = next(queue, None)
            if nxt is not None:
                pending.add(submit(nxt))
    finally:
        if live:
            client.cancel(list(live.values()))
