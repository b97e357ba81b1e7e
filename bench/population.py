"""Benchmark of population per grid cell on real data (Huang et al. 2021; issue 9).

Part ``chips``: the 307 real EuroSAT MS chips of ``../shared/data/eurosat_ms`` with the census
population of their 1 km cell, across Europe. Spatial cross-validation: chips grouped in 50 km
blocks (EASE-Grid 2.0 metres), blocks dealt into 5 folds (seed 0); every configuration is fitted on
4 folds (its own early stopping / calibration split carved, by blocks, out of those) and predicts
the 5th; the out-of-fold predictions of all chips are scored together (pooled) and per fold.
Configurations (item 7 of the issue), all in this one run:

- ``rf_stats`` (the baseline): random forest on per-band mean / std + NDVI, NDBI (13 bands);
- ridge / gradient boosting on frozen embeddings of the shipped 13-band SimCLR encoder, on MOSAIKS
  random features, on both, and ridge on band statistics + MOSAIKS;
- end-to-end CNNs from random init: ResNet-18 (R, G, B, NIR and 13 bands) and the paper's four
  (VGG-16, ResNet-50, Xception, DenseNet-121; R, G, B, NIR; fewer epochs on CPU: ``--paper-epochs``);
- fine-tuning the shipped encoder (13 bands);
- ensembles of a CNN and the ridge head.

Part ``berlin``: the default configuration fitted on all 307 chips (with and without radiometric
jitter in training), run over the real Sentinel-2 scene west of Berlin on the grid of its real
1 km Eurostat census raster, the scene as it is, quantile-matched to the training chips (the
default) or standardised; predicted versus census (R2, total), and with the census-consistent
rescaling to 4 km blocks of the real grid.

    .venv/bin/python bench/population.py --part chips            # about 60-90 minutes on 2 cores
    .venv/bin/python bench/population.py --part chips --only rf_stats,ridge_stats_mosaiks
    .venv/bin/python bench/population.py --part berlin           # about 8 minutes
    .venv/bin/python bench/population.py --part synthetic        # nbr(n) study, about 30 minutes
    .venv/bin/python bench/population.py --part auto --cnn-seeds 1 --epochs 20   # issue 23

Part ``synthetic``: nbr(n), n in 1, 3, 5, on the synthetic world (the real chips are isolated, so
neighbourhoods cannot be studied on them), and the paper's under-estimation of dense cells.

Results go to ``bench/out/population_<part>.json`` (updated after each configuration).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

from humanscape.data.chiptable import EUROSAT_MS_ORDER
from humanscape.data.splits import block_folds
from humanscape.evaluate.regression import r2
from humanscape.evaluate.uncertainty import coverage
from humanscape.tasks.population.chips import chip_locations, load_chips
from humanscape.tasks.population.evaluate import metrics_table
from humanscape.tasks.population.model import RGBN, PopulationModel

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"
ALL = list(EUROSAT_MS_ORDER)
ENCODER = "simclr_resnet18half_eurosat_ms"


def configurations(epochs: int, paper_epochs: int) -> dict[str, dict]:
    feats = {"method": "features", "bands": ALL}
    cnn = {"method": "cnn", "epochs": epochs, "cnn_seeds": 1}
    # ResNet-18 on R, G, B, NIR + ridge on 13-band statistics; rows change one thing each
    ens = cnn | {
        "method": "ensemble",
        "arch": "resnet18",
        "bands": list(RGBN),
        "feature_bands": ALL,
        "features": ["stats"],
    }
    return {
        "rf_stats": feats | {"features": ["stats"], "head": "rf"},
        "ridge_stats": feats | {"features": ["stats"], "head": "ridge"},
        "ridge_encoder": feats | {"features": ["encoder"], "head": "ridge"},
        "hgb_encoder": feats | {"features": ["encoder"], "head": "hgb"},
        "ridge_mosaiks": feats | {"features": ["mosaiks"], "head": "ridge"},
        "hgb_mosaiks": feats | {"features": ["mosaiks"], "head": "hgb"},
        "ridge_mosaiks_encoder": feats | {"features": ["mosaiks", "encoder"], "head": "ridge"},
        "hgb_mosaiks_encoder": feats | {"features": ["mosaiks", "encoder"], "head": "hgb"},
        "ridge_stats_mosaiks": feats | {"features": ["stats", "mosaiks"], "head": "ridge"},
        "cnn_resnet18_rgbn": cnn | {"arch": "resnet18", "bands": list(RGBN)},
        "cnn_resnet18_13": cnn | {"arch": "resnet18", "bands": ALL},
        "finetune_shipped": cnn | {"arch": ENCODER, "lr": 3e-4},
        "ensemble_rgbn": ens | {"feature_bands": None, "features": ["stats", "mosaiks"]},
        "ensemble_rgbn_cnn_13_head": ens | {"features": ["stats", "mosaiks"]},
        "ensemble_3cnn_13_ridge_stats": ens | {"cnn_seeds": 3},
        "ensemble_3cnn_13_ridge_stats_isotonic": ens | {"cnn_seeds": 3, "bias_correction": True},
        "ensemble_rgbn_cnn_13_ridge_stats": ens,
        **{
            f"paper_{arch}": cnn | {"arch": arch, "bands": list(RGBN), "epochs": paper_epochs}
            for arch in ("vgg16_bn", "resnet50", "xception", "densenet121")
        },
    }


def chips_part(only: list[str] | None, epochs: int, paper_epochs: int) -> None:
    table = SHARED / "eurosat_ms" / "population_1km.csv"
    chips = load_chips(table, ALL, target="pop_1km", progress=False)
    xy = chip_locations(chips.table)
    pop = chips.population
    folds = block_folds(xy, 50_000, n_folds=5, scheme="random", seed=0)
    out_path = OUT / "population_chips.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    results["folds"] = [f.describe() for f in folds]
    for name, params in configurations(epochs, paper_epochs).items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        pred = np.zeros_like(pop)
        lower, upper = np.zeros_like(pop), np.zeros_like(pop)
        per_fold, epochs_run = [], []
        for split in folds:
            model = PopulationModel(**params)
            images = chips.images[:, [ALL.index(b) for b in model.input_bands]]
            model.fit(
                images[split.train],
                pop[split.train],
                locations=xy[split.train],
                progress=False,
            )
            p, lo, hi = model.predict_interval(images[split.test])
            pred[split.test], lower[split.test], upper[split.test] = p, lo, hi
            per_fold.append(r2(np.log1p(pop[split.test]), np.log1p(p)))
            epochs_run.append(getattr(model, "epochs_run_", 0))
        seconds = time.perf_counter() - start
        table_ = metrics_table(pop, pred, lower, upper, label=name)
        row = table_.set_index("scale")
        results[name] = {
            "params": params,
            "r2_log1p_pooled": float(row.loc["log1p", "r2"]),
            "r2_log1p_folds": [round(v, 4) for v in per_fold],
            "r2_log1p_fold_mean": float(np.mean(per_fold)),
            "pearson_r2_log": float(row.loc["log", "pearson_r2"]),
            "mioa_log": float(row.loc["log", "mioa"]),
            "r2_log": float(row.loc["log", "r2"]),
            "r2_count": float(row.loc["count", "r2"]),
            "mae_count": float(row.loc["count", "mae"]),
            "bias_beta_log1p": float(row.loc["log1p", "bias_beta"]),
            "coverage_90": coverage(pop, lower, upper),
            "seconds": round(seconds, 1),
            "epochs_run": epochs_run,
        }
        print(
            f"{name:26s} R2(log1p) pooled {results[name]['r2_log1p_pooled']:.3f} "
            f"folds {np.mean(per_fold):.3f} ± {np.std(per_fold):.3f}  "
            f"coverage {results[name]['coverage_90']:.3f}  {seconds:.0f} s",
            flush=True,
        )
        out_path.write_text(json.dumps(results, indent=2))


class SceneStandardisation:
    """Per-scene standardisation (the alternative to quantile matching the issue names): each band's
    scene mean / spread moved onto the training chips', here with the robust median and
    inter-quartile range from the same quantiles."""

    def __init__(self, source: np.ndarray, target: np.ndarray) -> None:
        self.source, self.target = source, target

    def __call__(self, images: np.ndarray) -> np.ndarray:
        s, t = self.source, self.target
        scale = (t[:, 75] - t[:, 25]) / np.maximum(s[:, 75] - s[:, 25], 1e-6)
        shape = (1, -1, 1, 1) if images.ndim == 4 else (-1, 1, 1)
        out = (images - s[:, 50].reshape(shape)) * scale.reshape(shape) + t[:, 50].reshape(shape)
        return out.astype(np.float32)


def berlin_part(params: dict) -> None:
    import rasterio

    from humanscape.data import samples
    from humanscape.tasks.population.mapping import (
        census_consistent,
        harmoniser,
        predict_map,
        reference_grid,
    )

    table = SHARED / "eurosat_ms" / "population_1km.csv"
    ref = SHARED / "s2_berlin_scene" / "population_1km_eurostat.tif"
    with rasterio.open(ref) as src:
        census, fraction = src.read(1).astype(float), src.read(5).astype(float)
    grid = reference_grid(ref)
    out: dict = {"params": params}
    # radiometry (issue 22, item 2): training with / without radiometric jitter, then the scene
    # as it is, quantile-matched to the training chips, or standardised; all on the same models
    for jitter in (False, True):
        model = PopulationModel(**{**params, "radiometric_jitter": jitter})
        chips = load_chips(table, model.input_bands, target="pop_1km", progress=False)
        start = time.perf_counter()
        model.fit(
            chips.images, chips.population, locations=chip_locations(chips.table), progress=False
        )
        out[f"fit_seconds_jitter_{jitter}"] = round(time.perf_counter() - start, 1)
        out[f"validation_r2_log1p_jitter_{jitter}"] = model.validation_["log"]["r2"]
        with samples.berlin_scene() as scene:
            matched = harmoniser(model, scene.select(model.input_bands), "quantile")
            standardised = SceneStandardisation(matched.source, model.band_quantiles_)
            for name, harmonise in (
                ("none", None),
                ("quantile", matched),
                ("standardise", standardised),
            ):
                result = predict_map(
                    model, scene, grid, model.chip_shape_, progress=False, harmonise=harmonise
                )
                inside = (fraction >= 0.99) & np.isfinite(result.population)
                p, q = census[inside], result.population[inside]
                out[f"{name}_jitter_{jitter}"] = row = {
                    "r2_log1p": r2(np.log1p(p), np.log1p(q)),
                    "r2_count": r2(p, q),
                    "total_error_pct": float(100 * (q.sum() - p.sum()) / p.sum()),
                    "coverage_90": coverage(p, result.lower[inside], result.upper[inside]),
                }
                print(name, "jitter", jitter, {k: round(v, 3) for k, v in row.items()}, flush=True)
            if jitter == params.get("radiometric_jitter", False):  # the default: kept for below
                kept = predict_map(
                    model, scene, grid, model.chip_shape_, progress=False, harmonise=matched
                )
    result = kept
    out["cells_inside"] = int(inside.sum())
    out["total_census"] = float(census[inside].sum())

    def score(pred: np.ndarray, label: str) -> None:
        p, q = census[inside], pred[inside]
        out[label] = {
            "r2_log1p": r2(np.log1p(p), np.log1p(q)),
            "r2_count": r2(p, q),
            "total_census": float(p.sum()),
            "total_predicted": float(q.sum()),
            "total_error_pct": float(100 * (q.sum() - p.sum()) / p.sum()),
        }

    score(result.population, "model")  # the default: quantile-matched scene
    # census-consistent: districts = 4 x 4 km blocks of the real grid, totals from the census
    import geopandas as gpd
    from shapely.geometry import box

    rows, cols = census.shape
    t = result.grid.transform
    blocks, totals = [], []
    for r0 in range(0, rows, 4):
        for c0 in range(0, cols, 4):
            sub = inside[r0 : r0 + 4, c0 : c0 + 4]
            if not sub.any():
                continue
            left, top = t * (c0, r0)
            right, bottom = t * (min(c0 + 4, cols), min(r0 + 4, rows))
            blocks.append(box(left, bottom, right, top))
            totals.append(float(census[r0 : r0 + 4, c0 : c0 + 4][sub].sum()))
    districts = gpd.GeoDataFrame({"pop": totals}, geometry=blocks, crs=result.grid.crs)
    masked = result.population.copy()
    masked[~inside] = np.nan
    result.population = masked
    rescaled = census_consistent(result, districts, "pop")
    score(rescaled.population, "rescaled_4km")
    print(json.dumps(out, indent=2))
    (OUT / "population_berlin.json").write_text(json.dumps(out, indent=2))


def synthetic_part(epochs: int) -> None:
    """nbr(n) on the synthetic world (the real chips are isolated): 32 px cells (320 m), a
    768 x 768 px world (576 cells), chips of n x n cells cut by ``chip_scene``; spatial CV in
    4 folds of 2 km blocks; CNN (ResNet-18, 13 bands, inputs resized to 64 px so every n costs the
    same) and the ridge head; R2 and the Table III slope (the paper's dense-cell under-estimation)."""
    import tempfile

    from humanscape.data.chips import chip_scene
    from humanscape.data.synthetic import SyntheticWorld
    from humanscape.evaluate.regression import bias_analysis
    from humanscape.geo.grid import regular_grid
    from humanscape.geo.raster import open_scene

    world = SyntheticWorld(768, 768, seed=3, n_districts=12)
    cell_px = 32
    truth = world.population_grid(cell_px)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = world.write_scene(Path(tmp) / "synthetic_T00XXX_20200101.tif")
        scene = open_scene(path)
        cells = regular_grid(scene.grid, cell_px * world.pixel_size)
        for n in (1, 3, 5):
            table = chip_scene(scene, cells, Path(tmp) / f"n{n}", neighbors=n, progress=False)
            table["pop"] = truth[table["row"], table["col"]]
            table.to_csv(Path(tmp) / f"n{n}" / "chips.csv", index=False)
            chips = load_chips(Path(tmp) / f"n{n}" / "chips.csv", ALL, target="pop", progress=False)
            xy = chips.table[["x", "y"]].to_numpy(float)
            folds = block_folds(xy, 2000, n_folds=4, scheme="random", seed=0)
            for name, params in {
                "cnn_resnet18": {
                    "method": "cnn",
                    "bands": list(RGBN),
                    "epochs": epochs,
                    "input_size": 64,
                    "cnn_seeds": 1,
                },
                "ridge_stats": {"method": "features", "bands": ALL, "feature_bands": ALL},
            }.items():
                pred = np.zeros(len(chips))
                for split in folds:
                    model = PopulationModel(**params)
                    images = chips.images[:, [ALL.index(b) for b in model.input_bands]]
                    model.fit(
                        images[split.train],
                        chips.population[split.train],
                        locations=xy[split.train],
                        block_m=1000,
                        progress=False,
                    )
                    pred[split.test] = model.predict(images[split.test])
                p, q = np.log1p(chips.population), np.log1p(pred)
                dense = chips.population >= np.percentile(chips.population, 90)
                row = {
                    "r2_log1p": r2(p, q),
                    "beta_log1p": bias_analysis(p, q)["bias_beta"],
                    "dense_top10pct_mean_ratio": float(
                        pred[dense].sum() / chips.population[dense].sum()
                    ),
                }
                results[f"nbr{n}_{name}"] = row
                print(
                    f"nbr({n}) {name:22s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()),
                    flush=True,
                )
                (OUT / "population_synthetic.json").write_text(json.dumps(results, indent=2))


def disaggregate_part() -> dict:
    """Issue 22: the Berlin census (1 km, 105 cells inside the scene) summed into 4 km and 2 km
    blocks (8 and 32 units), spread back onto 1 km and 100 m cells by ``population
    disaggregate``'s workflow (each method by name, and ``auto``), with and without the OSM land
    use, and scored by ``population evaluate-map``'s (100 m maps summed to 1 km). Areal weighting
    is the baseline in the same run. At 100 m also the share of people placed inside OSM
    residential polygons (areal weighting: the share of land they cover)."""
    import tempfile

    import geopandas as gpd

    from humanscape.data import samples
    from humanscape.geo.inputs import SceneReader
    from humanscape.tasks.population.dasymetric import (
        class_share,
        disaggregate_scene,
        evaluate_map,
    )

    census = samples.sample_path("berlin", "population_1km_eurostat.tif")
    scene = samples.sample_path("berlin", "IMG_DATA")
    osm = samples.sample_path("berlin", "osm_landuse.gpkg")
    reader = SceneReader(sensor="sentinel2_l1c")
    landuse = gpd.read_file(osm)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for km in (4, 2):
            units = Path(tmp) / f"blocks_{km}.gpkg"
            samples.berlin_census_blocks(km).to_file(units)
            for cell in (1000.0, 100.0):
                for use_landuse in (False, True):
                    key = f"{km} km blocks -> {cell:g} m" + (
                        " + OSM land use" if use_landuse else ""
                    )
                    rows: dict = {}
                    for method in ("auto", "areal", "binary", "rf", "occupancy"):
                        tif = Path(tmp) / f"{method}.tif"
                        started = time.perf_counter()
                        lines = disaggregate_scene(
                            scene, units, "population", tif, reader, cell=cell, method=method,
                            landuse=osm if use_landuse else None, progress=False,
                        )  # fmt: skip
                        seconds = time.perf_counter() - started
                        table = evaluate_map(tif, census, min_fraction=0.99).table
                        row = {k: float(v) for k, v in table.iloc[0].items() if k != "map"}
                        row["seconds"] = seconds
                        chosen = [ln for ln in lines if "placed on" in ln][0].split(" by ")[-1]
                        row["chosen"] = chosen
                        if cell == 100.0:
                            import rasterio

                            from humanscape.geo.grid import GridSpec

                            with rasterio.open(tif) as src:
                                people = np.nan_to_num(src.read(1).astype(np.float64))
                                grid = GridSpec(src.crs, src.transform, src.width, src.height)
                            share = class_share(
                                landuse.to_crs(grid.crs), "fclass", ["residential"], grid
                            )
                            row["share_in_residential"] = float(
                                (people * share).sum() / people.sum()
                            )
                        rows[method] = row
                        print(
                            f"{key:<42} {method:<10} {chosen:<20} r2 {row['r2']:.3f}  "
                            f"r2 log1p {row['r2_log1p']:.3f}  MAE {row['mae']:.1f}  "
                            f"cover {row.get('coverage_90', float('nan')):.2f}  "
                            f"in residential {row.get('share_in_residential', float('nan')):.3f}  "
                            f"{seconds:.1f} s",
                            flush=True,
                        )
                    results[key] = rows
    (OUT / "population_disaggregate.json").write_text(json.dumps(results, indent=2))
    return results


def auto_part(cnn_seeds: int, epochs: int) -> None:
    """``population fit --method auto`` against its baseline and candidates, in one run (issue
    23): the 307 real chips, the same 5 outer folds of 50 km blocks as ``--part chips``; inside
    each outer training part ``auto`` runs its own 3-fold spatial selection, then fits the chosen
    candidate; every candidate is also fitted alone on the same outer folds."""
    from humanscape.tasks.population.workflow import candidate_models, select_population_model

    table = SHARED / "eurosat_ms" / "population_1km.csv"
    chips = load_chips(table, ALL, target="pop_1km", progress=False)
    xy = chip_locations(chips.table)
    pop = chips.population
    folds = block_folds(xy, 50_000, n_folds=5, scheme="random", seed=0)
    base = PopulationModel(method="auto", cnn_seeds=cnn_seeds, epochs=epochs)
    candidates = candidate_models(base)
    preds = {name: np.zeros_like(pop) for name in ["auto", *candidates]}
    chosen, seconds = [], {name: 0.0 for name in preds}
    for split in folds:
        for name, model in candidates.items():
            start = time.perf_counter()
            x = chips.images[:, [ALL.index(b) for b in model.input_bands]]
            fitted = clone(model).fit(
                x[split.train], pop[split.train], locations=xy[split.train], progress=False
            )
            preds[name][split.test] = fitted.predict(x[split.test])
            seconds[name] += time.perf_counter() - start
        start = time.perf_counter()
        selection = select_population_model(
            base, chips.images[split.train], ALL, pop[split.train],
            locations=xy[split.train], groups=None, block_m=50_000,
        )  # fmt: skip
        chosen.append(selection.chosen)
        preds["auto"][split.test] = preds[selection.chosen][split.test]  # the same fit, reused
        seconds["auto"] += time.perf_counter() - start + seconds[selection.chosen] / len(folds)
        print(f"fold {len(chosen)}: auto chose {selection.chosen}", flush=True)
    out = {"cnn_seeds": cnn_seeds, "epochs": epochs, "chosen": chosen}
    for name, p in preds.items():
        per_fold = [r2(np.log1p(pop[f.test]), np.log1p(p[f.test])) for f in folds]
        out[name] = {
            "r2_log1p_pooled": r2(np.log1p(pop), np.log1p(p)),
            "r2_log1p_fold_mean": float(np.mean(per_fold)),
            "r2_log1p_fold_std": float(np.std(per_fold)),
            "seconds": round(seconds[name], 1),
        }
        print(f"{name:12s} {json.dumps(out[name])}", flush=True)
    (OUT / "population_auto.json").write_text(json.dumps(out, indent=2))


def scale_part(size: int = 10_000) -> None:
    """The census route at scale: a synthetic ``size`` x ``size`` px scene (5 bands), 100 units
    (10 x 10 blocks) whose counts are the world's own population, through the CLI command, timed
    with its peak RSS (issue 22: minutes on 2 cores, memory flat)."""
    import resource
    import subprocess
    import sys

    import geopandas as gpd
    from shapely.geometry import box

    from humanscape.data.synthetic import SyntheticWorld

    work = OUT / "disaggregate_scale"
    work.mkdir(parents=True, exist_ok=True)
    world = SyntheticWorld(size, size)
    scene = work / f"scene_{size}.tif"
    if not scene.exists():
        world.write_scene(scene, bands=["B03", "B04", "B08", "B11", "B12"])
    people = world.population_grid(cell_px=size // 100)  # 100 x 100 cells
    t = world.grid.transform
    step = size // 10
    rows = []
    for r in range(10):
        for c in range(10):
            left, top = t * (c * step, r * step)
            right, bottom = t * ((c + 1) * step, (r + 1) * step)
            count = float(people[r * 10 : (r + 1) * 10, c * 10 : (c + 1) * 10].sum())
            rows.append(
                {"block": f"{r}-{c}", "people": count, "geometry": box(left, bottom, right, top)}
            )
    units = work / "blocks.gpkg"
    gpd.GeoDataFrame(rows, crs=world.grid.crs).to_file(units)
    command = [
        str(Path(sys.executable).with_name("humanscape")), "population", "disaggregate",
        str(scene), "--units", str(units), "--count-column", "people", "--cell", "100",
        "--out", str(work / "pop.tif"),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = {"size_px": size, "units": len(rows), "people": sum(r["people"] for r in rows),
           "seconds": round(seconds, 1), "peak_rss_mb": round(peak)}  # fmt: skip
    print(json.dumps(out, indent=2))
    (OUT / "population_disaggregate_scale.json").write_text(json.dumps(out, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=["chips", "berlin", "synthetic", "disaggregate", "scale", "auto"],
        default="chips",
    )
    parser.add_argument("--only", default=None, help="comma-separated configuration names")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--paper-epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cnn-seeds", type=int, default=3, help="--part auto: CNNs per ensemble")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(exist_ok=True)
    if args.part == "chips":
        chips_part(args.only.split(",") if args.only else None, args.epochs, args.paper_epochs)
    elif args.part == "synthetic":
        synthetic_part(args.epochs)
    elif args.part == "disaggregate":
        disaggregate_part()
    elif args.part == "scale":
        scale_part()
    elif args.part == "auto":
        auto_part(args.cnn_seeds, args.epochs)
    else:
        from humanscape.tasks.population.model import PopulationModel as _M

        berlin_part(_M().get_params())


if __name__ == "__main__":
    main()
