"""Country-scale maps: one tiled engine (resumable, on Dask) and fast CNN chip inference.

- :func:`run_map` (:mod:`humanscape.scale.engine`) computes any
  :class:`~humanscape.geo.write.WindowedMap` tile by tile, in this process or on a Dask cluster
  (:mod:`humanscape.scale.cluster`), resumes from the tiles of an interrupted run and writes one
  GeoTIFF;
- :class:`~humanscape.scale.chips.ChipMap` runs a CNN (an encoder's embeddings or a chip model's
  predictions) over every chip of a scene as such a map.
"""

from humanscape.scale.engine import DEFAULT_TILE, IN_PROCESS, Execution, run_map, tile_folder

__all__ = ["DEFAULT_TILE", "IN_PROCESS", "Execution", "run_map", "tile_folder"]
