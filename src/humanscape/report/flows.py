"""Figures of the flows task: a flow map and the per-city evaluation plots.

- :func:`flow_map_png`: regions shaded by predicted outgoing commuters (colour bar in commuters),
  the strongest origin-destination flows as lines from centroid to centroid (width and colour
  by flow, second colour bar in commuters), a title and a scale bar, in a local metric CRS.
- :func:`evaluation_png`: observed versus predicted pair flows (log-log density, colour bar in
  pairs) and CPC by distance band, for one city.

Both write to the path they are given (callers make the write atomic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm

from humanscape.report.quicklook import _scale_bar


def _local(regions: Any) -> Any:
    return regions if regions.crs.is_projected else regions.to_crs(regions.estimate_utm_crs())


def flow_map_png(city: Any, predicted: np.ndarray, path: Path, *, top: int = 200) -> Path:
    """Map of the ``top`` strongest flows between different regions over the regions (module doc)."""
    regions = _local(city.regions)
    flows = np.asarray(predicted, np.float64).copy()
    np.fill_diagonal(flows, 0.0)
    fig, ax = plt.subplots(figsize=(8, 7))
    regions.assign(out=flows.sum(axis=1)).plot(
        column="out",
        ax=ax,
        cmap="Greys",
        edgecolor="#999999",
        linewidth=0.3,
        legend=True,
        legend_kwds={
            "label": "predicted commuters leaving the region (to other regions)",
            "shrink": 0.6,
        },
    )
    centroids = regions.geometry.centroid
    xy = np.column_stack([centroids.x, centroids.y])
    k = min(top, int((flows > 0).sum()))
    if k:
        order = np.argsort(flows, axis=None)[::-1][:k][::-1]  # strongest drawn last (on top)
        o, d = np.unravel_index(order, flows.shape)
        values = flows[o, d]
        norm = LogNorm(vmin=max(values.min(), 1e-3), vmax=max(values.max(), 1e-3 * 1.01))
        widths = 0.3 + 2.7 * (values - values.min()) / max(np.ptp(values), 1e-9)
        lines = LineCollection(
            np.stack([xy[o], xy[d]], axis=1), linewidths=widths, cmap="plasma", norm=norm, alpha=0.8
        )
        lines.set_array(values)
        ax.add_collection(lines)
        fig.colorbar(lines, ax=ax, shrink=0.6, label="flow (commuters per day, log scale)")
    left, bottom, right, top_ = regions.total_bounds
    _scale_bar(ax, right - left, color="black")
    ax.set_title(f"{city.name}: the {k} strongest predicted commuting flows")
    ax.set_xlabel(f"x (m, {regions.crs.to_string()})")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.tick_params(axis="x", rotation=30)
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def evaluation_png(city: Any, predicted: np.ndarray, by_distance: pd.DataFrame, path: Path) -> Path:
    """Observed vs predicted pair flows and CPC by distance band for one city."""
    assert city.flows is not None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    t, p = np.log10(1 + city.flows.ravel()), np.log10(1 + np.asarray(predicted).ravel())
    hb = left.hexbin(t, p, gridsize=40, bins="log", cmap="viridis", mincnt=1)
    fig.colorbar(hb, ax=left, label="origin-destination pairs")
    top = max(t.max(), p.max(), 1.0)
    left.plot([0, top], [0, top], color="black", linewidth=0.8, label="1:1")
    left.set_xlabel("observed flow, log10(1 + commuters)")
    left.set_ylabel("predicted flow, log10(1 + commuters)")
    left.legend(loc="upper left")
    left.set_title("pair flows")
    right.bar(by_distance["band"], by_distance["cpc"], color="#4477aa")
    right.set_ylim(0, 1)
    right.set_ylabel("CPC (common part of commuters)")
    right.set_xlabel("distance between region centroids")
    right.tick_params(axis="x", rotation=30)
    right.set_title("CPC by distance band")
    fig.suptitle(f"{city.name}: predicted vs observed commuting flows")
    fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def draw_evaluation(
    city: Any, predicted: np.ndarray, by_distance: pd.DataFrame, folder: Path
) -> None:
    """Both figures of one evaluated city into ``folder`` (``<city>_evaluation.png``, ``<city>_map.png``)."""
    evaluation_png(city, predicted, by_distance, folder / f"{city.name}_evaluation.png")
    flow_map_png(city, predicted, folder / f"{city.name}_map.png")
