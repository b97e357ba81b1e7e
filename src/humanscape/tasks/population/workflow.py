"""The population commands as functions: fit (with a transfer test), predict (chips or a map), evaluate.

Each writes its outputs atomically and returns what the command prints.
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
from humanscape.geo.scene import Scene
from humanscape.scale import Execution
from humanscape.tasks.population.chips import PopulationChips, load_chips
from humanscape.tasks.population.evaluate import metrics_table, write_report
from humanscape.tasks.population.model import PopulationModel

log = logging.getLogger(__name__)


def fit_population(
    model: PopulationModel,
    chips: PopulationChips,
    locations: np.ndarray | None,
    out: Path,
    *,
    groups: str | None = None,
    holdout_group: str | None = None,
    holdout: list[str] | None = None,
    neighbors: int = 1,
    block_m: float = 50_000.0,
    source: str | Path = "chip table",
) -> list[str]:
    """Fit ``model`` (on all chips, or all but the held-out region) and save it to ``out``.

    The CNNs checkpoint every epoch into ``<out>.checkpoints/`` (removed once the model is
    saved): a fit interrupted and started again with the same ``out`` resumes from there.
    With ``holdout_group`` the chips of ``holdout`` (default: the region with most chips) are
    never seen in fitting; the model's metrics on them are written to ``transfer.csv`` in the
    model folder, apart from the within-region validation metrics (``validation.csv``).
    """
    assert chips.population is not None
    checkpoints = out.with_name(out.name + ".checkpoints")
    table = chips.table
    group_values = table[groups].astype(str).to_numpy() if groups else None
    keep = np.arange(len(chips))
    transfer = None
    if holdout_group:
        regions = table[holdout_group].astype(str).to_numpy()
        names = holdout or [pd.Series(regions).value_counts().index[0]]
        unknown = [n for n in names if n not in set(regions)]
        if unknown:
            raise HumanscapeError(
                f"no chip has {holdout_group} = {', '.join(unknown)} "
                f"(values: {', '.join(sorted(set(regions))[:10])})",
                path=source,
                fix="give --holdout values of that column",
            )
        test = np.isin(regions, names)
        if test.all():
            raise HumanscapeError(
                f"every chip is in the held-out region(s) {', '.join(names)}",
                path=source,
                fix="hold out fewer regions",
            )
        keep = np.flatnonzero(~test)
        transfer = Split(keep, np.flatnonzero(test), f"{holdout_group} = {', '.join(names)}")
    model.fit(
        chips.images[keep],
        chips.population[keep],
        locations=locations[keep] if locations is not None else None,
        groups=group_values[keep] if group_values is not None else None,
        block_m=block_m,
        work_dir=checkpoints,
    )
    lines = [
        f"{model.validation_name_}: train {model.validation_['n_train']}, validation "
        f"{model.validation_['n_validation']} chips",
        f"validation R2 (log {model.target}) {model.validation_['log']['r2']:.3f}, "
        f"conformal {100 * (1 - model.alpha):.0f} % quantile {model.conformal_.quantile_:.3f} (log)",
    ]
    rows = [{"set": "validation", "scale": model.target, **model.validation_["log"]}]
    rows.append({"set": "validation", "scale": "count", **model.validation_["counts"]})
    files = {"validation.csv": pd.DataFrame(rows).to_csv(index=False)}
    config: dict[str, object] = {"neighbors": neighbors}
    if transfer is not None:
        pred, lower, upper = model.predict_interval(chips.images[transfer.test])
        frame = metrics_table(
            chips.population[transfer.test], pred, lower, upper, label=transfer.name
        )
        files["transfer.csv"] = frame.to_csv(index=False)
        row = frame.set_index("scale").loc["log1p"]
        config["transfer"] = {"held_out": transfer.name, "n": int(transfer.test.size)}
        lines.append(
            f"transfer to {transfer.name} ({transfer.test.size} chips never seen): "
            f"R2 log1p {row['r2']:.3f}, coverage {row['coverage']:.3f}"
        )
    model.save(out, extra_files=files, extra_config=config)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return lines


def predict_table(model: PopulationModel, chip_table: Path, out: Path) -> pd.DataFrame:
    """``image``, ``prediction``, ``lower``, ``upper`` (people) per chip, written as CSV / Parquet."""
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
    return frame


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
    model: PopulationModel, chip_table: Path, target: str, out: Path
) -> pd.DataFrame:
    """The paper's metrics and plots for a chip table with census population, in ``out``."""
    chips = load_chips(chip_table, model.input_bands, target=target)
    assert chips.population is not None
    _check_chip_shape(model, chips, chip_table)
    pred, lower, upper = model.predict_interval(chips.images)
    table = metrics_table(chips.population, pred, lower, upper, label=Path(chip_table).stem)
    predictions = pd.DataFrame(
        {
            "set": Path(chip_table).stem,
            "image": chips.table["image"],
            "observed": chips.population,
            "prediction": pred,
            "lower": lower,
            "upper": upper,
        }
    )
    write_report(out, table, predictions, title="population")
    return table


def map_population(
    model: PopulationModel,
    scene: Scene,
    out: Path,
    *,
    cell: float | None = None,
    arcsec: float | None = None,
    grid: Path | None = None,
    districts: Path | None = None,
    total_column: str = "pop",
    execution: Execution | None = None,
    model_token: str = "",
) -> list[str]:
    """A population GeoTIFF of ``scene`` on a cell grid; census-consistent when ``districts`` given.

    Cells are predicted tile by tile on the tiled engine (``execution``: Dask workers, scheduler,
    tile; default this process); the census rescaling then works on the cell-level map.
    """
    from humanscape.geo.grid import cell_grid
    from humanscape.geo.vector import read_vector
    from humanscape.scale import IN_PROCESS
    from humanscape.tasks.population.mapping import (
        census_consistent,
        check_overlap,
        population_job,
        read_map,
        reference_grid,
        write_map,
    )

    if sum(v is not None for v in (cell, arcsec, grid)) > 1:
        raise HumanscapeError("give one of --cell, --arcsec, --grid", fix="choose one grid")
    cells = (
        reference_grid(grid)
        if grid is not None
        else cell_grid(scene.grid, cell=cell, arcsec=arcsec)
    )
    district_frame = read_vector(districts) if districts is not None else None
    if district_frame is not None and total_column not in district_frame.columns:
        raise HumanscapeError(
            f"district file has no column '{total_column}' (columns: "
            f"{', '.join(c for c in map(str, district_frame.columns) if c != 'geometry')})",
            path=districts,
            fix="give the column of district population totals (--total-column)",
        )
    job = population_job(
        model, scene, cells, model.chip_shape_, token=model_token,
        tags={"model": str(model.get_params())},
    )  # fmt: skip
    (execution or IN_PROCESS).run(job, out, desc="population", tile=job.default_tile())
    result = read_map(out)
    try:
        check_overlap(result.population, scene.name)
    except HumanscapeError:
        out.unlink()
        raise
    lines = []
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
        write_map(result, out, tags={"model": str(model.get_params())})
    lines.append(
        f"wrote {out}: {result.grid.height} x {result.grid.width} cells, "
        f"{np.nansum(result.population):,.0f} people"
    )
    return lines
