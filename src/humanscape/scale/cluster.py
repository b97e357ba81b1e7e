"""Where tiles run: this process, a local Dask cluster, or an existing Dask cluster.

- ``workers=0``: every tile in this process, one after the other (debugging, tiny jobs);
- ``workers=N`` (default: one per core): a :class:`dask.distributed.LocalCluster` of ``N`` worker
  processes with one thread each (the nanny sets ``OMP_NUM_THREADS=1``, so scikit-learn, BLAS and
  PyTorch do not oversubscribe the cores). A job with a single tile runs in this process: starting
  processes for one tile only costs time;
- ``scheduler=ADDRESS``: an existing cluster (``dask scheduler`` + ``dask worker`` over SSH, Dask
  Kubernetes, dask-jobqueue on an HPC queue, ...). A scheduler that does not answer within
  ``timeout`` seconds is an error before anything is computed.

Workers of an existing cluster need the humanscape package (same version) and must be able to read
every input at the path the client gives (a shared file system, or a URL GDAL reads such as
``/vsis3/bucket/scene.tif``); :func:`check_sources` asks every worker before the first tile.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from humanscape.errors import HumanscapeError

log = logging.getLogger(__name__)

#: Seconds to wait for a scheduler given with ``--scheduler`` before giving up.
CONNECT_TIMEOUT_S = 5.0


def available_cores() -> int:
    """Cores this process may use (the CPU affinity mask, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def connect(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    tasks: int = 2,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or ``None`` to run in this process); see the module docstring."""
    if workers is not None and workers < 0:
        raise HumanscapeError(
            f"--workers must be 0 or more, got {workers}",
            fix="use --workers 0 (this process), 1, 2, ... or leave it out (one per core)",
        )
    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise HumanscapeError(
                f"no Dask scheduler answers at this address within {timeout:g} s ({exc})",
                path=scheduler,
                fix="start the scheduler (dask scheduler) and check host and port "
                "(tcp://host:8786), or leave out --scheduler to run on this machine",
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    n = available_cores() if workers is None else workers
    if n == 0 or tasks <= 1:
        yield None
        return
    import dask
    from distributed import Client, LocalCluster

    # One thread per worker for OpenMP / BLAS, as Dask sets by default, but without Dask's
    # MALLOC_TRIM_THRESHOLD_: it turns off glibc's adaptive mmap threshold, so that every large
    # numpy temporary is mapped and unmapped again (page faults): tiles ran 3x slower.
    environ = {k: 1 for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=min(n, tasks),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # shutdown races between nanny and scheduler are noise
        )
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _unreadable(paths: Sequence[str]) -> tuple[str, str] | None:
    """On a worker: the first input it cannot open, with the reason (``None`` if all open)."""
    import rasterio

    for path in paths:
        try:
            if Path(path).suffix.lower() in (".tif", ".tiff", ".jp2", ".vrt", ".img"):
                with rasterio.open(path):
                    pass
            elif Path(path).is_dir():
                os.listdir(path)
            else:
                with open(path, "rb"):
                    pass
        except Exception as exc:  # any reason is reported to the user
            return path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def check_sources(client: Any, paths: Sequence[str]) -> None:
    """Refuse to start when a worker cannot read an input (names the worker and the file)."""
    if not paths:
        return
    answers = client.run(_unreadable, list(paths))
    for worker, problem in sorted(answers.items()):
        if problem is not None:
            path, reason = problem
            raise HumanscapeError(
                f"worker {worker} cannot read this input ({reason})",
                path=path,
                fix="put the inputs on a path every worker sees (a shared file system, or a URL "
                "GDAL reads such as /vsis3/...) and give that path",
            )
