"""``humanscape population``: people per grid cell from Sentinel-2 chips (Huang et al. 2021)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeGroup
from humanscape.cli.scenes import echo


@click.group("population", cls=HumanscapeGroup)
def group() -> None:
    """Population per grid cell from Sentinel-2 chips (Huang et al. 2021)."""


CHIP_TABLE = click.argument("chip_table", type=opt.INPUT)
TARGET = click.option("--target", required=True, help="Column of people per cell.")


@group.command("fit")
@CHIP_TABLE
@TARGET
@opt.out_folder("Model folder to write.")
@opt.method_option(
    ("auto", "ensemble", "cnn", "features"),
    "auto",
    "auto: ensemble, ridge or a random forest on band statistics, the best by 3-fold spatial CV "
    "on this table (the forest unless another is better); ensemble (CNN on R, G, B, NIR + ridge "
    "on 13-band statistics), cnn, or features.",
)
@click.option(
    "--arch",
    default="resnet18",
    show_default=True,
    help="CNN backbone: resnet18, vgg16_bn, resnet50, xception, densenet121 (any timm name), or "
    "a shipped encoder to fine-tune.",
)
@opt.names_option("--bands", help="CNN bands [default: B02,B03,B04,B08].")
@opt.names_option("--feature-bands", help="Bands of the feature head [default: all 13].")
@opt.names_option(
    "--features",
    help="Frozen features of the head: stats, mosaiks, encoder [default: stats].",
    choices=("stats", "mosaiks", "encoder"),
)
@click.option(
    "--head", type=click.Choice(["ridge", "hgb", "rf"]), default="ridge", show_default=True,
    help="Head on the features.",
)  # fmt: skip
@click.option(
    "--neighbors",
    type=int,
    default=1,
    show_default=True,
    callback=opt.odd,
    help="n of the nbr(n) chips of the table (recorded).",
)
@click.option(
    "--input-size",
    type=click.IntRange(8, 1024),
    default=None,
    help="Resize chips to this side for the CNN (paper: 256).",
)
@opt.epochs_option(30)
@click.option(
    "--cnn-seeds",
    type=click.IntRange(1, 20),
    default=None,
    help="CNNs trained from different seeds and averaged [default: 3].",
)
@opt.patience_option(10)
@click.option(
    "--radiometric-jitter/--no-radiometric-jitter",
    default=False,
    show_default=True,
    help="Train the CNN on chips with random haze, brightness and per-band gain.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="CNN batch size.",
)
@click.option(
    "--lr",
    type=click.FloatRange(1e-7, 1.0),
    default=1e-3,
    show_default=True,
    help="Adam learning rate.",
)
@click.option(
    "--target-transform",
    type=click.Choice(["log1p", "log"]),
    default="log1p",
    show_default=True,
    help="log1p, or the paper's log with p < 1 -> 0 (eq. 1).",
)
@opt.alpha_option
@click.option(
    "--bias-correction",
    is_flag=True,
    help="Isotonic bias correction fitted on validation predictions.",
)
@opt.group_column_option()
@click.option(
    "--block-km",
    type=click.FloatRange(0.01),
    default=50.0,
    show_default=True,
    help="Block side of the spatial validation split (without --group-column).",
)
@opt.region_options
@opt.seed_option
def fit(
    chip_table: Path,
    target: str,
    out: Path,
    method: str,
    arch: str,
    bands: list[str] | None,
    feature_bands: list[str] | None,
    features: list[str] | None,
    head: str,
    neighbors: int,
    input_size: int | None,
    epochs: int,
    cnn_seeds: int | None,
    patience: int,
    radiometric_jitter: bool,
    batch_size: int,
    lr: float,
    target_transform: str,
    alpha: float,
    bias_correction: bool,
    group_column: str | None,
    block_km: float,
    region_column: str | None,
    holdout: list[str] | None,
    seed: int,
) -> None:
    """Fit a population model on a chip table and write it with its validation metrics."""
    from humanscape.tasks.population.model import PopulationModel
    from humanscape.tasks.population.workflow import fit_population

    given = {
        "bands": bands,
        "feature_bands": feature_bands or (bands if method == "features" else None),
        "cnn_seeds": cnn_seeds,
        "features": features,
    }
    model = PopulationModel(
        method=method,
        arch=arch,
        **{k: v for k, v in given.items() if v is not None},  # the others: the model's defaults
        head=head,
        input_size=input_size,
        epochs=epochs,
        patience=patience,
        radiometric_jitter=radiometric_jitter,
        batch_size=batch_size,
        lr=lr,
        target=target_transform,
        alpha=alpha,
        bias_correction=bias_correction,
        seed=seed,
    )
    echo(
        fit_population(
            model,
            chip_table,
            target,
            out,
            group_column=group_column,
            region_column=region_column,
            holdout=holdout,
            neighbors=neighbors,
            block_km=block_km,
        )
    )


@group.command("predict")
@opt.model_option("Model folder from 'population fit'.")
@click.argument("chip_table", type=opt.INPUT, required=False)
@opt.out_file("predictions.csv (image, prediction, lower, upper), or pop.tif with --scene.")
@click.option(
    "--scene", type=opt.INPUT, default=None, help="Scene to map (file, band folder, .SAFE)."
)
@opt.cell_options
@click.option(
    "--grid",
    type=opt.INPUT,
    default=None,
    help="Map on the grid of this raster (e.g. a census grid).",
)
@click.option(
    "--districts",
    type=opt.INPUT,
    default=None,
    help="District polygons with population totals: the map is rescaled to them.",
)
@click.option(
    "--total-column", default="pop", show_default=True, help="Column of the district totals."
)
@click.option(
    "--harmonise",
    type=click.Choice(["quantile", "none"]),
    default="quantile",
    show_default=True,
    help="Map each band of the scene to the training chips' distribution first (quantile matching).",
)
@opt.png_option()
@opt.scene_options()
@opt.execution_options(tile_help="[default: about 2048 scene pixels a side].")
def predict(
    model_dir: str,
    chip_table: str | None,
    out: Path,
    scene: str | None,
    cell: float | None,
    arcsec: float | None,
    grid: Path | None,
    districts: Path | None,
    total_column: str,
    harmonise: str,
    png: Path | None,
    reader: Any,
    execution: Any,
) -> None:
    """People per chip of a chip table (CSV), or a population map of a scene (GeoTIFF)."""
    from humanscape.errors import HumanscapeError
    from humanscape.tasks.population.workflow import map_population, predict_table

    if (chip_table is None) == (scene is None):
        raise HumanscapeError(
            "give either a chip table or --scene",
            fix="population predict --model M chips.csv --out p.csv",
        )
    if chip_table is not None:
        if districts or grid or cell or arcsec or png:
            raise HumanscapeError(
                "--cell, --arcsec, --grid, --districts and --png map a scene",
                fix="add --scene SCENE",
            )
        echo(predict_table(model_dir, chip_table, out))
        return
    echo(
        map_population(
            model_dir,
            scene,  # type: ignore[arg-type]
            out,
            reader,
            cell=cell,
            arcsec=arcsec,
            grid=grid,
            districts=districts,
            total_column=total_column,
            png=png,
            execution=execution,
            harmonise=harmonise,
        )
    )


@group.command("evaluate")
@opt.model_option("Model folder from 'population fit'.")
@CHIP_TABLE
@TARGET
@opt.out_folder("Report folder: metrics.csv, predictions.csv, scatter and bias PNGs.")
def evaluate(model_dir: str, chip_table: Path, target: str, out: Path) -> None:
    """The paper's metrics on log, log1p and count scales (r2 = the paper's CoE, pearson_r2 = the
    paper's R², MIoA, MAE, Table III bias), interval coverage, scatter and bias figures."""
    from humanscape.tasks.population.workflow import evaluate_table

    echo(evaluate_table(model_dir, chip_table, target, out))


@group.command("disaggregate")
@click.argument("scene", type=opt.INPUT)
@click.option(
    "--units",
    "units_path",
    type=opt.INPUT,
    default=None,
    help="Census units (districts) with a count of people each; any vector format and CRS "
    "(the pixel values of a scene are --pixel-units). Required unless --model is given.",
)
@click.option("--count-column", default=None, help="Column of people per unit (with --units).")
@opt.id_column_option(
    None, "Column of unit ids (for messages) [default: row number].", required=False
)
@opt.out_file(
    "Output GeoTIFF: people per cell (band 'population', summing to each unit) and the 90 % band "
    "('population_lower_90', 'population_upper_90')."
)
@click.option(
    "--cell",
    type=float,
    default=100.0,
    show_default=True,
    callback=opt.positive,
    help="Cell side in metres (a whole number of scene pixels).",
)
@click.option(
    "--grid",
    "reference",
    type=opt.INPUT,
    default=None,
    help="Map on the cells of this raster instead (e.g. a census grid; its cells a whole number "
    "of scene pixels).",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "areal", "binary", "rf", "occupancy"]),
    default="auto",
    show_default=True,
    help="auto (the best of areal weighting, binary dasymetric and random-forest dasymetric by "
    "a blocks-of-blocks check, areal unless another is 10 % better), areal, binary (land-use or "
    "built-up share), rf, occupancy (weakly supervised log-linear).",
)
@click.option(
    "--landuse",
    type=opt.INPUT,
    default=None,
    help="Land-use polygons (e.g. OSM): the share of each cell under --built classes becomes a "
    "covariate.",
)
@click.option(
    "--landuse-column", default="fclass", show_default=True, help="Land-use class column."
)
@opt.names_option("--built", help="Land-use classes where people live [default: residential].")
@opt.model_option(
    "A disaggregation model folder (from --save-model) to use instead of fitting one; without "
    "--units it maps its density unconstrained.",
    required=False,
)
@click.option(
    "--save-model",
    type=opt.OutputPath("folder"),
    default=None,
    help="Write the fitted disaggregation model to this folder (to map a neighbouring scene).",
)
@opt.scene_options()
@opt.cog_option
def disaggregate(
    scene: Path,
    units_path: Path | None,
    count_column: str | None,
    id_column: str | None,
    out: Path,
    cell: float,
    reference: Path | None,
    method: str,
    landuse: Path | None,
    landuse_column: str,
    built: list[str] | None,
    model_dir: Path | None,
    save_model: Path | None,
    reader: Any,
    cog: bool,
) -> None:
    """Spread census counts of units over the cells of SCENE (dasymetric mapping): people per
    cell that sum exactly to each unit's count, with a 90 % band."""
    from humanscape.tasks.population.dasymetric import disaggregate_scene

    echo(
        disaggregate_scene(
            scene,
            units_path,
            count_column,
            out,
            reader,
            cell=cell,
            reference=reference,
            id_column=id_column,
            method=method,
            landuse=landuse,
            landuse_column=landuse_column,
            built=built or ["residential"],
            model=model_dir,
            save_model=save_model,
            cog=cog,
        )
    )


@group.command("evaluate-map")
@click.argument("map_path", type=opt.INPUT)
@click.option(
    "--reference",
    type=opt.INPUT,
    required=True,
    help="Raster of people per cell to compare with (e.g. a census grid), same CRS, coarser or equal.",
)
@click.option(
    "--units",
    "units_path",
    type=opt.INPUT,
    default=None,
    help="The census units the map was made from: areal weighting from them is scored too.",
)
@click.option("--count-column", default=None, help="Column of people per unit (with --units).")
@click.option(
    "--min-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help="Keep reference cells whose band 5 (share inside the scene) is at least this.",
)
@opt.png_option()
def evaluate_map_command(
    map_path: Path,
    reference: Path,
    units_path: Path | None,
    count_column: str | None,
    min_fraction: float | None,
    png: Path | None,
) -> None:
    """r2 on counts and on log(1 + p), MAE and total error of a population map against a
    reference grid, beside areal weighting from the same units."""
    from humanscape.tasks.population.dasymetric import evaluate_map_lines

    if (units_path is None) != (count_column is None):
        raise click.UsageError("give --units and --count-column together")
    echo(
        evaluate_map_lines(
            map_path,
            reference,
            units_path=units_path,
            count_column=count_column,
            min_fraction=min_fraction,
            png=png,
        )
    )
