"""What the scene commands do (``info``, ``indices``, ``composite``, ``chip``, ``embed``,
``encoders``, ``predict-chips``), as functions that write their outputs atomically and return the
lines to print.

Maps run on the tiled engine (:class:`~humanscape.scale.Execution`: resumable, on Dask); scenes are
opened with the user's options (:class:`~humanscape.geo.inputs.SceneReader`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from humanscape._atomic import atomic_output
from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo.composite import CloudMask, CompositeMap, Period, report_empty, scenes_in_period
from humanscape.geo.inputs import SceneReader
from humanscape.geo.write import folder_token
from humanscape.scale import IN_PROCESS, Execution

#: Model folders ``predict-chips --model`` maps: models that predict one value set per chip.
CHIP_MODELS = ("humanscape.population", "humanscape.economy.score")


def scene_info(scene: str | Path, reader: SceneReader, *, as_json: bool = False) -> list[str]:
    """Bands, CRS, resolution, extent and radiometry (units, scale, offset and their source)."""
    with reader.open(scene) as s:
        d = s.describe()
    if as_json:
        return [json.dumps(d, indent=2)]
    lines = [
        f"scene       {d['name']}",
        f"sensor      {d['sensor']}    date {d['date']}",
        f"crs         {d['crs']}",
        f"resolution  {d['resolution_m']} (aligned grid)    size {d['size_px'][0]} x "
        f"{d['size_px'][1]} px",
        f"bounds      {d['bounds']}",
    ]
    for b in d["bands"]:  # type: ignore[union-attr]
        wl = f"{b['wavelength_nm']:.1f} nm" if b["wavelength_nm"] else "-"
        radiometry = f"{b['units']} x {b['scale']:g} {b['offset']:+g}"
        lines.append(
            f"  {b['name']:<9} {str(b['role']):<13} {wl:>10}  native {b['native_resolution_m']:g} m  "
            f"{radiometry:<24} {Path(str(b['file'])).name}"
        )
    decided: dict[str, list[str]] = {}  # why each band's numbers mean what they mean
    for b in d["bands"]:  # type: ignore[union-attr]
        decided.setdefault(str(b["radiometry_from"]), []).append(str(b["name"]))
    lines += [f"radiometry  {', '.join(names)}: {why}" for why, names in decided.items()]
    return lines


def write_indices(
    scene: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    indices: Sequence[str] | None = None,
    execution: Execution = IN_PROCESS,
) -> list[str]:
    """The spectral indices of Tingzon et al. (2020) of a scene (all ten by default)."""
    from humanscape.geo.indices import IndicesMap

    with reader.open(scene) as s:
        job = IndicesMap(s, indices)
        path = execution.run(job, out, desc="indices")
    return [f"wrote {path}: {', '.join(job.names)}"]


def write_composite(
    scenes: Sequence[str | Path],
    out: Path,
    reader: SceneReader,
    *,
    statistic: str = "median",
    cloud_mask: CloudMask | None = None,
    period: str | None = None,
    bands: Sequence[str] | None = None,
    execution: Execution = IN_PROCESS,
) -> list[str]:
    """Median (or minimum) composite of the clear observations of dated scenes, optionally of those
    acquired in ``period`` only; pixels with no clear observation are counted."""
    mask = cloud_mask or CloudMask()
    opened = reader.open_each(scenes)
    masks = list(mask.paths)
    if period:
        chosen = Period.parse(period)
        keep = scenes_in_period(opened, chosen)
        if not keep:
            raise EmptyInputError(
                f"no scene was acquired in period {chosen.name}",
                fix="check the dates in the file names or the --period",
            )
        opened = [opened[i] for i in keep]
        masks = [masks[i] for i in keep] if masks else masks
    mask = replace(mask, paths=masks)
    job = CompositeMap(
        opened,
        method=statistic,  # type: ignore[arg-type]
        cloud_mask=mask,
        bands=bands,
        tags={"period": period or ""},
    )
    try:
        tile = min(execution.tile or job.block, job.block)
        path = replace(execution, tile=tile).run(job, out, desc="composite")
    finally:
        job.close()
    lines = [f"wrote {path} from {len(opened)} scenes"]
    empty = report_empty(path)
    if empty:
        lines.append(f"{empty:,} pixels have no clear observation (NaN)")
    return lines


def write_chips(
    scene: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    cell: float | None = None,
    arcsec: float | None = None,
    neighbors: int = 1,
    bands: Sequence[str] | None = None,
) -> list[str]:
    """One chip per grid cell (with its ``neighbors x neighbors`` context, Huang et al.'s
    nbr(n)) and the chip table ``chips.csv``, into folder ``out``."""
    from humanscape.data.chips import chip_scene
    from humanscape.geo.grid import cell_grid

    with reader.open(scene) as s:
        table = chip_scene(
            s, cell_grid(s.grid, cell=cell, arcsec=arcsec), out, neighbors=neighbors, bands=bands
        )
    return [f"wrote {len(table)} chips and {out / 'chips.csv'}"]


def write_embeddings(
    chip_table: str | Path,
    encoder: str | None,
    out: Path,
    *,
    batch_size: int | None = None,
    id_column: str | None = None,
) -> list[str]:
    """Every chip of a chip table embedded by a frozen encoder: ``id`` + ``e000 ...`` (Parquet, or
    CSV for a ``.csv`` name). Without ``encoder``, the shipped encoder with the best held-out linear
    probe among those that read the chips (:func:`~humanscape.models.embed.best_shipped_encoder`). Without ``batch_size`` the batch fits a memory budget
    (:func:`humanscape.models.embed.batch_for`)."""
    from humanscape.data.chiptable import read_chip_table
    from humanscape.models.embed import best_encoder_for_chip, embed_chip_table
    from humanscape.models.registry import load_encoder

    lines = []
    if encoder is None:
        first = read_chip_table(chip_table)["image"].iloc[0]
        encoder = best_encoder_for_chip(first)
        lines.append(
            f"encoder: {encoder} (the best held-out linear probe of the shipped encoders "
            "that read these chips; --encoder to choose)"
        )
    model = load_encoder(encoder)
    frame = embed_chip_table(chip_table, model, batch_size=batch_size, id_column=id_column)
    with atomic_output(out) as tmp:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return [*lines, f"wrote {len(frame)} embeddings of {model.num_features} dimensions to {out}"]


def encoder_lines() -> list[str]:
    """The shipped encoders: bands, units, recipe, measured linear-probe accuracy, epochs; those of
    the same bands and units together, the best held-out probe first (marked: the one to use)."""
    from humanscape.models.registry import list_weights

    lines = []
    groups: dict[tuple[tuple[str, ...], str], list] = {}
    for entry in list_weights():
        groups.setdefault((tuple(entry.bands), entry.units), []).append(entry)
    for entries in groups.values():
        entries.sort(key=lambda e: -(e.linear_probe_accuracy or 0.0))
        for k, entry in enumerate(entries):
            acc = entry.linear_probe_accuracy
            lines.append(
                f"{entry.name:<40} {entry.arch:<14} {len(entry.bands):>2} bands ({entry.units})  "
                f"embedding {entry.recipe}  linear probe {acc if acc is not None else '-'}  "
                f"epochs {entry.metadata.get('epochs', '-')}"
                + ("  <- best for these bands" if k == 0 and len(entries) > 1 else "")
            )
    return lines


def map_chips(
    scene: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    encoder: str | None = None,
    model: str | Path | None = None,
    chip: int = 256,
    stride: int | None = None,
    batch_size: int = 32,
    backend: str = "auto",
    min_valid: float = 0.5,
    execution: Execution = IN_PROCESS,
) -> list[str]:
    """A CNN over every chip of a scene, as a georeferenced grid (one output pixel per chip): an
    encoder's embeddings (``encoder``) or a chip model's predictions (``model``, a folder of one of
    :data:`CHIP_MODELS`)."""
    from humanscape.scale.chips import ChipMap

    if (encoder is None) == (model is None):
        raise HumanscapeError(
            "give either --encoder (embeddings) or --model (a chip model's predictions)",
            fix="e.g. --encoder simclr_resnet18half_eurosat_ms, or --model population_model/",
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
        predictor = EncoderChips(net, batch_size=batch_size, backend=backend, name=str(encoder))
    else:
        from humanscape.tasks.registry import load_model

        fitted = load_model(model, kinds=CHIP_MODELS)  # type: ignore[arg-type]
        predictor = fitted.chip_predictor(token=folder_token(model))  # type: ignore[attr-defined, arg-type]
    with reader.open(scene) as s:
        job = ChipMap(s, predictor, chip=chip, stride=stride or chip, min_valid=min_valid)
        execution.run(job, out, desc="chips", tile=job.default_tile())
    grid = job.spec.grid
    shown = ", ".join(job.spec.band_names[:3]) + (", ..." if job.spec.count > 3 else "")
    return [
        f"wrote {out}: {grid.height} x {grid.width} chips of {chip} px, {job.spec.count} band(s) "
        f"({shown})"
    ]
