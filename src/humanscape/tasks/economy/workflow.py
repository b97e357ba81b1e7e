"""The economy commands as functions: fit-score, score (table or scene), tiles, fit, predict, evaluate.

Each checks its inputs first (one error naming the file and the fix), writes its outputs atomically
and returns the lines the command prints.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.data.chiptable import read_chip_table, read_chips
from humanscape.errors import HumanscapeError, NoOverlapError
from humanscape.geo.inputs import SceneReader
from humanscape.geo.scene import Scene
from humanscape.report.economy import share_plot
from humanscape.report.text import table_text
from humanscape.scale import Execution
from humanscape.tasks.economy.data import (
    UNITS,
    DistrictData,
    DistrictInputs,
    load_district_data,
    read_levels,
    read_tiles,
)
from humanscape.tasks.economy.evaluate import (
    evaluation_configs,
    random_splits,
    regressor_factory,
    share_curve,
    split_r2,
    transfer_spearman,
)
from humanscape.tasks.economy.model import EconomyModel
from humanscape.tasks.economy.ordinal import LEVELS, classify
from humanscape.tasks.economy.score import ScoreChips, ScoreModel

log = logging.getLogger(__name__)


def fit_score(
    model: ScoreModel,
    table_path: str | Path,
    label_column: str,
    out: Path,
    *,
    mapping: Path | None = None,
    groups: str | None = None,
    progress: bool = True,
) -> list[str]:
    """Fit the score model on a labelled chip table and save it (with ``validation.csv``).

    A model whose ``bands`` are ``None`` reads ``B02,B03,B04,B08`` of multispectral chips and
    ``red,green,blue`` of 8-bit images (JPEG / PNG chips). Checkpoints go to
    ``<out>.checkpoints/`` every epoch (an interrupted fit started again with the same ``out``
    resumes) and are removed once the model is saved.
    """
    from humanscape.data.chiptable import IMAGE_SUFFIXES
    from humanscape.tasks.economy.score import RGB8, RGBN

    table = read_chip_table(table_path, required=[label_column, *([groups] if groups else [])])
    if model.bands is None:
        first = str(table["image"].iloc[0])
        model.set_params(bands=RGB8 if Path(first).suffix.lower() in IMAGE_SUFFIXES else RGBN)
    targets = read_levels(table, label_column, mapping, table_path)
    images, units = read_chips(list(table["image"]), model.bands, units=UNITS, progress=progress)
    checkpoints = out.with_name(out.name + ".checkpoints")
    model.fit(
        images,
        targets,
        groups=table[groups].astype(str).to_numpy() if groups else None,
        units=units,
        work_dir=checkpoints,
        progress=progress,
        source=str(Path(table_path).resolve()),
        classes=table[label_column].astype(str).str.strip().to_numpy() if mapping else None,
    )
    model.info_ |= {
        "label_column": label_column,
        "mapping": str(mapping.resolve()) if mapping else "",
    }
    v = model.validation_
    counts = {name: int((targets.argmax(1) == k).sum()) for k, name in enumerate(LEVELS)}
    model.tables_ = {"validation.csv": pd.DataFrame([v])}
    lines = []
    if model.selection_ is not None:
        model.tables_["candidates.csv"] = model.selection_.table
        model.info_["method_chosen_by"] = f"auto: 3-class accuracy, {model.validation_name_}"
        lines += model.selection_.lines()
    model.save(out)
    shutil.rmtree(checkpoints, ignore_errors=True)
    trained = (
        f"{model.epochs_run_} epochs"
        if model.method_ == "cnn"
        else "refitted on every tile after validation"
    )
    return [
        *lines,
        f"{model.method_}: trained on {v['n_train']} tiles "
        f"({', '.join(f'{k} {n}' for k, n in counts.items())} in all), {trained}; "
        f"{model.validation_name_}",
        f"validation: accuracy {v['accuracy']:.3f}, Spearman(score, level) {v['spearman']:.3f}",
        f"wrote {out}",
    ]


def score_table(
    model_dir: str | Path, table_path: str | Path, out: Path, *, progress: bool = True
) -> list[str]:
    """Scores of every chip of a table: CSV ``image, score, class``; a GeoPackage beside it when
    the table has ``geometry`` (WKT) and ``crs``."""
    model = ScoreModel.load(model_dir)
    table = read_chip_table(table_path)
    scores = model.predict(read_tiles(model, list(table["image"]), progress))
    result = pd.DataFrame(
        {
            "image": table["image"],
            "score": scores,
            "class": [LEVELS[k] for k in classify(scores, model.thresholds)],
        }
    )
    lines = []
    gpkg = None
    if {"geometry", "crs"} <= set(table.columns):
        import geopandas as gpd
        from shapely import wkt

        gpkg = out.with_suffix(".gpkg")
        frame = gpd.GeoDataFrame(
            result, geometry=[wkt.loads(g) for g in table["geometry"]], crs=table["crs"].iloc[0]
        )
        with atomic_output(gpkg) as tmp:
            frame.to_file(tmp, driver="GPKG", layer="tiles")
        lines.append(f"wrote {gpkg} (scored tiles)")
    with atomic_output(out) as tmp:
        result.to_csv(tmp, index=False)
    share = result["class"].value_counts(normalize=True)
    lines.insert(
        0,
        f"wrote {out}: {len(result)} tiles, "
        + ", ".join(f"{name} {100 * share.get(name, 0):.0f} %" for name in LEVELS),
    )
    return lines


def map_scores(
    model_dir: str | Path,
    scene: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    chip: int = 64,
    png: Path | None = None,
    execution: Execution | None = None,
) -> list[str]:
    """A score map of a scene: one score per ``chip`` x ``chip`` px tile (GeoTIFF bands score,
    level), on the tiled engine; a PNG with the level thresholds in its colour bar label."""
    from humanscape.geo.write import folder_token
    from humanscape.report.quicklook import scalar_quicklook

    model = ScoreModel.load(model_dir)
    with reader.open(scene) as s:
        lines = score_scene(
            model, s, out, tile=chip, execution=execution, model_token=folder_token(model_dir)
        )
    if png is not None:
        scalar_quicklook(
            out,
            png,
            title=f"Hyperlocal economic score ({chip} px tiles)",
            units=f"score (< {model.t1:g} uninhabited, {model.t1:g}-{model.t2:g} rural, "
            f">= {model.t2:g} urban)",
            vmin=model.t_min,
            vmax=model.t_max,
            cmap="magma",
        )
        lines.append(f"wrote {png}")
    return lines


def score_scene(
    model: ScoreModel,
    scene: Scene,
    out: Path,
    *,
    tile: int = 64,
    progress: bool = True,
    execution: Execution | None = None,
    model_token: str = "",
) -> list[str]:
    """A score map of ``scene``: one score per ``tile`` x ``tile`` px block (GeoTIFF: score, level).

    Run on the tiled engine (``execution``: Dask workers, scheduler; default this process); blocks
    with less than half valid pixels are NaN.
    """
    import rasterio

    from humanscape.scale.chips import ChipMap

    missing = [b for b in model.bands if b not in scene.band_names]
    if missing:
        raise HumanscapeError(
            f"the scene has no band {', '.join(missing)} (bands: {', '.join(scene.band_names)})",
            path=scene.name,
            fix="give a scene with the score model's bands",
        )
    if model.units_ != "reflectance":
        raise HumanscapeError(
            "the score model was trained on 8-bit RGB images, a scene holds reflectance",
            path=scene.name,
            fix="train the score model on multispectral chips (economy fit-score --bands B02,B03,B04,B08)",
        )
    job = ChipMap(
        scene,
        ScoreChips(model, model_token),
        chip=tile,
        stride=tile,
        tags={"levels": "0 uninhabited, 1 rural, 2 urban", "tile_px": str(tile)},
    )
    run = execution or Execution(progress=progress)
    run.run(job, out, desc="score", tile=job.default_tile())
    with rasterio.open(out) as src:
        scores, levels = src.read()
    if not np.isfinite(scores).any():
        out.unlink()
        raise NoOverlapError("no tile of the scene has data", path=scene.name)
    share = (
        np.bincount(levels[np.isfinite(levels)].astype(int), minlength=3)
        / np.isfinite(levels).sum()
    )
    grid = job.spec.grid
    return [
        f"wrote {out}: {grid.height} x {grid.width} tiles of {tile} px; "
        + ", ".join(f"{name} {100 * s:.0f} %" for name, s in zip(LEVELS, share, strict=True))
    ]


def cut_tiles(
    scene: str | Path,
    districts: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    district_column: str = "district",
    chip: int = 64,
    stride: int | None = None,
    min_overlap: float = 1.0,
    bands: list[str] | None = None,
) -> list[str]:
    """Tiles of ``chip`` px inside each district polygon, and their tile table (``economy fit``)."""
    from humanscape.data.chips import chip_districts
    from humanscape.geo.vector import read_vector

    frame = read_vector(districts)
    with reader.open(scene) as s:
        table = chip_districts(
            s,
            frame,
            out,
            column=district_column,
            size=chip,
            stride=stride,
            min_overlap=min_overlap,
            bands=bands,
        )
    return [f"wrote {out}: {len(table)} tiles in {table[district_column].nunique()} districts"]


def fit_economy(
    model: EconomyModel, inputs: DistrictInputs, out: Path, *, progress: bool = True
) -> list[str]:
    """Steps 2 and 3 on all districts; saved with the fitted table (``fitted.csv``)."""
    score_model, data, labelled, nightlight = inputs.load(progress=progress)
    assert data.y is not None
    model.fit(
        data.tiles,
        data.y,
        score_model=score_model,
        weights=data.weights,
        labelled=labelled,
        nightlight=nightlight,
        progress=progress,
    )
    table, national = model.district_table(data.tiles)
    table.insert(1, f"observed_{model.indicator}", data.y)
    model.tables_ = {"fitted.csv": table}
    model.info_ = {"national_gini": national, "tile_table": str(inputs.tile_table)}
    model.save(out)
    return [
        f"{len(data.names)} districts, {len(data.images)} tiles; encoders: "
        f"{', '.join(model.encoder_names_) or own_features(model.score_model_)}",
        f"national Gini: scores {national['scores']:.3f}, district factors "
        f"{national['district_factors']:.3f}, adjusted {national['adjusted_scores']:.3f}",
        f"wrote {out}",
    ]


def own_features(score_model: ScoreModel) -> str:
    """What the district regressor reads when there are no step-2 encoders."""
    if score_model.has_net:
        return "none (score network features)"
    what = {"forest": "chip statistics", "mosaiks": "random convolutional features"}
    return (
        f"none (the score model is a {score_model.method_} classifier: step-2 encoders need a "
        f"network; its {what.get(score_model.method_, 'features')})"
    )


def predict_economy(
    model_dir: str | Path, tile_table: str | Path, out: Path, *, district_column: str = "district"
) -> list[str]:
    """Indicator, district factor and Gini per district (CSV) and the national Gini (JSON beside)."""
    model = EconomyModel.load(model_dir)
    sm = model.score_model_
    data = load_district_data(tile_table, district_column, list(sm.bands), sm.units_)
    table, national = model.district_table(data.tiles)
    side = national_path(out)
    with atomic_output(side) as tmp:
        tmp.write_text(json.dumps(national, indent=2))
    with atomic_output(out) as tmp:
        table.to_csv(tmp, index=False)
    return [
        f"wrote {out}: {len(table)} districts, total {model.indicator} "
        f"{table[model.indicator].sum():,.0f}",
        f"national Gini: scores {national['scores']:.3f}, district factors "
        f"{national['district_factors']:.3f}, adjusted scores {national['adjusted_scores']:.3f} "
        f"(saved to {side.name})",
    ]


def national_path(out: Path) -> Path:
    """Where ``economy predict`` writes the national Gini beside its district table."""
    return out.with_name(out.stem + "_national.json")


def evaluate_economy(
    model: EconomyModel,
    inputs: DistrictInputs,
    out: Path,
    *,
    n_splits: int = 100,
    share_splits: int = 20,
    region_column: str | None = None,
    title: str = "",
    progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> list[str]:
    """Item 5 of the paper's evaluation into folder ``out`` from the files of ``inputs``
    (:func:`evaluate_districts` does the work)."""
    score_model, data, labelled, nightlight = inputs.load(progress=progress)
    return evaluate_districts(
        model,
        score_model,
        data,
        out,
        labelled=labelled,
        nightlight=nightlight,
        baseline_images=inputs.baseline_images(score_model),
        n_splits=n_splits,
        share_splits=share_splits,
        region_column=region_column,
        title=title,
        progress=progress,
        report=report,
    )


def evaluate_districts(
    model: EconomyModel,
    score_model: ScoreModel,
    data: DistrictData,
    out: Path,
    *,
    labelled: tuple[np.ndarray, np.ndarray] | None = None,
    nightlight: np.ndarray | None = None,
    baseline_images: np.ndarray | None = None,
    n_splits: int = 100,
    share_splits: int = 20,
    region_column: str | None = None,
    title: str = "",
    progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> list[str]:
    """Park et al. (2022) evaluation of districts in memory, into folder ``out``:
    ``table1.csv`` (R2, the coefficient of determination, over random 80/20 splits),
    ``figure6.csv`` / ``figure6.png`` (training share), ``transfer.csv`` (Spearman between
    regions, with ``region_column`` in the district table), ``inequality.csv``, ``districts.csv``.

    The shipped SimCLR baseline runs when ``baseline_images`` (the tiles in its 13 Sentinel-2
    bands) are given."""
    lines = (
        []
        if baseline_images is not None
        else ["tiles lack the 13 Sentinel-2 bands: the SimCLR baseline is left out"]
    )
    assert data.y is not None
    model.fit_encoders(
        score_model, data.images, labelled=labelled, nightlight=nightlight, progress=progress
    )
    configs = evaluation_configs(model, data, baseline_images=baseline_images)
    splits = random_splits(len(data.names), n_splits=n_splits, seed=model.seed)
    table1 = split_r2(configs, data.y, splits, weights=data.weights, progress=report)  # type: ignore[arg-type]
    curve = share_curve(configs["full"], data.y, n_splits=share_splits, weights=data.weights)  # type: ignore[arg-type]
    files: dict[str, pd.DataFrame] = {"table1.csv": table1, "figure6.csv": curve}
    if region_column:
        assert data.districts is not None
        if region_column not in data.districts.columns:
            raise HumanscapeError(
                f"district table has no column '{region_column}'",
                fix="give --region-column a column of the district table",
            )
        regions = data.districts[region_column].astype(str).to_numpy()
        stats, factory = configs["full"]
        rows = []
        for a in sorted(set(regions)):
            for b in sorted(set(regions)):
                ia, ib = np.flatnonzero(regions == a), np.flatnonzero(regions == b)
                if len(ia) < 3 or len(ib) < 3:
                    continue
                rho = transfer_spearman(
                    (stats.subset(ia), factory),
                    data.y[ia],
                    stats.subset(ib),
                    data.y[ib],  # type: ignore[arg-type]
                )
                rows.append({"source": a, "target": b, "spearman": rho})
        files["transfer.csv"] = pd.DataFrame(rows)
    regressor = regressor_factory(model)(True, model.seed).fit(
        configs["full"][0], data.y, data.weights
    )  # type: ignore[arg-type]
    model.regressor_, model.n_districts_ = regressor, len(data.names)
    table, national = model.district_table(data.tiles)
    files["inequality.csv"] = pd.DataFrame([{"level": k, "gini": v} for k, v in national.items()])
    with atomic_folder(out, written_by="economy evaluate") as tmp:
        for name, frame in files.items():
            frame.to_csv(tmp / name, index=False)
        table.to_csv(tmp / "districts.csv", index=False)
        share_plot(
            curve,
            tmp / "figure6.png",
            title=title or f"{model.indicator}: {len(data.names)} districts",
            indicator=model.indicator,
        )
    lines += [
        table_text(table1),
        f"wrote {out}",
    ]
    return lines
