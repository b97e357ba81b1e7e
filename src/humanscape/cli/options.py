"""Every option and argument the commands share, defined once; each name has one meaning.

In the manner of rasterio's ``rio`` (``rasterio/rio/options.py``): options are click decorators,
and the groups of options most commands take come as one decorator that hands the command one
object (:func:`scene_options` -> a :class:`~humanscape.geo.inputs.SceneReader`,
:func:`execution_options` -> a :class:`~humanscape.scale.Execution`). The vocabulary:

``--out``            the command's main output (a file or a folder, said in its help)
``--model``          a model folder to use (never the kind of model)
``--method``         the kind of model ``fit`` trains (``--methods``: several, to compare)
``--tile``           side of a work tile of a map, in output pixels (resume and memory unit)
``--chip``           side of one image chip or tile a model reads, in scene pixels
``--cell``           side of a grid cell, in metres (``--arcsec``: arc-seconds)
``--bands``          band names, comma-separated (``--band-names``: what each layer of a file is)
``--group-column``   the column of spatial groups kept whole in cross-validation
``--region-column``  the column of regions a transfer test holds out (``--holdout``: which)
``--id-column``      the column of unit ids
``--n-estimators``   trees of a forest / rounds of boosting
``--png``            a figure of the main output

Options that take several values (``--bands``, ``--indices``, ``--positive`` ...) accept a
comma-separated list, repeated or not.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import click

F = Callable[..., Any]


# --- parameter types ----------------------------------------------------------------------------


class OutputPath(click.ParamType):
    """An output of a command: a ``file`` or a ``folder``, checked before the command runs
    (:func:`humanscape.cli.boundary.check_outputs`). ``siblings(path)`` names files written beside
    it (``scores.csv`` -> ``scores.gpkg``), checked with it."""

    name = "path"

    def __init__(
        self,
        kind: Literal["file", "folder"] = "file",
        siblings: Callable[[Path], Sequence[Path]] | None = None,
    ) -> None:
        self.kind = kind
        self._siblings = siblings

    def siblings(self, path: Path) -> list[Path]:
        return list(self._siblings(path)) if self._siblings else []

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        return value if isinstance(value, Path) else Path(str(value))


class InputPath(click.ParamType):
    """An input: a local path (:class:`~pathlib.Path`), or a URL / ``/vsi`` path kept as given
    (a string: ``pathlib`` would turn ``https://`` into ``https:/``). Globs stay strings."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from humanscape.geo.files import is_remote

        text = str(value)
        if is_remote(text) or any(ch in text for ch in "*?["):
            return text
        return value if isinstance(value, Path) else Path(text)


INPUT = InputPath()


def names(value: Sequence[str] | str | None) -> list[str] | None:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``; ``None`` or nothing -> ``None``."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    out = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    return out or None


def _names_callback(ctx: click.Context, param: click.Parameter, value: Any) -> list[str] | None:
    return names(value)


def names_option(*decls: str, help: str, choices: Sequence[str] | None = None) -> Callable[[F], F]:
    """An option of several names: comma-separated and/or repeated; ``None`` when not given."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> list[str] | None:
        out = names(value)
        if choices is not None and out:
            bad = [v for v in out if v not in choices]
            if bad:
                raise click.BadParameter(
                    f"{', '.join(repr(b) for b in bad)} not one of {', '.join(choices)}"
                )
        return out

    return click.option(
        *decls, multiple=True, callback=callback, metavar="NAME[,NAME...]", help=help
    )


def positive(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Callback: a number above zero (or not given)."""
    if value is not None and not value > 0:
        raise click.BadParameter(f"must be positive, got {value:g}")
    return value


def odd_window(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """Callback: an odd window side of at least 3 pixels."""
    if value < 3 or value % 2 == 0:
        raise click.BadParameter(f"must be odd and at least 3 (3, 5, 7 ...), got {value}")
    return value


def odd(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """Callback: an odd count, at least 1 (an n x n neighbourhood)."""
    if value < 1 or value % 2 == 0:
        raise click.BadParameter(f"must be odd and at least 1 (1, 3, 5 ...), got {value}")
    return value


# --- outputs and inputs ---------------------------------------------------------------------------


def out_file(
    help: str, *, siblings: Callable[[Path], Sequence[Path]] | None = None
) -> Callable[[F], F]:
    """``--out FILE`` (required)."""
    return click.option("--out", "-o", type=OutputPath("file", siblings), required=True, help=help)


def out_folder(help: str, *, default: str | None = None) -> Callable[[F], F]:
    """``--out FOLDER`` (required unless a default is given)."""
    return click.option(
        "--out",
        "-o",
        type=OutputPath("folder"),
        required=default is None,
        default=default,
        show_default=default is not None,
        help=help,
    )


def png_option(
    help: str = "PNG figure of the output (title, colour bar with units, scale bar).",
) -> Callable[[F], F]:
    return click.option("--png", type=OutputPath("file"), default=None, help=help)


def model_option(help: str, *, required: bool = True) -> Callable[[F], F]:
    """``--model FOLDER``: a model folder to use."""
    return click.option("--model", "model_dir", type=INPUT, required=required, help=help)


def method_option(choices: Sequence[str], default: str, help: str) -> Callable[[F], F]:
    """``--method NAME``: the kind of model ``fit`` trains."""
    return click.option(
        "--method", type=click.Choice(list(choices)), default=default, show_default=True, help=help
    )


def methods_option(choices: Sequence[str], default: str, help: str) -> Callable[[F], F]:
    """``--methods A,B``: the models an evaluation compares (the first is reported in detail)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> list[str]:
        out = names(value) or names(default) or []
        bad = [v for v in out if v not in choices]
        if bad:
            raise click.BadParameter(f"unknown {', '.join(bad)}; use {', '.join(choices)}")
        return out

    return click.option(
        "--methods",
        multiple=True,
        callback=callback,
        metavar="NAME[,NAME...]",
        help=f"{help} [default: {default}]",
    )


def seed_option(f: F) -> F:
    return click.option(
        "--seed",
        type=int,
        default=0,
        show_default=True,
        help="Seed of everything random (recorded).",
    )(f)


def epochs_option(default: int, help: str = "Most training epochs.") -> Callable[[F], F]:
    return click.option(
        "--epochs", type=click.IntRange(1, 10_000), default=default, show_default=True, help=help
    )


def patience_option(default: int) -> Callable[[F], F]:
    return click.option(
        "--patience",
        type=click.IntRange(1, 10_000),
        default=default,
        show_default=True,
        help="Early-stopping patience (epochs without a better validation loss).",
    )


def n_estimators_option(
    default: int, help: str = "Trees of a forest / rounds of boosting."
) -> Callable[[F], F]:
    return click.option(
        "--n-estimators",
        type=click.IntRange(1, 100_000),
        default=default,
        show_default=True,
        help=help,
    )


def alpha_option(f: F) -> F:
    return click.option(
        "--alpha",
        type=click.FloatRange(0.01, 0.5),
        default=0.1,
        show_default=True,
        help="Miscoverage of the conformal intervals (0.1: 90 % intervals).",
    )(f)


def chip_option(default: int, help: str) -> Callable[[F], F]:
    """``--chip PX``: the side of one chip / tile a model reads, in scene pixels."""
    return click.option(
        "--chip", type=click.IntRange(1, 8192), default=default, show_default=True, help=help
    )


def cell_options(f: F) -> F:
    """``--cell METRES`` or ``--arcsec ARCSEC``: the cell grid of a map or a chip table."""
    f = click.option(
        "--arcsec",
        type=float,
        callback=positive,
        default=None,
        help="Cells on an arc-second grid in EPSG:4326 instead (e.g. 30, as LandScan).",
    )(f)
    return click.option(
        "--cell",
        type=float,
        callback=positive,
        default=None,
        help="Cell side in metres, a whole number of pixels [default: 1000].",
    )(f)


def group_column_option(
    help: str = "Column of spatial groups kept whole in validation.",
) -> Callable[[F], F]:
    return click.option("--group-column", default=None, help=help)


def region_options(f: F) -> F:
    """``--region-column`` + ``--holdout``: the transfer test between regions."""
    f = names_option(
        "--holdout",
        help="Region(s) of --region-column to hold out (default: each region in turn, or the "
        "largest for a fit).",
    )(f)
    return click.option(
        "--region-column", default=None, help="Column of regions for a transfer test."
    )(f)


def id_column_option(
    default: str | None, help: str = "Column of unit ids.", *, required: bool | None = None
) -> Callable[[F], F]:
    """``--id-column``: required when it has no default, unless ``required=False``."""
    return click.option(
        "--id-column",
        default=default,
        required=default is None if required is None else required,
        show_default=default is not None,
        help=help,
    )


# --- scenes and execution ------------------------------------------------------------------------


def scene_options(*, band_names: bool = True, resolution: bool = False) -> Callable[[F], F]:
    """``--sensor``, ``--pixel-units`` (and ``--band-names``, ``--resolution``), handed to the command as
    one ``reader`` (a :class:`~humanscape.geo.inputs.SceneReader`)."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from humanscape.geo.inputs import SceneReader

            layers = kwargs.pop("band_names", None)
            kwargs["reader"] = SceneReader(
                sensor=kwargs.pop("sensor"),
                band_names=tuple(layers) if layers else None,
                units=kwargs.pop("pixel_units"),
                resolution=kwargs.pop("resolution", None),
            )
            return f(*args, **kwargs)

        if resolution:
            wrapper = click.option(
                "--resolution",
                type=float,
                callback=positive,
                default=None,
                help="Target pixel size in CRS units [default: the finest band].",
            )(wrapper)
        if band_names:
            wrapper = names_option(
                "--band-names",
                help="Band name of each layer of a multi-band file, in order (B02,B03,...).",
            )(wrapper)
        wrapper = click.option(
            "--pixel-units",
            type=click.Choice(["auto", "dn", "reflectance"]),
            default="auto",
            show_default=True,
            help="Pixel values of files that record no units: digital numbers or reflectance.",
        )(wrapper)
        return click.option(
            "--sensor",
            default=None,
            help="Sensor key (default: recognised from the product metadata and file names).",
        )(wrapper)

    return decorate


def execution_options(*, tile_help: str = "") -> Callable[[F], F]:
    """``--workers``, ``--scheduler``, ``--tile``, ``--cog/--no-cog``, handed to the command as one
    ``execution``."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from humanscape.scale import Execution

            kwargs["execution"] = Execution(
                workers=kwargs.pop("workers"),
                scheduler=kwargs.pop("scheduler"),
                tile=kwargs.pop("tile"),
                cog=kwargs.pop("cog"),
            )
            return f(*args, **kwargs)

        wrapper = cog_option(wrapper)
        wrapper = click.option(
            "--tile",
            type=click.IntRange(1, 1_000_000),
            default=None,
            help="Side of a work tile of the map, in output pixels: the unit of work, resume and "
            f"memory. {tile_help}".strip(),
        )(wrapper)
        wrapper = click.option(
            "--scheduler",
            default=None,
            help="Address of a running Dask scheduler (tcp://host:8786) to run the tiles on.",
        )(wrapper)
        return click.option(
            "--workers",
            type=click.IntRange(0, 4096),
            default=None,
            help="Dask worker processes on this machine (0: this process) [default: one per core; "
            "CNN chip maps: this process].",
        )(wrapper)

    return decorate


def cog_option(f: F) -> F:
    return click.option(
        "--cog/--no-cog",
        default=True,
        show_default=True,
        help="Write a Cloud-Optimised GeoTIFF with overviews (QGIS and web viewers read it at "
        "once); --no-cog: a plain tiled GeoTIFF.",
    )(f)


def cloud_mask_options(f: F) -> F:
    """``--cloud-mask``, ``--mask-files``, ``--cloud-probability-max``: one ``cloud_mask`` object."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from humanscape.geo.composite import CloudMask

        kwargs["cloud_mask"] = CloudMask.parse(
            kwargs.pop("cloud_mask"),
            [Path(p) for p in kwargs.pop("mask_files") or []],
            probability_max=kwargs.pop("cloud_probability_max"),
        )
        return f(*args, **kwargs)

    wrapper = click.option(
        "--cloud-probability-max",
        type=float,
        default=None,
        help="Stored value meaning probability 1: 1, 100 or 255 [default: by data type].",
    )(wrapper)
    wrapper = click.option(
        "--mask-files",
        multiple=True,
        type=INPUT,
        callback=lambda ctx, param, value: [p for v in value for p in str(v).split(",") if p],
        help="Mask raster of each scene, in order (with --cloud-mask raster / probability:P).",
    )(wrapper)
    return click.option(
        "--cloud-mask",
        default=None,
        help="fmask, qa_pixel, scl (L2A), qa60, s2cloudless (L1C; s2cloudless:0.4 sets the "
        "threshold), raster or probability:0.4 [default: none].",
    )(wrapper)
