"""What ``humanscape migration fit | predict | evaluate`` do, as functions that return lines to print.

Figures are drawn by a callable the caller passes (``figures(kind, data, folder)``), so that this
task layer does not import the report layer; each output folder is written atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.errors import HumanscapeError
from humanscape.evaluate.spatial import morans_i
from humanscape.tasks.migration.evaluate import cross_fit, summarise, transfer
from humanscape.tasks.migration.imagery import MunicipalImages
from humanscape.tasks.migration.model import MigrationModel
from humanscape.tasks.migration.nets import NET_KINDS
from humanscape.tasks.migration.table import CensusTable

log = logging.getLogger(__name__)

Figures = Callable[[str, dict[str, Any], Path], None]


def population_column(table: CensusTable, given: str | None = None) -> str | None:
    """The population column for Figure 5: ``given``, else the first column naming ``pop``."""
    if given is not None:
        if given not in table.features.columns:
            raise HumanscapeError(
                f"census table has no numeric column '{given}'", fix="name the population column"
            )
        return given
    return next((c for c in table.features.columns if "pop" in str(c).lower()), None)


def read_polygons(path: Path, id_column: str, ids: Sequence[str]) -> gpd.GeoDataFrame:
    """Municipality polygons in the order of ``ids`` (rows without a polygon dropped, warned)."""
    from humanscape.geo.vector import read_vector

    gdf = read_vector(path)
    if id_column not in gdf.columns:
        raise HumanscapeError(
            f"polygon file has no column '{id_column}' (columns: "
            f"{', '.join(c for c in map(str, gdf.columns) if c != 'geometry')})",
            path=path,
            fix="give the municipality id column with --polygon-id",
        )
    gdf = gdf.assign(_id=gdf[id_column].astype(str).str.strip())
    known = set(ids)
    unmatched = int((~gdf["_id"].isin(known)).sum())
    if unmatched == len(gdf):
        raise HumanscapeError(
            f"none of the {len(gdf)} polygon ids matches a census id (first polygon id "
            f"'{gdf['_id'].iloc[0]}', first census id '{ids[0]}')",
            path=path,
            fix="give polygons of these municipalities with the same ids as --id",
        )
    if unmatched:
        log.warning("%s: %d polygon(s) match no census id, ignored", path.name, unmatched)
    if gdf["_id"].duplicated().any():
        gdf = gdf.dissolve("_id", as_index=False)
    by_id = gdf.set_index("_id")
    present = [i for i in ids if i in by_id.index]
    if len(present) < len(ids):
        log.warning(
            "%s: %d census municipality(ies) have no polygon, left out of Moran's I",
            path.name,
            len(ids) - len(present),
        )
    out = by_id.loc[present, ["geometry"]].reset_index().rename(columns={"_id": "id"})
    return gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)


def read_variable_groups(path: Path, columns: Sequence[str]) -> dict[str, str]:
    """A ``variable,group`` table; variables that are not census columns are refused by name."""
    from humanscape.data.chiptable import read_table

    frame = read_table(path, what="variable group table")
    for column in ("variable", "group"):
        if column not in frame.columns:
            raise HumanscapeError(
                f"variable group table has no column '{column}'",
                path=path,
                fix="give a CSV with columns variable,group",
            )
    groups = dict(zip(frame["variable"].astype(str), frame["group"].astype(str), strict=True))
    unknown = [v for v in groups if v not in columns]
    if unknown:
        raise HumanscapeError(
            f"{len(unknown)} variable(s) are not census columns, first '{unknown[0]}'",
            path=path,
            fix="name the census columns as in the table's header",
        )
    return groups


def fit_migration(
    model: MigrationModel,
    table: CensusTable,
    out: Path,
    *,
    images: MunicipalImages | None = None,
    figures: Figures | None = None,
    groups: dict[str, str] | None = None,
    progress: bool = True,
) -> list[str]:
    """Fit on every row and write the model folder (with its signature figures).

    ``groups`` maps census columns to variable groups (health, economy ...): the signature cells
    are coloured by group (Runfola et al. 2022, Figure 7).
    """
    import shutil

    lines = [*table.notes]
    # checkpoints every epoch in <out>.checkpoints/ (as population and economy fits): an
    # interrupted fit started again with the same --out resumes; removed once the model is written
    checkpoints = out.with_name(out.name + ".checkpoints")
    with atomic_folder(out, marker="config.json") as tmp:
        work = checkpoints if model.model in NET_KINDS else None
        model.fit(table, images, work_dir=work, progress=progress)
        model.write_into(tmp)
        if figures is not None and model.layouts_:
            figures("signature", {"model": model, "table": table, "groups": groups}, tmp)
    shutil.rmtree(checkpoints, ignore_errors=True)
    lines.append(
        f"fitted '{model.model}' on {model.n_fit_} municipalities, {len(model.variables_)} "
        f"inputs; {100 * (1 - model.alpha):.0f} % intervals calibrated on "
        f"{model.conformal_.n_calibration_} held-out municipalities"
    )
    lines.append(f"wrote {out}")
    return lines


def predict_migration(
    model: MigrationModel,
    table: CensusTable,
    out: Path,
    *,
    images: MunicipalImages | None = None,
    id_name: str = "id",
) -> list[str]:
    """Write ``<id_name>, prediction, lower, upper`` (the id column keeps the table's name)."""
    frame = model.predict(table, images).rename(columns={"id": id_name})
    with atomic_output(out) as tmp:
        frame.to_csv(tmp, index=False)
    level = 100 * (1 - model.alpha)
    return [
        f"{len(frame)} municipalities: total estimated outflow {frame['prediction'].sum():,.0f} "
        f"({level:.0f} % intervals)",
        f"wrote {out}",
    ]


def evaluate_migration(
    models: Sequence[str],
    make: Callable[[str, int], MigrationModel],
    table: CensusTable,
    out: Path,
    *,
    images: MunicipalImages | None = None,
    polygons: gpd.GeoDataFrame | None = None,
    holdout: Sequence[str] | None = None,
    population: str | None = None,
    n_splits: int = 5,
    seed: int = 0,
    figures: Figures | None = None,
    report: Callable[[str], None] | None = None,
) -> list[str]:
    """Metrics over splits for each model; importance, Moran's I and figures for the first one."""
    lines = [*table.notes]
    with atomic_folder(out, marker="summary.csv") as tmp:
        summary, folds = [], []
        first = None
        for k, name in enumerate(models):
            if report:
                report(f"{name}: {n_splits} random 80/20 splits")
            fit = cross_fit(
                lambda s, name=name: make(name, s),
                table,
                images if "imagery" in name else None,
                n_splits=n_splits,
                seed=seed,
                importance=k == 0,
                report=report,
            )
            folds.append(fit.folds.assign(model=name))
            summary.append({"model": name, **summarise(fit.folds)})
            fit.predictions.to_csv(tmp / f"predictions_{name.replace('+', '_')}.csv", index=False)
            if k == 0:
                first = fit
            if table.groups is not None:
                tr = transfer(
                    lambda s, name=name: make(name, s),
                    table,
                    images if "imagery" in name else None,
                    holdout=holdout,
                    n_splits=n_splits,
                    seed=seed,
                )
                tr.assign(model=name).to_csv(
                    tmp / "transfer.csv", mode="a", header=k == 0, index=False
                )
                t = summarise(tr.drop(columns=["held_out"]))
                summary[-1].update({f"transfer_{m}": v for m, v in t.items()})
        frame = pd.DataFrame(summary)
        frame.to_csv(tmp / "summary.csv", index=False)
        pd.concat(folds).to_csv(tmp / "metrics.csv", index=False)
        assert first is not None
        if first.importance is not None:
            first.importance.to_csv(tmp / "importance.csv", index=False)
        pred = first.predictions.set_index("id").loc[table.ids]
        residual = (pred["prediction"] - pred["observed"]).to_numpy()
        extra: dict[str, Any] = {"model": models[0]}
        if polygons is not None:
            values = pd.Series(residual, index=table.ids.to_numpy()).loc[polygons["id"]].to_numpy()
            glob, local = morans_i(values, polygons, seed=seed)
            (tmp / "moran.json").write_text(json.dumps(glob, indent=2))
            local.insert(0, "id", polygons["id"].to_numpy())
            local.to_csv(tmp / "lisa.csv", index=False)
            extra["moran"] = glob
            n_hot = int(((local["p_value"] <= 0.05) & local["quadrant"].isin(["HH", "LL"])).sum())
            lines.append(
                f"residual Moran's I ({models[0]}, queen contiguity): {glob['I']:.3f} "
                f"(p = {glob['p_value']:.3f}); {n_hot} municipalities in significant LISA clusters"
            )
        pop = population_column(table, population)
        if figures is not None:
            figures(
                "evaluate",
                {
                    "importance": first.importance,
                    "population": None if pop is None else table.features[pop].to_numpy(),
                    "error": residual,
                    "model": first.first_model,
                    "table": table,
                },
                tmp,
            )
    for row in summary:
        lines.append(
            f"{row['model']:<18} r2 {row['r2']:.3f} +- {row['r2_std']:.3f}, MAE {row['mae']:.1f}, "
            f"within 500 {row['within_500']:.2f}, within 1000 {row['within_1000']:.2f}, "
            f"90 % coverage {row['coverage']:.2f}"
            + (f"; transfer r2 {row['transfer_r2']:.3f}" if "transfer_r2" in row else "")
        )
    lines.append(f"wrote {out}")
    return lines
