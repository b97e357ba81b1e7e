"""``humanscape settlements``: new informal settlements from Sentinel-2 time series (Tingzon et al.)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeGroup
from humanscape.cli.scenes import echo


@click.group("settlements", cls=HumanscapeGroup)
def group() -> None:
    """New informal settlements from Sentinel-2 time series (Tingzon et al. 2020)."""


def label_options(f: Any) -> Any:
    """The options that say what the labels are, handed to the command as one ``labels``."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from humanscape.tasks.settlements.workflow import Labels

        kwargs["labels"] = Labels(
            path=kwargs.pop("labels"),
            column=kwargs.pop("label_column"),
            positive=kwargs.pop("positive") or [],
            negative=kwargs.pop("negative"),
            exclude=kwargs.pop("exclude"),
            group_polygons=kwargs.pop("group_polygons"),
            group_column=kwargs.pop("group_column"),
            landuse=kwargs.pop("landuse"),
            landuse_column=kwargs.pop("landuse_column"),
            formal=kwargs.pop("formal") or [],
            negatives=kwargs.pop("negatives"),
            labelled_negatives=kwargs.pop("labelled_negatives"),
        )
        return f(*args, **kwargs)

    for option in reversed(
        [
            click.option(
                "--labels",
                type=opt.INPUT,
                required=True,
                help="Settlement polygons or points (any vector format, any CRS).",
            ),
            click.option(
                "--label-column",
                default=None,
                help="Column holding the class [default: every feature is a settlement].",
            ),
            opt.names_option("--positive", help="Value(s) of --label-column marking settlements."),
            opt.names_option(
                "--negative",
                help="Value(s) of --label-column that are negatives [default: every other value].",
            ),
            click.option(
                "--exclude",
                type=opt.INPUT,
                default=None,
                help="Polygons never used as negatives nor scored (e.g. unmapped housing).",
            ),
            click.option(
                "--group-polygons",
                type=opt.INPUT,
                default=None,
                help="Group polygons (municipalities): leave-one-group-out CV.",
            ),
            opt.group_column_option("Column of --group-polygons naming the group."),
            click.option(
                "--landuse",
                type=opt.INPUT,
                default=None,
                help="Land-use polygons splitting random negatives into formal / unoccupied (40/60).",
            ),
            click.option("--landuse-column", default=None, help="Land-use class column."),
            opt.names_option("--formal", help="Land-use value(s) that are formal settlement."),
            click.option(
                "--negatives",
                type=click.IntRange(0),
                default=30_000,
                show_default=True,
                help="Random-block negative pixels per group (paper: 30,000).",
            ),
            click.option(
                "--labelled-negatives",
                type=click.IntRange(0),
                default=None,
                help="Most labelled negative pixels per group [default: --negatives].",
            ),
        ]
    ):
        wrapper = option(wrapper)
    return wrapper


def cv_options(f: Any) -> Any:
    """``--block-km``, ``--folds``, ``--buffer-m``, handed to the command as one ``cv``."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from humanscape.tasks.settlements.workflow import SpatialCV

        kwargs["cv"] = SpatialCV(
            kwargs.pop("block_km"), kwargs.pop("folds"), kwargs.pop("buffer_m")
        )
        return f(*args, **kwargs)

    wrapper = click.option(
        "--buffer-m",
        type=click.FloatRange(0),
        default=250.0,
        show_default=True,
        help="Gap (m) between training and held-out data in spatial CV.",
    )(wrapper)
    wrapper = click.option(
        "--folds",
        type=click.IntRange(2),
        default=4,
        show_default=True,
        help="Spatial CV folds of blocks.",
    )(wrapper)
    return click.option(
        "--block-km",
        type=float,
        callback=opt.positive,
        default=2.0,
        show_default=True,
        help="Block side (km) of spatial CV without groups.",
    )(wrapper)


N_JOBS = click.option("--n-jobs", type=int, default=None, help="Cores for scikit-learn (-1: all).")
FEATURES = click.argument("features", type=opt.INPUT)


@group.command("features")
@click.argument("scenes", nargs=-1, required=True, type=opt.INPUT)
@opt.out_file("Feature stack GeoTIFF.")
@click.option("--periods", default=None, help="e.g. 2015-2016,2017-2018 [default: one per input].")
@opt.cloud_mask_options
@click.option(
    "--composites", is_flag=True, help="Inputs are composites (one per period), not scenes."
)
@click.option(
    "--texture",
    is_flag=True,
    help="Add texture (variance, GLCM contrast / homogeneity) of red, nir, swir1.",
)
@click.option(
    "--texture-window",
    type=int,
    callback=opt.odd_window,
    default=7,
    show_default=True,
    help="Texture window in pixels (odd).",
)
@opt.scene_options(band_names=False)
@opt.execution_options()
def features(
    scenes: tuple[str, ...],
    out: Path,
    periods: str | None,
    cloud_mask: Any,
    composites: bool,
    texture: bool,
    texture_window: int,
    reader: Any,
    execution: Any,
) -> None:
    """Per-pixel features: per period 12 bands + 10 indices (66 for three periods)."""
    from humanscape.tasks.settlements.workflow import compute_features

    if texture_window % 2 == 0:
        raise click.BadParameter(
            f"must be odd, got {texture_window}", param_hint="--texture-window"
        )
    echo(
        compute_features(
            list(scenes),
            out,
            reader,
            periods=periods,
            cloud_mask=cloud_mask,
            composites=composites,
            texture=texture,
            texture_window=texture_window,
            execution=execution,
        )
    )


@group.command("fit")
@FEATURES
@opt.out_folder("Model folder to write.")
@label_options
@opt.method_option(
    ("rf", "hgb", "lr", "svm", "auto"),
    "rf",
    "rf (the paper's random forest: the most robust with few labels), hgb (gradient boosting: "
    "better with many labelled pixels, ~3x faster maps), lr, svm, or auto (chosen among them "
    "by spatial CV).",
)
@opt.n_estimators_option(200, "Random forest trees (paper: 800; 200 score the same, 4x faster).")
@cv_options
@N_JOBS
@opt.seed_option
def fit(
    features: Path,
    out: Path,
    labels: Any,
    method: str,
    n_estimators: int,
    cv: Any,
    n_jobs: int | None,
    seed: int,
) -> None:
    """Sample pixels and fit a settlement classifier; writes the model folder and class balance.

    Labelled features of other classes become negatives; the weight of the paper's random-block
    negatives next to them is chosen by spatial CV on the labelled data (as is the method, with
    --method auto)."""
    from humanscape.tasks.settlements.workflow import fit_settlements

    echo(
        fit_settlements(
            features,
            labels,
            out,
            method=method,
            n_estimators=n_estimators,
            cv=cv,
            n_jobs=n_jobs,
            seed=seed,
        )
    )


@group.command("predict")
@click.argument("inputs", nargs=-1, required=True, type=opt.INPUT)
@opt.model_option("Model folder from 'settlements fit'.")
@opt.out_file("Probability GeoTIFF (10 m).")
@click.option(
    "--grid-out", type=opt.OutputPath(), default=None, help="Ranked 500 m grid GeoPackage."
)
@click.option(
    "--polygons-out", type=opt.OutputPath(), default=None, help="Candidate polygons GeoPackage."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Probability threshold of the candidate polygons.",
)
@click.option(
    "--top-k", type=click.IntRange(1), default=None, help="Keep the k best candidate polygons."
)
@click.option(
    "--min-area",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Smallest candidate polygon (m2).",
)
@click.option(
    "--cell",
    type=float,
    callback=opt.positive,
    default=500.0,
    show_default=True,
    help="Cell side of the ranked grid, in metres.",
)
@click.option(
    "--change", is_flag=True, help="Add band new_score: probability minus the earliest period's."
)
@opt.names_option(
    "--periods", help="Period names of the composites, in order [default: the model's]."
)
@opt.scene_options(band_names=False)
@opt.execution_options()
def predict(
    inputs: tuple[str, ...],
    model_dir: str,
    out: Path,
    grid_out: Path | None,
    polygons_out: Path | None,
    threshold: float,
    top_k: int | None,
    min_area: float,
    cell: float,
    change: bool,
    periods: list[str] | None,
    reader: Any,
    execution: Any,
) -> None:
    """Probability map (tile by tile), ranked validation grid and candidate polygons.

    INPUTS: the feature stack of 'settlements features', or one composite per period of the
    model (the features are then computed tile by tile, never written)."""
    from humanscape.tasks.settlements.workflow import predict_settlements

    echo(
        predict_settlements(
            list(inputs),
            model_dir,
            out,
            reader,
            grid_out=grid_out,
            polygons_out=polygons_out,
            threshold=threshold,
            top_k=top_k,
            min_area=min_area,
            cell=cell,
            change=change,
            periods=periods,
            execution=execution,
        )
    )


@group.command("evaluate")
@FEATURES
@opt.out_folder("Report folder: curves.csv, table.csv, curves_*.png.")
@label_options
@opt.methods_option(("lr", "svm", "rf", "hgb", "auto"), "lr,svm,rf,hgb", "Methods to compare.")
@opt.n_estimators_option(200, "Random forest trees (paper: 800; 200 score the same, 4x faster).")
@cv_options
@click.option(
    "--max-test-pixels",
    type=click.IntRange(100),
    default=200_000,
    show_default=True,
    help="Held-out pixels per fold (uniform subsample).",
)
@N_JOBS
@opt.seed_option
def evaluate(
    features: Path,
    out: Path,
    labels: Any,
    methods: list[str],
    n_estimators: int,
    cv: Any,
    max_test_pixels: int,
    n_jobs: int | None,
    seed: int,
) -> None:
    """Leave-one-group-out (or spatial block) CV at the true class balance: PR-AUC and precision /
    recall at the top x %, pixel and settlement level, per fold and pooled."""
    from humanscape.tasks.settlements.workflow import evaluate_settlements

    echo(
        evaluate_settlements(
            features,
            labels,
            out,
            methods=methods,
            n_estimators=n_estimators,
            cv=cv,
            max_test_pixels=max_test_pixels,
            n_jobs=n_jobs,
            seed=seed,
        )
    )
