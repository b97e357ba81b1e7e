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
    from humanscape.data.chips import chip_scene
    from humanscape.geo.grid import arcsec_grid, regular_grid
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
            f"embedding {entry.recipe}  "
            f"linear probe {acc if acc is not None else '-'}  epochs {entry.metadata.get('epochs', '-')}"
        )


settlements_app = typer.Typer(
    help="New informal settlements from Sentinel-2 time series (Tingzon et al. 2020).",
    no_args_is_help=True,
)
app.add_typer(settlements_app, name="settlements")


def _read_labels(path: Path, layer: str | None = None):
    from humanscape.geo.vector import read_vector

    return read_vector(path, layer=layer)


def _sample(
    features: Path,
    labels: Path,
    label_column: str | None,
    positive: list[str] | None,
    groups: Path | None,
    group_column: str | None,
    landuse: Path | None,
    landuse_column: str | None,
    formal: list[str] | None,
    negatives: int,
    seed: int,
):
    from humanscape.tasks.settlements.sampling import LabelSpec, sample_pixels

    if label_column and not positive:
        raise HumanscapeError(
            "--label-column needs --positive (the value(s) marking settlements)",
            fix="e.g. --label-column fclass --positive residential",
        )
    spec = LabelSpec(_read_labels(labels), label_column, positive or [], str(labels))
    return sample_pixels(
        str(features),
        spec,
        groups=_read_labels(groups) if groups else None,
        group_column=group_column,
        landuse=_read_labels(landuse) if landuse else None,
        landuse_column=landuse_column,
        formal_values=formal or [],
        negatives_per_group=negatives,
        seed=seed,
    )


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
GroupsOpt = Annotated[
    Path | None, typer.Option(help="Group polygons (municipalities) for leave-one-group-out CV.")
]
GroupColumnOpt = Annotated[str | None, typer.Option(help="Column naming the group.")]
LanduseOpt = Annotated[
    Path | None,
    typer.Option(help="Land-use polygons to split negatives formal/unoccupied (40/60)."),
]
LanduseColumnOpt = Annotated[str | None, typer.Option(help="Land-use class column.")]
FormalOpt = Annotated[
    list[str] | None, typer.Option(help="Land-use value(s) that are formal settlement (repeat).")
]
NegativesOpt = Annotated[int, typer.Option(help="Negative pixels per group (paper: 30,000).")]


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
    composites: Annotated[
        bool, typer.Option(help="Inputs are composites (one per period), not scenes.")
    ] = False,
    texture: Annotated[
        bool,
        typer.Option(help="Add texture (variance, GLCM contrast/homogeneity) of red, nir, swir1."),
    ] = False,
    texture_window: Annotated[int, typer.Option(help="Texture window in pixels.")] = 7,
    sensor: Annotated[
        str | None, typer.Option(help="Sensor key (guessed from file names).")
    ] = None,
) -> None:
    """Per-pixel features: per period 12 bands + 10 indices (66 for three periods)."""
    from humanscape.geo.composite import CloudMask, parse_periods
    from humanscape.geo.raster import open_scene
    from humanscape.tasks.settlements.features import settlement_features, stack_features

    if composites:
        opened = [open_scene(p, sensor=sensor) for p in scenes]
        names = (
            [p.name for p in parse_periods(periods)] if periods else [Path(p).stem for p in scenes]
        )
        path = stack_features(opened, names, out, texture=texture, texture_window=texture_window)
    else:
        opened = [open_scene(s, sensor=sensor) for s in scenes]
        path = settlement_features(
            opened,
            out,
            periods=parse_periods(periods) if periods else None,
            cloud_mask=CloudMask.parse(cloud_mask, mask_file or []),
            texture=texture,
            texture_window=texture_window,
        )
    from humanscape.tasks.settlements.features import read_feature_names

    console.print(f"wrote {path} with {len(read_feature_names(path))} features")


@settlements_app.command("fit")
@_friendly_errors
def settlements_fit(
    features: Annotated[Path, typer.Argument(help="Feature stack from 'settlements features'.")],
    labels: LabelsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder.")],
    label_column: LabelColumnOpt = None,
    positive: PositiveOpt = None,
    groups: GroupsOpt = None,
    group_column: GroupColumnOpt = None,
    landuse: LanduseOpt = None,
    landuse_column: LanduseColumnOpt = None,
    formal: FormalOpt = None,
    model: Annotated[str, typer.Option(help="lr, svm or rf.")] = "rf",
    n_estimators: Annotated[int, typer.Option(help="Random forest trees (paper: 800).")] = 800,
    negatives: NegativesOpt = 30_000,
    n_jobs: Annotated[int | None, typer.Option(help="Cores for scikit-learn (-1 = all).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (recorded).")] = 0,
) -> None:
    """Sample pixels and train a settlement classifier; writes the model folder and the class balance."""
    from humanscape._atomic import atomic_output
    from humanscape.tasks.settlements.model import SettlementClassifier

    sample = _sample(
        features,
        labels,
        label_column,
        positive,
        groups,
        group_column,
        landuse,
        landuse_column,
        formal,
        negatives,
        seed,
    )
    clf = SettlementClassifier(model, n_estimators=n_estimators, n_jobs=n_jobs, seed=seed).fit(
        sample, sample["label"]
    )
    balance = sample.attrs["balance"]
    clf.save(
        out,
        extra={
            "features_file": str(features),
            "labels": str(labels),
            "label_column": label_column,
            "positive": positive,
            "n_samples": len(sample),
            "seed": seed,
        },
    )
    with atomic_output(out / "class_balance.csv") as tmp:
        balance.to_csv(tmp, index=False)
    console.print(balance.to_string(index=False))
    console.print(
        f"wrote model {out} ({model}, {len(clf.feature_names_)} features, {len(sample)} pixels)"
    )


@settlements_app.command("predict")
@_friendly_errors
def settlements_predict(
    features: Annotated[Path, typer.Argument(help="Feature stack built like the training one.")],
    model: Annotated[Path, typer.Option(help="Model folder from 'settlements fit'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Probability GeoTIFF (10 m).")],
    grid_out: Annotated[Path | None, typer.Option(help="Ranked 500 m grid GeoPackage.")] = None,
    polygons_out: Annotated[
        Path | None, typer.Option(help="Candidate polygons GeoPackage.")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Probability threshold for candidate polygons.")
    ] = 0.5,
    top_k: Annotated[
        int | None, typer.Option(help="Keep only the k best candidate polygons.")
    ] = None,
    min_area: Annotated[
        float, typer.Option(help="Smallest candidate polygon in square metres.")
    ] = 0.0,
    cell: Annotated[float, typer.Option(help="Ranked grid cell size in metres.")] = 500.0,
    change: Annotated[
        bool, typer.Option(help="Add band new_score: probability minus the earliest-period look.")
    ] = False,
) -> None:
    """Probability map (tile by tile), ranked validation grid and candidate polygons."""
    from humanscape.tasks.settlements.model import SettlementClassifier
    from humanscape.tasks.settlements.predict import (
        candidate_polygons,
        predict_probability,
        ranked_grid,
    )

    clf = SettlementClassifier.load(model)
    predict_probability(clf, features, out, change=change)
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
    groups: GroupsOpt = None,
    group_column: GroupColumnOpt = None,
    landuse: LanduseOpt = None,
    landuse_column: LanduseColumnOpt = None,
    formal: FormalOpt = None,
    models: Annotated[str, typer.Option(help="Comma-separated: lr,svm,rf.")] = "lr,svm,rf",
    n_estimators: Annotated[int, typer.Option(help="Random forest trees (paper: 800).")] = 800,
    block_km: Annotated[
        float, typer.Option(help="Block size for spatial block CV when there are no groups.")
    ] = 2.0,
    negatives: NegativesOpt = 30_000,
    n_jobs: Annotated[int | None, typer.Option(help="Cores for scikit-learn (-1 = all).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Leave-one-group-out (or spatial block) CV: precision/recall at top x %, PR-AUC, per group and pooled."""
    from humanscape.tasks.settlements.evaluate import cross_validate, make_splits, write_report
    from humanscape.tasks.settlements.model import SettlementClassifier

    sample = _sample(
        features,
        labels,
        label_column,
        positive,
        groups,
        group_column,
        landuse,
        landuse_column,
        formal,
        negatives,
        seed,
    )
    splits = make_splits(sample, block_size=block_km * 1000)
    for split in splits:
        console.print(split.describe())
    results = [
        cross_validate(
            sample,
            SettlementClassifier(m.strip(), n_estimators=n_estimators, n_jobs=n_jobs, seed=seed),
            splits=splits,
        )
        for m in models.split(",")
        if m.strip()
    ]
    import pandas as pd

    paths = write_report(results, out)
    table = pd.read_csv(paths["table"])
    console.print(table.round(3).to_string(index=False))
    console.print(f"wrote {out}")


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
