"""What ``humanscape population fit | predict | evaluate`` do (Huang et al. 2021), as functions:
fit (with a transfer test), predict (chips or a map of a scene), evaluate. Each writes its
outputs atomically and returns the lines the command prints.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape.data.chiptable import write_chip_table
from humanscape.data.splits import Split
from humanscape.errors import HumanscapeError
from humanscape.evaluate.selection import Selection
from humanscape.geo.inputs import SceneReader
from humanscape.report.text import number, table_text
from humanscape.scale import Execution
from humanscape.tasks.population.chips import PopulationChips, load_chips
from humanscape.tasks.population.evaluate import metrics_table, write_report
from humanscape.tasks.population.model import PopulationModel

log = logging.getLogger(__name__)


#: What ``population fit --method auto`` chooses among (settings over the given model's), and
#: its baseline: a random forest on band statistics, the model a reviewer writes first.
AUTO_CANDIDATES: dict[str, dict[str, object]] = {
    "ensemble": {"method": "ensemble"},
    "ridge_stats": {"method": "features", "head": "ridge", "features": ("stats",)},
    "rf_stats": {"method": "features", "head": "rf", "features": ("stats",)},
}
AUTO_BASELINE = "rf_stats"
#: Spatial folds of the selection (each candidate is fitted this many times).
AUTO_FOLDS = 3


def candidate_models(model: PopulationModel) -> dict[str, PopulationModel]:
    """``model``'s settings with each of :data:`AUTO_CANDIDATES`' over them."""
    from sklearn.base import clone

    return {name: clone(model).set_params(**settings) for name, settings in AUTO_CANDIDATES.items()}


def select_population_model(
    model: PopulationModel,
    images: np.ndarray,
    bands: list[str],
    population: np.ndarray,
    *,
    locations: np.ndarray | None,
    groups: np.ndarray | None,
    block_m: float,
    n_splits: int = AUTO_FOLDS,
) -> Selection:
    """``--method auto``: each of :data:`AUTO_CANDIDATES` fitted on ``n_splits - 1`` spatial folds
    (blocks of ``block_m`` of the chip locations, or whole ``groups``) and scored by r2 of
    ``log(1 + p)`` on the held-out fold; the forest on band statistics unless another is better
    (:func:`~humanscape.evaluate.selection.select_candidate`). ``images`` hold ``bands``."""
    from sklearn.base import clone

    from humanscape.data.splits import block_folds
    from humanscape.evaluate.regression import r2
    from humanscape.evaluate.selection import group_folds, select_candidate

    if groups is not None:
        splits = group_folds(groups, n_splits, model.seed)
    else:
        assert locations is not None
        try:
            folds = block_folds(
                locations, block_m, n_folds=n_splits, scheme="random", seed=model.seed
            )
        except HumanscapeError:
            folds = []
        splits = [(f.train, f.test) for f in folds if f.test.size and f.train.size]
        if len(splits) < n_splits:
            raise HumanscapeError(
                f"the chips fall in fewer than {n_splits} blocks of {block_m / 1000:g} km: too "
                "few for --method auto's spatial cross-validation",
                fix="give smaller --block-km, --group-column, or name a --method",
            )
    candidates = candidate_models(model)

    def score(name: str, train: np.ndarray, test: np.ndarray) -> float:
        m = candidates[name]
        x = images[:, [bands.index(b) for b in m.input_bands]]
        fitted = clone(m).fit(
            x[train],
            population[train],
            locations=locations[train] if locations is not None else None,
            groups=groups[train] if groups is not None else None,
            block_m=block_m,
            progress=False,
        )
        return r2(np.log1p(population[test]), np.log1p(fitted.predict(x[test])))

    return select_candidate(
        list(candidates), score, splits, baseline=AUTO_BASELINE, metric="r2 log1p"
    )


def fit_population(
    model: PopulationModel,
    chip_table: str | Path,
    target: str,
    out: Path,
    *,
    group_column: str | None = None,
    region_column: str | None = None,
    holdout: list[str] | None = None,
    neighbors: int = 1,
    block_km: float = 50.0,
) -> list[str]:
    """Fit ``model`` on the chips of a table (all, or all but a held-out region) and save it.

    ``model.method == "auto"``: the candidates of :data:`AUTO_CANDIDATES` are scored first by
    spatial CV on the fitting chips (:func:`select_population_model`), the chosen one is fitted,
    and the candidates' table is saved as ``candidates.csv``.

    Validation holds out whole ``group_column`` groups, else ``block_km`` blocks of the chips'
    locations. The CNNs checkpoint every epoch into ``<out>.checkpoints/`` (removed once the
    model is saved): a fit interrupted and started again with the same ``out`` resumes there.
    With ``region_column`` the chips of ``holdout`` (default: the region with most chips) are never
    seen in fitting; the model's metrics on them are saved as ``transfer.csv`` in the model folder,
    apart from the within-region validation metrics (``validation.csv``).
    """
    from humanscape.data.chiptable import read_chip_table
    from humanscape.tasks.population.chips import chip_locations

    columns = [c for c in (group_column, region_column) if c]
    if columns:
        read_chip_table(chip_table, required=columns, check_files=False)
    candidates = candidate_models(model) if model.method == "auto" else {}
    bands = model.input_bands
    if candidates:  # the chips hold every candidate's bands
        bands = []
        for m in candidates.values():
            bands += [b for b in m.input_bands if b not in bands]
    chips = load_chips(chip_table, bands, target=target)
    assert chips.population is not None
    locations = chip_locations(chips.table) if group_column is None else None
    checkpoints = out.with_name(out.name + ".checkpoints")
    table = chips.table
    group_values = table[group_column].astype(str).to_numpy() if group_column else None
    keep = np.arange(len(chips))
    transfer = None
    if region_column:
        regions = table[region_column].astype(str).to_numpy()
        names = holdout or [pd.Series(regions).value_counts().index[0]]
        unknown = [n for n in names if n not in set(regions)]
        if unknown:
            raise HumanscapeError(
                f"no chip has {region_column} = {', '.join(unknown)} "
                f"(values: {', '.join(sorted(set(regions))[:10])})",
                path=chip_table,
                fix="give --holdout values of that column",
            )
        test = np.isin(regions, names)
        if test.all():
            raise HumanscapeError(
                f"every chip is in the held-out region(s) {', '.join(names)}",
                path=chip_table,
                fix="hold out fewer regions",
            )
        keep = np.flatnonzero(~test)
        transfer = Split(keep, np.flatnonzero(test), f"{region_column} = {', '.join(names)}")
    images = chips.images
    lines: list[str] = []
    selection = None
    if candidates:
        selection = select_population_model(
            model,
            images[keep],
            bands,
            chips.population[keep],
            locations=locations[keep] if locations is not None else None,
            groups=group_values[keep] if group_values is not None else None,
            block_m=block_km * 1000,
        )
        lines += selection.lines()
        model = candidates[selection.chosen]
        images = images[:, [bands.index(b) for b in model.input_bands]]
    model.fit(
        images[keep],
        chips.population[keep],
        locations=locations[keep] if locations is not None else None,
        groups=group_values[keep] if group_values is not None else None,
        block_m=block_km * 1000,
        work_dir=checkpoints,
    )
    v = model.validation_
    lines += [
        f"{model.validation_name_}: train {v['n_train']}, validation {v['n_validation']} chips",
        f"validation r2 (coefficient of determination) of {model.target} {number(v['log']['r2'])}, "
        f"conformal {100 * (1 - model.alpha):.0f} % quantile {model.conformal_.quantile_:.3f} (log)",
    ]
    rows = [{"set": "validation", "scale": model.target, **v["log"]}]
    rows.append({"set": "validation", "scale": "count", **v["counts"]})
    model.tables_ = {"validation.csv": pd.DataFrame(rows)}
    model.info_ = {"chip_table": str(chip_table), "target": target, "neighbors": neighbors}
    if selection is not None:
        model.tables_["candidates.csv"] = selection.table
        model.info_["method_chosen_by"] = f"auto: {selection.chosen}, spatial CV on this table"
    if transfer is not None:
        pred, lower, upper = model.predict_interval(images[transfer.test])
        frame = metrics_table(
            chips.population[transfer.test], pred, lower, upper, label=transfer.name
        )
        model.tables_["transfer.csv"] = frame
        row = frame.set_index("scale").loc["log1p"]
        model.info_["transfer"] = {"held_out": transfer.name, "n": int(transfer.test.size)}
        lines.append(
            f"transfer to {transfer.name} ({transfer.test.size} chips never seen): "
            f"r2 log1p {number(row['r2'])}, coverage {number(row['coverage'])}"
        )
    model.save(out)
    shutil.rmtree(checkpoints, ignore_errors=True)
    lines.append(f"wrote {out}")
    return lines


def predict_table(model_dir: str | Path, chip_table: str | Path, out: Path) -> list[str]:
    """``image``, ``prediction``, ``lower``, ``upper`` (people) per chip, written as CSV / Parquet."""
    model = PopulationModel.load(model_dir)
    chips = load_chips(chip_table, model.input_bands)
    _check_chip_shape(model, chips, chip_table)
    pred, lower, upper = model.predict_interval(chips.images)
    frame = pd.DataFrame(
        {
            "image": chips.table["image"],
            "prediction": pred,
            "lower": lower,
            "upper": upper,
        }
    )
    write_chip_table(frame, out)
    return [f"wrote {out}: {len(frame)} chips"]


def _check_chip_shape(model: PopulationModel, chips: PopulationChips, path: Path) -> None:
    shape = tuple(chips.images.shape[2:])
    if model.uses_cnn and model.input_size is None and shape != tuple(model.chip_shape_):
        log.warning(
            "%s: chips are %s px, the model was trained on %s px chips",
            path,
            shape,
            model.chip_shape_,
        )


def evaluate_table(
    model_dir: str | Path, chip_table: str | Path, target: str, out: Path
) -> list[str]:
    """The paper's metrics and figures for a chip table with census population, in ``out``."""
    model = PopulationModel.load(model_dir)
    chips = load_chips(chip_table, model.input_bands, target=target)
    assert chips.population is not None
    _check_chip_shape(model, chips, chip_table)
    pred, lower, upper = model.predict_interval(chips.images)
    label = Path(str(chip_table)).stem
    table = metrics_table(chips.population, pred, lower, upper, label=label)
    predictions = pd.DataFrame(
        {
            "set": label,
            "image": chips.table["image"],
            "observed": chips.population,
            "prediction": pred,
            "lower": lower,
            "upper": upper,
        }
    )
    write_report(out, table, predictions, title="population")
    return [table_text(table), f"wrote {out}"]


def map_population(
    model_dir: str | Path,
    scene: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    cell: float | None = None,
    arcsec: float | None = None,
    grid: Path | None = None,
    districts: Path | None = None,
    total_column: str = "pop",
    png: Path | None = None,
    execution: Execution | None = None,
    harmonise: str = "quantile",
) -> list[str]:
    """A population GeoTIFF of ``scene`` on a cell grid; census-consistent when ``districts`` given.

    ``harmonise``: ``quantile`` maps each band of the scene to the training chips' distribution
    before prediction (:mod:`humanscape.data.harmonise`), ``none`` leaves it.

    Cells are predicted tile by tile on the tiled engine (``execution``: Dask workers, scheduler,
    tile; default this process); the census rescaling then works on the cell-level map. ``png``:
    a figure of the map (colour bar in people per cell up to the 99th percentile, scale bar).
    """
    from humanscape.geo.grid import cell_grid
    from humanscape.geo.vector import read_vector
    from humanscape.geo.write import folder_token
    from humanscape.report.quicklook import scalar_quicklook
    from humanscape.scale import IN_PROCESS
    from humanscape.tasks.population.mapping import (
        census_consistent,
        check_overlap,
        harmoniser,
        population_job,
        read_map,
        reference_grid,
        write_map,
    )

    if sum(v is not None for v in (cell, arcsec, grid)) > 1:
        raise HumanscapeError("give one of --cell, --arcsec, --grid", fix="choose one grid")
    model = PopulationModel.load(model_dir)
    district_frame = read_vector(districts) if districts is not None else None
    if district_frame is not None and total_column not in district_frame.columns:
        raise HumanscapeError(
            f"district file has no column '{total_column}' (columns: "
            f"{', '.join(c for c in map(str, district_frame.columns) if c != 'geometry')})",
            path=districts,
            fix="give the column of district population totals (--total-column)",
        )
    with reader.open(scene) as s:
        cells = (
            reference_grid(grid)
            if grid is not None
            else cell_grid(s.grid, cell=cell, arcsec=arcsec)
        )
        matched = harmoniser(model, s.select(model.input_bands), harmonise)
        job = population_job(
            model, s, cells, model.chip_shape_, token=folder_token(model_dir),
            tags={"model": str(model.get_params()), "harmonise": harmonise},
            harmonise=matched,
        )  # fmt: skip
        (execution or IN_PROCESS).run(job, out, desc="population", tile=job.default_tile())
        result = read_map(out)
        try:
            check_overlap(result.population, s.name)
        except HumanscapeError:
            out.unlink()
            raise
    lines = []
    if matched is not None:
        shift = ", ".join(
            f"{b} {v:+.3f}" for b, v in zip(model.input_bands, matched.median_shift(), strict=True)
        )
        lines.append(f"harmonised to the training chips (quantile matching; median shift {shift})")
    if district_frame is not None:
        before = float(np.nansum(result.population))
        try:
            result = census_consistent(result, district_frame, total_column, source=districts or "")
        except HumanscapeError:
            out.unlink()  # no map that is not what was asked for
            raise
        lines.append(
            f"census-consistent: {before:,.0f} people estimated, {np.nansum(result.population):,.0f} "
            f"after rescaling to the district totals"
        )
        write_map(
            result,
            out,
            tags={"model": str(model.get_params())},
            cog=(execution or IN_PROCESS).cog,
        )
    lines.append(
        f"wrote {out}: {result.grid.height} x {result.grid.width} cells, "
        f"{np.nansum(result.population):,.0f} people"
    )
    if png is not None:
        values = result.population
        vmax = float(np.nanpercentile(values, 99)) if np.isfinite(values).any() else 1.0
        scalar_quicklook(
            out,
            png,
            title="Estimated population per cell",
            units="people per cell",
            vmin=0.0,
            vmax=max(vmax, 1.0),
            cmap="viridis",
        )
        lines.append(f"wrote {png}")
    return lines
