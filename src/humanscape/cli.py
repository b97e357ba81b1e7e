"""The ``humanscape`` command.

Every command takes files in and writes files out atomically. Bad input ends with one line
``error: <file>: <problem> (fix: ...)`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from humanscape import __version__
from humanscape.errors import HumanscapeError

app = typer.Typer(
    name="humanscape",
    help="Population, prosperity, settlements, migration and commuting from satellite imagery.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(func: F) -> F:
    """Turn :class:`HumanscapeError` into one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HumanscapeError as exc:
            print(f"error: {exc.one_line()}", file=sys.stderr)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print the humanscape version."""
    print(__version__)


@app.command()
@_friendly_errors
def info(
    scene: Annotated[str, typer.Argument(help="Multi-band file, folder / glob of band files.")],
    sensor: Annotated[
        str | None, typer.Option(help="Sensor key (guessed from file names).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Bands, CRS, resolution and extent of a scene."""
    from humanscape.geo.raster import open_scene

    with open_scene(scene, sensor=sensor) as s:
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
        print(
            f"  {b['name']:<9} {str(b['role']):<13} {wl:>10}  native {b['native_resolution_m']:g} m  {Path(b['file']).name}"
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
    sensor: Annotated[
        str | None, typer.Option(help="Sensor key (guessed from file names).")
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Target pixel size (default finest band).")
    ] = None,
    cog: Annotated[bool, typer.Option(help="Write a Cloud-Optimised GeoTIFF.")] = False,
) -> None:
    """Spectral indices (NDVI, SAVI, MNDWI, NDBI, UI, NBI, BRBA, NBAI, MBI, BAEI) of a scene."""
    from humanscape.geo.indices import scene_indices
    from humanscape.geo.raster import open_scene

    with open_scene(scene, sensor=sensor, resolution=resolution) as s:
        path = scene_indices(s, out, index, cog=cog)
    console.print(f"wrote {path}")


@app.command()
@_friendly_errors
def composite(
    scenes: Annotated[
        list[str], typer.Argument(help="One entry per scene: multi-band file, band folder or glob.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GeoTIFF (bands + valid_count).")],
    method: Annotated[str, typer.Option(help="median or min.")] = "median",
    cloud_mask: Annotated[
        str | None, typer.Option(help="fmask, qa_pixel, scl, qa60, raster or probability:0.4.")
    ] = None,
    mask_file: Annotated[
        list[Path] | None,
        typer.Option(help="Mask raster per scene (raster / probability), in order."),
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(help="Keep scenes within a period: 2015-2016 or 2015-01-01:2016-06-30."),
    ] = None,
    band: Annotated[
        list[str] | None,
        typer.Option("--band", "-b", help="Bands to composite (default all non-QA)."),
    ] = None,
    sensor: Annotated[
        str | None, typer.Option(help="Sensor key (guessed from file names).")
    ] = None,
    cog: Annotated[bool, typer.Option(help="Write a Cloud-Optimised GeoTIFF.")] = False,
) -> None:
    """Median (or minimum) composite of clear observations over dated scenes."""
    from humanscape.errors import EmptyInputError
    from humanscape.geo.composite import CloudMask, Period, scenes_in_period
    from humanscape.geo.composite import composite as run_composite
    from humanscape.geo.raster import open_scene

    if method not in ("median", "min"):
        raise HumanscapeError(
            f"unknown method '{method}'", fix="use --method median or --method min"
        )
    opened = [open_scene(s, sensor=sensor) for s in scenes]
    masks = list(mask_file or [])
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
    mask = CloudMask.parse(cloud_mask, masks)
    path = run_composite(
        opened,
        out,
        method=method,
        cloud_mask=mask,
        bands=band,
        cog=cog,  # type: ignore[arg-type]
        tags={"period": period or ""},
    )
    console.print(f"wrote {path} from {len(opened)} scenes")


@app.command()
@_friendly_errors
def chip(
    raster: Annotated[str, typer.Argument(help="Raster or scene (file, band folder or glob).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (chips/ and chips.csv).")],
    cell: Annotated[
        float, typer.Option(help="Cell size in metres (a whole number of pixels).")
    ] = 1000,
    neighbors: Annotated[
        int, typer.Option(help="n of the n x n neighbourhood per chip (odd).")
    ] = 1,
    arcsec: Annotated[
        float | None, typer.Option(help="Use an arc-second EPSG:4326 grid instead (e.g. 30).")
    ] = None,
    band: Annotated[
        list[str] | None, typer.Option("--band", "-b", help="Bands to keep (default all).")
    ] = None,
    sensor: Annotated[
        str | None, typer.Option(help="Sensor key (guessed from file names).")
    ] = None,
) -> None:
    """Cut a raster into one chip per grid cell and write the chip table."""
    from humanscape.geo.grid import arcsec_grid, chip_scene, regular_grid
    from humanscape.geo.raster import open_scene

    with open_scene(raster, sensor=sensor) as s:
        if arcsec:
            grid = arcsec_grid(
                s.grid.bounds,
                s.crs,
                arcsec=arcsec,
                cell_px=max(1, round(arcsec * 30.87 / s.grid.res[0])),
            )
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
    batch_size: Annotated[int, typer.Option(help="Chips per batch.")] = 128,
    id_column: Annotated[
        str | None, typer.Option(help="Column used as id (default cell_id, else image).")
    ] = None,
) -> None:
    """Embed every chip of a chip table with a frozen encoder."""
    from humanscape._atomic import atomic_output
    from humanscape.models.embed import embed_chip_table
    from humanscape.models.registry import load_encoder

    model = load_encoder(encoder)
    frame = embed_chip_table(chip_table, model, batch_size=batch_size, id_column=id_column)
    with atomic_output(out) as tmp:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    console.print(f"wrote {len(frame)} embeddings of {model.num_features} dimensions to {out}")


@app.command()
def encoders() -> None:
    """List the shipped encoders with their bands and measured linear-probe accuracy."""
    from humanscape.models.registry import list_weights

    for entry in list_weights():
        acc = entry.linear_probe_accuracy
        print(
            f"{entry.name:<40} {entry.arch:<14} {len(entry.bands):>2} bands ({entry.units})  "
            f"linear probe {acc if acc is not None else '-'}  epochs {entry.metadata.get('epochs', '-')}"
        )


@app.command()
@_friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
) -> None:
    """Run the humanscape chain on the shipped real sample data and write the results to OUT."""
    from humanscape.demo import run_demo

    outputs = run_demo(out)
    print("\nhumanscape demo finished. Outputs:")
    for label, path in outputs.items():
        print(f"  {label:<34} {path}")


if __name__ == "__main__":  # pragma: no cover
    app()
