"""Where the raster names were imported from before ``geo`` was split by job; they live in:

- :mod:`humanscape.geo.grid`: pixel grids (:class:`GridSpec`) and cell grids;
- :mod:`humanscape.geo.files`: local paths, URLs and ``/vsi`` paths; opening one raster file;
- :mod:`humanscape.geo.inputs`: finding a scene's files and opening the scene (:func:`open_scene`);
- :mod:`humanscape.geo.scene`: the :class:`Scene`, read window by window;
- :mod:`humanscape.geo.align`: one grid for a scene's bands; auxiliary rasters on a grid;
- :mod:`humanscape.geo.write`: map descriptions, the windowed-map contract, atomic writers.
"""

from humanscape.geo.align import AlignedRaster, target_grid
from humanscape.geo.files import RASTER_SUFFIXES, GdalPath, open_raster
from humanscape.geo.grid import DEFAULT_BLOCK, GridSpec, overview_grid
from humanscape.geo.inputs import SceneReader, expand_inputs, open_grid, open_scene
from humanscape.geo.scene import BandSource, Scene, read_padded, resampling_for
from humanscape.geo.write import (
    RasterSpec,
    RasterWriter,
    WindowedMap,
    creation_options,
    file_token,
    write_map,
    write_raster,
)

__all__ = [
    "DEFAULT_BLOCK",
    "RASTER_SUFFIXES",
    "AlignedRaster",
    "BandSource",
    "GdalPath",
    "GridSpec",
    "RasterSpec",
    "RasterWriter",
    "Scene",
    "SceneReader",
    "WindowedMap",
    "creation_options",
    "expand_inputs",
    "file_token",
    "open_grid",
    "open_raster",
    "open_scene",
    "overview_grid",
    "read_padded",
    "resampling_for",
    "target_grid",
    "write_map",
    "write_raster",
]
