"""True-colour quicklook PNGs of scenes, read at reduced resolution (memory independent of scene size)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from humanscape._atomic import atomic_output
from humanscape.geo.raster import Scene, overview_grid


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


def scalar_quicklook(
    raster: str | Path,
    path: str | Path,
    *,
    band: int = 1,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "magma",
    max_size: int = 2048,
) -> Path:
    """Colour-mapped PNG of one band of a raster (e.g. a probability map), NaN transparent, atomically."""
    import matplotlib

    from humanscape.geo.raster import AlignedRaster, open_grid

    grid = open_grid(raster)
    coarse = overview_grid(grid, max_size)
    with AlignedRaster(raster, coarse, band=band, resampling=_average()) as reader:
        values = reader.read().astype(np.float32)
    rgba = matplotlib.colormaps[cmap](np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0, 1))
    rgba[..., 3] = np.isfinite(values)
    image = Image.fromarray((rgba * 255).astype(np.uint8), mode="RGBA")
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def _average():
    from rasterio.enums import Resampling

    return Resampling.average
