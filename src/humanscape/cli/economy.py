"""``humanscape economy``: district economic indicators from hyperlocal tile scores (Park et al.)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeGroup
from humanscape.cli.scenes import echo


@click.group("economy", cls=HumanscapeGroup)
def group() -> None:
    """District economic indicators from hyperlocal tile scores (Park et al. 2022)."""


DISTRICT_COLUMN = click.option(
    "--district-column",
    default="district",
    show_default=True,
    help="Column of the district id (tile table and district table).",
)
CHIP = opt.chip_option(
    64, "Side of the scored tile, in scene pixels (Park et al.'s hyperlocal tile)."
)


@group.command("fit-score")
@click.argument("chip_table", type=opt.INPUT)
@click.option(
    "--label-column",
    required=True,
    help="Column of uninhabited / rural / urban (or of classes, with --mapping).",
)
@opt.out_folder("Score model folder to write.")
@click.option(
    "--mapping",
    type=opt.INPUT,
    default=None,
    help="CSV class,level (or class,uninhabited,rural,urban soft shares).",
)
@opt.names_option(
    "--bands", help="Bands [default: B02,B03,B04,B08; red,green,blue for 8-bit images]."
)
@click.option(
    "--method",
    type=click.Choice(["auto", "cnn", "forest", "mosaiks"]),
    default="auto",
    show_default=True,
    help="auto: the best of the others on the validation groups; cnn: the paper's network; "
    "forest: a random forest on chip statistics (the baseline); mosaiks: random convolutional "
    "features and a logistic regression.",
)
@click.option(
    "--arch",
    default="resnet18",
    show_default=True,
    help="Backbone: resnet18 (paper), resnet18_half, any timm name, or a shipped encoder.",
)
@opt.epochs_option(40)
@opt.patience_option(8)
@click.option(
    "--batch-size", type=click.IntRange(2, 4096), default=64, show_default=True, help="Batch size."
)
@click.option(
    "--lr",
    type=click.FloatRange(1e-7, 1.0),
    default=1e-3,
    show_default=True,
    help="Adam learning rate.",
)
@click.option(
    "--input-size",
    type=click.IntRange(8, 1024),
    default=None,
    help="Resize tiles to this side first (e.g. 128 for 64 px chips).",
)
@click.option(
    "--t1", type=float, default=0.0, show_default=True, help="Threshold uninhabited | rural."
)
@click.option("--t2", type=float, default=10.0, show_default=True, help="Threshold rural | urban.")
@click.option("--t-min", type=float, default=-10.0, show_default=True, help="Lowest score (clamp).")
@click.option("--t-max", type=float, default=20.0, show_default=True, help="Highest score (clamp).")
@opt.group_column_option("Column of groups held out whole for validation.")
@opt.seed_option
def fit_score(
    chip_table: Path,
    label_column: str,
    out: Path,
    mapping: Path | None,
    bands: list[str] | None,
    method: str,
    arch: str,
    epochs: int,
    patience: int,
    batch_size: int,
    lr: float,
    input_size: int | None,
    t1: float,
    t2: float,
    t_min: float,
    t_max: float,
    group_column: str | None,
    seed: int,
) -> None:
    """Train the hyperlocal score model (eq. 4-6) on labelled chips."""
    from humanscape.tasks.economy.score import ScoreModel
    from humanscape.tasks.economy.workflow import fit_score

    model = ScoreModel(
        method=method,
        arch=arch,
        bands=bands,  # None: chosen from the chips (fit_score)
        input_size=input_size,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        t1=t1,
        t2=t2,
        t_min=t_min,
        t_max=t_max,
        seed=seed,
    )
    echo(fit_score(model, chip_table, label_column, out, mapping=mapping, groups=group_column))


@group.command("score")
@opt.model_option("Score model folder from 'economy fit-score'.")
@click.argument("chip_table", type=opt.INPUT, required=False)
@opt.out_file(
    "scores.csv (+ scores.gpkg for georeferenced tiles), or score.tif with --scene.",
    siblings=lambda p: [p.with_suffix(".gpkg")] if p.suffix.lower() == ".csv" else [],
)
@click.option("--scene", type=opt.INPUT, default=None, help="Scene to map (file, band folder).")
@CHIP
@opt.png_option()
@opt.scene_options()
@opt.execution_options(tile_help="[default: about 2048 scene pixels a side].")
def score(
    model_dir: str,
    chip_table: str | None,
    out: Path,
    scene: str | None,
    chip: int,
    png: Path | None,
    reader: Any,
    execution: Any,
) -> None:
    """Score tiles: CSV image, score, class (+ GeoPackage), or a score map of a scene (GeoTIFF)."""
    from humanscape.errors import HumanscapeError
    from humanscape.tasks.economy.workflow import map_scores, score_table

    if (chip_table is None) == (scene is None):
        raise HumanscapeError(
            "give either a chip table or --scene",
            fix="economy score --model M tiles.csv --out scores.csv",
        )
    if chip_table is not None:
        if png is not None:
            raise HumanscapeError("--png maps a scene", fix="add --scene SCENE")
        echo(score_table(model_dir, chip_table, out))
        return
    echo(map_scores(model_dir, scene, out, reader, chip=chip, png=png, execution=execution))  # type: ignore[arg-type]


@group.command("tiles")
@click.argument("scene", type=opt.INPUT)
@click.option(
    "--districts",
    type=opt.INPUT,
    required=True,
    help="District polygons (GeoPackage, shapefile ...).",
)
@opt.out_folder("Folder: chips/ and chips.csv.")
@DISTRICT_COLUMN
@CHIP
@click.option(
    "--stride",
    type=click.IntRange(1),
    default=None,
    help="Pixels between tile starts [default: --chip].",
)
@click.option(
    "--min-overlap",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Share of a tile that must lie in its district.",
)
@opt.names_option("--bands", help="Bands to keep [default: all].")
@opt.scene_options()
def tiles(
    scene: str,
    districts: Path,
    out: Path,
    district_column: str,
    chip: int,
    stride: int | None,
    min_overlap: float,
    bands: list[str] | None,
    reader: Any,
) -> None:
    """Cut small tiles inside each district polygon: the tile table of 'economy fit'."""
    from humanscape.tasks.economy.workflow import cut_tiles

    echo(
        cut_tiles(
            scene,
            districts,
            out,
            reader,
            district_column=district_column,
            chip=chip,
            stride=stride,
            min_overlap=min_overlap,
            bands=bands,
        )
    )


def district_options(f: Any) -> Any:
    """The inputs of ``economy fit`` / ``evaluate``, handed to the command as one ``inputs``."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from humanscape.tasks.economy.data import DistrictInputs

        kwargs["inputs"] = DistrictInputs(
            tile_table=kwargs.pop("tile_table"),
            districts=kwargs.pop("districts"),
            indicator=kwargs["indicator"],
            score_model=kwargs.pop("score_model"),
            district_column=kwargs.pop("district_column"),
            weight_column=kwargs.pop("weight_column"),
            labelled=kwargs.pop("labelled"),
            label_column=kwargs.pop("label_column"),
            mapping=kwargs.pop("mapping"),
            nightlight=kwargs["nightlight"],
        )
        return f(*args, **kwargs)

    for option in reversed(
        [
            click.argument("tile_table", type=opt.INPUT),
            click.option(
                "--districts",
                type=opt.INPUT,
                required=True,
                help="District table (CSV) with the indicator.",
            ),
            click.option(
                "--indicator", required=True, help="Indicator column of the district table."
            ),
            click.option(
                "--score-model",
                type=opt.INPUT,
                required=True,
                help="Score model folder ('economy fit-score').",
            ),
            DISTRICT_COLUMN,
            click.option(
                "--indicator-kind",
                type=click.Choice(["count", "rate"]),
                default="count",
                show_default=True,
                help="count (unions add: population, GDP) or rate (unions average: per head).",
            ),
            click.option(
                "--weight-column",
                default=None,
                help="Weights of a rate's union average [default: tile counts].",
            ),
            click.option(
                "--labelled",
                type=opt.INPUT,
                default=None,
                help="Labelled chips for the encoders [default: the score model's own].",
            ),
            click.option("--label-column", default=None, help="Level column of --labelled."),
            click.option(
                "--mapping", type=opt.INPUT, default=None, help="Class -> level CSV of --labelled."
            ),
            click.option(
                "--nightlight",
                type=opt.INPUT,
                default=None,
                help="Nightlight raster: adds the nightlight-proxy encoders.",
            ),
            click.option(
                "--n-clusters",
                default="0,30,90",
                show_default=True,
                callback=_cluster_counts,
                help="n_c of each encoder, comma-separated (paper 0,30,90).",
            ),
            click.option(
                "--encoder-epochs",
                type=click.IntRange(1, 1000),
                default=5,
                show_default=True,
                help="Epochs per encoder.",
            ),
            opt.n_estimators_option(200, "Random forest trees of the district regressor."),
            click.option(
                "--max-pairs",
                type=click.IntRange(0),
                default=5000,
                show_default=True,
                help="Most district pairs added by augmentation.",
            ),
            opt.seed_option,
        ]
    ):
        wrapper = option(wrapper)
    return wrapper


def _cluster_counts(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of integers") from None
    if any(k < 0 or k > 1000 for k in counts):
        raise click.BadParameter(f"cluster counts must be in 0..1000, got {value}")
    return counts


def _economy_model(kwargs: dict[str, Any], *, augment: bool) -> Any:
    from humanscape.tasks.economy.model import EconomyModel

    return EconomyModel(
        indicator=kwargs["indicator"],
        indicator_kind=kwargs["indicator_kind"],
        n_clusters=kwargs["n_clusters"],
        sources=["labels", "nightlight"] if kwargs["nightlight"] else ["labels"],
        encoder_epochs=kwargs["encoder_epochs"],
        n_estimators=kwargs["n_estimators"],
        augment=augment,
        max_pairs=kwargs["max_pairs"],
        seed=kwargs["seed"],
    )


@group.command("fit")
@district_options
@opt.out_folder("Economy model folder to write.")
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="District augmentation (pair unions).",
)
def fit(inputs: Any, out: Path, augment: bool, **model: Any) -> None:
    """Train the step-2 encoders and the district regressor; write the economy model."""
    from humanscape.tasks.economy.workflow import fit_economy

    echo(fit_economy(_economy_model(model, augment=augment), inputs, out))


@group.command("predict")
@opt.model_option("Economy model folder from 'economy fit'.")
@click.argument("tile_table", type=opt.INPUT)
@opt.out_file(
    "districts.csv to write (and districts_national.json beside it).",
    siblings=lambda p: [p.with_name(p.stem + "_national.json")],
)
@DISTRICT_COLUMN
def predict(model_dir: str, tile_table: Path, out: Path, district_column: str) -> None:
    """Indicator, district factor and within-district Gini per district; national Gini."""
    from humanscape.tasks.economy.workflow import predict_economy

    echo(predict_economy(model_dir, tile_table, out, district_column=district_column))


@group.command("evaluate")
@district_options
@opt.out_folder("Report folder to write.")
@click.option(
    "--splits",
    type=click.IntRange(2, 10_000),
    default=100,
    show_default=True,
    help="Random 80/20 splits (paper 100).",
)
@click.option(
    "--share-splits",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Splits per training share (Figure 6).",
)
@click.option(
    "--region-column",
    default=None,
    help="District-table column of regions: transfer between them, by Spearman (Figure 7).",
)
def evaluate(
    inputs: Any, out: Path, splits: int, share_splits: int, region_column: str | None, **model: Any
) -> None:
    """Table 1 (r2 over random splits: full model, ablations, baselines), Figure 6, transfer, Gini."""
    from humanscape.tasks.economy.workflow import evaluate_economy

    echo(
        evaluate_economy(
            _economy_model(model, augment=True),
            inputs,
            out,
            n_splits=splits,
            share_splits=share_splits,
            region_column=region_column,
            report=click.echo,
        )
    )
