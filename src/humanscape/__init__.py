"""humanscape: people, prosperity, settlements, migration and commuting from satellite imagery.

The package follows the data flow of ``DESIGN.md``::

    scene files -> sensor band table (geo.sensors) -> aligned band stack (geo.inputs, geo.scene)
    -> temporal composite (geo.composite) -> spectral indices (geo.indices)
    -> chips per grid cell (geo.grid) -> encoders (models) -> task models (tasks)
    -> metrics, maps, GeoTIFF / GeoPackage / CSV.

Importing humanscape changes nothing outside it: the ``humanscape`` command bounds GDAL's block
cache (``GDAL_CACHEMAX=256`` MB unless set) for the process and its Dask workers.
"""

from importlib.metadata import PackageNotFoundError, version

from humanscape.errors import HumanscapeError

try:
    __version__ = version("humanscape")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["HumanscapeError", "__version__"]
