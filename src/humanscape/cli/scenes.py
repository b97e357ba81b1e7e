"""Scene commands: ``info``, ``indices``, ``composite``, ``chip``, ``embed``, ``encoders``,
``predict-chips``, and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from humanscape.cli import options as opt
from humanscape.cli.boundary import HumanscapeCommand

SCENE = click.argument("scene", type=opt.INPUT)


def echo(lines: list[str]) -> None:
    """Print what a workflow returned, one line each."""
    for line in lines:
        click.echo(line)


@click.command(cls=HumanscapeCommand)
@SCENE
@opt.scene_options()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(scene: str, reader: Any, as_json: bool) -> None:
    """Bands, CRS, resolution, extent and radiometry (units, scale, offset) of a scene.

    SCENE is a multi-band file, a folder or glob of band files, a .SAFE product, a URL or a /vsi
    path."""
    from humanscape.tasks.geodata.workflow import scene_info

    echo(scene_info(scene, reader, as_json=as_json))


@click.command(cls=HumanscapeCommand)
@SCENE
@opt.out_file("Output GeoTIFF, one band per index.")
@opt.names_option("--indices", help="Indices to compute [default: all ten].")
@opt.scene_options(resolution=True)
@opt.execution_options()
def indices(scene: str, out: Path, indices: list[str] | None, reader: Any, execution: Any) -> None:
    """Spectral indices (NDVI, SAVI, MNDWI, NDBI, UI, NBI, BRBA, NBAI, MBI, BAEI) of a scene."""
    from humanscape.tasks.geodata.workflow import write_indices

    echo(write_indices(scene, out, reader, indices=indices, execution=execution))


@click.command(cls=HumanscapeCommand)
@click.argument("scenes", nargs=-1, required=True, type=opt.INPUT)
@opt.out_file("Output GeoTIFF (bands + valid_count).")
@click.option(
    "--statistic",
    type=click.Choice(["median", "min"]),
    default="median",
    show_default=True,
    help="Per-pixel statistic of the clear observations.",
)
@opt.cloud_mask_options
@click.option(
    "--period",
    default=None,
    help="Keep scenes within a period: 2015-2016 or 2015-01-01:2016-06-30.",
)
@opt.names_option("--bands", help="Bands to composite [default: all but QA bands].")
@opt.scene_options(band_names=False)
@opt.execution_options()
def composite(
    scenes: tuple[str, ...],
    out: Path,
    statistic: str,
    cloud_mask: Any,
    period: str | None,
    bands: list[str] | None,
    reader: Any,
    execution: Any,
) -> None:
    """Median (or minimum) composite of the clear observations of dated scenes (one per entry)."""
    from humanscape.tasks.geodata.workflow import write_composite

    echo(
        write_composite(
            list(scenes),
            out,
            reader,
            statistic=statistic,
            cloud_mask=cloud_mask,
            period=period,
            bands=bands,
            execution=execution,
        )
    )


@click.command(cls=HumanscapeCommand)
@SCENE
@opt.out_folder("Output folder: chips/ and chips.csv.")
@opt.cell_options
@click.option(
    "--neighbors",
    type=int,
    default=1,
    show_default=True,
    callback=opt.odd,
    help="n of the n x n neighbourhood of cells in each chip (Huang et al. nbr(n), odd).",
)
@opt.names_option("--bands", help="Bands to keep [default: all].")
@opt.scene_options()
def chip(
    scene: str,
    out: Path,
    cell: float | None,
    arcsec: float | None,
    neighbors: int,
    bands: list[str] | None,
    reader: Any,
) -> None:
    """Cut a scene into one chip per grid cell and write the chip table."""
    from humanscape.tasks.geodata.workflow import write_chips

    echo(
        write_chips(scene, out, reader, cell=cell, arcsec=arcsec, neighbors=neighbors, bands=bands)
    )


ENCODER = click.option(
    "--encoder",
    default=None,
    help="A shipped encoder's name ('humanscape encoders') or a saved encoder folder "
    "[default: the shipped encoder with the best held-out linear probe that reads the chips].",
)


@click.command(cls=HumanscapeCommand)
@click.argument("chip_table", type=opt.INPUT)
@ENCODER
@opt.out_file("Embeddings table: Parquet (or CSV for a .csv name), id + e000 ...")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Chips per batch [default: as many as fit 1 GiB of activations].",
)
@click.option("--id-column", default=None, help="Column used as id [default: cell_id, else image].")
def embed(
    chip_table: Path, encoder: str | None, out: Path, batch_size: int | None, id_column: str | None
) -> None:
    """Embed every chip of a chip table with a frozen encoder."""
    from humanscape.tasks.geodata.workflow import write_embeddings

    echo(write_embeddings(chip_table, encoder, out, batch_size=batch_size, id_column=id_column))


@click.command(cls=HumanscapeCommand)
def encoders() -> None:
    """List the shipped encoders with their bands and measured linear-probe accuracy."""
    from humanscape.tasks.geodata.workflow import encoder_lines

    echo(encoder_lines())


@click.command("predict-chips", cls=HumanscapeCommand)
@SCENE
@opt.out_file("Output GeoTIFF: one pixel per chip.")
@click.option("--encoder", default=None, help="Shipped encoder name or encoder folder: embeddings.")
@opt.model_option(
    "Chip model folder ('population fit', 'economy fit-score'): predictions.", required=False
)
@opt.chip_option(256, "Chip side in scene pixels.")
@click.option(
    "--stride",
    type=click.IntRange(1, 8192),
    default=None,
    help="Distance between chips in pixels = output pixel size [default: --chip].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="Chips per forward pass.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "onnx", "torch"]),
    default="auto",
    show_default=True,
    help="Encoder inference: ONNX Runtime when installed (faster on CPU), else PyTorch.",
)
@click.option(
    "--min-valid",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Least share of valid pixels in a chip.",
)
@opt.scene_options()
@opt.execution_options(tile_help="[default: about 2048 scene pixels a side].")
def predict_chips(
    scene: str,
    out: Path,
    encoder: str | None,
    model_dir: str | None,
    chip: int,
    stride: int | None,
    batch_size: int,
    backend: str,
    min_valid: float,
    reader: Any,
    execution: Any,
) -> None:
    """Run a CNN over every chip of a scene: embeddings or predictions as a georeferenced grid."""
    from humanscape.tasks.geodata.workflow import map_chips

    echo(
        map_chips(
            scene,
            out,
            reader,
            encoder=encoder,
            model=model_dir,
            chip=chip,
            stride=stride,
            batch_size=batch_size,
            backend=backend,
            min_valid=min_valid,
            execution=execution,
        )
    )


@click.command(cls=HumanscapeCommand)
@opt.out_folder("Output folder.", default="demo-output")
@click.option(
    "--quick",
    is_flag=True,
    help="The same steps with tiny training budgets: checks the chain in about a minute "
    "(its numbers mean nothing).",
)
def demo(out: Path, quick: bool) -> None:
    """Run the humanscape chain on the shipped real sample data and write the results to OUT."""
    from humanscape.demo import QUICK, Budget, run_demo

    outputs = run_demo(out, budget=QUICK if quick else Budget())
    click.echo("\nhumanscape demo finished. Outputs:")
    for label, path in outputs.items():
        click.echo(f"  {label:<34} {path}")


COMMANDS = (info, indices, composite, chip, embed, encoders, predict_chips, demo)
