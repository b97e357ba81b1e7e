"""The economy commands as functions: fit-score, score (table or scene), tiles, fit, predict, evaluate.

Each checks its inputs first (one error naming the file and the fix), writes its outputs atomically
and returns the lines the command prints.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape._atomic import atomic_folder, atomic_output
from humanscape.data.chiptable import read_chip_table, read_chips, read_table
from humanscape.errors import HumanscapeError, NoOverlapError
from humanscape.geo.grid import GridSpec
from humanscape.geo.scene import Scene
from humanscape.scale import Execution
from humanscape.tasks.economy.district import DistrictRegressor, DistrictStats, district_stats
from humanscape.tasks.economy.evaluate import (
    random_splits,
    share_curve,
    share_plot,
    split_r2,
    transfer_spearman,
)
from humanscape.tasks.economy.model import EconomyModel
from humanscape.tasks.economy.ordinal import LEVELS, classify, level_targets, read_mapping
from humanscape.tasks.economy.score import ScoreModel, pooled_features

log = logging.getLogger(__name__)

#: Chip units a score model may be trained on.
UNITS = ("reflectance", "rgb8")


# --- step 1 --------------------------------------------------------------------------------------


def read_levels(
    table: pd.DataFrame, column: str, mapping: Path | None, table_path: Path
) -> np.ndarray:
    """Level probabilities ``(n, 3)`` of a chip table's ``column`` (level names or mapped classes)."""
    return level_targets(
        table[column],
        mapping=read_mapping(mapping) if mapping is not None else None,
        path=table_path,
        column=column,
        mapping_path=mapping,
    )


def fit_score(
    model: ScoreModel,
    table_path: Path,
    label_column: str,
    out: Path,
    *,
    mapping: Path | None = None,
    groups: str | None = None,
    progress: bool = True,
) -> list[str]:
    """Fit the score model on a labelled chip table and save it (with ``validation.csv``).

    Checkpoints go to ``<out>.checkpoints/`` every epoch (an interrupted fit started again with the
    same ``out`` resumes) and are removed once the model is saved.
    """
    table = read_chip_table(table_path, required=[label_column, *([groups] if groups else [])])
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
    )
    model.label_column_, model.mapping_ = label_column, str(mapping.resolve()) if mapping else ""
    v = model.validation_
    counts = {name: int((targets.argmax(1) == k).sum()) for k, name in enumerate(LEVELS)}
    files = {"validation.csv": pd.DataFrame([v]).to_csv(index=False)}
    model.save(out, extra_files=files)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return [
        f"trained on {v['n_train']} tiles ({', '.join(f'{k} {n}' for k, n in counts.items())} in "
        f"all), {model.epochs_run_} epochs; {model.validation_name_}",
        f"validation: accuracy {v['accuracy']:.3f}, Spearman(score, level) {v['spearman']:.3f}",
        f"wrote {out}",
    ]


def _read_tiles(model: ScoreModel, paths: list[str], progress: bool) -> np.ndarray:
    images, _ = read_chips(paths, model.bands, units=(model.units_,), progress=progress)
    return images


def score_table(
    model: ScoreModel, table_path: Path, out: Path, *, progress: bool = True
) -> list[str]:
    """Scores of every chip of a table: CSV ``image, score, class``; a GeoPackage beside it when
    the table has ``geometry`` (WKT) and ``crs``."""
    table = read_chip_table(table_path)
    scores = model.predict(_read_tiles(model, list(table["image"]), progress))
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


class ScoreChips:
    """The hyperlocal score model as a chip predictor: score and level (eq. 4) per tile."""

    outputs = ("score", "level")
    units = ("score", "level")

    def __init__(self, model: ScoreModel, token: str = "") -> None:
        self.model = model
        self.bands = list(model.bands)
        self._token = token

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        from humanscape.scale.chips import set_worker_threads

        set_worker_threads()
        scores = self.model.predict(chips)
        return np.stack([scores, classify(scores, self.model.thresholds)], axis=1)

    def token(self) -> str:
        if not self._token:  # a model not read from a folder: hash the fitted model itself
            import joblib

            self._token = joblib.hash(self.model)
        return f"score {self._token} {self.model.thresholds}"


def score_scene(
    model: ScoreModel,
    scene: Scene,
    out: Path,
    *,
    tile: int = 64,
    progress: bool = True,
    execution: Execution | None = None,
    model_token: str = "",
) -> tuple[list[str], np.ndarray, GridSpec]:
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
    return (
        [
            f"wrote {out}: {grid.height} x {grid.width} tiles of {tile} px; "
            + ", ".join(f"{name} {100 * s:.0f} %" for name, s in zip(LEVELS, share, strict=True))
        ],
        scores,
        grid,
    )


# --- districts -----------------------------------------------------------------------------------


@dataclass
class DistrictData:
    """Tiles of districts: images, each tile's district index into ``names``, the indicator."""

    images: np.ndarray
    district: np.ndarray
    names: list[str]
    y: np.ndarray | None
    weights: np.ndarray | None
    table: pd.DataFrame
    districts: pd.DataFrame | None


def load_district_data(
    tile_table: Path,
    district_column: str,
    bands: list[str],
    units: str,
    *,
    districts_path: Path | None = None,
    indicator: str | None = None,
    weight_column: str | None = None,
    progress: bool = True,
) -> DistrictData:
    """Read tiles and (with ``districts_path``) the district table; every mismatch refused by name."""
    table = read_chip_table(tile_table, required=[district_column])
    tile_district = table[district_column].astype(str).str.strip().to_numpy()
    districts = None
    y = weights = None
    if districts_path is not None:
        districts = read_table(districts_path, what="district table")
        needed = [district_column, *(c for c in (indicator, weight_column) if c)]
        for column in needed:
            if column not in districts.columns:
                raise HumanscapeError(
                    f"district table has no column '{column}' (columns: "
                    f"{', '.join(map(str, districts.columns))})",
                    path=districts_path,
                    fix=f"add a '{column}' column or choose another column",
                )
        districts = districts.assign(
            **{district_column: districts[district_column].astype(str).str.strip()}
        )
        if districts[district_column].duplicated().any():
            dup = districts[district_column][districts[district_column].duplicated()].iloc[0]
            raise HumanscapeError(
                f"district '{dup}' appears twice", path=districts_path, fix="one row per district"
            )
        names = list(districts[district_column])
        unknown = sorted(set(tile_district) - set(names))
        if unknown:
            raise HumanscapeError(
                f"{int(np.isin(tile_district, unknown).sum())} tile(s) name districts missing from "
                f"{Path(districts_path).name}, first '{unknown[0]}'",
                path=tile_table,
                fix="add those districts to the district table, or drop their tiles",
            )
        empty = [n for n in names if n not in set(tile_district)]
        if empty:
            raise HumanscapeError(
                f"{len(empty)} district(s) have no tile in {Path(tile_table).name}, first '{empty[0]}'",
                path=districts_path,
                fix="cut tiles for every district (economy tiles), or drop those districts",
            )
        if indicator:
            y = pd.to_numeric(districts[indicator], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(y) | (y <= 0)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise HumanscapeError(
                    f"column '{indicator}' has {int(bad.sum())} missing, zero or negative value(s), "
                    f"first district '{names[row]}': {districts[indicator].iloc[row]}; "
                    "eq. 14 takes ln(y / sum of scores)",
                    path=districts_path,
                    fix="drop those districts, or use an indicator that is positive everywhere",
                )
        if weight_column:
            weights = pd.to_numeric(districts[weight_column], errors="coerce").to_numpy(np.float64)
            if not (np.isfinite(weights) & (weights > 0)).all():
                raise HumanscapeError(
                    f"weight column '{weight_column}' has missing or non-positive values",
                    path=districts_path,
                    fix="give a positive weight (e.g. population) for every district",
                )
    else:
        names = sorted(set(tile_district))
    index = {n: i for i, n in enumerate(names)}
    images, _ = read_chips(list(table["image"]), bands, units=(units,), progress=progress)
    return DistrictData(
        images,
        np.array([index[d] for d in tile_district], np.int64),
        names,
        y,
        weights,
        table,
        districts,
    )


def labelled_tiles(
    score_model: ScoreModel,
    table_path: Path | None,
    label_column: str | None,
    mapping: Path | None,
    *,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The step-1 tiles for the encoders' class loss: ``table_path``, else the score model's own."""
    if table_path is None:
        source = getattr(score_model, "source_", "")
        if not source or not Path(source).exists():
            raise HumanscapeError(
                f"the score model's training table {source or '(not recorded)'} is not here",
                fix="give the labelled chips with --labelled CHIPTABLE --label-column COLUMN",
            )
        table_path = Path(source)
        label_column = label_column or getattr(score_model, "label_column_", None)
        mapping = mapping or (Path(score_model.mapping_) if score_model.mapping_ else None)
    if not label_column:
        raise HumanscapeError("no label column for the labelled chips", fix="give --label-column")
    table = read_chip_table(table_path, required=[label_column])
    targets = read_levels(table, label_column, mapping, table_path)
    return _read_tiles(score_model, list(table["image"]), progress), targets


def nightlight_values(table: pd.DataFrame, raster: Path) -> np.ndarray:
    """Mean of ``raster`` over each tile's footprint (tiles must be georeferenced GeoTIFFs)."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    out = np.full(len(table), np.nan)
    try:
        src = rasterio.open(raster)
    except rasterio.errors.RasterioError as exc:
        raise HumanscapeError(f"not a readable raster ({exc})", path=raster) from None
    with src:
        for i, path in enumerate(table["image"]):
            with rasterio.open(path) as tile:
                if tile.crs is None:
                    raise HumanscapeError(
                        "tile has no georeference: no nightlight value can be read for it",
                        path=path,
                        fix="cut tiles with 'economy tiles' (georeferenced GeoTIFFs)",
                    )
                bounds = transform_bounds(tile.crs, src.crs, *tile.bounds)
            window = from_bounds(*bounds, transform=src.transform)
            data = src.read(1, window=window, boundless=True, masked=True, out_shape=(4, 4))
            out[i] = float(data.mean()) if data.count() else np.nan
    if np.isnan(out).all():
        raise NoOverlapError(
            "the nightlight raster does not overlap the tiles", path=raster, fix="check its extent"
        )
    return np.nan_to_num(out, nan=float(np.nanmean(out)))


def fit_economy(
    model: EconomyModel,
    score_model: ScoreModel,
    data: DistrictData,
    out: Path,
    *,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    nightlight: np.ndarray | None = None,
    progress: bool = True,
) -> list[str]:
    """Steps 2 and 3 on all districts; saved with the fitted table (``fitted.csv``)."""
    assert data.y is not None
    model.fit(
        score_model,
        data.images,
        data.district,
        data.names,
        data.y,
        weights=data.weights,
        labelled=labelled,
        nightlight=nightlight,
        progress=progress,
    )
    table, national, _ = model.predict(data.images, data.district, data.names)
    table.insert(1, f"observed_{model.indicator}", data.y)
    model.save(
        out,
        extra_files={
            "fitted.csv": table.to_csv(index=False),
            "national_gini.json": json.dumps(national, indent=2),
        },
    )
    return [
        f"{len(data.names)} districts, {len(data.images)} tiles; encoders: "
        f"{', '.join(model.encoder_names_) or 'none (score model features)'}",
        f"national Gini: scores {national['scores']:.3f}, district factors "
        f"{national['district_factors']:.3f}, adjusted {national['adjusted_scores']:.3f}",
        f"wrote {out}",
    ]


def predict_economy(
    model: EconomyModel, data: DistrictData, out: Path
) -> tuple[list[str], pd.DataFrame, dict[str, float]]:
    """Indicator, district factor and Gini per district (CSV) and the national Gini (JSON beside)."""
    table, national, _ = model.predict(data.images, data.district, data.names)
    side = out.with_name(out.stem + "_national.json")
    with atomic_output(side) as tmp:
        tmp.write_text(json.dumps(national, indent=2))
    with atomic_output(out) as tmp:
        table.to_csv(tmp, index=False)
    return (
        [
            f"wrote {out}: {len(table)} districts, total {model.indicator} "
            f"{table[model.indicator].sum():,.0f}",
            f"national Gini: scores {national['scores']:.3f}, district factors "
            f"{national['district_factors']:.3f}, adjusted scores {national['adjusted_scores']:.3f} "
            f"(saved to {side.name})",
        ],
        table,
        national,
    )


# --- evaluation ----------------------------------------------------------------------------------


def _factory(model: EconomyModel, **overrides: object):  # type: ignore[no-untyped-def]
    def make(augment: bool, seed: int) -> DistrictRegressor:
        kwargs: dict = {
            "n_estimators": model.n_estimators,
            "augment": augment and model.augment,
            "max_pairs": model.max_pairs,
            "kind": model.kind,
            "seed": seed,
            "n_jobs": -1,
        } | overrides
        return DistrictRegressor(**kwargs)

    return make


def _pca_stats(
    features: np.ndarray, k: int, data: DistrictData, positive: np.ndarray
) -> DistrictStats:
    from sklearn.decomposition import PCA

    comps = PCA(min(k, features.shape[1]), random_state=0).fit_transform(features)
    return district_stats(data.district, comps, positive, names=data.names)


def evaluation_configs(
    model: EconomyModel, data: DistrictData, *, baseline_images: np.ndarray | None = None
) -> dict[str, tuple[DistrictStats, object]]:
    """The full model, its three ablations and three baselines (Table 1), on one fitted model.

    - ``full``: every encoder, eq. 13 with the score sum;
    - ``without_ensemble``: the first encoder with clusters (else the first) alone;
    - ``without_fine_tuning``: the score network's own features, no step-2 encoder;
    - ``without_hyperlocal``: full features, ``y = exp(h([mu, sigma]))`` (no score sum);
    - ``read_like``: score-network features to 10 components, [mu, sigma], forest on ln y
      (READ, Han et al. 2020a: weakly supervised embedding statistics + regression);
    - ``simclr_mean``: the shipped SimCLR encoder of the tiles' kind, mean embedding (10
      components), forest on ln y (needs its bands in ``baseline_images``);
    - ``mosaiks_ridge``: MOSAIKS random features (512 filters), district mean, ridge on ln y.
    """
    values, stats = model.stats(data.images, data.district, data.names)
    per = stats.sums.shape[1] // max(len(model.pcas_), 1)
    nets = model.encoder_names_
    single = next((i for i, n in enumerate(nets) if not n.endswith("_nc0")), 0)
    own = pooled_features(model.score_model_.net_, model.score_model_.norm_, data.images)
    configs: dict[str, tuple[DistrictStats, object]] = {
        "full": (stats, _factory(model)),
        "without_ensemble": (
            stats.select(list(range(single * per, (single + 1) * per))),
            _factory(model),
        ),
        "without_fine_tuning": (
            _pca_stats(own, model.components, data, values.positive),
            _factory(model),
        ),
        "without_hyperlocal": (stats, _factory(model, hyperlocal=False)),
        "read_like": (
            _pca_stats(own, 10, data, values.positive),
            _factory(model, hyperlocal=False),
        ),
    }
    simclr = _simclr_features(model, baseline_images)
    if simclr is not None:
        configs["simclr_mean"] = (
            _pca_stats(simclr, 10, data, values.positive),
            _factory(model, hyperlocal=False, std=False),
        )
    from humanscape.models.random_features import RandomConvFeatures

    mosaiks = RandomConvFeatures(512, seed=model.seed).fit_transform(np.nan_to_num(data.images))
    configs["mosaiks_ridge"] = (
        district_stats(data.district, mosaiks, values.positive, names=data.names),
        _factory(model, hyperlocal=False, std=False, head="ridge"),
    )
    return configs


def _simclr_features(model: EconomyModel, images: np.ndarray | None) -> np.ndarray | None:
    from humanscape.models.embed import embed_array
    from humanscape.models.registry import list_weights, load_encoder

    if images is None:
        return None
    units = model.score_model_.units_
    for entry in list_weights():
        if entry.units == units and len(entry.bands) == images.shape[1]:
            return embed_array(load_encoder(entry.name), images).astype(np.float64)
    return None


def evaluate_economy(
    model: EconomyModel,
    score_model: ScoreModel,
    data: DistrictData,
    out: Path,
    *,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    nightlight: np.ndarray | None = None,
    baseline_images: np.ndarray | None = None,
    n_splits: int = 100,
    share_splits: int = 20,
    region_column: str | None = None,
    title: str = "",
    progress: bool = True,
    report: Callable[[str], None] = log.info,
) -> list[str]:
    """Item 5 of the paper's evaluation into folder ``out``: ``table1.csv`` (R2 over random 80/20
    splits), ``figure6.csv`` / ``figure6.png`` (training share), ``transfer.csv`` (Spearman between
    regions, with ``region_column`` in the district table), ``inequality.csv``."""
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
    regressor = _factory(model)(True, model.seed).fit(configs["full"][0], data.y, data.weights)  # type: ignore[arg-type]
    model.regressor_, model.n_districts_ = regressor, len(data.names)
    table, national, _ = model.predict(data.images, data.district, data.names)
    files["inequality.csv"] = pd.DataFrame([{"level": k, "gini": v} for k, v in national.items()])
    with atomic_folder(out, marker="table1.csv") as tmp:
        for name, frame in files.items():
            frame.to_csv(tmp / name, index=False)
        table.to_csv(tmp / "districts.csv", index=False)
        share_plot(
            curve,
            tmp / "figure6.png",
            title=title or f"{model.indicator}: {len(data.names)} districts",
            indicator=model.indicator,
        )
    return [f"wrote {out}"]
