"""humanscape: people, prosperity, settlements, migration and commuting from satellite imagery.

The package follows the data flow of ``DESIGN.md``::

    scene files -> sensor band table (geo.sensors) -> aligned band stack (geo.inputs, geo.scene)
    -> temporal composite (geo.composite) -> spectral indices (geo.indices)
    -> chips per grid cell (geo.grid) -> encoders (models) -> task models (tasks)
    -> metrics, maps, GeoTIFF / GeoPackage / CSV.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# Bound GDAL's block cache (default 5 % of RAM) so that memory stays flat as rasters grow;
# a user's own setting wins.
os.environ.setdefault("GDAL_CACHEMAX", "256")

from humanscape.errors import HumanscapeError

try:
    __version__ = version("humanscape")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["HumanscapeError", "__version__"]
