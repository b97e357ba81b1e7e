"""What ``humanscape migration fit | predict | evaluate`` do (Runfola et al. 2022), as functions that
write their outputs atomically and return the lines to print.

:class:`Census` gathers how a census table is read (id column, target, missing-value code,
non-numeric columns, region column) with its image tiles; every output folder is written
atomically, figures included (:mod:`humanscape.report.migration`).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sklearn.base import clone

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.errors import HumanscapeError
from humanscape.evaluate.selection import Selection
from humanscape.evaluate.spatial import morans_i
from humanscape.report.migration import (
    error_png,
    importance_png,
    signature_epochs_png,
    signature_png,
)
from humanscape.report.text import number
from humanscape.tasks.migration.evaluate import cross_fit, summarise, transfer
from humanscape.tasks.migration.imagery import MunicipalImages, read_municipal_images
from humanscape.tasks.migration.model import (
    AUTO_BASELINE,
    AUTO_CANDIDATES,
    MigrationModel,
    prediction_table,
)
from humanscape.tasks.migration.nets import NET_KINDS
from humanscape.tasks.migration.table import CensusTable, read_census

log = logging.getLogger(__name__)


@dataclass
class Census:
    """A census table and how to read it: ``path`` (CSV / Parquet), the ``id_column``, the
    ``target`` (outflow), the ``missing``-value code, whether non-numeric columns are dropped
    (``drop``) or refused, the ``region_column`` of a transfer test, and the ``images`` tile table
    (a chip table with the id column) of the imagery models."""

    path: Path
    id_column: str
    target: str | None = None
    missing: float | None = None
    drop: bool = False
    region_column: str | None = None
    images: Path | None = None

    def table(self, *, columns: list[str] | None = None) -> CensusTable:
        """The checked table (``columns``: a fitted model's, in its order)."""
        return read_census(
            self.path,
            id_column=self.id_column,
            target=self.target,
            missing=self.missing,
            drop_text=self.drop,
            group_column=self.region_column,
            columns=columns,
        )

    def tiles(
        self, table: CensusTable, bands: list[str] | None = None, *, progress: bool = True
    ) -> MunicipalImages | None:
        """The image tiles of the table's municipalities (ids checked before a tile is read)."""
        if self.images is None:
            return None
        ids = table.ids.tolist()
        tiles = read_municipal_images(
            self.images, id_column=self.id_column, bands=bands, expect_ids=ids, progress=progress
        )
        tiles.owners_of(ids, path=str(self.images), warn=True)
        return tiles


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
            fix="give the municipality id column with --polygon-id-column",
        )
    gdf = gdf.assign(_id=gdf[id_column].astype(str).str.strip())
    known = set(ids)
    unmatched = int((~gdf["_id"].isin(known)).sum())
    if unmatched == len(gdf):
        raise HumanscapeError(
            f"none of the {len(gdf)} polygon ids matches a census id (first polygon id "
            f"'{gdf['_id'].iloc[0]}', first census id '{ids[0]}')",
            path=path,
            fix="give polygons of these municipalities with the same ids as --id-column",
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


def signature_figures(
    model: MigrationModel,
    table: CensusTable,
    folder: Path,
    groups: dict[str, str] | None = None,
) -> None:
    """The learned layout (Figure 7, cells coloured by ``groups`` or by the mean |z| of each
    variable) and the layouts across epochs (Figure 8) of a signature model, into ``folder``."""
    names = model.variables_
    z = model.standardiser_.transform(table.features[model.standardiser_.columns_])
    strength = np.abs(z).mean(axis=0)
    if groups:  # a missing-value indicator belongs to its variable's group
        groups = {n: groups.get(n.removesuffix(" missing"), "other") for n in names}
    signature_png(
        model.layouts_[-1], names, folder / "signature.png", groups=groups, strength=strength
    )
    pop = next((n for n in names if "pop" in n.lower()), None)
    signature_epochs_png(model.layouts_, names, folder / "signature_epochs.png", highlight=pop)


def fit_migration(
    model: MigrationModel,
    census: Census,
    out: Path,
    *,
    polygons: Path | None = None,
    polygon_id_column: str | None = None,
    variable_groups: Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Fit on every row and write the model folder (with its signature figures).

    ``variable_groups`` maps census columns to variable groups (health, economy ...): the
    signature cells are coloured by group (Runfola et al. 2022, Figure 7). ``polygons``: the ids
    of the municipality polygons are checked against the table.
    """
    table = census.table()
    lines = [f"warning: {census.path.name}: {note}" for note in table.notes]
    groups = (
        read_variable_groups(variable_groups, list(table.features.columns))
        if variable_groups
        else None
    )
    if polygons is not None:
        read_polygons(polygons, polygon_id_column or census.id_column, table.ids.tolist())
    selection = None
    if model.method == "auto":
        selection = select_method(model, table, progress=progress)
        lines += selection.lines()
        model = model.set_params(method=selection.chosen)
    images = census.tiles(table, progress=progress) if model.uses_images else None
    if census.images is not None and not model.uses_images:
        lines.append(f"warning: method '{model.method}' does not read imagery; --images ignored")
    # checkpoints every epoch in <out>.checkpoints/ (as population and economy fits): an
    # interrupted fit started again with the same --out resumes; removed once the model is written
    checkpoints = out.with_name(out.name + ".checkpoints")
    work = checkpoints if model.method in NET_KINDS else None
    model.fit(table, images, work_dir=work, progress=progress)
    model.info_ = {"census": str(census.path), "target": census.target}
    if selection is not None:
        model.tables_ = {"candidates.csv": selection.table}
        model.info_["method_chosen_by"] = "auto: cross-validation on this table"
    with atomic_folder(out, written_by=model.refit) as tmp:
        model.write_into(tmp)
        if model.layouts_:
            signature_figures(model, table, tmp, groups)
    shutil.rmtree(checkpoints, ignore_errors=True)
    intervals = (
        f"{100 * (1 - model.alpha):.0f} % intervals calibrated on "
        f"{model.conformal_.n_calibration_} held-out municipalities"
        if model.has_intervals
        else f"no finite {100 * (1 - model.alpha):.0f} % interval: "
        f"{model.conformal_.n_calibration_} calibration municipalities are too few"
    )
    lines += [
        f"fitted '{model.method}' on {model.n_fit_} municipalities, {len(model.variables_)} "
        f"inputs; {intervals}",
        f"wrote {out}",
    ]
    return lines


def select_method(
    model: MigrationModel, table: CensusTable, *, n_splits: int = 5, progress: bool = True
) -> Selection:
    """``--method auto``: :data:`~humanscape.tasks.migration.model.AUTO_CANDIDATES` (built with
    ``model``'s other settings) scored by r2 on held-out rows, 5 random folds or, when the table
    has groups (``--group-column``), folds of whole groups; the forest unless another is better
    (:func:`~humanscape.evaluate.selection.select_candidate`)."""
    from humanscape.evaluate.regression import r2
    from humanscape.evaluate.selection import group_folds, random_folds, select_candidate

    if table.groups is not None:
        splits = group_folds(table.groups.to_numpy(), n_splits, model.seed)
    else:
        splits = random_folds(len(table), n_splits, model.seed)

    def score(name: str, train: np.ndarray, test: np.ndarray) -> float:
        fitted = clone(model).set_params(method=name).fit(table.subset(train), progress=False)
        held = table.subset(test)
        return r2(np.asarray(held.target, dtype=np.float64), fitted.predict(held))

    return select_candidate(
        AUTO_CANDIDATES,
        score,
        splits,
        baseline=AUTO_BASELINE,
        metric="r2",
        report=log.info if progress else None,
    )


def predict_migration(
    model_dir: str | Path,
    census: str | Path,
    out: Path,
    *,
    images: Path | None = None,
    id_column: str | None = None,
) -> list[str]:
    """Write ``<id column>, prediction, lower, upper`` per municipality of a census table.

    The table is read as the model's training table was: the id column (``id_column`` overrides
    it) and the missing-value code come from the model folder."""
    model = MigrationModel.load(model_dir)
    reader = Census(
        Path(census),
        id_column=id_column or model.id_column_ or "id",
        missing=model.missing_,
        images=images,
    )
    table = reader.table(columns=model.standardiser_.columns_)
    lines = [f"warning: {Path(census).name}: {note}" for note in table.notes]
    tiles = reader.tiles(table, model.bands_) if model.uses_images else None
    if model.uses_images and tiles is None:
        raise HumanscapeError(
            f"method '{model.method}' reads imagery", fix="give --images TILES.csv"
        )
    frame = prediction_table(model, table, tiles).rename(columns={"id": reader.id_column})
    with atomic_output(out) as tmp:
        frame.to_csv(tmp, index=False)
    total = f"{len(frame)} municipalities: total estimated outflow {frame['prediction'].sum():,.0f}"
    lines += [
        total + (f" ({100 * (1 - model.alpha):.0f} % intervals)" if model.has_intervals else ""),
        f"wrote {out}",
    ]
    if not model.has_intervals:
        lines.append(
            f"no interval: {model.conformal_.n_calibration_} calibration municipalities are too "
            f"few for {100 * (1 - model.alpha):.0f} % (lower and upper left empty)"
        )
    return lines


def evaluate_migration(
    models: Sequence[str],
    make: Callable[[str, int], MigrationModel],
    census: Census,
    out: Path,
    *,
    polygons: Path | None = None,
    polygon_id_column: str | None = None,
    holdout: Sequence[str] | None = None,
    population: str | None = None,
    n_splits: int = 5,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
) -> list[str]:
    """Metrics over splits for each method (``make(method, seed)`` builds one); importance,
    Moran's I of the residuals and the figures for the first one; transfer between the regions of
    ``census.region_column`` (``holdout``: those held out, default each in turn)."""
    if holdout and census.region_column is None:
        raise HumanscapeError("--holdout needs --region-column", fix="name the region column")
    table = census.table()
    lines = [f"warning: {census.path.name}: {note}" for note in table.notes]
    if population is not None and population not in table.features.columns:
        raise HumanscapeError(
            f"census table has no numeric column '{population}'",
            path=census.path,
            fix="name the population column with --population",
        )
    gdf = (
        read_polygons(polygons, polygon_id_column or census.id_column, table.ids.tolist())
        if polygons is not None
        else None
    )
    images = None
    if any("imagery" in n for n in models):
        if census.images is None:
            raise HumanscapeError("imagery methods need image tiles", fix="give --images TILES.csv")
        images = census.tiles(table)
    with atomic_folder(out, written_by="migration evaluate") as tmp:
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
        if gdf is not None:
            values = pd.Series(residual, index=table.ids.to_numpy()).loc[gdf["id"]].to_numpy()
            glob, local = morans_i(values, gdf, seed=seed)
            (tmp / "moran.json").write_text(json.dumps(glob, indent=2))
            local.insert(0, "id", gdf["id"].to_numpy())
            local.to_csv(tmp / "lisa.csv", index=False)
            n_hot = int(((local["p_value"] <= 0.05) & local["quadrant"].isin(["HH", "LL"])).sum())
            lines.append(
                f"residual Moran's I ({models[0]}, queen contiguity): {glob['I']:.3f} "
                f"(p = {glob['p_value']:.3f}); {n_hot} municipalities in significant LISA clusters"
            )
        pop = population_column(table, population)
        if first.first_model.layouts_:
            signature_figures(first.first_model, table, tmp)
        if first.importance is not None:
            importance_png(first.importance, tmp / "importance.png")
        if pop is not None:
            error_png(table.features[pop].to_numpy(), residual, tmp / "error_vs_population.png")
    for row in summary:
        lines.append(
            f"{row['model']:<18} r2 {number(row['r2'])} +- {number(row['r2_std'])}, MAE {row['mae']:.1f}, "
            f"within 500 {row['within_500']:.2f}, within 1000 {row['within_1000']:.2f}"
            + (f", 90 % coverage {row['coverage']:.2f}" if "coverage" in row else "")
            + (f"; transfer r2 {number(row['transfer_r2'])}" if "transfer_r2" in row else "")
        )
    lines.append(f"wrote {out}")
    return lines
