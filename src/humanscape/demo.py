"""``humanscape demo``: the chain on the shipped real data, end to end, in a few minutes on 2 cores.

Each task adds its step here. Outputs go under one folder; the function returns them by label.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rich.console import Console

from humanscape._atomic import atomic_output
from humanscape.data import samples
from humanscape.data.chips import chip_districts, chip_scene
from humanscape.geo.composite import CloudMask, Period, composite, scenes_in_period
from humanscape.geo.grid import regular_grid
from humanscape.geo.indices import scene_indices
from humanscape.report.quicklook import rgb_quicklook, scalar_quicklook

log = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)


def run_demo(out: str | Path) -> dict[str, Path]:
    """Run every demo step into ``out``; returns ``{label: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    start = time.perf_counter()

    console.rule("geodata: Sentinel-2 L1C scene west of Berlin, 2017-02-16 (real)")
    with samples.berlin_scene() as scene:
        d = scene.describe()
        console.print(
            f"{len(scene.band_names)} bands aligned to {d['resolution_m']} m, "
            f"{scene.width} x {scene.height} px, {d['crs']}"
        )
        outputs["RGB quicklook (PNG)"] = rgb_quicklook(scene, out / "berlin_rgb.png")
        outputs["spectral indices (GeoTIFF, 10 bands)"] = scene_indices(
            scene, out / "berlin_indices.tif"
        )
        table = chip_scene(
            scene, regular_grid(scene.grid, 1000), out / "berlin_chips", progress=False
        )
        outputs[f"chip table ({len(table)} chips of 1 km)"] = out / "berlin_chips" / "chips.csv"

    console.rule("encoders: embed the Berlin chips with the shipped 13-band SimCLR encoder")
    outputs.update(
        _embeddings(out / "berlin_chips" / "chips.csv", out / "berlin_chip_embeddings.parquet")
    )

    console.rule("geodata: Landsat 5/7 series over Colorado, Fmask cloud mask (real)")
    series = samples.landsat_timeseries()
    period = Period.parse("2010-2011")
    in_period = [series[i] for i in scenes_in_period(series, period)]
    outputs[f"median composite {period.name} ({len(in_period)} dates)"] = composite(
        in_period,
        out / f"landsat_median_{period.name}.tif",
        cloud_mask=CloudMask("fmask"),
        progress=False,
        tags={"period": period.name},
    )

    console.rule(
        "settlements: residential probability west of Berlin (real S2 + OSM labels, Tingzon et al.)"
    )
    outputs.update(_settlements(out / "settlements"))

    console.rule(
        "population: people per 1 km cell west of Berlin (model on real chips vs Eurostat census)"
    )
    outputs.update(_population(out / "population"))

    console.rule(
        "economy: hyperlocal scores (EuroSAT levels) and district population, Berlin census cells"
    )
    outputs.update(_economy(out / "economy"))
    outputs.update(_migration(out / "migration"))

    console.rule(
        "flows: commuting between census tracts, fitted on two US counties, predicted for a third"
    )
    outputs.update(_flows(out / "flows"))

    summary = {
        "outputs": {k: str(v) for k, v in outputs.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    outputs["summary (JSON)"] = out / "summary.json"
    return outputs


def _settlements(out: Path) -> dict[str, Path]:
    """Single-date Berlin scene, OSM residential polygons as positives, the other OSM land use as
    labelled negatives, spatial block CV at the true class balance, maps."""
    from humanscape.tasks.settlements.evaluate import cross_validate, make_folds
    from humanscape.tasks.settlements.features import settlement_features
    from humanscape.tasks.settlements.model import SettlementClassifier
    from humanscape.tasks.settlements.predict import (
        candidate_polygons,
        predict_probability,
        ranked_grid,
    )
    from humanscape.tasks.settlements.sampling import LabelSpec, label_rasters, sample_pixels

    out.mkdir(parents=True, exist_ok=True)
    with samples.berlin_scene() as scene:
        features = settlement_features([scene], out / "features.tif", texture=True, progress=False)
    labels = LabelSpec(samples.berlin_landuse(), "fclass", ["residential"], "osm_landuse.gpkg")
    rasters = label_rasters(features, labels)
    sample = sample_pixels(str(features), labels, negatives_per_group=20_000, rasters=rasters)
    clf = SettlementClassifier("rf", n_estimators=100, n_jobs=-1)  # the paper's 800: see bench/
    folds = make_folds(rasters)
    table = cross_validate(features, sample, clf, rasters, folds, max_test_pixels=100_000).table()
    pooled = table[table["fold"] == "pooled"].iloc[0]
    console.print(
        f"spatial block CV (2 km blocks, 4 folds, 250 m buffer), random forest, at the true class "
        f"balance ({100 * pooled['prevalence']:.1f} % residential): PR-AUC "
        f"{pooled['pr_auc_pixel']:.3f} (pixel), precision at top 10 % "
        f"{pooled['precision_top10_pixel']:.3f}"
    )
    clf.fit(sample, sample["label"]).save(out / "model")
    prob = predict_probability(clf, features, out / "residential_probability.tif", progress=False)
    png = scalar_quicklook(
        prob,
        out / "residential_probability.png",
        title="Residential probability, west of Berlin (Sentinel-2 L1C, 2017-02-16)",
        units="p(residential), 0-1",
    )
    grid = ranked_grid(prob, out / "ranked_500m_grid.gpkg")
    polys = candidate_polygons(prob, out / "candidates.gpkg", threshold=0.8, min_area=5000)
    return {
        "residential probability (GeoTIFF, 10 m)": prob,
        "residential probability (PNG)": png,
        f"ranked 500 m grid ({len(grid)} cells)": out / "ranked_500m_grid.gpkg",
        f"candidate polygons ({len(polys)})": out / "candidates.gpkg",
        "settlement model (folder)": out / "model",
    }


def _population(out: Path) -> dict[str, Path]:
    """The default population model fitted on the shipped real EuroSAT chips with census labels,
    mapped over the Berlin scene on the grid of its real 1 km Eurostat census raster."""
    import numpy as np

    from humanscape.evaluate.regression import r2
    from humanscape.report.quicklook import side_by_side
    from humanscape.tasks.population.chips import chip_locations, load_chips
    from humanscape.tasks.population.mapping import predict_map, reference_grid, write_map
    from humanscape.tasks.population.model import PopulationModel

    out.mkdir(parents=True, exist_ok=True)
    # one CNN of at most 20 epochs: the default (3 CNNs, 30 epochs) takes 3-4x longer for +0.01 R2
    model = PopulationModel(cnn_seeds=1, epochs=20)
    chips = load_chips(
        samples.sample_path("eurosat_ms", "population_1km.csv"),
        model.input_bands,
        target="pop_1km",
        progress=False,
    )
    assert chips.population is not None
    model.fit(chips.images, chips.population, locations=chip_locations(chips.table), progress=False)
    model.save(out / "model")
    v = model.validation_
    console.print(
        f"{model.method} ({model.arch} + ridge), {len(chips)} real chips; {model.validation_name_}: "
        f"R2 log(1+p) {v['log']['r2']:.3f}, 90 % conformal interval x/÷ "
        f"{np.exp(model.conformal_.quantile_):.1f}"
    )
    census_path = samples.sample_path("berlin", "population_1km_eurostat.tif")
    cells = reference_grid(census_path)
    with samples.berlin_scene() as scene:
        result = predict_map(model, scene, cells, model.chip_shape_, progress=False)
    tif = write_map(result, out / "berlin_population.tif")
    census = samples.berlin_population()
    truth, inside = census.data[0], census.data[4] >= 0.99
    inside &= np.isfinite(result.population)
    score = r2(np.log1p(truth[inside]), np.log1p(result.population[inside]))
    total, estimate = float(truth[inside].sum()), float(result.population[inside].sum())
    console.print(
        f"Berlin scene, {int(inside.sum())} cells inside the scene: R2 log(1+p) {score:.3f}, "
        f"census {total:,.0f} people, estimated {estimate:,.0f} "
        f"({100 * (estimate - total) / total:+.0f} %); a winter scene unlike the training chips: "
        "see docs/benchmarks.md"
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


def _economy(out: Path) -> dict[str, Path]:
    """Park et al. (2022) on real data: a score model trained on the shipped EuroSAT MS chips
    (classes mapped to uninhabited / rural / urban), its score map of the Berlin scene, and the
    district model on the real census cells of the scene (cells with people as districts, tiles of
    64 px inside each), fitted on 80 % of the cells and tested on the other 20 %."""
    import numpy as np
    from scipy.stats import spearmanr

    from humanscape.data.chiptable import read_chips
    from humanscape.tasks.economy.evaluate import r2
    from humanscape.tasks.economy.model import EconomyModel
    from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS, level_targets
    from humanscape.tasks.economy.score import ScoreModel
    from humanscape.tasks.economy.workflow import score_scene

    out.mkdir(parents=True, exist_ok=True)
    table = samples.eurosat_ms()
    # ResNet-18 at half width for the demo's time; the CLI default is the paper's ResNet-18
    score = ScoreModel(arch="resnet18_half", epochs=15)
    images, units = read_chips(list(table["image"]), score.bands, progress=False)
    targets = level_targets(table["class"].map(EUROSAT_LEVELS))
    score.fit(images, targets, units=units, progress=False)
    score.save(out / "score_model")
    v = score.validation_
    console.print(
        f"score model ({score.arch}, {len(table)} real chips): validation accuracy "
        f"{v['accuracy']:.3f}, Spearman(score, level) {v['spearman']:.3f}"
    )
    with samples.berlin_scene() as scene:
        _, _, _ = score_scene(score, scene, out / "berlin_score.tif", tile=64, progress=False)
        cells = samples.berlin_census_cells()
        cells = cells[cells["population"] > 0].reset_index(drop=True)
        tiles = chip_districts(
            scene, cells, out / "tiles", column="district", size=64, stride=36, progress=False
        )
    png = scalar_quicklook(
        out / "berlin_score.tif",
        out / "berlin_score.png",
        title="Hyperlocal economic score, 640 m tiles, west of Berlin (2017-02-16)",
        units="score (< 0 uninhabited, 0-10 rural, >= 10 urban)",
        vmin=score.t_min,
        vmax=score.t_max,
    )
    tile_images, _ = read_chips(
        [str(out / "tiles" / p) for p in tiles["image"]], score.bands, progress=False
    )
    names = list(cells["district"])
    district = np.array([names.index(d) for d in tiles["district"]])
    y = cells["population"].to_numpy()
    test = np.random.default_rng(0).permutation(len(names))[: len(names) // 5]
    is_test = np.isin(np.arange(len(names)), test)
    train_tiles = ~is_test[district]
    model = EconomyModel(n_clusters=(0, 30), encoder_epochs=1)
    train_names = [n for n, t in zip(names, is_test, strict=True) if not t]
    remap = {n: i for i, n in enumerate(train_names)}
    model.fit(
        score,
        tile_images[train_tiles],
        np.array([remap[names[d]] for d in district[train_tiles]]),
        train_names,
        y[~is_test],
        labelled=(images, targets),
        progress=False,
    )
    result, national, _ = model.predict(tile_images, district, names)
    result.insert(1, "census_population", y)
    result.insert(1, "set", np.where(is_test, "test", "train"))
    with atomic_output(out / "berlin_districts.csv") as tmp:
        result.to_csv(tmp, index=False)
    held = result[result["set"] == "test"]
    console.print(
        f"{len(names)} census cells with people ({len(tiles)} tiles); {len(held)} held-out cells: "
        f"R2 {r2(held['census_population'], held['population']):.2f}, Spearman "
        f"{spearmanr(held['census_population'], held['population']).statistic:.2f}; national Gini "
        f"of adjusted scores {national['adjusted_scores']:.3f} (about 80 districts: expect a wide "
        "spread between splits, see docs/benchmarks.md)"
    )
    return {
        "economy score map (GeoTIFF, 640 m)": out / "berlin_score.tif",
        "economy score map (PNG)": png,
        "economy districts (CSV)": out / "berlin_districts.csv",
    }


def _migration(out: Path) -> dict[str, Path]:
    """Runfola et al. (2022) on a synthetic world (the real Mexican table may not be shipped): a
    census table whose built-up share is hidden (the imagery shows it), municipality polygons and
    16 px image tiles; the signature + imagery model fitted (signature PNGs), and the default model
    evaluated over 3 splits with importance, Moran's I and the error plot."""
    from humanscape.data.synthetic import SyntheticWorld, write_census_inputs
    from humanscape.report.migration import draw_migration_figures
    from humanscape.tasks.migration.imagery import read_municipal_images
    from humanscape.tasks.migration.model import MigrationModel
    from humanscape.tasks.migration.table import read_census
    from humanscape.tasks.migration.workflow import evaluate_migration, fit_migration, read_polygons

    world = SyntheticWorld(384, 384, seed=7, n_districts=48)
    paths = write_census_inputs(world, out / "inputs", tile=16, stride=16)
    table = read_census(paths["census"], id_column="municipality", target="outflow", drop_text=True)
    ids = table.ids.tolist()
    images = read_municipal_images(paths["tiles"], id_column="municipality", progress=False)
    model = MigrationModel("signature+imagery", epochs=8, patience=8, max_tiles=8)
    for line in fit_migration(
        model, table, out / "signature_model", images=images, figures=draw_migration_figures,
        progress=False,
    ):  # fmt: skip
        console.print(line)
    lines = evaluate_migration(
        ["ensemble"],
        lambda name, s: MigrationModel(name, seed=s),
        table,
        out / "report",
        polygons=read_polygons(paths["polygons"], "municipality", ids),
        n_splits=3,
        figures=draw_migration_figures,
    )
    for line in lines:
        console.print(line)
    return {
        "migration signature (PNG)": out / "signature_model" / "signature.png",
        "migration signature by epoch (PNG)": out / "signature_model" / "signature_epochs.png",
        "migration importance (PNG)": out / "report" / "importance.png",
        "migration metrics (CSV)": out / "report" / "summary.csv",
    }


def _flows(out: Path) -> dict[str, Path]:
    """Imagery2Flow's step 2 with the default flow model on real CommutingODGen counties (LODES
    commuting, ACS, OSM POIs): fitted on 26021 and 35013, the unseen county 36093 predicted
    (flows CSV + map) and scored (CPC, CPL, RMSE, Pearson r, CPC by distance band, plots)."""
    from humanscape.data import samples
    from humanscape.report.flows import draw_evaluation, flow_map_png
    from humanscape.tasks.flows.cities import read_commuting_od
    from humanscape.tasks.flows.model import FlowModel
    from humanscape.tasks.flows.workflow import evaluate_flows, fit_flows, predict_flows

    train = [read_commuting_od(samples.commuting_od(f)) for f in ("26021", "35013")]
    test = read_commuting_od(samples.commuting_od("36093"))
    model = FlowModel()
    lines = [
        *fit_flows(model, train, out / "model", progress=False),
        *predict_flows(
            model, test, out / "flows_36093.csv", map_path=out / "flows_36093.png",
            draw_map=flow_map_png,
        ),
        *evaluate_flows(model, [test], out / "report", draw_plots=draw_evaluation),
    ]  # fmt: skip
    for line in lines:
        console.print(line)
    return {
        "flows predicted for county 36093 (CSV)": out / "flows_36093.csv",
        "flow map of county 36093 (PNG)": out / "flows_36093.png",
        "flow metrics of county 36093 (CSV)": out / "report" / "metrics.csv",
    }


def _embeddings(chip_table: Path, out: Path) -> dict[str, Path]:
    """One featurisation, many tasks: embed the demo chips once with the shipped MS encoder."""
    from humanscape.models.embed import embed_chip_table
    from humanscape.models.registry import load_encoder

    encoder = load_encoder("simclr_resnet18half_eurosat_ms")
    frame = embed_chip_table(chip_table, encoder, progress=False)
    with atomic_output(out) as tmp:
        frame.to_parquet(tmp, index=False)
    console.print(
        f"{len(frame)} chips -> {encoder.num_features}-d embeddings "
        f"(encoder linear probe {encoder.metadata.get('linear_probe_accuracy')})"
    )
    return {f"chip embeddings ({len(frame)} x {encoder.num_features})": out}
