"""The ``humanscape`` command.

Every command takes files in and writes files out atomically. Bad input ends with one line
``error: <file>: <problem> (fix: ...)`` on stderr and exit status 2, never a traceback:

- one error boundary (:func:`_friendly_errors`) turns every failure caused by input (a
  :class:`~humanscape.errors.HumanscapeError`, and OSError, rasterio, pyogrio, safetensors, skops,
  JSON, table and value errors from the libraries) into that line, naming the file where the
  library does; a real bug says so in one line (exit 1) and shows its traceback with ``--verbose``;
- numeric options declare their ranges, and option errors are one line too (:class:`_OneLineGroup`);
- outputs are checked before any work (:func:`_check_outputs`): not a folder where a file goes,
  not a file where a folder goes, writable, distinct from each other and from the inputs;
- Ctrl-C and SIGTERM end the run through the same clean-up path (temporary files and folders
  removed), with ``error: interrupted`` and exit status 130;
- library warnings are logged, shown only with ``--verbose``.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer._click import exceptions as click_errors
from typer.core import TyperGroup

from humanscape import __version__
from humanscape.errors import HumanscapeError

F = TypeVar("F", bound=Callable[..., Any])
console = Console(stderr=True, soft_wrap=True)
_STATE = {"verbose": False}
#: Third-party loggers that print their own errors before ours unless --verbose.
_QUIET_LOGGERS = ("rasterio", "pyogrio", "fiona", "distributed", "lightning", "skops", "PIL")


class _OneLineGroup(TyperGroup):
    """Click group whose usage errors (bad option values, missing options) are one line, exit 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        _STATE["interrupted"] = False
        previous = _on_sigterm()
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            rv = 2
        except click_errors.UsageError as exc:
            _say(f"error: {_usage_line(exc)}")
            rv = 2
        except typer.Abort:
            rv = 130
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        code = rv if isinstance(rv, int) else 0
        if code == 130:
            _interrupted()
        if standalone_mode:
            sys.exit(code)
        return code


def _say(line: str, *, fresh: bool = False) -> None:
    """Write an error line to stderr on a line of its own.

    Progress bars an error interrupted are closed first (closing ends their line). A signal can
    land inside a bar's own drawing, leaving its line open: with ``fresh`` the line is started
    anew (cleared on a terminal, after a line break otherwise).
    """
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    if fresh:
        sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "\n")
    print(line, file=sys.stderr)


def _interrupted() -> None:
    """Say once that the run was interrupted (Ctrl-C or SIGTERM)."""
    if not _STATE.get("interrupted"):
        _STATE["interrupted"] = True
        kept = _kept_tiles()
        if kept:
            _say(
                f"error: interrupted (no output was written; the finished tiles are kept in "
                f"{kept}: run the same command again to resume)",
                fresh=True,
            )
        else:
            _say("error: interrupted (nothing was left half written)", fresh=True)


def _kept_tiles() -> str:
    """The tile folders an interrupted map left for a resume (only if the engine was loaded)."""
    engine = sys.modules.get("humanscape.scale.engine")
    folders = [str(p) for p in getattr(engine, "KEPT", []) if p.exists()]
    return ", ".join(dict.fromkeys(folders))


def _usage_line(exc: click_errors.UsageError) -> str:
    command = exc.ctx.command_path if exc.ctx else "humanscape"
    fix = f"see '{command} --help'"
    if (
        isinstance(exc, click_errors.BadParameter)
        and not isinstance(exc, click_errors.MissingParameter)
        and exc.param is not None
        and exc.message
    ):
        name = "/".join(exc.param.opts) or exc.param.name or "value"
        return " ".join(f"{name}: {exc.message} (fix: {fix})".split())
    return " ".join(f"{command}: {exc.format_message()} (fix: {fix})".split())


def _on_sigterm() -> Any:
    """SIGTERM raises KeyboardInterrupt, so that ``finally`` clean-ups run as for Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return None


app = typer.Typer(
    name="humanscape",
    help="Population, prosperity, settlements, migration and commuting from satellite imagery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OneLineGroup,
)


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input is bad", from the libraries humanscape reads with."""
    import zipfile

    import pandas as pd
    import rasterio.errors

    types: list[type[BaseException]] = [
        OSError,
        ValueError,
        KeyError,
        IndexError,
        EOFError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        rasterio.errors.RasterioError,
    ]
    try:
        import pyogrio.errors

        types += [pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError]
    except ImportError:  # pragma: no cover
        pass
    try:
        from safetensors import SafetensorError

        types.append(SafetensorError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _friendly_errors(func: F) -> F:
    """The CLI's one error boundary (see module docstring)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                if not _STATE["verbose"]:
                    warnings.simplefilter("ignore")
                return func(*args, **kwargs)
        except HumanscapeError as exc:
            _say(f"error: {exc.one_line()}")
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            _interrupted()
            raise typer.Exit(code=130) from None
        except _input_errors() as exc:
            _say(f"error: {_describe(exc)}")
            if _STATE["verbose"]:
                raise
            raise typer.Exit(code=2) from None
        except (typer.Exit, click_errors.ClickException):
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            _say(
                f"error: internal error {type(exc).__name__}: {first} "
                "(fix: rerun with --verbose for the traceback and report it)"
            )
            if _STATE["verbose"]:
                raise
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def _describe(exc: BaseException) -> str:
    """One line for a library error: the file it names (if any), the problem, a fix."""
    filename = getattr(exc, "filename", None)
    text = getattr(exc, "strerror", None) if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(str(text).split())[:300] or type(exc).__name__
    fix = "check that the file is complete and of the expected format"
    if isinstance(exc, PermissionError):
        fix = "check the permissions, or write somewhere else"
    elif isinstance(exc, FileNotFoundError):
        fix = "check the path"
    where = f"{filename}: " if filename else ""
    return f"{where}{text} (fix: {fix})"


def _check_outputs(
    files: Sequence[Path | None] = (),
    folders: Sequence[Path | None] = (),
    inputs: Sequence[str | Path] = (),
) -> None:
    """Refuse outputs that cannot be written, before any work is done (see module docstring)."""
    outs = [(p, "file") for p in files if p is not None] + [
        (p, "folder") for p in folders if p is not None
    ]
    seen: dict[Path, Path] = {}
    resolved_inputs = {Path(str(i)).resolve() for i in inputs if i and "*" not in str(i)}
    for path, kind in outs:
        if str(path).strip() in ("", "."):
            raise HumanscapeError(
                f"empty output path for a {kind}", fix=f"give a {kind} path to write to"
            )
        full = path.resolve()
        if full in seen:
            raise HumanscapeError(
                "given as two different outputs", path=path, fix="give each output its own path"
            )
        seen[full] = path
        if full in resolved_inputs:
            raise HumanscapeError(
                "is an input of this command, so it cannot also be its output",
                path=path,
                fix="write the output elsewhere",
            )
        if kind == "file" and full.is_dir():
            raise HumanscapeError(
                "is a folder, but a file is written here", path=path, fix="give a file path"
            )
        if kind == "folder" and full.exists() and not full.is_dir():
            raise HumanscapeError(
                "is a file, but a folder is written here", path=path, fix="give a folder path"
            )
        _check_writable(path)


def _check_writable(path: Path) -> None:
    ancestor = path.resolve().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise HumanscapeError(
            f"cannot be created: {ancestor} is a file", path=path, fix="choose another folder"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".humanscape-check-"):
            pass
    except OSError as exc:
        raise HumanscapeError(
            f"cannot be written: {exc.strerror or exc}",
            path=path,
            fix="choose a folder you can write to",
        ) from None


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


def _odd(value: int) -> int:
    if value < 1 or value % 2 == 0:
        raise typer.BadParameter(f"must be odd and at least 1 (1, 3, 5 ...), got {value}")
    return value


def _odd_window(value: int) -> int:
    if value < 3 or value % 2 == 0:
        raise typer.BadParameter(f"must be odd and at least 3 (3, 5, 7 ...), got {value}")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"'{value}' is not one of {', '.join(choices)}")
        return value

    return check


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log details; show tracebacks of real bugs.")
    ] = False,
) -> None:
    _STATE["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    logging.getLogger("py.warnings").setLevel(logging.WARNING if verbose else logging.CRITICAL)


SensorOpt = Annotated[
    str | None, typer.Option(help="Sensor key (recognised from product metadata and names).")
]
BandNamesOpt = Annotated[
    str | None,
    typer.Option(
        help="Band name of each layer of a multi-band file, comma-separated (B02,B03,...)."
    ),
]
UnitsOpt = Annotated[
    str,
    typer.Option(
        callback=_one_of("auto", "dn", "reflectance"),
        help="Units of files that record none: auto, dn (digital numbers) or reflectance.",
    ),
]

WorkersOpt = Annotated[
    int | None,
    typer.Option(
        help="Dask worker processes on this machine (0: this process; default: one per core; "
        "CNN chip maps: this process, PyTorch on every core).",
        min=0,
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        help="Address of a running Dask scheduler (tcp://host:8786) to run the tiles on instead."
    ),
]
MapTileOpt = Annotated[
    int | None,
    typer.Option(
        "--tile",
        help="Tile side in output pixels: the unit of work, resume and memory (default 1024).",
        min=16,
    ),
]


def _folder_token(folder: Path) -> str:
    """What a resumed map must find unchanged in a model folder: its files' sizes and times."""
    from humanscape.geo.write import file_token

    return file_token(sorted(str(p) for p in Path(folder).glob("*") if p.is_file()))


def _execution(workers: int | None, scheduler: str | None, tile: int | None = None) -> Any:
    """How the map commands run their tiles (:class:`humanscape.scale.Execution`)."""
    from humanscape.scale import Execution

    return Execution(workers=workers, scheduler=scheduler, tile=tile)


@app.command()
def version() -> None:
    """Print the humanscape version."""
    print(__version__)


def _scene(
    inputs: str | Sequence[str],
    sensor: str | None,
    band_names: str | None,
    units: str,
    **kwargs: Any,
):
    from humanscape.geo.inputs import open_scene

    return open_scene(inputs, sensor=sensor, band_names=_names(band_names), units=units, **kwargs)  # type: ignore[arg-type]


@app.command()
@_friendly_errors
def info(
    scene: Annotated[str, typer.Argument(help="Multi-band file, folder / glob of band files.")],
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Bands, CRS, resolution, extent and radiometry (units, scale, offset) of a scene."""
    with _scene(scene, sensor, band_names, units) as s:
        d = s.describe()
    if as_json:
        print(json.dumps(d, indent=2))
        return
    print(f"scene       {d['name']}")
    print(f"sensor      {d['sensor']}    date {d['date']}")
    print(f"crs         {d['crs']}")
    print(
        f"resolution  {d['resolution_m']} (aligned grid)    size {d['size_px'][0]} x {d['size_px'][1]} px"
    )
    print(f"bounds      {d['bounds']}")
    for b in d["bands"]:  # type: ignore[union-attr]
        wl = f"{b['wavelength_nm']:.1f} nm" if b["wavelength_nm"] else "-"
        radiometry = f"{b['units']} x {b['scale']:g} {b['offset']:+g}"
        print(
            f"  {b['name']:<9} {str(b['role']):<13} {wl:>10}  native {b['native_resolution_m']:g} m  "
            f"{radiometry:<24} {Path(b['file']).name}"
        )


@app.command()
@_friendly_errors
def indices(
    scene: Annotated[str, typer.Argument(help="Multi-band file, folder / glob of band files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF.")],
    index: Annotated[
        list[str] | None,
        typer.Option("--index", "-i", help="Index name (repeat); default all ten."),
    ] = None,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
    resolution: Annotated[
        float | None,
        typer.Option(help="Target pixel size (default finest band).", callback=_positive),
    ] = None,
    cog: Annotated[bool, typer.Option(help="Write a Cloud-Optimised GeoTIFF.")] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: MapTileOpt = None,
) -> None:
    """Spectral indices (NDVI, SAVI, MNDWI, NDBI, UI, NBI, BRBA, NBAI, MBI, BAEI) of a scene."""
    from humanscape.geo.indices import IndicesMap

    _check_outputs(files=[out], inputs=[scene])
    with _scene(scene, sensor, band_names, units, resolution=resolution) as s:
        job = IndicesMap(s, index)
        path = _execution(workers, scheduler, tile).run(job, out, desc="indices", cog=cog)
    console.print(f"wrote {path}")


@app.command()
@_friendly_errors
def composite(
    scenes: Annotated[
        list[str], typer.Argument(help="One entry per scene: multi-band file, band folder or glob.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF (bands + valid_count).")],
    method: Annotated[
        str, typer.Option(callback=_one_of("median", "min"), help="median or min.")
    ] = "median",
    cloud_mask: Annotated[
        str | None, typer.Option(help="fmask, qa_pixel, scl, qa60, raster or probability:0.4.")
    ] = None,
    mask_file: Annotated[
        list[Path] | None,
        typer.Option(help="Mask raster per scene (raster / probability), in order."),
    ] = None,
    cloud_probability_max: Annotated[
        float | None,
        typer.Option(help="Stored value meaning probability 1: 1, 100 or 255 (default by type)."),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(help="Keep scenes within a period: 2015-2016 or 2015-01-01:2016-06-30."),
    ] = None,
    band: Annotated[
        list[str] | None,
        typer.Option("--band", "-b", help="Bands to composite (default all non-QA)."),
    ] = None,
    sensor: SensorOpt = None,
    units: UnitsOpt = "auto",
    cog: Annotated[bool, typer.Option(help="Write a Cloud-Optimised GeoTIFF.")] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: MapTileOpt = None,
) -> None:
    """Median (or minimum) composite of clear observations over dated scenes."""
    from humanscape.errors import EmptyInputError
    from humanscape.geo.composite import (
        CloudMask,
        CompositeMap,
        Period,
        report_empty,
        scenes_in_period,
    )

    _check_outputs(files=[out], inputs=[*scenes, *(mask_file or [])])
    mask = CloudMask.parse(cloud_mask, mask_file or [], probability_max=cloud_probability_max)
    opened = [_scene(s, sensor, None, units) for s in scenes]
    masks = list(mask.paths)
    if period:
        p = Period.parse(period)
        keep = scenes_in_period(opened, p)
        if not keep:
            raise EmptyInputError(
                f"no scene was acquired in period {p.name}",
                fix="check the dates in the file names or the --period",
            )
        opened = [opened[i] for i in keep]
        masks = [masks[i] for i in keep] if masks else masks
    mask.paths = masks
    job = CompositeMap(
        opened,
        method=method,  # type: ignore[arg-type]
        cloud_mask=mask,
        bands=band,
        tags={"period": period or ""},
    )
    try:
        run = _execution(workers, scheduler, min(tile or job.block, job.block))
        path = run.run(job, out, desc="composite", cog=cog)
    finally:
        job.close()
    report_empty(path)
    console.print(f"wrote {path} from {len(opened)} scenes")


@app.command()
@_friendly_errors
def chip(
    raster: Annotated[str, typer.Argument(help="Raster or scene (file, band folder or glob).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (chips/ and chips.csv).")],
    cell: Annotated[
        float,
        typer.Option(help="Cell size in metres (a whole number of pixels).", callback=_positive),
    ] = 1000,
    neighbors: Annotated[
        int, typer.Option(help="n of the n x n neighbourhood per chip (odd).", callback=_odd)
    ] = 1,
    arcsec: Annotated[
        float | None,
        typer.Option(
            help="Use an arc-second EPSG:4326 grid instead (e.g. 30).", callback=_positive
        ),
    ] = None,
    band: Annotated[
        list[str] | None, typer.Option("--band", "-b", help="Bands to keep (default all).")
    ] = None,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
) -> None:
    """Cut a raster into one chip per grid cell and write the chip table."""
    from humanscape.data.chips import chip_scene
    from humanscape.geo.grid import arcsec_grid, regular_grid

    _check_outputs(folders=[out], inputs=[raster])
    with _scene(raster, sensor, band_names, units) as s:
        if arcsec:
            metres_per_unit = 1 / 111_320 if s.crs.is_geographic else 1.0
            cell_px = max(1, round(arcsec * 30.87 * metres_per_unit / s.grid.res[0]))
            grid = arcsec_grid(s.grid.bounds, s.crs, arcsec=arcsec, cell_px=cell_px)
        else:
            grid = regular_grid(s.grid, cell)
        table = chip_scene(s, grid, out, neighbors=neighbors, bands=band)
    console.print(f"wrote {len(table)} chips and {out / 'chips.csv'}")


@app.command()
@_friendly_errors
def embed(
    chip_table: Annotated[
        Path, typer.Argument(help="Chip table (CSV/Parquet with an 'image' column).")
    ],
    encoder: Annotated[
        str,
        typer.Option(
            help="Shipped encoder name (see 'humanscape encoders') or a saved encoder folder."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output Parquet (or CSV): id + e000...")],
    batch_size: Annotated[int, typer.Option(help="Chips per batch.", min=1)] = 128,
    id_column: Annotated[
        str | None, typer.Option(help="Column used as id (default cell_id, else image).")
    ] = None,
) -> None:
    """Embed every chip of a chip table with a frozen encoder."""
    from humanscape._atomic import atomic_output
    from humanscape.models.embed import embed_chip_table
    from humanscape.models.registry import load_encoder

    _check_outputs(files=[out], inputs=[chip_table])
    model = load_encoder(encoder)
    frame = embed_chip_table(chip_table, model, batch_size=batch_size, id_column=id_column)
    with atomic_output(out) as tmp:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    console.print(f"wrote {len(frame)} embeddings of {model.num_features} dimensions to {out}")


def _chip_predictor(
    encoder: str | None, model: Path | None, batch_size: int, backend: str = "auto"
) -> Any:
    """The predictor of ``predict-chips``: an encoder's embeddings or a chip model's predictions."""
    from humanscape.scale.chips import BACKENDS

    if backend not in BACKENDS:
        raise HumanscapeError(
            f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}",
            fix="use --backend auto",
        )
    if (encoder is None) == (model is None):
        raise HumanscapeError(
            "give either --encoder (embeddings) or --model (a chip model's predictions)",
            fix="e.g. --encoder resnet18-s2-simclr, or --model population_model/",
        )
    if encoder is not None:
        from humanscape.models.registry import load_encoder
        from humanscape.scale.chips import EncoderChips

        net = load_encoder(encoder)
        if net.units != "reflectance":
            raise HumanscapeError(
                f"encoder '{encoder}' takes 8-bit RGB images, a scene holds reflectance",
                path=encoder,
                fix="choose a Sentinel-2 encoder (humanscape encoders lists the units)",
            )
        return EncoderChips(net, batch_size=batch_size, backend=backend, name=str(encoder))
    assert model is not None
    config = model / "config.json"
    try:
        kind = json.loads(config.read_text()).get("kind")
    except (OSError, ValueError):
        kind = None
    token = _folder_token(model)
    if kind == "humanscape.population":
        from humanscape.tasks.population.mapping import PopulationChips
        from humanscape.tasks.population.model import PopulationModel

        return PopulationChips(PopulationModel.load(model), token)
    if kind == "humanscape.economy.score":
        from humanscape.tasks.economy.score import ScoreModel
        from humanscape.tasks.economy.workflow import ScoreChips

        return ScoreChips(ScoreModel.load(model), token)
    raise HumanscapeError(
        f"not a chip model folder (kind {kind!r})",
        path=model,
        fix="give a folder from 'population fit' or 'economy fit-score', or use --encoder",
    )


@app.command("predict-chips")
@_friendly_errors
def predict_chips(
    scene: Annotated[str, typer.Argument(help="Scene: multi-band file, band folder, .SAFE.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF: one pixel per chip.")],
    encoder: Annotated[
        str | None,
        typer.Option(help="Shipped encoder name or encoder folder: embeddings per chip."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Chip model folder ('population fit', 'economy fit-score')."),
    ] = None,
    chip: Annotated[int, typer.Option(help="Chip side in pixels.", min=1, max=8192)] = 256,
    stride: Annotated[
        int | None,
        typer.Option(help="Distance between chips = output pixel size (default: --chip).", min=1),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Chips per forward pass.", min=1)] = 32,
    backend: Annotated[
        str,
        typer.Option(
            help="Encoder inference: auto (ONNX Runtime when installed, else PyTorch), onnx, torch."
        ),
    ] = "auto",
    min_valid: Annotated[
        float, typer.Option(help="Least share of valid pixels in a chip.", min=0, max=1)
    ] = 0.5,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: Annotated[
        int | None,
        typer.Option(help="Chips per tile side (default: about 2048 scene pixels a tile).", min=1),
    ] = None,
) -> None:
    """Run a CNN over every chip of a scene: embeddings or predictions as a georeferenced grid."""
    from humanscape.scale.chips import ChipMap

    _check_outputs(files=[out], inputs=[scene, *([model] if model else [])])
    predictor = _chip_predictor(encoder, model, batch_size, backend)
    with _scene(scene, sensor, band_names, units) as s:
        job = ChipMap(s, predictor, chip=chip, stride=stride or chip, min_valid=min_valid)
        _execution(workers, scheduler, tile).run(job, out, desc="chips", tile=job.default_tile())
    grid = job.spec.grid
    console.print(
        f"wrote {out}: {grid.height} x {grid.width} chips of {chip} px, "
        f"{job.spec.count} band(s) ({', '.join(job.spec.band_names[:3])}"
        f"{', ...' if job.spec.count > 3 else ''})"
    )


@app.command()
def encoders() -> None:
    """List the shipped encoders with their bands and measured linear-probe accuracy."""
    from humanscape.models.registry import list_weights

    for entry in list_weights():
        acc = entry.linear_probe_accuracy
        print(
            f"{entry.name:<40} {entry.arch:<14} {len(entry.bands):>2} bands ({entry.units})  "
            f"embedding {entry.recipe}  "
            f"linear probe {acc if acc is not None else '-'}  epochs {entry.metadata.get('epochs', '-')}"
        )


settlements_app = typer.Typer(
    help="New informal settlements from Sentinel-2 time series (Tingzon et al. 2020).",
    no_args_is_help=True,
)
app.add_typer(settlements_app, name="settlements")


def _prepare(
    features: Path,
    labels: Path,
    label_column: str | None,
    positive: list[str] | None,
    negative: list[str] | None,
    exclude: Path | None,
    groups: Path | None,
    group_column: str | None,
    landuse: Path | None,
    landuse_column: str | None,
    formal: list[str] | None,
    negatives: int,
    labelled_negatives: int | None,
    seed: int,
):
    """Labels burnt on the feature grid and the training sample (shared by fit and evaluate)."""
    from humanscape.geo.vector import read_vector
    from humanscape.tasks.settlements.sampling import LabelSpec, label_rasters, sample_pixels

    if label_column and not positive:
        raise HumanscapeError(
            "--label-column needs --positive (the value(s) marking settlements)",
            fix="e.g. --label-column fclass --positive residential",
        )
    if negative and not label_column:
        raise HumanscapeError(
            "--negative names values of --label-column, which is not given",
            fix="add --label-column (and --positive)",
        )
    spec = LabelSpec(read_vector(labels), label_column, positive or [], str(labels), negative)
    rasters = label_rasters(
        features,
        spec,
        groups=read_vector(groups) if groups else None,
        group_column=group_column,
        exclude=read_vector(exclude) if exclude else None,
    )
    sample = sample_pixels(
        str(features),
        spec,
        landuse=read_vector(landuse) if landuse else None,
        landuse_column=landuse_column,
        formal_values=formal or [],
        negatives_per_group=negatives,
        labelled_per_group=labelled_negatives,
        seed=seed,
        rasters=rasters,
    )
    return spec, rasters, sample


LabelsOpt = Annotated[
    Path, typer.Option(help="Settlement polygons or points (any vector format, any CRS).")
]
LabelColumnOpt = Annotated[
    str | None, typer.Option(help="Column holding the class (default: every feature is positive).")
]
PositiveOpt = Annotated[
    list[str] | None,
    typer.Option(help="Value(s) of --label-column that mark settlements (repeat)."),
]
NegativeOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Value(s) of --label-column that are negatives (repeat; default: every other value)."
    ),
]
ExcludeOpt = Annotated[
    Path | None,
    typer.Option(help="Polygons never used as negatives nor evaluated (e.g. unmapped housing)."),
]
GroupsOpt = Annotated[
    Path | None, typer.Option(help="Group polygons (municipalities) for leave-one-group-out CV.")
]
GroupColumnOpt = Annotated[str | None, typer.Option(help="Column naming the group.")]
LanduseOpt = Annotated[
    Path | None,
    typer.Option(help="Land-use polygons to split random negatives formal/unoccupied (40/60)."),
]
LanduseColumnOpt = Annotated[str | None, typer.Option(help="Land-use class column.")]
FormalOpt = Annotated[
    list[str] | None, typer.Option(help="Land-use value(s) that are formal settlement (repeat).")
]
NegativesOpt = Annotated[
    int, typer.Option(help="Random-block negative pixels per group (paper: 30,000).", min=0)
]
LabelledNegativesOpt = Annotated[
    int | None,
    typer.Option(help="Most labelled negative pixels per group (default: --negatives).", min=0),
]
TreesOpt = Annotated[int, typer.Option(help="Random forest trees (paper: 800).", min=1)]
BlockOpt = Annotated[
    float,
    typer.Option(
        help="Block size (km) for spatial CV when there are no groups.", callback=_positive
    ),
]
FoldsOpt = Annotated[int, typer.Option(help="Spatial CV folds of blocks.", min=2)]
BufferOpt = Annotated[
    float, typer.Option(help="Gap (m) between training and held-out data in spatial CV.", min=0)
]
JobsOpt = Annotated[int | None, typer.Option(help="Cores for scikit-learn (-1 = all).")]


@settlements_app.command("features")
@_friendly_errors
def settlements_features(
    scenes: Annotated[
        list[str], typer.Argument(help="Dated scenes (files, band folders, globs) or composites.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Feature stack GeoTIFF.")],
    periods: Annotated[
        str | None,
        typer.Option(help="e.g. 2015-2016,2017-2018,2019-2020 (default: one per input)."),
    ] = None,
    cloud_mask: Annotated[
        str | None, typer.Option(help="fmask, qa_pixel, scl, qa60, raster or probability:0.4.")
    ] = None,
    mask_file: Annotated[
        list[Path] | None, typer.Option(help="Mask raster per scene, in order.")
    ] = None,
    cloud_probability_max: Annotated[
        float | None,
        typer.Option(help="Stored value meaning probability 1: 1, 100 or 255 (default by type)."),
    ] = None,
    composites: Annotated[
        bool, typer.Option(help="Inputs are composites (one per period), not scenes.")
    ] = False,
    texture: Annotated[
        bool,
        typer.Option(help="Add texture (variance, GLCM contrast/homogeneity) of red, nir, swir1."),
    ] = False,
    texture_window: Annotated[
        int, typer.Option(help="Texture window in pixels (odd, 3 or more).", callback=_odd_window)
    ] = 7,
    sensor: SensorOpt = None,
    units: UnitsOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: MapTileOpt = None,
) -> None:
    """Per-pixel features: per period 12 bands + 10 indices (66 for three periods)."""
    from humanscape.geo.composite import CloudMask, parse_periods
    from humanscape.tasks.settlements.features import (
        read_feature_names,
        settlement_features,
        stack_features,
    )

    _check_outputs(files=[out], inputs=[*scenes, *(mask_file or [])])
    mask = CloudMask.parse(cloud_mask, mask_file or [], probability_max=cloud_probability_max)
    chosen = parse_periods(periods) if periods else None
    opened = [_scene(s, sensor, None, units) for s in scenes]
    run = _execution(workers, scheduler, tile)
    if composites:
        names = [p.name for p in chosen] if chosen else [Path(p).stem for p in scenes]
        path = stack_features(
            opened, names, out, texture=texture, texture_window=texture_window, execution=run
        )
    else:
        path = settlement_features(
            opened,
            out,
            periods=chosen,
            cloud_mask=mask,
            texture=texture,
            texture_window=texture_window,
            execution=run,
        )
    console.print(f"wrote {path} with {len(read_feature_names(path))} features")


@settlements_app.command("fit")
@_friendly_errors
def settlements_fit(
    features: Annotated[Path, typer.Argument(help="Feature stack from 'settlements features'.")],
    labels: LabelsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder.")],
    label_column: LabelColumnOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    exclude: ExcludeOpt = None,
    groups: GroupsOpt = None,
    group_column: GroupColumnOpt = None,
    landuse: LanduseOpt = None,
    landuse_column: LanduseColumnOpt = None,
    formal: FormalOpt = None,
    model: Annotated[
        str,
        typer.Option(
            callback=_one_of("hgb", "rf", "lr", "svm", "auto"),
            help="hgb (gradient boosting: as accurate as the paper's forest, ~15x faster maps), "
            "rf (the paper's best), lr, svm, or auto (chosen among them by spatial CV).",
        ),
    ] = "hgb",
    n_estimators: TreesOpt = 800,
    negatives: NegativesOpt = 30_000,
    labelled_negatives: LabelledNegativesOpt = None,
    block_km: BlockOpt = 2.0,
    folds: FoldsOpt = 4,
    buffer_m: BufferOpt = 250.0,
    n_jobs: JobsOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed (recorded).")] = 0,
) -> None:
    """Sample pixels and train a settlement classifier; writes the model folder and the class balance.

    Labelled features of other classes become negatives; the weight of the paper's random-block
    negatives next to them is chosen by spatial CV on the labelled data (as is the model, with
    --model auto).
    """
    from humanscape.tasks.settlements.evaluate import make_folds
    from humanscape.tasks.settlements.features import feature_recipe
    from humanscape.tasks.settlements.model import MODELS, SettlementClassifier, select_model

    _check_outputs(folders=[out], inputs=[features, labels])
    _, rasters, sample = _prepare(
        features, labels, label_column, positive, negative, exclude, groups, group_column,
        landuse, landuse_column, formal, negatives, labelled_negatives, seed,
    )  # fmt: skip
    base = SettlementClassifier(
        "rf" if model == "auto" else model, n_estimators=n_estimators, n_jobs=n_jobs, seed=seed
    )
    labelled = (sample["kind"] == "labelled").any()
    selection = None
    clf = None
    if model == "auto" or labelled:
        cv = make_folds(
            rasters, block_size=block_km * 1000, n_folds=folds, buffer=buffer_m, seed=seed
        )
        try:
            clf, selection = select_model(
                sample,
                cv.splits(sample["x"].to_numpy(), sample["y"].to_numpy()),
                base=base,
                models=MODELS if model == "auto" else [model],
            )
            console.print(selection.round(3).to_string(index=False))
        except HumanscapeError as exc:
            if model == "auto":
                raise
            logging.getLogger(__name__).warning(
                "%s; random-block negatives keep weight %g", exc.problem, base.complement_weight
            )
    if clf is None:
        clf = base.fit(sample, sample["label"])
    balance = sample.attrs["balance"]
    clf.save(
        out,
        extra={
            **feature_recipe(features),
            "features_file": str(features),
            "labels": str(labels),
            "label_column": label_column,
            "positive": positive,
            "negative": negative,
            "n_samples": len(sample),
            "seed": seed,
            "selection": None if selection is None else selection.to_dict(orient="records"),
        },
        tables={"class_balance.csv": balance},
    )
    console.print(balance.to_string(index=False))
    console.print(
        f"wrote model {out} ({clf.model}, {len(clf.feature_names_)} features, {len(sample)} pixels)"
    )


@settlements_app.command("predict")
@_friendly_errors
def settlements_predict(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="The feature stack from 'settlements features', or one composite per period of "
            "the model (features computed tile by tile, never written)."
        ),
    ],
    model: Annotated[Path, typer.Option(help="Model folder from 'settlements fit'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Probability GeoTIFF (10 m).")],
    grid_out: Annotated[Path | None, typer.Option(help="Ranked 500 m grid GeoPackage.")] = None,
    polygons_out: Annotated[
        Path | None, typer.Option(help="Candidate polygons GeoPackage.")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Probability threshold for candidate polygons.", min=0, max=1)
    ] = 0.5,
    top_k: Annotated[
        int | None, typer.Option(help="Keep only the k best candidate polygons.", min=1)
    ] = None,
    min_area: Annotated[
        float, typer.Option(help="Smallest candidate polygon in square metres.", min=0)
    ] = 0.0,
    cell: Annotated[
        float, typer.Option(help="Ranked grid cell size in metres.", callback=_positive)
    ] = 500.0,
    change: Annotated[
        bool, typer.Option(help="Add band new_score: probability minus the earliest-period look.")
    ] = False,
    periods: Annotated[
        str | None,
        typer.Option(help="Period names of the composites, in order (default: the model's)."),
    ] = None,
    sensor: SensorOpt = None,
    units: UnitsOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: MapTileOpt = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(help="Read an old model.joblib (a pickle runs code: only your own models)."),
    ] = False,
) -> None:
    """Probability map (tile by tile), ranked validation grid and candidate polygons."""
    from humanscape.tasks.settlements.features import FeatureStack, is_feature_stack
    from humanscape.tasks.settlements.model import SettlementClassifier
    from humanscape.tasks.settlements.predict import (
        candidate_polygons,
        predict_probability,
        ranked_grid,
    )

    _check_outputs(files=[out, grid_out, polygons_out], inputs=[*inputs, model])
    clf = SettlementClassifier.load(model, trust_pickle=trust_pickle)
    run = _execution(workers, scheduler, tile)
    if len(inputs) == 1 and is_feature_stack(inputs[0]):
        predict_probability(clf, inputs[0], out, change=change, execution=run)
    else:
        recipe = getattr(clf, "recipe_", {})
        names = periods.split(",") if periods else recipe.get("periods")
        if not names:
            raise HumanscapeError(
                "the model folder does not record its periods (fitted by an older humanscape)",
                path=model,
                fix="give --periods NAME,NAME,... in the order of the composites",
            )
        if len(names) != len(inputs):
            raise HumanscapeError(
                f"{len(inputs)} composite(s) given for the model's {len(names)} period(s) "
                f"({', '.join(names)})",
                path=inputs[0],
                fix="give one composite per period, in order (or the feature stack)",
            )
        window = recipe.get("texture_window")
        stack = FeatureStack(
            [_scene(s, sensor, None, units) for s in inputs],
            names,
            texture=window is not None,
            texture_window=window or 7,
        )
        predict_probability(clf, stack, out, change=change, execution=run)
    console.print(f"wrote {out}")
    if grid_out:
        grid = ranked_grid(out, grid_out, cell=cell)
        console.print(f"wrote {grid_out}: {len(grid)} cells ranked")
    if polygons_out:
        polys = candidate_polygons(
            out, polygons_out, threshold=threshold, top_k=top_k, min_area=min_area
        )
        console.print(f"wrote {polygons_out}: {len(polys)} candidate polygons")


@settlements_app.command("evaluate")
@_friendly_errors
def settlements_evaluate(
    features: Annotated[Path, typer.Argument(help="Feature stack from 'settlements features'.")],
    labels: LabelsOpt,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report folder (curves.csv, table.csv, PNGs).")
    ],
    label_column: LabelColumnOpt = None,
    positive: PositiveOpt = None,
    negative: NegativeOpt = None,
    exclude: ExcludeOpt = None,
    groups: GroupsOpt = None,
    group_column: GroupColumnOpt = None,
    landuse: LanduseOpt = None,
    landuse_column: LanduseColumnOpt = None,
    formal: FormalOpt = None,
    models: Annotated[
        str, typer.Option(help="Comma-separated: lr,svm,rf,hgb,auto.")
    ] = "lr,svm,rf,hgb",
    n_estimators: TreesOpt = 800,
    block_km: BlockOpt = 2.0,
    folds: FoldsOpt = 4,
    buffer_m: BufferOpt = 250.0,
    max_test_pixels: Annotated[
        int, typer.Option(help="Held-out pixels per fold (uniform subsample).", min=100)
    ] = 200_000,
    negatives: NegativesOpt = 30_000,
    labelled_negatives: LabelledNegativesOpt = None,
    n_jobs: JobsOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Leave-one-group-out (or spatial block) CV at the true class balance: PR-AUC and
    precision/recall at top x %, pixel and settlement level, per fold and pooled."""
    import pandas as pd

    from humanscape.tasks.settlements.evaluate import cross_validate, make_folds, write_report
    from humanscape.tasks.settlements.model import MODELS, SettlementClassifier

    chosen = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in (*MODELS, "auto")]
    if unknown or not chosen:
        raise HumanscapeError(
            f"unknown model(s) {', '.join(unknown) or '(none)'}",
            fix="use --models lr,svm,rf,hgb,auto",
        )
    _check_outputs(folders=[out], inputs=[features, labels])
    spec, rasters, sample = _prepare(
        features, labels, label_column, positive, negative, exclude, groups, group_column,
        landuse, landuse_column, formal, negatives, labelled_negatives, seed,
    )  # fmt: skip
    cv = make_folds(rasters, block_size=block_km * 1000, n_folds=folds, buffer=buffer_m, seed=seed)
    results = []
    for m in chosen:
        clf = (
            m
            if m == "auto"
            else SettlementClassifier(m, n_estimators=n_estimators, n_jobs=n_jobs, seed=seed)
        )
        results.append(
            cross_validate(
                features,
                sample,
                clf,
                rasters,
                cv,
                points=spec.points,
                max_test_pixels=max_test_pixels,
                seed=seed,
            )  # fmt: skip
        )
    paths = write_report(results, out)
    table = pd.read_csv(paths["table"])
    console.print(table.round(3).to_string(index=False))
    console.print(f"wrote {out}")


# --- population (Huang et al. 2021) -------------------------------------------------------------

population_app = typer.Typer(
    help="Population per grid cell from Sentinel-2 chips (Huang et al. 2021).",
    no_args_is_help=True,
)
app.add_typer(population_app, name="population")


def _bands_option(value: str | None) -> list[str] | None:
    return [b.strip() for b in value.split(",") if b.strip()] if value else None


@population_app.command("fit")
@_friendly_errors
def population_fit(
    chip_table: Annotated[
        Path, typer.Argument(help="Chip table (CSV/Parquet: image or file, target).")
    ],
    target: Annotated[str, typer.Option(help="Column of people per cell.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    method: Annotated[
        str,
        typer.Option(
            help="ensemble (CNN on R, G, B, NIR + ridge on 13-band statistics), cnn, or features.",
            callback=_one_of("ensemble", "cnn", "features"),
        ),
    ] = "ensemble",
    arch: Annotated[
        str,
        typer.Option(
            help="CNN backbone: resnet18, vgg16_bn, resnet50, xception, densenet121 (any timm "
            "name), or a shipped encoder to fine-tune."
        ),
    ] = "resnet18",
    bands: Annotated[
        str | None,
        typer.Option(help="CNN bands by name, comma-separated (default B02,B03,B04,B08)."),
    ] = None,
    feature_bands: Annotated[
        str | None,
        typer.Option(help="Bands of the feature head (default all 13 Sentinel-2 bands)."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="Frozen features of the head: stats, mosaiks, encoder (comma-separated; "
            "default stats)."
        ),
    ] = None,
    head: Annotated[
        str, typer.Option(help="Head on the features.", callback=_one_of("ridge", "hgb", "rf"))
    ] = "ridge",
    neighbors: Annotated[
        int, typer.Option(help="n of the nbr(n) chips in the table (recorded; odd).", callback=_odd)
    ] = 1,
    input_size: Annotated[
        int | None,
        typer.Option(help="Resize chips to this side for the CNN (paper: 256).", min=8, max=1024),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Most CNN epochs.", min=1, max=10_000)] = 30,
    cnn_seeds: Annotated[
        int | None,
        typer.Option(help="CNNs trained from different seeds and averaged.", min=1, max=20),
    ] = None,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = 10,
    batch_size: Annotated[int, typer.Option(help="CNN batch size.", min=1, max=4096)] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate.", min=1e-7, max=1.0)] = 1e-3,
    target_transform: Annotated[
        str,
        typer.Option(
            "--target-transform",
            help="log1p, or the paper's log with 0 -> 0.",
            callback=_one_of("log1p", "log"),
        ),
    ] = "log1p",
    alpha: Annotated[
        float, typer.Option(help="Conformal miscoverage (0.1: 90 % intervals).", min=0.01, max=0.5)
    ] = 0.1,
    bias_correction: Annotated[
        bool, typer.Option(help="Isotonic bias correction fitted on validation predictions.")
    ] = False,
    groups: Annotated[
        str | None, typer.Option(help="Column of spatial groups for the validation split.")
    ] = None,
    block_km: Annotated[
        float,
        typer.Option(
            help="Block size of the spatial validation split (without --groups).", min=0.01
        ),
    ] = 50.0,
    holdout_group: Annotated[
        str | None,
        typer.Option(help="Column of regions: train on the others, test on --holdout (transfer)."),
    ] = None,
    holdout: Annotated[
        list[str] | None,
        typer.Option(help="Region(s) of --holdout-group to test on (default the largest)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of splits, initialisation and features.")] = 0,
) -> None:
    """Fit a population model on a chip table and write it with its validation metrics."""
    from humanscape.tasks.population.chips import chip_locations, load_chips
    from humanscape.tasks.population.model import PopulationModel
    from humanscape.tasks.population.workflow import fit_population

    _check_outputs(folders=[out], inputs=[chip_table])
    model = PopulationModel(
        method=method,
        arch=arch,
        **_given(
            bands=_bands_option(bands),
            feature_bands=_bands_option(feature_bands)
            or (_bands_option(bands) if method == "features" else None),
            cnn_seeds=cnn_seeds,
            features=_bands_option(features),
        ),
        head=head,
        input_size=input_size,
        epochs=epochs,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        target=target_transform,
        alpha=alpha,
        bias_correction=bias_correction,
        seed=seed,
    )
    for column in (groups, holdout_group):
        if column is not None:
            from humanscape.data.chiptable import read_chip_table

            read_chip_table(chip_table, required=[column], check_files=False)
    chips = load_chips(chip_table, model.input_bands, target=target)
    summary = fit_population(
        model,
        chips,
        chip_locations(chips.table) if groups is None else None,
        out,
        groups=groups,
        holdout_group=holdout_group,
        holdout=holdout,
        neighbors=neighbors,
        block_m=block_km * 1000,
        source=chip_table,
    )
    for line in summary:
        console.print(line)
    console.print(f"wrote {out}")


def _given(**options: object) -> dict[str, object]:
    """The options the user set (the estimator's defaults apply to the others)."""
    return {k: v for k, v in options.items() if v is not None}


@population_app.command("predict")
@_friendly_errors
def population_predict(
    model: Annotated[Path, typer.Option(help="Model folder from 'population fit'.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="predictions.csv, or pop.tif with --scene.")
    ],
    chip_table: Annotated[Path | None, typer.Argument(help="Chip table to predict.")] = None,
    scene: Annotated[
        str | None, typer.Option(help="Scene to map (file, band folder, .SAFE).")
    ] = None,
    cell: Annotated[
        float | None, typer.Option(help="Map cell size in metres.", callback=_positive)
    ] = None,
    arcsec: Annotated[
        float | None,
        typer.Option(help="Map on an arc-second EPSG:4326 grid (e.g. 30).", callback=_positive),
    ] = None,
    grid: Annotated[
        Path | None, typer.Option(help="Map on the grid of this raster (e.g. a census grid).")
    ] = None,
    districts: Annotated[
        Path | None,
        typer.Option(help="District polygons with population totals (census-consistent map)."),
    ] = None,
    total_column: Annotated[str, typer.Option(help="Column of district totals.")] = "pop",
    png: Annotated[Path | None, typer.Option(help="PNG map with colour bar and scale bar.")] = None,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    tile: Annotated[
        int | None, typer.Option(help="Cells per tile side of the map (default: ~2048 px).", min=1)
    ] = None,
) -> None:
    """Predict people per chip (CSV) or a population map of a scene (GeoTIFF)."""
    from humanscape.tasks.population.model import PopulationModel
    from humanscape.tasks.population.workflow import map_population, predict_table

    if (chip_table is None) == (scene is None):
        raise HumanscapeError(
            "give either a chip table or --scene",
            fix="population predict --model M chips.csv --out p.csv",
        )
    if scene is None and (districts or grid or cell or arcsec or png):
        raise HumanscapeError(
            "--cell, --arcsec, --grid, --districts and --png map a scene", fix="add --scene SCENE"
        )
    inputs = [str(model), *([str(chip_table)] if chip_table else []), *([scene] if scene else [])]
    _check_outputs(files=[out, png], inputs=inputs)
    fitted = PopulationModel.load(model)
    if chip_table is not None:
        frame = predict_table(fitted, chip_table, out)
        console.print(f"wrote {out}: {len(frame)} chips")
        return
    with _scene(scene, sensor, band_names, units) as s:  # type: ignore[arg-type]
        lines = map_population(
            fitted,
            s,
            out,
            cell=cell,
            arcsec=arcsec,
            grid=grid,
            districts=districts,
            total_column=total_column,
            execution=_execution(workers, scheduler, tile),
            model_token=_folder_token(model),
        )
    for line in lines:
        console.print(line)
    if png is not None:
        import numpy as np
        import rasterio

        from humanscape.report.quicklook import scalar_quicklook

        with rasterio.open(out) as src:
            values = src.read(1)
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
        console.print(f"wrote {png}")


@population_app.command("evaluate")
@_friendly_errors
def population_evaluate(
    model: Annotated[Path, typer.Option(help="Model folder from 'population fit'.")],
    chip_table: Annotated[Path, typer.Argument(help="Chip table with the census population.")],
    target: Annotated[str, typer.Option(help="Column of people per cell.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder (metrics.csv, PNGs).")],
) -> None:
    """The paper's metrics (R2, CoE, MIoA, MAE, Table III bias), coverage, scatter and bias plots."""
    from humanscape.tasks.population.model import PopulationModel
    from humanscape.tasks.population.workflow import evaluate_table

    _check_outputs(folders=[out], inputs=[model, chip_table])
    table = evaluate_table(PopulationModel.load(model), chip_table, target, out)
    console.print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {out}")


# --- economy (Park et al. 2022) ------------------------------------------------------------------

economy_app = typer.Typer(
    help="District economic indicators from hyperlocal tile scores (Park et al. 2022).",
    no_args_is_help=True,
)
app.add_typer(economy_app, name="economy")


def _cluster_counts(value: str) -> str:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a comma-separated list of integers") from None
    if any(k < 0 or k > 1000 for k in counts):
        raise typer.BadParameter(f"cluster counts must be in 0..1000, got {value}")
    return value


DistrictColumnOpt = Annotated[
    str, typer.Option(help="Column of the district id (tile table and district table).")
]


@economy_app.command("fit-score")
@_friendly_errors
def economy_fit_score(
    chip_table: Annotated[Path, typer.Argument(help="Chip table (CSV/Parquet) with level labels.")],
    label_column: Annotated[
        str,
        typer.Option(help="Column of uninhabited / rural / urban (or classes with --mapping)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Score model folder to write.")],
    mapping: Annotated[
        Path | None,
        typer.Option(help="CSV class,level (or class,uninhabited,rural,urban soft shares)."),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(help="Bands by name (default B02,B03,B04,B08; red,green,blue for JPEGs)."),
    ] = None,
    arch: Annotated[
        str, typer.Option(help="Backbone: resnet18 (paper), resnet18_half, any timm name.")
    ] = "resnet18",
    epochs: Annotated[int, typer.Option(help="Most epochs.", min=1, max=10_000)] = 40,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = 8,
    batch_size: Annotated[int, typer.Option(help="Batch size.", min=2, max=4096)] = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.", min=1e-7, max=1.0)] = 1e-3,
    input_size: Annotated[
        int | None,
        typer.Option(
            help="Resize tiles to this side first (e.g. 128 for 64 px chips).", min=8, max=1024
        ),
    ] = None,
    t1: Annotated[float, typer.Option(help="Threshold uninhabited | rural.")] = 0.0,
    t2: Annotated[float, typer.Option(help="Threshold rural | urban.")] = 10.0,
    t_min: Annotated[float, typer.Option(help="Lowest score (clamp).")] = -10.0,
    t_max: Annotated[float, typer.Option(help="Highest score (clamp).")] = 20.0,
    groups: Annotated[
        str | None, typer.Option(help="Column of groups held out whole for validation.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of split, initialisation, batches.")] = 0,
) -> None:
    """Train the hyperlocal score model (eq. 4-6) on labelled chips."""
    from humanscape.tasks.economy.score import RGB8, ScoreModel
    from humanscape.tasks.economy.workflow import fit_score

    _check_outputs(folders=[out], inputs=[chip_table, *([mapping] if mapping else [])])
    chosen = _bands_option(bands)
    if chosen is None:
        from humanscape.data.chiptable import IMAGE_SUFFIXES, read_chip_table

        first = read_chip_table(chip_table, check_files=False)["image"].iloc[0]
        chosen = list(RGB8) if Path(first).suffix.lower() in IMAGE_SUFFIXES else None
    model = ScoreModel(
        arch=arch,
        **_given(bands=chosen, input_size=input_size),
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
    for line in fit_score(model, chip_table, label_column, out, mapping=mapping, groups=groups):
        console.print(line)


@economy_app.command("score")
@_friendly_errors
def economy_score(
    model: Annotated[Path, typer.Option(help="Score model folder from 'economy fit-score'.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="scores.csv, or score.tif with --scene.")
    ],
    chip_table: Annotated[Path | None, typer.Argument(help="Chip table of tiles to score.")] = None,
    scene: Annotated[str | None, typer.Option(help="Scene to map (file, band folder).")] = None,
    tile: Annotated[
        int, typer.Option(help="Tile side in pixels for --scene.", min=8, max=4096)
    ] = 64,
    png: Annotated[Path | None, typer.Option(help="PNG map with colour bar and scale bar.")] = None,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Score tiles: CSV image, score, class (+ GeoPackage), or a score map of a scene (GeoTIFF).

    --tile is the scored tile (Park et al.'s hyperlocal tile); the map runs on the tiled engine in
    blocks of such tiles, on --workers / --scheduler."""
    from humanscape.tasks.economy.score import ScoreModel
    from humanscape.tasks.economy.workflow import score_scene, score_table

    if (chip_table is None) == (scene is None):
        raise HumanscapeError(
            "give either a chip table or --scene",
            fix="economy score --model M tiles.csv --out scores.csv",
        )
    if scene is None and png is not None:
        raise HumanscapeError("--png maps a scene", fix="add --scene SCENE")
    gpkg = out.with_suffix(".gpkg") if chip_table is not None else None
    inputs = [str(model), *([str(chip_table)] if chip_table else []), *([scene] if scene else [])]
    _check_outputs(files=[out, png, gpkg], inputs=inputs)
    fitted = ScoreModel.load(model)
    if chip_table is not None:
        for line in score_table(fitted, chip_table, out):
            console.print(line)
        return
    with _scene(scene, sensor, band_names, units) as s:  # type: ignore[arg-type]
        lines, _, _ = score_scene(
            fitted,
            s,
            out,
            tile=tile,
            execution=_execution(workers, scheduler),
            model_token=_folder_token(model),
        )
    for line in lines:
        console.print(line)
    if png is not None:
        from humanscape.report.quicklook import scalar_quicklook

        scalar_quicklook(
            out,
            png,
            title=f"Hyperlocal economic score ({tile} px tiles)",
            units="score (< 0 uninhabited, 0-10 rural, >= 10 urban)",
            vmin=fitted.t_min,
            vmax=fitted.t_max,
            cmap="magma",
        )
        console.print(f"wrote {png}")


@economy_app.command("tiles")
@_friendly_errors
def economy_tiles(
    scene: Annotated[str, typer.Argument(help="Scene to cut (file, band folder, .SAFE).")],
    districts: Annotated[Path, typer.Option(help="District polygons (GeoPackage, shapefile).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder: chips/ and chips.csv.")],
    district_column: DistrictColumnOpt = "district",
    tile: Annotated[int, typer.Option(help="Tile side in pixels.", min=8, max=4096)] = 64,
    stride: Annotated[
        int | None, typer.Option(help="Pixels between tile starts (default --tile).", min=1)
    ] = None,
    min_overlap: Annotated[
        float, typer.Option(help="Share of a tile that must lie in its district.", min=0.0, max=1.0)
    ] = 1.0,
    band: Annotated[list[str] | None, typer.Option("--band", "-b", help="Bands to keep.")] = None,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
) -> None:
    """Cut small tiles inside each district polygon: the tile table of 'economy fit'."""
    from humanscape.data.chips import chip_districts
    from humanscape.geo.vector import read_vector

    _check_outputs(folders=[out], inputs=[scene, districts])
    frame = read_vector(districts)
    with _scene(scene, sensor, band_names, units) as s:
        table = chip_districts(
            s,
            frame,
            out,
            column=district_column,
            size=tile,
            stride=stride,
            min_overlap=min_overlap,
            bands=band,
        )
    console.print(
        f"wrote {out}: {len(table)} tiles in {table[district_column].nunique()} districts"
    )


def _economy_model(
    indicator: str,
    kind: str,
    n_clusters: str,
    encoder_epochs: int,
    trees: int,
    augment: bool,
    max_pairs: int,
    nightlight: Path | None,
    seed: int,
):  # type: ignore[no-untyped-def]
    from humanscape.tasks.economy.model import EconomyModel

    return EconomyModel(
        indicator=indicator,
        kind=kind,
        n_clusters=[int(v) for v in n_clusters.split(",") if v.strip()],
        sources=["labels", "nightlight"] if nightlight else ["labels"],
        encoder_epochs=encoder_epochs,
        n_estimators=trees,
        augment=augment,
        max_pairs=max_pairs,
        seed=seed,
    )


def _district_inputs(
    tile_table: Path,
    district_column: str,
    districts: Path,
    indicator: str,
    weight_column: str | None,
    score_model: Path,
    labelled: Path | None,
    label_column: str | None,
    mapping: Path | None,
    nightlight: Path | None,
):  # type: ignore[no-untyped-def]
    from humanscape.tasks.economy.score import ScoreModel
    from humanscape.tasks.economy.workflow import (
        labelled_tiles,
        load_district_data,
        nightlight_values,
    )

    score = ScoreModel.load(score_model)
    data = load_district_data(
        tile_table,
        district_column,
        score.bands,
        score.units_,
        districts_path=districts,
        indicator=indicator,
        weight_column=weight_column,
    )
    pairs = labelled_tiles(score, labelled, label_column, mapping)
    light = nightlight_values(data.table, nightlight) if nightlight else None
    return score, data, pairs, light


KindOpt = Annotated[
    str,
    typer.Option(
        help="count (unions add: population, GDP) or rate (unions average: per head).",
        callback=_one_of("count", "rate"),
    ),
]


@economy_app.command("fit")
@_friendly_errors
def economy_fit(
    tile_table: Annotated[Path, typer.Argument(help="Tile table with a district column.")],
    districts: Annotated[Path, typer.Option(help="District table (CSV) with the indicator.")],
    indicator: Annotated[str, typer.Option(help="Indicator column of the district table.")],
    score_model: Annotated[Path, typer.Option(help="Score model folder (economy fit-score).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Economy model folder to write.")],
    district_column: DistrictColumnOpt = "district",
    kind: KindOpt = "count",
    weight_column: Annotated[
        str | None, typer.Option(help="Weights of a rate's union average (default tile counts).")
    ] = None,
    labelled: Annotated[
        Path | None,
        typer.Option(help="Labelled chips for the encoders (default: the score model's own)."),
    ] = None,
    label_column: Annotated[str | None, typer.Option(help="Level column of --labelled.")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Class -> level CSV of --labelled.")] = None,
    nightlight: Annotated[
        Path | None, typer.Option(help="Nightlight raster: adds the nightlight-proxy encoders.")
    ] = None,
    n_clusters: Annotated[
        str,
        typer.Option(
            help="n_c per encoder (comma-separated; paper 0,30,90).", callback=_cluster_counts
        ),
    ] = "0,30,90",
    encoder_epochs: Annotated[int, typer.Option(help="Epochs per encoder.", min=1, max=1000)] = 5,
    trees: Annotated[int, typer.Option(help="Random forest trees.", min=1, max=10_000)] = 200,
    augment: Annotated[bool, typer.Option(help="District augmentation (pair unions).")] = True,
    max_pairs: Annotated[
        int, typer.Option(help="Most district pairs added by augmentation.", min=0)
    ] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
) -> None:
    """Train the step-2 encoders and the district regressor; write the economy model."""
    from humanscape.tasks.economy.workflow import fit_economy

    inputs = [
        tile_table,
        districts,
        score_model,
        *(p for p in (labelled, mapping, nightlight) if p),
    ]
    _check_outputs(folders=[out], inputs=inputs)
    model = _economy_model(
        indicator, kind, n_clusters, encoder_epochs, trees, augment, max_pairs, nightlight, seed
    )
    score, data, pairs, light = _district_inputs(
        tile_table,
        district_column,
        districts,
        indicator,
        weight_column,
        score_model,
        labelled,
        label_column,
        mapping,
        nightlight,
    )
    for line in fit_economy(model, score, data, out, labelled=pairs, nightlight=light):
        console.print(line)


@economy_app.command("predict")
@_friendly_errors
def economy_predict(
    model: Annotated[Path, typer.Option(help="Economy model folder from 'economy fit'.")],
    tile_table: Annotated[Path, typer.Argument(help="Tile table with a district column.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="districts.csv to write.")],
    district_column: DistrictColumnOpt = "district",
) -> None:
    """Indicator, district factor and within-district Gini per district; national Gini."""
    from humanscape.tasks.economy.model import EconomyModel
    from humanscape.tasks.economy.workflow import load_district_data, predict_economy

    side = out.with_name(out.stem + "_national.json")
    _check_outputs(files=[out, side], inputs=[model, tile_table])
    fitted = EconomyModel.load(model)
    sm = fitted.score_model_
    data = load_district_data(tile_table, district_column, sm.bands, sm.units_)
    lines, _, _ = predict_economy(fitted, data, out)
    for line in lines:
        console.print(line)


@economy_app.command("evaluate")
@_friendly_errors
def economy_evaluate(
    tile_table: Annotated[Path, typer.Argument(help="Tile table with a district column.")],
    districts: Annotated[Path, typer.Option(help="District table (CSV) with the indicator.")],
    indicator: Annotated[str, typer.Option(help="Indicator column of the district table.")],
    score_model: Annotated[Path, typer.Option(help="Score model folder (economy fit-score).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.")],
    district_column: DistrictColumnOpt = "district",
    kind: KindOpt = "count",
    weight_column: Annotated[
        str | None, typer.Option(help="Weights of a rate's union average.")
    ] = None,
    labelled: Annotated[Path | None, typer.Option(help="Labelled chips for the encoders.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Level column of --labelled.")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Class -> level CSV of --labelled.")] = None,
    nightlight: Annotated[Path | None, typer.Option(help="Nightlight raster.")] = None,
    n_clusters: Annotated[
        str, typer.Option(help="n_c per encoder (paper 0,30,90).", callback=_cluster_counts)
    ] = "0,30,90",
    encoder_epochs: Annotated[int, typer.Option(help="Epochs per encoder.", min=1, max=1000)] = 5,
    trees: Annotated[int, typer.Option(help="Random forest trees.", min=1, max=10_000)] = 200,
    max_pairs: Annotated[int, typer.Option(help="Most augmentation pairs.", min=0)] = 5000,
    splits: Annotated[
        int, typer.Option(help="Random 80/20 splits (paper 100).", min=2, max=10_000)
    ] = 100,
    share_splits: Annotated[
        int, typer.Option(help="Splits per training share (Figure 6).", min=1, max=1000)
    ] = 20,
    region_column: Annotated[
        str | None, typer.Option(help="District-table column of regions: transfer by Spearman.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
) -> None:
    """Table 1 (R2 over random splits: full model, ablations, baselines), Figure 6, transfer, Gini."""
    from humanscape.tasks.economy.workflow import evaluate_economy, load_district_data

    inputs = [
        tile_table,
        districts,
        score_model,
        *(p for p in (labelled, mapping, nightlight) if p),
    ]
    _check_outputs(folders=[out], inputs=inputs)
    model = _economy_model(
        indicator, kind, n_clusters, encoder_epochs, trees, True, max_pairs, nightlight, seed
    )
    score, data, pairs, light = _district_inputs(
        tile_table,
        district_column,
        districts,
        indicator,
        weight_column,
        score_model,
        labelled,
        label_column,
        mapping,
        nightlight,
    )
    baseline = None
    try:  # the shipped SimCLR baseline reads all 13 bands when the tiles hold them
        from humanscape.data.chiptable import EUROSAT_MS_ORDER

        if score.units_ == "reflectance":
            baseline = load_district_data(
                tile_table, district_column, list(EUROSAT_MS_ORDER), "reflectance"
            ).images
    except HumanscapeError:
        console.print("tiles lack the 13 Sentinel-2 bands: the SimCLR baseline is left out")
    lines = evaluate_economy(
        model,
        score,
        data,
        out,
        labelled=pairs,
        nightlight=light,
        baseline_images=baseline,
        n_splits=splits,
        share_splits=share_splits,
        region_column=region_column,
        report=console.print,
    )
    for line in lines:
        console.print(line)
    import pandas as pd

    table = pd.read_csv(out / "table1.csv")
    console.print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


migration_app = typer.Typer(
    help="Municipal migration outflow from census tables and imagery (Runfola et al. 2022).",
    no_args_is_help=True,
)
app.add_typer(migration_app, name="migration")

MIGRATION_MODELS = ("ensemble", "signature+imagery", "signature", "dense", "imagery", "hgb", "rf")
IdOpt = Annotated[str, typer.Option("--id", help="Municipality id column.")]
TargetOpt = Annotated[str, typer.Option(help="Outflow column (migrants).")]
MissingOpt = Annotated[
    float | None, typer.Option(help="Value that marks a missing census value (e.g. -1).")
]
DropOpt = Annotated[bool, typer.Option("--drop", help="Drop non-numeric columns (else refused).")]
ImagesOpt = Annotated[
    Path | None,
    typer.Option(help="Tile table (image + municipality id column) for imagery models."),
]
EpochsOpt = Annotated[
    int, typer.Option(help="Most training epochs (paper 250).", min=1, max=10_000)
]


def _model_names(value: str) -> str:
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if n not in MIGRATION_MODELS]
    if not names or bad:
        raise typer.BadParameter(
            f"unknown model(s) {', '.join(bad) or value!r}; use {', '.join(MIGRATION_MODELS)}"
        )
    return ",".join(names)


def _census(
    path: Path,
    id_column: str,
    target: str | None,
    missing: float | None,
    drop: bool,
    group: str | None = None,
    columns: list[str] | None = None,
) -> Any:
    from humanscape.tasks.migration.table import read_census

    table = read_census(
        path,
        id_column=id_column,
        target=target,
        missing=missing,
        drop_text=drop,
        group_column=group,
        columns=columns,
    )
    for note in table.notes:
        console.print(f"warning: {path.name}: {note}")
    table.notes = []
    return table


def _draw_migration(kind: str, data: dict[str, Any], folder: Path) -> None:
    from humanscape.report.migration import draw_migration_figures

    draw_migration_figures(kind, data, folder)


def _migration_model(
    model: str, epochs: int, patience: int, trees: int, alpha: float, seed: int
) -> Any:
    from humanscape.tasks.migration.model import MigrationModel

    return MigrationModel(
        model, epochs=epochs, patience=patience, trees=trees, alpha=alpha, seed=seed
    )


def _images(
    path: Path | None, id_column: str, ids: list[str], bands: list[str] | None = None
) -> Any:
    """Tiles of the census municipalities; ids are checked before any tile is read."""
    if path is None:
        return None
    from humanscape.tasks.migration.imagery import read_municipal_images

    tiles = read_municipal_images(path, id_column=id_column, bands=bands, expect_ids=ids)
    tiles.owners_of(ids, path=str(path), warn=True)
    return tiles


@migration_app.command("fit")
@_friendly_errors
def migration_fit(
    census: Annotated[
        Path, typer.Argument(help="Census table (CSV/Parquet), one row per municipality.")
    ],
    id_column: IdOpt,
    target: TargetOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    model: Annotated[
        str,
        typer.Option(
            help="Model: " + ", ".join(MIGRATION_MODELS) + " (default: best measured).",
            callback=_one_of(*MIGRATION_MODELS),
        ),
    ] = "ensemble",
    images: ImagesOpt = None,
    polygons: Annotated[
        Path | None, typer.Option(help="Municipality polygons: ids checked against the table.")
    ] = None,
    polygon_id: Annotated[
        str | None, typer.Option(help="Id column of --polygons (default --id).")
    ] = None,
    variable_groups: Annotated[
        Path | None, typer.Option(help="CSV variable,group: signature cells coloured by group.")
    ] = None,
    missing: MissingOpt = None,
    drop: DropOpt = False,
    epochs: EpochsOpt = 250,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = 40,
    trees: Annotated[
        int, typer.Option(help="Trees (rf) / boosting rounds (hgb).", min=1, max=10_000)
    ] = 300,
    alpha: Annotated[
        float, typer.Option(help="Interval miscoverage (0.1: 90 % intervals).", min=0.01, max=0.5)
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
) -> None:
    """Fit a migration model on a census table (and image tiles); write the model folder."""
    from humanscape.tasks.migration.workflow import (
        fit_migration,
        read_polygons,
        read_variable_groups,
    )

    extra = [p for p in (images, polygons, variable_groups) if p]
    _check_outputs(folders=[out], inputs=[census, *extra])
    table = _census(census, id_column, target, missing, drop)
    groups = (
        read_variable_groups(variable_groups, list(table.features.columns))
        if variable_groups
        else None
    )
    if polygons is not None:
        read_polygons(polygons, polygon_id or id_column, table.ids.tolist())
    estimator = _migration_model(model, epochs, patience, trees, alpha, seed)
    tiles = _images(images, id_column, table.ids.tolist()) if estimator.uses_images else None
    if images is not None and not estimator.uses_images:
        console.print(f"warning: model '{model}' does not read imagery; --images ignored")
    for line in fit_migration(
        estimator, table, out, images=tiles, figures=_draw_migration, groups=groups
    ):
        console.print(line)


@migration_app.command("predict")
@_friendly_errors
def migration_predict(
    model: Annotated[Path, typer.Option(help="Model folder from 'migration fit'.")],
    census: Annotated[Path, typer.Argument(help="Census table with the model's columns.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions CSV to write.")],
    id_column: IdOpt,
    images: ImagesOpt = None,
    missing: MissingOpt = None,
) -> None:
    """Outflow per municipality with conformal intervals: id, prediction, lower, upper."""
    from humanscape.tasks.migration.model import MigrationModel
    from humanscape.tasks.migration.workflow import predict_migration

    _check_outputs(files=[out], inputs=[census, model, *(p for p in (images,) if p)])
    fitted = MigrationModel.load(model)
    table = _census(census, id_column, None, missing, False, columns=fitted.standardiser_.columns_)
    tiles = (
        _images(images, id_column, table.ids.tolist(), fitted.bands_)
        if fitted.uses_images
        else None
    )
    if fitted.uses_images and tiles is None:
        raise HumanscapeError(
            f"model '{fitted.model}' reads imagery", fix="give --images TILES.csv"
        )
    for line in predict_migration(fitted, table, out, images=tiles, id_name=id_column):
        console.print(line)


@migration_app.command("evaluate")
@_friendly_errors
def migration_evaluate(
    census: Annotated[Path, typer.Argument(help="Census table with the target.")],
    id_column: IdOpt,
    target: TargetOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.")],
    models: Annotated[
        str,
        typer.Option(
            help="Comma-separated models; the first gets importance, Moran's I, plots.",
            callback=_model_names,
        ),
    ] = "ensemble,signature,dense,hgb,rf",
    images: ImagesOpt = None,
    polygons: Annotated[
        Path | None, typer.Option(help="Municipality polygons: Moran's I of residuals.")
    ] = None,
    polygon_id: Annotated[
        str | None, typer.Option(help="Id column of --polygons (default --id).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Region column: transfer between regions.")
    ] = None,
    holdout_group: Annotated[
        str | None, typer.Option(help="Regions (comma-separated) to hold out (needs --group).")
    ] = None,
    population: Annotated[str | None, typer.Option(help="Population column for Figure 5.")] = None,
    missing: MissingOpt = None,
    drop: DropOpt = False,
    splits: Annotated[int, typer.Option(help="Random 80/20 splits (folds).", min=2, max=100)] = 5,
    epochs: EpochsOpt = 250,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = 40,
    trees: Annotated[int, typer.Option(help="Trees / boosting rounds.", min=1, max=10_000)] = 300,
    alpha: Annotated[float, typer.Option(help="Interval miscoverage.", min=0.01, max=0.5)] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
) -> None:
    """Table 2 over random splits, transfer between regions, importance, Moran's I and figures."""
    from humanscape.tasks.migration.workflow import evaluate_migration, read_polygons

    _check_outputs(folders=[out], inputs=[census, *(p for p in (images, polygons) if p)])
    if holdout_group and not group:
        raise HumanscapeError(
            "--holdout-group needs --group", fix="name the region column with --group"
        )
    names = models.split(",")
    table = _census(census, id_column, target, missing, drop, group)
    if population is not None and population not in table.features.columns:
        raise HumanscapeError(
            f"census table has no numeric column '{population}'",
            path=census,
            fix="name the population column with --population",
        )
    gdf = None
    if polygons is not None:
        gdf = read_polygons(polygons, polygon_id or id_column, table.ids.tolist())
    tiles = None
    if any("imagery" in n for n in names):
        if images is None:
            raise HumanscapeError("imagery models need image tiles", fix="give --images TILES.csv")
        tiles = _images(images, id_column, table.ids.tolist())

    def make(name: str, s: int) -> Any:
        return _migration_model(name, epochs, patience, trees, alpha, s)

    holdout = [h.strip() for h in holdout_group.split(",")] if holdout_group else None
    lines = evaluate_migration(
        names,
        make,
        table,
        out,
        images=tiles,
        polygons=gdf,
        holdout=holdout,
        population=population,
        n_splits=splits,
        seed=seed,
        figures=_draw_migration,
        report=console.print,
    )
    for line in lines:
        console.print(line)


flows_app = typer.Typer(
    help="Origin-destination commuting flows from region features and imagery (Imagery2Flow).",
    no_args_is_help=True,
)
app.add_typer(flows_app, name="flows")

FLOW_MODELS = ("gnn", "gravity", "radiation", "deepgravity", "gbrt")
CommutingOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--commuting-od",
        help="CommutingODGen county folder(s): --commuting-od DIR [DIR ...].",
    ),
]
MoreFoldersArg = Annotated[
    list[Path] | None,
    typer.Argument(help="More county folders after --commuting-od.", show_default=False),
]
RegionsOpt = Annotated[
    Path | None, typer.Option(help="Regions file (GeoPackage ...) with 'id' and feature columns.")
]
EmbeddingsOpt = Annotated[
    Path | None, typer.Option(help="Region embeddings table ('flows embed'): image features.")
]
MarginsOpt = Annotated[
    str,
    typer.Option(
        help="Origin/destination totals of models that need them: estimated from the regions' "
        "features (a city with no survey) or observed (from the city's own flows).",
        callback=_one_of("estimated", "observed"),
    ),
]


def _county_folders(first: list[Path] | None, more: list[Path] | None) -> list[Path]:
    folders = [*(first or []), *(more or [])]
    if more and not first:
        raise HumanscapeError(
            f"unexpected argument {more[0]}", fix="county folders follow --commuting-od"
        )
    return folders


def _cities(folders: Any, **kwargs: Any) -> list[Any]:
    """The cities of a flows command; reading notes (ignored columns) printed as warnings."""
    from humanscape.tasks.flows.cities import load_cities

    cities = load_cities(folders, **kwargs)
    for city in cities:
        for note in city.notes:
            console.print(f"warning: {Path(city.source).name}: {note}")
    return cities


def _draw_flow_map(city: Any, predicted: Any, path: Path) -> None:
    from humanscape.report.flows import flow_map_png

    flow_map_png(city, predicted, path)


def _draw_flow_plots(city: Any, predicted: Any, by_distance: Any, folder: Path) -> None:
    from humanscape.report.flows import draw_evaluation

    draw_evaluation(city, predicted, by_distance, folder)


@flows_app.command("fit")
@_friendly_errors
def flows_fit(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")],
    commuting_od: CommutingOpt = None,
    folders: MoreFoldersArg = None,
    regions: RegionsOpt = None,
    flows: Annotated[
        Path | None,
        typer.Option(help="Observed flows CSV: origin,destination,flow (with --regions)."),
    ] = None,
    embeddings: EmbeddingsOpt = None,
    model: Annotated[
        str,
        typer.Option(
            help="Model: "
            + ", ".join(FLOW_MODELS)
            + " (default: best measured on held-out counties).",
            callback=_one_of(*FLOW_MODELS),
        ),
    ] = "gravity",
    constraint: Annotated[
        str,
        typer.Option(
            help="Gravity: none, production (singly) or doubly constrained.",
            callback=_one_of("none", "production", "doubly"),
        ),
    ] = "doubly",
    deterrence: Annotated[
        str,
        typer.Option(
            help="Gravity distance decay: power (d^-g) or exponential (exp(-g d)).",
            callback=_one_of("power", "exponential"),
        ),
    ] = "power",
    epochs: Annotated[
        int, typer.Option(help="Most epochs (gnn, deepgravity).", min=1, max=10_000)
    ] = 300,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = 40,
    neighbours: Annotated[
        int, typer.Option(help="GAT: nearest regions linked to each region.", min=0, max=100)
    ] = 8,
    validation: Annotated[
        str,
        typer.Option(
            help="Networks stop early on held-out pairs of every city (pairs, 8:1:1) or on "
            "held-out training cities (cities: a sixth of them, needs 3 or more).",
            callback=_one_of("pairs", "cities"),
        ),
    ] = "pairs",
    seed: Annotated[int, typer.Option(help="Seed of everything random.")] = 0,
) -> None:
    """Fit a flow model on cities with observed flows; write the model folder."""
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import fit_flows

    counties = _county_folders(commuting_od, folders)
    inputs = [*counties, *(p for p in (regions, flows, embeddings) if p)]
    _check_outputs(folders=[out], inputs=inputs)
    if regions is not None and flows is None and not counties:
        raise HumanscapeError(
            "fitting needs observed flows", fix="give --flows F.csv with --regions"
        )
    cities = _cities(counties, regions=regions, flows=flows, embeddings=embeddings)
    estimator = FlowModel(
        model,
        constraint=constraint,
        deterrence=deterrence,
        epochs=epochs,
        patience=patience,
        neighbours=neighbours,
        validation=validation,
        seed=seed,
    )
    for line in fit_flows(estimator, cities, out):
        console.print(line)


@flows_app.command("predict")
@_friendly_errors
def flows_predict(
    model: Annotated[Path, typer.Option(help="Model folder from 'flows fit'.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Flows CSV to write (origin,destination,flow).")
    ],
    commuting_od: Annotated[
        Path | None, typer.Option("--commuting-od", help="A CommutingODGen county folder.")
    ] = None,
    regions: RegionsOpt = None,
    embeddings: EmbeddingsOpt = None,
    map_png: Annotated[
        Path | None, typer.Option("--map", help="PNG map of the strongest predicted flows.")
    ] = None,
    margins: MarginsOpt = "estimated",
) -> None:
    """Predict every origin-destination flow of one city (a county folder or a regions file)."""
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import predict_flows

    inputs = [p for p in (model, commuting_od, regions, embeddings) if p]
    _check_outputs(files=[out, map_png], inputs=inputs)
    if (commuting_od is None) == (regions is None):
        raise HumanscapeError("give one city", fix="give --commuting-od DIR or --regions R.gpkg")
    fitted = FlowModel.load(model)
    (city,) = _cities(
        [commuting_od] if commuting_od else None,
        regions=regions,
        embeddings=embeddings,
        need_flows=margins == "observed" and fitted.needs_margins,
    )
    for line in predict_flows(
        fitted, city, out, margins=margins, map_path=map_png, draw_map=_draw_flow_map
    ):
        console.print(line)


@flows_app.command("evaluate")
@_friendly_errors
def flows_evaluate(
    model: Annotated[Path, typer.Option(help="Model folder from 'flows fit'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to write.")],
    commuting_od: CommutingOpt = None,
    folders: MoreFoldersArg = None,
    regions: RegionsOpt = None,
    flows: Annotated[Path | None, typer.Option(help="Observed flows CSV (with --regions).")] = None,
    embeddings: EmbeddingsOpt = None,
    margins: MarginsOpt = "estimated",
) -> None:
    """CPC, CPL, RMSE, MAE, Pearson r per city, CPC by distance band, plots and flow maps."""
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import evaluate_flows

    counties = _county_folders(commuting_od, folders)
    inputs = [model, *counties, *(p for p in (regions, flows, embeddings) if p)]
    _check_outputs(folders=[out], inputs=inputs)
    if regions is not None and flows is None and not counties:
        raise HumanscapeError(
            "evaluation needs observed flows", fix="give --flows F.csv with --regions"
        )
    fitted = FlowModel.load(model)
    cities = _cities(counties, regions=regions, flows=flows, embeddings=embeddings)
    for line in evaluate_flows(fitted, cities, out, margins=margins, draw_plots=_draw_flow_plots):
        console.print(line)


@flows_app.command("embed")
@_friendly_errors
def flows_embed(
    regions: Annotated[Path, typer.Option(help="Regions file with an 'id' column.")],
    scene: Annotated[
        str, typer.Option(help="Scene: multi-band file, folder / glob of band files.")
    ],
    encoder: Annotated[
        str, typer.Option(help="Shipped encoder name ('humanscape encoders') or an encoder folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embeddings table (Parquet) to write.")],
    tile: Annotated[int, typer.Option(help="Tile size in pixels.", min=8, max=1024)] = 64,
    sensor: SensorOpt = None,
    band_names: BandNamesOpt = None,
    units: UnitsOpt = "auto",
) -> None:
    """Step 1: tiles per region -> encoder -> mean and std of the tile embeddings per region."""
    from humanscape.geo.vector import read_vector
    from humanscape.models.registry import load_encoder
    from humanscape.tasks.flows.workflow import embed_flow_regions

    _check_outputs(files=[out], inputs=[regions, scene])
    polygons = read_vector(regions)
    if "id" not in polygons.columns:
        raise HumanscapeError(
            "regions have no 'id' column", path=regions, fix="name the region id column 'id'"
        )
    model = load_encoder(encoder)
    with _scene(scene, sensor, band_names, units) as s:
        lines = embed_flow_regions(polygons, s, model, out, size=tile)
    for line in lines:
        console.print(line)


@app.command()
@_friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
) -> None:
    """Run the humanscape chain on the shipped real sample data and write the results to OUT."""
    from humanscape.demo import run_demo

    _check_outputs(folders=[out])
    outputs = run_demo(out)
    print("\nhumanscape demo finished. Outputs:")
    for label, path in outputs.items():
        print(f"  {label:<34} {path}")


def main() -> None:  # pragma: no cover - the console script
    """Entry point of the ``humanscape`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
