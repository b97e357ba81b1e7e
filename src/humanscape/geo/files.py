"""Raster files: local paths, URLs and GDAL virtual paths, and opening one with a clear error.

A local file is a :class:`pathlib.Path`. A file GDAL reads itself, an ``http(s)://``, ``s3://``,
``gs://`` or ``az://`` URL or a ``/vsi...`` path (``/vsicurl/``, ``/vsis3/``, ``/vsimem/``,
``/vsizip/`` ...), is a :class:`GdalPath`: handed to GDAL exactly as given (a URL becomes the
matching ``/vsi...`` prefix, a signed URL keeps its query string), while its name (``.name``,
``.stem``, ``.suffix``) is the file name in the URL's path, so that band and product names are
recognised as for a local file. ``pathlib.Path`` would collapse ``https://`` to ``https:/``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import rasterio
from rasterio.errors import RasterioIOError

from humanscape.errors import EmptyInputError, NotARasterError

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
#: URL schemes and the GDAL virtual file system that reads them.
_SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}


def is_remote(text: str | os.PathLike[str]) -> bool:
    """Whether GDAL, not the local file system, resolves this path (a URL or a ``/vsi`` path)."""
    if isinstance(text, GdalPath):
        return True
    value = os.fspath(text) if not isinstance(text, str) else text
    return value.startswith("/vsi") or urlsplit(value).scheme.lower() in _SCHEMES


class GdalPath(PurePosixPath):
    """A path GDAL opens as given; its name parts come from the path inside the URL.

    ``str()`` and ``os.fspath()`` give the GDAL path (``/vsicurl/https://host/a/T33_B04.tif?sig``);
    ``.name`` is ``T33_B04.tif``. Paths derived from it (``.parent``, ``/``) are plain names for
    display and never exist: metadata files beside a remote band are not looked up.
    """

    _gdal: str

    def __new__(cls, text: str) -> GdalPath:
        gdal = _gdal_path(text)
        inner = gdal.split("/", 2)[2] if gdal.startswith("/vsi") else gdal
        parts = urlsplit(inner) if "://" in inner else None
        name_path = parts.path if parts is not None else inner
        obj = super().__new__(cls, "/" + name_path.lstrip("/"))
        obj._gdal = gdal
        return obj

    def __str__(self) -> str:
        return getattr(self, "_gdal", None) or super().__str__()

    def __fspath__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"GdalPath({str(self)!r})"

    def exists(self) -> bool:
        """Assumed true for the path itself (GDAL says otherwise when opening it)."""
        return hasattr(self, "_gdal")

    def is_file(self) -> bool:
        return hasattr(self, "_gdal")

    def is_dir(self) -> bool:
        return False


def _gdal_path(text: str) -> str:
    if text.startswith("/vsi"):
        return text
    scheme = urlsplit(text).scheme.lower()
    prefix = _SCHEMES.get(scheme)
    if prefix is None:
        return text
    if prefix == "/vsicurl/":
        return prefix + text  # GDAL reads the whole URL, query string (signature) included
    return prefix + text.split("://", 1)[1]


def input_path(text: str | os.PathLike[str]) -> Path | GdalPath:
    """A local :class:`~pathlib.Path`, or a :class:`GdalPath` for a URL or ``/vsi`` path."""
    if isinstance(text, GdalPath | Path):
        return text
    value = os.fspath(text)
    return GdalPath(value) if is_remote(value) else Path(value)


def decode_threads() -> str:
    """Threads GDAL may use to decompress the blocks of one windowed read (GTiff ``NUM_THREADS``).

    All cores in a plain process; on a Dask worker the cores it was given (the nanny sets
    ``OMP_NUM_THREADS``), so that workers do not oversubscribe the machine.
    """
    given = os.environ.get("OMP_NUM_THREADS", "")
    return given if given.isdigit() else "ALL_CPUS"


def open_raster(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    """Open a raster for reading; a missing, foreign or broken file is refused by name."""
    path = input_path(path)
    if not isinstance(path, GdalPath):
        if not path.exists():
            raise EmptyInputError("file does not exist", path=path, fix="check the path")
        if path.is_dir():
            raise NotARasterError(
                "is a folder, not a raster file",
                path=path,
                fix="point at a GeoTIFF / JPEG2000 file",
            )
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return rasterio.open(path, num_threads=decode_threads())
        return rasterio.open(path)
    except (RasterioIOError, OSError) as exc:
        if isinstance(path, GdalPath):
            raise NotARasterError(
                f"GDAL cannot read it ({' '.join(str(exc).split())[:160]})",
                path=path,
                fix="check the URL (reachable, signed, not expired) or the /vsi path",
            ) from exc
        raise NotARasterError(
            "not a readable raster (GeoTIFF, COG or JPEG2000 expected)",
            path=path,
            fix="check that the file is a complete raster; re-download or re-export it",
        ) from exc
