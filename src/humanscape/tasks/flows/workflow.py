"""What ``humanscape flows fit | predict | evaluate | embed`` do, as functions that return lines to print.

Figures are drawn by callables the caller passes, so that this task layer does not import the
report layer; every output (model folder, CSV, report folder, embeddings table) is written
atomically: an interrupted run leaves nothing half written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.evaluate.flows import cpc, cpc_by_distance, flow_metrics
from humanscape.tasks.flows.cities import City
from humanscape.tasks.flows.model import FlowModel, remove_checkpoints

#: ``draw(city, predicted, path)``: a flow map PNG.
MapDrawer = Callable[[City, np.ndarray, Path], None]
#: ``draw(city, predicted, by_distance, folder)``: the per-city plots of an evaluation.
PlotDrawer = Callable[[City, np.ndarray, pd.DataFrame, Path], None]


def flow_table(city: City, predicted: np.ndarray, *, decimals: int = 3) -> pd.DataFrame:
    """``origin, destination, flow`` for every pair whose predicted flow rounds above zero."""
    flow = np.round(np.asarray(predicted, np.float64), decimals)
    o, d = np.nonzero(flow > 0)
    ids = city.ids
    order = np.lexsort((d, o))
    return pd.DataFrame(
        {"origin": ids[o[order]], "destination": ids[d[order]], "flow": flow[o, d][order]}
    )


def fit_flows(
    model: FlowModel, cities: list[City], out: Path, *, progress: bool = True
) -> list[str]:
    """Fit ``model`` on ``cities``, write the model folder, report the within-city test pairs."""
    work = out.with_name(out.name + ".checkpoints")
    start = time.perf_counter()
    model.fit(
        cities, work_dir=work if model.model in ("gnn", "deepgravity") else None, progress=progress
    )
    seconds = time.perf_counter() - start
    rows = []
    for city, (_, _, test) in zip(cities, model.masks_, strict=True):
        predicted = model.predict(city)
        assert city.flows is not None
        rows.append(
            {
                "city": city.name,
                "regions": city.n,
                "test_pairs": int(test.sum()),
                "cpc_test_pairs": cpc(city.flows[test], predicted[test]),
                "cpc_all_pairs": cpc(city.flows, predicted),
            }
        )
    table = pd.DataFrame(rows)
    with atomic_folder(out, marker="config.json") as tmp:
        model.write_into(tmp)
        table.to_csv(tmp / "fit_report.csv", index=False)
    remove_checkpoints(work)
    lines = [
        f"fitted {model.label} on {len(cities)} cities ({sum(c.n for c in cities)} regions) in {seconds:.0f} s",
        "within-city test pairs (10 %, never used to fit the pair model"
        + ("; the margins are in-sample" if model.needs_margins else "")
        + "): CPC "
        + ", ".join(f"{r.city} {r.cpc_test_pairs:.3f}" for r in table.itertuples()),
        "for a city the model never saw, see 'flows evaluate' and docs/benchmarks.md",
    ]
    if model.model == "gravity":
        lines.append(
            "parameters: " + ", ".join(f"{k} {v:.3f}" for k, v in model.gravity_.params_.items())
        )
    lines.append(f"wrote {out}")
    return lines


def predict_flows(
    model: FlowModel,
    city: City,
    out: Path,
    *,
    margins: str = "estimated",
    map_path: Path | None = None,
    draw_map: MapDrawer | None = None,
) -> list[str]:
    """Write ``origin,destination,flow`` for ``city`` (and a map of the strongest flows)."""
    predicted = model.predict(city, margins=margins)
    table = flow_table(city, predicted)
    with atomic_output(out) as tmp:
        table.to_csv(tmp, index=False)
    lines = [
        f"{city.name}: {city.n} regions, {len(table):,} pairs with flow, "
        f"{predicted.sum():,.0f} commuters predicted ({margins} margins)"
        if model.needs_margins
        else f"{city.name}: {city.n} regions, {len(table):,} pairs with flow, {predicted.sum():,.0f} commuters predicted",
        f"wrote {out}",
    ]
    if map_path is not None and draw_map is not None:
        with atomic_output(map_path) as tmp:
            draw_map(city, predicted, tmp)
        lines.append(f"wrote {map_path}")
    return lines


def evaluate_flows(
    model: FlowModel,
    cities: list[City],
    out: Path,
    *,
    margins: str = "estimated",
    draw_plots: PlotDrawer | None = None,
) -> list[str]:
    """Per-city metrics (``metrics.csv``), CPC by distance band and plots of each city into ``out``."""
    rows, bands, predictions = [], [], []
    for city in cities:
        assert city.flows is not None
        predicted = model.predict(city, margins=margins)
        predictions.append(predicted)
        rows.append({"city": city.name, "regions": city.n, **flow_metrics(city.flows, predicted)})
        bands.append(
            cpc_by_distance(city.flows, predicted, city.distance_km).assign(city=city.name)
        )
    table = pd.DataFrame(rows)
    if len(table) > 1:
        mean = table.drop(columns=["city"]).mean(numeric_only=True)
        table = pd.concat(
            [table, pd.DataFrame([{"city": "mean", **mean.to_dict()}])], ignore_index=True
        )
    by_distance = pd.concat(bands, ignore_index=True)
    with atomic_folder(out, marker="metrics.csv") as tmp:
        table.to_csv(tmp / "metrics.csv", index=False)
        by_distance.to_csv(tmp / "cpc_by_distance.csv", index=False)
        if draw_plots is not None:
            for city, predicted in zip(cities, predictions, strict=True):
                draw_plots(city, predicted, by_distance[by_distance["city"] == city.name], tmp)
    show = table[
        ["city", "regions", "cpc", "cpl", "mass_on_observed_pairs", "rmse", "mae", "pearson_r"]
    ]
    show = show.assign(regions=show["regions"].round().astype(int))
    return [
        f"{model.label} ({margins} margins)" if model.needs_margins else model.label,
        show.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        f"wrote {out}",
    ]


def embed_flow_regions(
    regions: Any, scene: Any, encoder: Any, out: Path, *, size: int = 64, progress: bool = True
) -> list[str]:
    """Step 1 of Imagery2Flow: tiles per region -> encoder -> mean and std -> ``id, n_tiles, e000...``.

    The first ``d`` columns are the mean tile embedding, the next ``d`` the standard deviation
    (``d`` = the encoder's width). A region without a valid tile is refused (no partial table).
    """
    from humanscape.models.embed import embed_regions, region_tiles

    tiles = region_tiles(scene, regions, list(encoder.bands), size=size, id_column="id")
    table = embed_regions(encoder, tiles, progress=progress)
    d = encoder.num_features
    names = {f"mean_e{i:03d}": f"e{i:03d}" for i in range(d)} | {
        f"std_e{i:03d}": f"e{d + i:03d}" for i in range(d)
    }
    table = table.rename(columns=names)
    table["id"] = table["id"].astype(str)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    return [
        f"{len(table)} regions, {int(table['n_tiles'].sum()):,} tiles of {size} px, {2 * d} features "
        f"(mean and std of {d})",
        f"wrote {out}",
    ]
