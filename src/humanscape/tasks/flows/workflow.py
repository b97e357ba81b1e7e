"""What ``humanscape flows fit | predict | evaluate | embed`` do, as functions that return lines to print.

:class:`Cities` gathers where the cities of a command come from (CommutingODGen county folders, or
a regions file with a flows table, plus region embeddings). Every output (model folder, CSV,
report folder, embeddings table, figures) is written atomically: an interrupted run leaves nothing
half written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.errors import HumanscapeError
from humanscape.evaluate.flows import cpc, cpc_by_distance, flow_metrics
from humanscape.evaluate.selection import Selection
from humanscape.report.flows import draw_evaluation, flow_map_png
from humanscape.report.text import table_text
from humanscape.tasks.flows.cities import City, load_cities
from humanscape.tasks.flows.model import FlowModel, remove_checkpoints


@dataclass
class Cities:
    """Where the cities of a command come from: CommutingODGen ``county`` folders, or one
    ``regions`` file (ids in ``id_column``) with its ``flows`` table (``origin,destination,flow``);
    ``embeddings`` (an ``id`` table, ``flows embed``) adds image features to every region."""

    counties: list[Path] = field(default_factory=list)
    regions: Path | None = None
    flows: Path | None = None
    embeddings: Path | None = None
    id_column: str = "id"

    def load(self, *, need_flows: bool = True) -> tuple[list[City], list[str]]:
        """The cities, and a warning line for each reading note (ignored columns ...)."""
        if self.regions is not None and self.flows is None and not self.counties and need_flows:
            raise HumanscapeError(
                "fitting and evaluating need observed flows",
                fix="give --flows F.csv with --regions",
            )
        cities = load_cities(
            self.counties or None,
            regions=self.regions,
            flows=self.flows,
            embeddings=self.embeddings,
            id_column=self.id_column,
            need_flows=need_flows,
        )
        notes = [
            f"warning: {Path(city.source).name}: {note}" for city in cities for note in city.notes
        ]
        return cities, notes


def flow_table(city: City, predicted: np.ndarray, *, decimals: int = 3) -> pd.DataFrame:
    """``origin, destination, flow`` for every pair whose predicted flow rounds above zero."""
    flow = np.round(np.asarray(predicted, np.float64), decimals)
    o, d = np.nonzero(flow > 0)
    ids = city.ids
    order = np.lexsort((d, o))
    return pd.DataFrame(
        {"origin": ids[o[order]], "destination": ids[d[order]], "flow": flow[o, d][order]}
    )


#: What ``flows fit --method auto`` chooses among; the doubly constrained gravity law (the
#: model's own default constraint and deterrence) is the baseline. The networks (gnn,
#: deepgravity) are left out: each would be trained once per fold.
AUTO_CANDIDATES = ("gravity", "radiation", "gbrt")
AUTO_BASELINE = "gravity"


def select_flow_method(model: FlowModel, cities: list[City], *, n_splits: int = 4) -> Selection:
    """``--method auto``: each of :data:`AUTO_CANDIDATES` fitted on the other cities and scored by
    the mean CPC (eq. 7 of Xu et al.) over every pair of the held-out cities, with estimated
    margins (as for a city without flows); cities dealt into at most ``n_splits`` folds. Needs
    two cities or more."""
    from sklearn.base import clone

    from humanscape.evaluate.selection import group_folds, select_candidate

    if len(cities) < 2:
        raise HumanscapeError(
            "--method auto holds out whole cities and needs two or more",
            fix="give more cities, or name a --method",
        )
    splits = group_folds([c.name for c in cities], n_splits, model.seed)

    def score(name: str, train: np.ndarray, test: np.ndarray) -> float:
        fitted = (
            clone(model).set_params(method=name).fit([cities[i] for i in train], progress=False)
        )
        values = []
        for i in test:
            assert cities[i].flows is not None
            values.append(cpc(cities[i].flows, fitted.predict(cities[i])))
        return float(np.mean(values))

    return select_candidate(
        AUTO_CANDIDATES, score, splits, baseline=AUTO_BASELINE, metric="CPC (held-out cities)"
    )


def fit_flows(
    model: FlowModel, source: Cities | list[City], out: Path, *, progress: bool = True
) -> list[str]:
    """Fit ``model`` on the cities, write the model folder, report the within-city test pairs.

    ``model.method == "auto"``: the method is chosen first by :func:`select_flow_method` (the
    candidates' table is printed and saved as ``candidates.csv``)."""
    cities, notes = source.load() if isinstance(source, Cities) else (source, [])
    selection = None
    if model.method == "auto":
        selection = select_flow_method(model, cities)
        notes = [*notes, *selection.lines()]
        model = model.set_params(method=selection.chosen)
    work = out.with_name(out.name + ".checkpoints")
    start = time.perf_counter()
    model.fit(
        cities, work_dir=work if model.method in ("gnn", "deepgravity") else None, progress=progress
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
    model.tables_ = {"fit_report.csv": pd.DataFrame(rows)}
    if selection is not None:
        model.tables_["candidates.csv"] = selection.table
        model.info_ = {"method_chosen_by": "auto: held-out cities"}
    model.save(out)
    remove_checkpoints(work)
    table = model.tables_["fit_report.csv"]
    lines = [
        *notes,
        f"fitted {model.label} on {len(cities)} cities ({sum(c.n for c in cities)} regions) in {seconds:.0f} s",
        "within-city test pairs (10 %, never used to fit the pair model"
        + ("; the margins are in-sample" if model.needs_margins else "")
        + "): CPC "
        + ", ".join(f"{r.city} {r.cpc_test_pairs:.3f}" for r in table.itertuples()),
        "for a city the model never saw, see 'flows evaluate' and docs/benchmarks.md",
    ]
    if model.method == "gravity":
        lines.append(
            "parameters: " + ", ".join(f"{k} {v:.3f}" for k, v in model.gravity_.params_.items())
        )
    lines.append(f"wrote {out}")
    return lines


def predict_flows(
    model_dir: str | Path,
    source: Cities,
    out: Path,
    *,
    margins: str = "estimated",
    png: Path | None = None,
) -> list[str]:
    """Write ``origin,destination,flow`` for one city (and a map of its strongest flows)."""
    model = FlowModel.load(model_dir)
    if len(source.counties) + (source.regions is not None) != 1:
        raise HumanscapeError("give one city", fix="give --commuting-od DIR or --regions R.gpkg")
    (city,), notes = source.load(need_flows=margins == "observed" and model.needs_margins)
    predicted = model.predict(city, margins=margins)
    table = flow_table(city, predicted)
    with atomic_output(out) as tmp:
        table.to_csv(tmp, index=False)
    what = f" ({margins} margins)" if model.needs_margins else ""
    lines = [
        *notes,
        f"{city.name}: {city.n} regions, {len(table):,} pairs with flow, "
        f"{predicted.sum():,.0f} commuters predicted{what}",
        f"wrote {out}",
    ]
    if png is not None:
        with atomic_output(png) as tmp:
            flow_map_png(city, predicted, tmp)
        lines.append(f"wrote {png}")
    return lines


def evaluate_flows(
    model: str | Path | FlowModel,
    source: Cities | list[City],
    out: Path,
    *,
    margins: str = "estimated",
) -> list[str]:
    """Per-city metrics (``metrics.csv``), CPC by distance band and plots of each city into ``out``."""
    model = model if isinstance(model, FlowModel) else FlowModel.load(model)
    cities, notes = source.load() if isinstance(source, Cities) else (source, [])
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
    with atomic_folder(out, written_by="flows evaluate") as tmp:
        table.to_csv(tmp / "metrics.csv", index=False)
        by_distance.to_csv(tmp / "cpc_by_distance.csv", index=False)
        for city, predicted in zip(cities, predictions, strict=True):
            draw_evaluation(city, predicted, by_distance[by_distance["city"] == city.name], tmp)
    show = table[
        ["city", "regions", "cpc", "cpl", "mass_on_observed_pairs", "rmse", "mae", "pearson_r"]
    ]
    show = show.assign(regions=show["regions"].round().astype(int))
    return [
        *notes,
        f"{model.label} ({margins} margins)" if model.needs_margins else model.label,
        table_text(show),
        f"wrote {out}",
    ]


def embed_flow_regions(
    regions: str | Path,
    scene: str | Path,
    encoder: str | None,
    out: Path,
    reader: Any,
    *,
    id_column: str = "id",
    size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Step 1 of Imagery2Flow: tiles per region -> encoder -> mean and std -> ``id, n_tiles, e000...``.

    The first ``d`` columns are the mean tile embedding, the next ``d`` the standard deviation
    (``d`` = the encoder's width). Without ``encoder``: the shipped encoder with the best held-out
    linear probe that reads the scene's bands. A region without a valid tile is refused (no partial table).
    """
    from humanscape.geo.vector import read_vector
    from humanscape.models.embed import best_shipped_encoder, embed_regions, region_tiles
    from humanscape.models.registry import load_encoder

    polygons = read_vector(regions)
    if id_column not in polygons.columns:
        raise HumanscapeError(
            f"regions have no '{id_column}' column (columns: "
            f"{', '.join(c for c in map(str, polygons.columns) if c != 'geometry')})",
            path=regions,
            fix="give the region id column with --id-column",
        )
    lines = []
    with reader.open(scene) as s:
        if encoder is None:
            encoder = best_shipped_encoder(s.band_names, "reflectance")
            lines.append(
                f"encoder: {encoder} (the best held-out linear probe of the shipped "
                "encoders that read this scene; --encoder to choose)"
            )
        net = load_encoder(encoder)
        tiles = region_tiles(s, polygons, list(net.bands), size=size, id_column=id_column)
    table = embed_regions(net, tiles, progress=progress)
    d = net.num_features
    names = {f"mean_e{i:03d}": f"e{i:03d}" for i in range(d)} | {
        f"std_e{i:03d}": f"e{d + i:03d}" for i in range(d)
    }
    table = table.rename(columns=names)
    table["id"] = table["id"].astype(str)
    with atomic_output(out) as tmp:
        table.to_parquet(tmp, index=False)
    return [
        *lines,
        f"{len(table)} regions, {int(table['n_tiles'].sum()):,} tiles of {size} px, {2 * d} features "
        f"(mean and std of {d})",
        f"wrote {out}",
    ]
