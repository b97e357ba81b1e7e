"""``humanscape migration``: municipal migration outflow from census tables and imagery (Runfola)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeGroup
from humanscape.cli.scenes import echo

METHODS = ("ensemble", "signature+imagery", "signature", "dense", "imagery", "hgb", "rf", "ridge")


@click.group("migration", cls=HumanscapeGroup)
def group() -> None:
    """Municipal migration outflow from census tables and imagery (Runfola et al. 2022)."""


CENSUS = click.argument("census", type=opt.INPUT)
IMAGES = click.option(
    "--images",
    type=opt.INPUT,
    default=None,
    help="Tile table (image + the id column) for the imagery methods.",
)
MISSING = click.option(
    "--missing", type=float, default=None, help="Value that marks a missing census value (e.g. -1)."
)
DROP = click.option("--drop", is_flag=True, help="Drop non-numeric columns (else refused).")
POLYGONS = click.option(
    "--polygons", type=opt.INPUT, default=None, help="Municipality polygons (ids as --id-column)."
)
POLYGON_ID = click.option(
    "--polygon-id-column", default=None, help="Id column of --polygons [default: --id-column]."
)


def training_options(f: Any) -> Any:
    """The hyperparameters of a migration model, handed to the command as one ``make(method,
    seed)`` that builds it."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from humanscape.tasks.migration.model import MigrationModel

        settings = {k: kwargs.pop(k) for k in ("epochs", "patience", "n_estimators", "alpha")}

        def make(method: str, seed: int) -> MigrationModel:
            return MigrationModel(method, seed=seed, **settings)

        kwargs["make"] = make
        return f(*args, **kwargs)

    for option in (
        opt.alpha_option,
        opt.n_estimators_option(300, "Trees (rf) / most boosting rounds (hgb, ensemble)."),
        opt.patience_option(40),
        opt.epochs_option(250, "Most training epochs of the networks (paper 250)."),
    ):
        wrapper = option(wrapper)
    return wrapper


@group.command("fit")
@CENSUS
@opt.id_column_option(None, "Municipality id column.")
@click.option("--target", required=True, help="Outflow column (migrants).")
@opt.out_folder("Model folder to write.")
@opt.method_option(
    ("auto", *METHODS),
    "auto",
    "auto: ensemble, hgb, rf or ridge, the best by 5-fold cross-validation on this table (the "
    "forest unless another is better); or a model by name.",
)
@opt.group_column_option(
    "Column of places (e.g. state): auto holds out whole places in its cross-validation."
)
@IMAGES
@POLYGONS
@POLYGON_ID
@click.option(
    "--variable-groups",
    type=opt.INPUT,
    default=None,
    help="CSV variable,group: signature cells coloured by group.",
)
@MISSING
@DROP
@training_options
@opt.seed_option
def fit(
    census: Path,
    id_column: str,
    target: str,
    out: Path,
    method: str,
    group_column: str | None,
    images: Path | None,
    polygons: Path | None,
    polygon_id_column: str | None,
    variable_groups: Path | None,
    missing: float | None,
    drop: bool,
    make: Any,
    seed: int,
) -> None:
    """Fit a migration model on a census table (and image tiles); write the model folder."""
    from humanscape.tasks.migration.workflow import Census, fit_migration

    table = Census(
        census,
        id_column,
        target=target,
        missing=missing,
        drop=drop,
        images=images,
        region_column=group_column,
    )
    echo(
        fit_migration(
            make(method, seed),
            table,
            out,
            polygons=polygons,
            polygon_id_column=polygon_id_column,
            variable_groups=variable_groups,
        )
    )


@group.command("predict")
@opt.model_option("Model folder from 'migration fit'.")
@CENSUS
@opt.out_file("Predictions CSV: id, prediction, lower, upper.")
@IMAGES
@opt.id_column_option(None, "Municipality id column [default: the model's].", required=False)
def predict(
    model_dir: str, census: Path, out: Path, images: Path | None, id_column: str | None
) -> None:
    """Outflow per municipality with conformal intervals; the table is read as the training table
    was (id column, missing-value code: from the model folder)."""
    from humanscape.tasks.migration.workflow import predict_migration

    echo(predict_migration(model_dir, census, out, images=images, id_column=id_column))


@group.command("evaluate")
@CENSUS
@opt.id_column_option(None, "Municipality id column.")
@click.option("--target", required=True, help="Outflow column (migrants).")
@opt.out_folder("Report folder to write.")
@opt.methods_option(
    METHODS,
    "ensemble,signature,dense,hgb,rf",
    "Methods to compare; the first gets importance, Moran's I and the figures.",
)
@IMAGES
@POLYGONS
@POLYGON_ID
@opt.region_options
@click.option("--population", default=None, help="Population column for Figure 5.")
@MISSING
@DROP
@click.option(
    "--splits",
    type=click.IntRange(2, 100),
    default=5,
    show_default=True,
    help="Random 80/20 splits.",
)
@training_options
@opt.seed_option
def evaluate(
    census: Path,
    id_column: str,
    target: str,
    out: Path,
    methods: list[str],
    images: Path | None,
    polygons: Path | None,
    polygon_id_column: str | None,
    region_column: str | None,
    holdout: list[str] | None,
    population: str | None,
    missing: float | None,
    drop: bool,
    splits: int,
    make: Any,
    seed: int,
) -> None:
    """Table 2 over random splits, transfer between regions, importance, Moran's I and figures."""
    from humanscape.tasks.migration.workflow import Census, evaluate_migration

    table = Census(
        census,
        id_column,
        target=target,
        missing=missing,
        drop=drop,
        region_column=region_column,
        images=images,
    )
    echo(
        evaluate_migration(
            methods,
            make,
            table,
            out,
            polygons=polygons,
            polygon_id_column=polygon_id_column,
            holdout=holdout,
            population=population,
            n_splits=splits,
            seed=seed,
            report=click.echo,
        )
    )
