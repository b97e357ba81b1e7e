"""``humanscape flows``: origin-destination commuting flows (Imagery2Flow / GMEL, with Deep
Gravity, gravity, radiation and GBRT baselines)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeGroup
from humanscape.cli.scenes import echo


@click.group("flows", cls=HumanscapeGroup)
def group() -> None:
    """Origin-destination commuting flows from region features and imagery (Imagery2Flow)."""


def city_options(*, several: bool = True, flows: bool = True) -> Any:
    """Where the cities come from, handed to the command as one ``cities``
    (:class:`~humanscape.tasks.flows.workflow.Cities`)."""

    def decorate(f: Any) -> Any:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from humanscape.errors import HumanscapeError
            from humanscape.tasks.flows.workflow import Cities

            given = kwargs.pop("commuting_od")
            first = list(given) if isinstance(given, list | tuple) else [given] if given else []
            more = list(kwargs.pop("folders", None) or [])
            if more and not first:
                raise HumanscapeError(
                    f"unexpected argument {more[0]}", fix="county folders follow --commuting-od"
                )
            kwargs["cities"] = Cities(
                counties=[Path(str(p)) for p in first + more],
                regions=kwargs.pop("regions"),
                flows=kwargs.pop("flows", None),
                embeddings=kwargs.pop("embeddings"),
                id_column=kwargs.pop("id_column"),
            )
            return f(*args, **kwargs)

        wrapper = opt.id_column_option("id", "Region id column of --regions.")(wrapper)
        wrapper = click.option(
            "--embeddings",
            type=opt.INPUT,
            default=None,
            help="Region embeddings table ('flows embed'): image features of each region.",
        )(wrapper)
        if flows:
            wrapper = click.option(
                "--flows",
                type=opt.INPUT,
                default=None,
                help="Observed flows CSV origin,destination,flow (with --regions).",
            )(wrapper)
        wrapper = click.option(
            "--regions",
            type=opt.INPUT,
            default=None,
            help="Regions file (GeoPackage ...) with ids and numeric feature columns.",
        )(wrapper)
        if several:
            wrapper = click.argument("folders", nargs=-1, type=opt.INPUT)(wrapper)
        return click.option(
            "--commuting-od",
            multiple=several,
            type=opt.INPUT,
            default=None,
            help="CommutingODGen county folder"
            + ("(s): --commuting-od DIR [DIR ...]." if several else "."),
        )(wrapper)

    return decorate


MARGINS = click.option(
    "--margins",
    type=click.Choice(["estimated", "observed"]),
    default="estimated",
    show_default=True,
    help="Origin / destination totals of the methods that need them: estimated from the "
    "regions' features (a city with no survey) or observed (from the city's own flows).",
)


@group.command("fit")
@opt.out_folder("Model folder to write.")
@city_options()
@opt.method_option(
    ("gravity", "auto", "gnn", "radiation", "deepgravity", "gbrt"),
    "gravity",
    "Model (default: the best measured on held-out counties); auto: gravity, radiation or gbrt, "
    "the best CPC on cities held out in turn (gravity unless another is better).",
)
@click.option(
    "--constraint",
    type=click.Choice(["none", "production", "doubly"]),
    default="doubly",
    show_default=True,
    help="Gravity: unconstrained, production (singly) or doubly constrained.",
)
@click.option(
    "--deterrence",
    type=click.Choice(["power", "exponential"]),
    default="power",
    show_default=True,
    help="Gravity distance decay: power (d^-g) or exponential (exp(-g d)).",
)
@opt.epochs_option(300, "Most epochs (gnn, deepgravity).")
@opt.patience_option(40)
@click.option(
    "--knn",
    type=click.IntRange(0, 100),
    default=8,
    show_default=True,
    help="GAT: the k nearest regions linked to each region (besides those it borders).",
)
@click.option(
    "--validation",
    type=click.Choice(["pairs", "cities"]),
    default="pairs",
    show_default=True,
    help="Networks stop early on held-out pairs of every city (pairs, 8:1:1) or on held-out "
    "training cities (cities: a sixth of them, needs 3 or more).",
)
@opt.seed_option
def fit(
    out: Path,
    cities: Any,
    method: str,
    constraint: str,
    deterrence: str,
    epochs: int,
    patience: int,
    knn: int,
    validation: str,
    seed: int,
) -> None:
    """Fit a flow model on cities with observed flows; write the model folder."""
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import fit_flows

    model = FlowModel(
        method,
        constraint=constraint,
        deterrence=deterrence,
        epochs=epochs,
        patience=patience,
        knn=knn,
        validation=validation,
        seed=seed,
    )
    echo(fit_flows(model, cities, out))


@group.command("predict")
@opt.model_option("Model folder from 'flows fit'.")
@opt.out_file("Flows CSV to write: origin,destination,flow.")
@city_options(several=False, flows=False)
@opt.png_option("PNG map of the strongest predicted flows.")
@MARGINS
def predict(model_dir: str, out: Path, cities: Any, png: Path | None, margins: str) -> None:
    """Predict every origin-destination flow of one city (a county folder or a regions file)."""
    from humanscape.tasks.flows.workflow import predict_flows

    echo(predict_flows(model_dir, cities, out, margins=margins, png=png))


@group.command("evaluate")
@opt.model_option("Model folder from 'flows fit'.")
@opt.out_folder("Report folder to write.")
@city_options()
@MARGINS
def evaluate(model_dir: str, out: Path, cities: Any, margins: str) -> None:
    """CPC, CPL, RMSE, MAE, Pearson r per city, CPC by distance band, plots and flow maps."""
    from humanscape.tasks.flows.workflow import evaluate_flows

    echo(evaluate_flows(model_dir, cities, out, margins=margins))


@group.command("embed")
@click.option("--regions", type=opt.INPUT, required=True, help="Regions file with an id column.")
@opt.id_column_option("id", "Region id column of --regions.")
@click.option(
    "--scene",
    type=opt.INPUT,
    required=True,
    help="Scene: multi-band file, folder / glob of band files.",
)
@click.option(
    "--encoder",
    default=None,
    help="A shipped encoder's name ('humanscape encoders') or an encoder folder [default: the "
    "shipped encoder with the best held-out linear probe that reads the scene's bands].",
)
@opt.out_file("Embeddings table (Parquet) to write.")
@opt.chip_option(64, "Side of a tile, in scene pixels.")
@opt.scene_options()
def embed(
    regions: Path,
    id_column: str,
    scene: str,
    encoder: str | None,
    out: Path,
    chip: int,
    reader: Any,
) -> None:
    """Step 1: tiles per region -> encoder -> mean and std of the tile embeddings per region."""
    from humanscape.tasks.flows.workflow import embed_flow_regions

    echo(embed_flow_regions(regions, scene, encoder, out, reader, id_column=id_column, size=chip))
