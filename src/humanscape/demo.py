"""``humanscape demo``: the chain on the shipped real data, end to end, in a few minutes on 2 cores.

Every step calls the same workflow functions as the commands (``humanscape.tasks.<task>.workflow``)
on the shipped samples; what the demo adds is the comparison of its maps with the real census.
Outputs go under one folder (marked as humanscape's, so that a second run may replace them); the
function returns them by label.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from humanscape._atomic import FOLDER_MARKER, atomic_output, check_folder_replaceable
from humanscape.data import samples
from humanscape.geo.inputs import SceneReader

log = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)

BERLIN = SceneReader(sensor="sentinel2_l1c")


@dataclass(frozen=True)
class Budget:
    """How much each step trains. The default is the demo; :data:`QUICK` runs the same steps and
    workflows with tiny budgets, to check the chain in about a minute (its numbers mean nothing)."""

    embedded_chips: int | None = None  # None: every chip
    settlement_texture: bool = True
    settlement_methods: tuple[str, ...] = ("hgb", "rf")
    settlement_trees: int = 100
    settlement_negatives: int = 20_000
    settlement_test_pixels: int = 100_000
    settlement_folds: int = 4
    population_epochs: int = 20
    score_epochs: int = 15
    score_tta: bool = True
    score_filters: int = 1024
    economy_clusters: tuple[int, ...] = (0, 30)
    migration_epochs: int = 8
    migration_splits: int = 3
    migration_eval_epochs: int | None = None  # None: the model's default


QUICK = Budget(
    embedded_chips=16,
    settlement_texture=False,
    settlement_methods=("hgb",),
    settlement_trees=20,
    settlement_negatives=4_000,
    settlement_test_pixels=20_000,
    settlement_folds=2,
    population_epochs=2,
    score_epochs=2,
    migration_epochs=2,
    migration_splits=2,
    migration_eval_epochs=5,
    economy_clusters=(0,),
    score_tta=False,
    score_filters=128,
)


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False)


def run_demo(out: str | Path, *, budget: Budget = Budget()) -> dict[str, Path]:
    """Run every demo step into ``out``; returns ``{label: path}``."""
    out = Path(out)
    check_folder_replaceable(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / FOLDER_MARKER).write_text(json.dumps({"written_by": "humanscape demo"}))
    outputs: dict[str, Path] = {}
    start = time.perf_counter()
    steps = (
        ("geodata: Sentinel-2 L1C scene west of Berlin, 2017-02-16 (real)", _geodata, ""),
        ("geodata: Landsat 5/7 series over Colorado, Fmask cloud mask (real)", _landsat, ""),
        ("settlements: residential land west of Berlin (real S2 + OSM labels)", _settlements, "settlements"),
        ("population: people per 1 km cell west of Berlin (vs the Eurostat census)", _population, "population"),
        ("population: the census summed into blocks, spread back by the scene (dasymetric)", _census, "population"),
        ("economy: hyperlocal scores and district population, Berlin census cells", _economy, "economy"),
        ("migration: social signature on a synthetic world (the real table may not ship)", _migration, "migration"),
        ("flows: commuting between census tracts, fitted on two US counties, a third predicted", _flows, "flows"),
    )  # fmt: skip
    seconds: dict[str, float] = {}
    for title, step, folder in steps:
        console.rule(title)
        (out / folder).mkdir(exist_ok=True)
        began = time.perf_counter()
        outputs.update(step(out / folder, budget))
        seconds[step.__name__.lstrip("_")] = round(time.perf_counter() - began, 1)
        console.print(f"[{time.perf_counter() - began:.0f} s]", style="dim", highlight=False)
    summary = {
        "outputs": {k: str(v) for k, v in outputs.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_by_step": seconds,
        "quick": budget == QUICK,
    }
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    outputs["summary (JSON)"] = out / "summary.json"
    from humanscape.report.html import write_report

    write_report(out, out / "report.html")  # every model card, map, figure and table on one page
    outputs["report of the whole run (HTML, opens offline)"] = out / "report.html"
    return outputs


def _geodata(out: Path, budget: Budget) -> dict[str, Path]:
    """Quicklook, the ten indices, 1 km chips and their embeddings by the shipped encoder."""
    from humanscape.report.quicklook import rgb_quicklook
    from humanscape.tasks.geodata.workflow import write_chips, write_embeddings, write_indices

    scene = samples.sample_path("berlin", "IMG_DATA")
    with BERLIN.open(scene) as s:
        png = rgb_quicklook(s, out / "berlin_rgb.png")
    _print(write_indices(scene, out / "berlin_indices.tif", BERLIN))
    _print(write_chips(scene, out / "berlin_chips", BERLIN, cell=1000))
    table = out / "berlin_chips" / "chips.csv"
    if budget.embedded_chips is not None:
        import pandas as pd

        subset = out / "berlin_chips" / "chips_embedded.csv"
        pd.read_csv(table).head(budget.embedded_chips).to_csv(subset, index=False)
        table = subset
    _print(
        write_embeddings(
            table,
            "simclr_resnet18half_eurosat_ms",
            out / "berlin_chip_embeddings.parquet",
        )
    )
    return {
        "RGB quicklook (PNG)": png,
        "spectral indices (GeoTIFF, 10 bands)": out / "berlin_indices.tif",
        "chip table (1 km chips)": out / "berlin_chips" / "chips.csv",
        "chip embeddings (Parquet)": out / "berlin_chip_embeddings.parquet",
    }


def _landsat(out: Path, budget: Budget) -> dict[str, Path]:
    from humanscape.geo.composite import CloudMask
    from humanscape.tasks.geodata.workflow import write_composite

    root = samples.sample_path("landsat_colorado")
    scenes = sorted(str(p) for p in root.iterdir() if p.is_dir())
    path = out / "landsat_median_2010-2011.tif"
    _print(
        write_composite(
            scenes, path, SceneReader(), cloud_mask=CloudMask("fmask"), period="2010-2011"
        )
    )
    return {"median composite 2010-2011 (GeoTIFF)": path}


def _settlements(out: Path, budget: Budget) -> dict[str, Path]:
    """Single-date Berlin scene, OSM residential polygons as positives, the other OSM land use as
    labelled negatives: spatial block CV at the true class balance (gradient boosting, the
    default, against the paper's random forest), the fit, the maps."""
    from humanscape.tasks.settlements.workflow import (
        Labels,
        SpatialCV,
        compute_features,
        evaluate_settlements,
        fit_settlements,
        predict_settlements,
    )

    features = out / "features.tif"
    _print(
        compute_features(
            [samples.sample_path("berlin", "IMG_DATA")],
            features,
            BERLIN,
            texture=budget.settlement_texture,
        )
    )
    labels = Labels(
        samples.sample_path("berlin", "osm_landuse.gpkg"),
        column="fclass",
        positive=["residential"],
        negatives=budget.settlement_negatives,
    )
    _print(
        evaluate_settlements(
            features,
            labels,
            out / "report",
            methods=list(budget.settlement_methods),
            n_estimators=budget.settlement_trees,
            n_jobs=-1,
            max_test_pixels=budget.settlement_test_pixels,
            cv=SpatialCV(folds=budget.settlement_folds),
        )
    )
    _print(
        fit_settlements(
            features,
            labels,
            out / "model",
            method="rf",
            n_estimators=budget.settlement_trees,
            n_jobs=-1,
            cv=SpatialCV(folds=budget.settlement_folds),
        )
    )
    prob = out / "residential_probability.tif"
    _print(
        predict_settlements(
            [features],
            out / "model",
            prob,
            BERLIN,
            grid_out=out / "ranked_500m_grid.gpkg",
            polygons_out=out / "candidates.gpkg",
            threshold=0.8,
            min_area=5000,
        )
    )
    from humanscape.report.quicklook import scalar_quicklook

    png = scalar_quicklook(
        prob,
        out / "residential_probability.png",
        title="Residential probability, west of Berlin (Sentinel-2 L1C, 2017-02-16)",
        units="p(residential), 0-1",
    )
    return {
        "residential probability (GeoTIFF, 10 m)": prob,
        "residential probability (PNG)": png,
        "ranked 500 m grid (GeoPackage)": out / "ranked_500m_grid.gpkg",
        "candidate polygons (GeoPackage)": out / "candidates.gpkg",
        "settlement model (folder)": out / "model",
        "settlement CV report (folder)": out / "report",
    }


def _population(out: Path, budget: Budget) -> dict[str, Path]:
    """The default population model fitted on the shipped real EuroSAT chips with census labels,
    mapped over the Berlin scene on the grid of its real 1 km Eurostat census raster, and compared
    with that census."""
    import numpy as np

    from humanscape.evaluate.regression import r2
    from humanscape.report.quicklook import side_by_side
    from humanscape.tasks.population.mapping import read_map
    from humanscape.tasks.population.model import PopulationModel
    from humanscape.tasks.population.workflow import fit_population, map_population

    # one CNN of at most 20 epochs: the default (3 CNNs, 30 epochs) takes 3-4x longer for +0.01 R2
    model = PopulationModel(cnn_seeds=1, epochs=budget.population_epochs)
    chips = samples.sample_path("eurosat_ms", "population_1km.csv")
    _print(fit_population(model, chips, "pop_1km", out / "model"))
    census_path = samples.sample_path("berlin", "population_1km_eurostat.tif")
    tif = out / "berlin_population.tif"
    _print(
        map_population(
            out / "model", samples.sample_path("berlin", "IMG_DATA"), tif, BERLIN, grid=census_path
        )
    )
    result = read_map(tif)
    census = samples.berlin_population()
    truth, inside = census.data[0], census.data[4] >= 0.99
    inside &= np.isfinite(result.population)
    score = r2(np.log1p(truth[inside]), np.log1p(result.population[inside]))
    total, estimate = float(truth[inside].sum()), float(result.population[inside].sum())
    console.print(
        f"Berlin scene, {int(inside.sum())} cells inside the scene: r2 log(1+p) {score:.3f}, "
        f"census {total:,.0f} people, estimated {estimate:,.0f} "
        f"({100 * (estimate - total) / total:+.0f} %), harmonised to the training chips: the chip "
        "route does not transfer to this winter scene; the census route (next step) does, see "
        "docs/benchmarks.md"
    )
    png = side_by_side(
        [
            ("estimated (humanscape, Sentinel-2 2017-02-16)", result.population),
            (
                "census (Eurostat / GISCO 1 km grid, 2021)",
                np.where(census.data[4] > 0, truth, np.nan),
            ),
        ],
        result.grid,
        out / "berlin_population.png",
        title="Population per 1 km cell, west of Berlin",
        units="people per cell",
    )
    return {
        "population map (GeoTIFF, 1 km)": tif,
        "population vs census (PNG)": png,
        "population model (folder)": out / "model",
    }


def _census(out: Path, budget: Budget) -> dict[str, Path]:
    """Issue 22's route: the real 1 km census summed into 4 km and 2 km blocks (the units a user
    would have), spread back over the scene's cells from the imagery alone and, for the 4 km blocks,
    with the shipped OSM residential land use; each scored on the 1 km census against areal
    weighting from the same blocks."""
    from humanscape.tasks.population.dasymetric import disaggregate_scene, evaluate_map_lines

    census = samples.sample_path("berlin", "population_1km_eurostat.tif")
    scene = samples.sample_path("berlin", "IMG_DATA")
    landuse = samples.sample_path("berlin", "osm_landuse.gpkg")
    outputs: dict[str, Path] = {}
    for km, cell, osm in ((4, 1000.0, False), (4, 100.0, True), (2, 100.0, False)):
        units = out / f"census_blocks_{km}km.gpkg"
        if not units.exists():
            samples.berlin_census_blocks(km).to_file(units)
        name = f"berlin_population_{int(cell)}m_from_{km}km_blocks{'_osm' if osm else ''}"
        tif = out / f"{name}.tif"
        covariates = "imagery + OSM residential" if osm else "imagery"
        console.print(f"{km} km census blocks -> {cell:g} m cells, covariates: {covariates}")
        _print(
            disaggregate_scene(
                scene, units, "population", tif, BERLIN, cell=cell, id_column="block",
                landuse=landuse if osm else None, built=("residential",),
                save_model=out / "disaggregation_model" if (km, osm) == (2, False) else None,
                progress=False,
            )
        )  # fmt: skip
        png = tif.with_suffix(".png")
        console.print(f"scored on the 105 census cells of 1 km ({km} km blocks -> {cell:g} m):")
        _print(
            evaluate_map_lines(
                tif, census, units_path=units, count_column="population", min_fraction=0.99,
                png=png,
            )
        )  # fmt: skip
        label = f"population from {km} km census blocks{' + OSM' if osm else ''}"
        outputs[f"{label} (GeoTIFF, {cell:g} m)"] = tif
        outputs[f"{label} vs census (PNG)"] = png
    outputs["disaggregation model from 2 km blocks (folder)"] = out / "disaggregation_model"
    return outputs


def _economy(out: Path, budget: Budget) -> dict[str, Path]:
    """Park et al. (2022) on real data: a score model trained on the shipped EuroSAT MS chips
    (classes mapped to uninhabited / rural / urban), its score map of the Berlin scene, and the
    district model on the real census cells of the scene (cells with people as districts, tiles of
    64 px inside each), fitted on 80 % of the cells and tested on the other 20 %."""
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr

    from humanscape.evaluate.regression import r2
    from humanscape.tasks.economy.data import DistrictInputs
    from humanscape.tasks.economy.model import EconomyModel
    from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS
    from humanscape.tasks.economy.score import ScoreModel
    from humanscape.tasks.economy.workflow import (
        cut_tiles,
        fit_economy,
        fit_score,
        map_scores,
        predict_economy,
    )

    levels = out / "levels.csv"
    pd.DataFrame({"class": list(EUROSAT_LEVELS), "level": list(EUROSAT_LEVELS.values())}).to_csv(
        levels, index=False
    )
    chips = samples.sample_path("eurosat_ms", "population_1km.csv")
    # ResNet-18 at half width for the demo's time; the CLI default is the paper's ResNet-18
    score = ScoreModel(
        arch="resnet18_half",
        epochs=budget.score_epochs,
        tta=budget.score_tta,
        mosaiks_filters=budget.score_filters,
    )
    _print(fit_score(score, chips, "class", out / "score_model", mapping=levels))
    scene = samples.sample_path("berlin", "IMG_DATA")
    _print(
        map_scores(
            out / "score_model",
            scene,
            out / "berlin_score.tif",
            BERLIN,
            chip=64,
            png=out / "berlin_score.png",
        )
    )
    cells = samples.berlin_census_cells()
    cells = cells[cells["population"] > 0].reset_index(drop=True)
    cells.to_file(out / "census_cells.gpkg")
    _print(cut_tiles(scene, out / "census_cells.gpkg", out / "tiles", BERLIN, chip=64, stride=36))
    # 80 % of the cells to fit on: their tiles and their census counts
    test = np.random.default_rng(0).permutation(len(cells))[: len(cells) // 5]
    is_test = np.isin(np.arange(len(cells)), test)
    train = cells.loc[~is_test, ["district", "population"]]
    train.to_csv(out / "train_districts.csv", index=False)
    tiles = pd.read_csv(out / "tiles" / "chips.csv")
    tiles[tiles["district"].isin(train["district"])].to_csv(
        out / "tiles" / "train_chips.csv", index=False
    )
    inputs = DistrictInputs(
        out / "tiles" / "train_chips.csv",
        out / "train_districts.csv",
        "population",
        out / "score_model",
        labelled=chips,
        label_column="class",
        mapping=levels,
    )
    _print(
        fit_economy(
            EconomyModel(n_clusters=budget.economy_clusters, encoder_epochs=1),
            inputs,
            out / "model",
        )
    )
    _print(
        predict_economy(out / "model", out / "tiles" / "chips.csv", out / "berlin_districts.csv")
    )
    result = pd.read_csv(out / "berlin_districts.csv").merge(
        cells[["district", "population"]], on="district", suffixes=("", "_census")
    )
    held = result[result["district"].isin(cells.loc[is_test, "district"])]
    console.print(
        f"{len(cells)} census cells with people ({len(tiles)} tiles); {len(held)} held-out cells: "
        f"r2 {r2(held['population_census'], held['population']):.2f}, Spearman "
        f"{spearmanr(held['population_census'], held['population']).statistic:.2f} (about 80 "
        "districts: expect a wide spread between splits, see docs/benchmarks.md)"
    )
    return {
        "economy score map (GeoTIFF, 640 m)": out / "berlin_score.tif",
        "economy score map (PNG)": out / "berlin_score.png",
        "economy districts (CSV)": out / "berlin_districts.csv",
    }


def _migration(out: Path, budget: Budget) -> dict[str, Path]:
    """Runfola et al. (2022) on a synthetic world (the real Mexican table may not be shipped): a
    census table whose built-up share is hidden (the imagery shows it), municipality polygons and
    16 px image tiles; the signature + imagery model fitted (signature PNGs), and the default model
    evaluated over 3 splits with importance, Moran's I and the error plot."""
    from humanscape.data.synthetic import SyntheticWorld
    from humanscape.data.synthetic_census import write_census_inputs
    from humanscape.tasks.migration.model import MigrationModel
    from humanscape.tasks.migration.workflow import Census, evaluate_migration, fit_migration

    world = SyntheticWorld(384, 384, seed=7, n_districts=48)
    paths = write_census_inputs(world, out / "inputs", tile=16, stride=16)
    census = Census(
        paths["census"], "municipality", target="outflow", drop=True, images=paths["tiles"]
    )
    model = MigrationModel(
        "signature+imagery", epochs=budget.migration_epochs, patience=8, max_tiles=8
    )
    epochs = (
        {} if budget.migration_eval_epochs is None else {"epochs": budget.migration_eval_epochs}
    )
    _print(fit_migration(model, census, out / "signature_model", progress=False))
    _print(
        evaluate_migration(
            ["ensemble"],
            lambda name, seed: MigrationModel(name, seed=seed, alpha=0.2, **epochs),
            census,
            out / "report",
            polygons=paths["polygons"],
            n_splits=budget.migration_splits,
        )
    )
    return {
        "migration signature (PNG)": out / "signature_model" / "signature.png",
        "migration signature by epoch (PNG)": out / "signature_model" / "signature_epochs.png",
        "migration importance (PNG)": out / "report" / "importance.png",
        "migration metrics (CSV)": out / "report" / "summary.csv",
    }


def _flows(out: Path, budget: Budget) -> dict[str, Path]:
    """Imagery2Flow's step 2 with the default flow model on real CommutingODGen counties (LODES
    commuting, ACS, OSM POIs): fitted on 26021 and 35013, the unseen county 36093 predicted
    (flows CSV + map) and scored (CPC, CPL, RMSE, Pearson r, CPC by distance band, plots)."""
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import Cities, evaluate_flows, fit_flows, predict_flows

    train = Cities([samples.commuting_od(f) for f in ("26021", "35013")])
    test = Cities([samples.commuting_od("36093")])
    _print(fit_flows(FlowModel(), train, out / "model", progress=False))
    _print(predict_flows(out / "model", test, out / "flows_36093.csv", png=out / "flows_36093.png"))
    _print(evaluate_flows(out / "model", test, out / "report"))
    return {
        "flows predicted for county 36093 (CSV)": out / "flows_36093.csv",
        "flow map of county 36093 (PNG)": out / "flows_36093.png",
        "flow metrics of county 36093 (CSV)": out / "report" / "metrics.csv",
    }
