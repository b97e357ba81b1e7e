"""True-colour quicklook PNGs of scenes, read at reduced resolution (memory independent of scene size)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from humanscape._atomic import atomic_output
from humanscape.geo.raster import GridSpec, Scene


def overview_grid(grid: GridSpec, max_size: int) -> GridSpec:
    """A coarser grid over the same extent whose longer side is at most ``max_size`` pixels."""
    factor = max(1, int(np.ceil(max(grid.width, grid.height) / max_size)))
    if factor == 1:
        return grid
    return GridSpec.from_bounds(grid.crs, grid.bounds, grid.res[0] * factor)


def stretch(rgb: np.ndarray, percentiles: tuple[float, float] = (2, 98)) -> np.ndarray:
    """Per-band percentile stretch of ``(3, rows, cols)`` floats to uint8 (NaN -> 0)."""
    out = np.zeros(rgb.shape, np.uint8)
    for i, band in enumerate(rgb):
        finite = band[np.isfinite(band)]
        if finite.size == 0:
            continue
        lo, hi = np.percentile(finite, percentiles)
        scaled = np.clip((band - lo) / max(hi - lo, 1e-6), 0, 1)
        out[i] = np.nan_to_num(scaled * 255).astype(np.uint8)
    return out


def rgb_quicklook(
    scene: Scene, path: str | Path, *, bands: Sequence[str] | None = None, max_size: int = 2048
) -> Path:
    """Write a true-colour PNG of ``scene`` (sensor RGB bands by default), atomically."""
    coarse = overview_grid(scene.grid, max_size)
    view = scene if coarse is scene.grid else scene.aligned_to(coarse)
    rgb = view.read(list(bands or scene.sensor.rgb))
    image = Image.fromarray(np.moveaxis(stretch(rgb), 0, -1), mode="RGB")
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
