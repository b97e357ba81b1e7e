"""True-colour quicklook PNGs of scenes, read at reduced resolution (memory independent of scene size)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from humanscape._atomic import atomic_output
from humanscape.geo.grid import GridSpec, overview_grid
from humanscape.geo.scene import Scene


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
    title: str,
    units: str,
    band: int = 1,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cmap: str = "magma",
    max_size: int = 1600,
) -> Path:
    """A map of one band of a raster as a PNG: title, colour bar with units, scale bar, CRS axes.

    The raster is read at reduced resolution (area average, memory independent of its size);
    NaN is shown transparent. Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from humanscape.geo.align import AlignedRaster
    from humanscape.geo.inputs import open_grid

    grid = open_grid(raster)
    coarse = overview_grid(grid, max_size)
    with AlignedRaster(raster, coarse, band=band, resampling=_average()) as reader:
        values = reader.read().astype(np.float32)
    left, bottom, right, top = coarse.bounds
    width_in = 9.0
    fig, ax = plt.subplots(figsize=(width_in, width_in * coarse.height / coarse.width + 1.2))
    image = ax.imshow(
        np.ma.masked_invalid(values),
        extent=(left, right, bottom, top),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=11)
    ax.ticklabel_format(useOffset=False, style="plain")
    unit = "m" if coarse.crs.is_projected else "deg"
    ax.set_xlabel(f"x ({coarse.crs.to_string()}, {unit})")
    ax.set_ylabel(f"y ({unit})")
    fig.colorbar(image, ax=ax, label=units, shrink=0.8)
    if coarse.crs.is_projected:
        _scale_bar(ax, right - left)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def _scale_bar(ax, span: float, color: str = "white") -> None:  # type: ignore[no-untyped-def]
    """A scale bar (white by default) of a round length (1, 2 or 5 x 10^k m, about a quarter of ``span``)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    length = 10 ** np.floor(np.log10(span / 4))
    length *= 5 if span / 4 >= 5 * length else (2 if span / 4 >= 2 * length else 1)
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    ax.add_artist(
        AnchoredSizeBar(ax.transData, length, label, "lower left", color=color, frameon=False)
    )


def _average():
    from rasterio.enums import Resampling

    return Resampling.average


def side_by_side(
    panels: Sequence[tuple[str, np.ndarray]],
    grid: GridSpec,
    path: str | Path,
    *,
    title: str,
    units: str,
    vmin: float = 0.0,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> Path:
    """Two or more maps of one grid next to each other: one colour scale, colour bar with units,
    scale bar, CRS axes (e.g. an estimated and a census population grid). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    left, bottom, right, top = grid.bounds
    if vmax is None:
        finite = np.concatenate([a[np.isfinite(a)].ravel() for _, a in panels])
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    n = len(panels)
    aspect = grid.height / grid.width
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 5.2 * aspect + 1.6), squeeze=False)
    image = None
    for ax, (label, values) in zip(axes[0], panels, strict=True):
        image = ax.imshow(
            np.ma.masked_invalid(values),
            extent=(left, right, bottom, top),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.set_title(label, fontsize=10)
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=7)
        unit = "m" if grid.crs.is_projected else "deg"
        ax.set_xlabel(f"x ({grid.crs.to_string()}, {unit})", fontsize=8)
        if grid.crs.is_projected:
            _scale_bar(ax, right - left)
    fig.suptitle(title, fontsize=11)
    fig.colorbar(image, ax=list(axes[0]), label=units, shrink=0.8)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
