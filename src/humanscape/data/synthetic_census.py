"""A migration test set written from a :class:`~humanscape.data.synthetic.SyntheticWorld`:
census table, municipal polygons, scene and image tiles (Runfola et al. 2022's inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np

from humanscape.data.synthetic import SyntheticWorld


def write_census_inputs(
    world: SyntheticWorld,
    folder: str | Path,
    *,
    tile: int = 32,
    stride: int | None = None,
    bands: Sequence[str] = ("B02", "B03", "B04", "B08"),
    hidden: Sequence[str] = ("urban_share",),
    progress: bool = False,
) -> dict[str, Path]:
    """Write a migration test set of ``world`` into ``folder``: census, polygons, image tiles.

    ``census.csv`` (:meth:`SyntheticWorld.census` with ``hidden`` columns left out, plus a
    ``region`` column: the world's left or right half, for transfer tests), ``municipalities.gpkg``
    (the Voronoi polygons, ``municipality`` ids), ``scene.tif`` and ``tiles/chips.csv`` (``tile`` px
    tiles every ``stride`` px (default ``tile / 2``), a quarter of each inside the municipality; a ``municipality``
    column).
    """
    from humanscape.data.chips import chip_districts
    from humanscape.geo.inputs import open_scene
    from humanscape.geo.vector import write_vector

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table, _ = world.census(hidden=hidden)
    districts = world.districts()
    middle = world.origin[0] + world.width * world.pixel_size / 2
    table = table.drop(columns=["rate"])  # the truth behind the target, not a census variable
    table.insert(1, "region", np.where(districts["x"].to_numpy() < middle, "west", "east"))
    table.to_csv(folder / "census.csv", index=False)
    polygons = gpd.GeoDataFrame(
        {"municipality": table["municipality"].to_numpy()},
        geometry=districts.geometry.to_numpy(),
        crs=districts.crs,
    )
    write_vector(polygons, folder / "municipalities.gpkg")
    scene = world.write_scene(folder / "scene.tif", bands=bands)
    chip_districts(
        open_scene(scene, sensor=world.sensor),
        polygons,
        folder / "tiles",
        column="municipality",
        size=tile,
        stride=stride or max(1, tile // 2),
        min_overlap=0.25,
        progress=progress,
    )
    return {
        "census": folder / "census.csv",
        "polygons": folder / "municipalities.gpkg",
        "scene": scene,
        "tiles": folder / "tiles" / "chips.csv",
    }
