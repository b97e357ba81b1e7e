"""Benchmark of the economy task on real data (Park et al. 2022; issue 10).

Part ``score``: the hyperlocal score model on the real EuroSAT chips of ``../shared/data``
(classes mapped to uninhabited / rural / urban as in its README), held out by file number: chips
whose number is a multiple of 5 are the test set (the shipped SimCLR encoders never saw them), the
rest train (their own early-stopping split is carved out of them). At the true class balance of
EuroSAT (3 urban, 4 rural, 3 uninhabited classes). Metrics: 3-class accuracy of eq. 4 and
Spearman between score and level order, against a random forest on colour statistics (per-band
mean, std, 10/50/90th percentiles; expected level of its class probabilities as its score) in the
same run. Configurations (``--archs``): a backbone name (the CNN alone), ``forest`` / ``mosaiks``
(the library's classifier candidates, trained on the 10 EuroSAT classes as the CLI does with a
class -> level mapping), ``auto`` / ``auto:<backbone>`` (the default selection, the CNN of that
backbone against both classifiers on the training chips' own validation split). Sets: ``rgb`` (8,000 RGB JPEGs), ``ms`` (469 13-band L1C chips, bands R, G, B, NIR).

Part ``districts``: district indicators, 100 random 80/20 splits (R2 on the original scale,
mean +- std), the full model, its ablations and the baselines of the paper's Table 1, the training
share 0.2 .. 0.8 with and without district augmentation (Figure 6), national / within-district
Gini, transfer by Spearman. On the real Berlin scene (census 1 km cells as districts, 3 x 3 tiles
of 64 px inside each, the real population as indicator) and on synthetic worlds (Voronoi districts,
population and GDP following a power law: known truth).

    .venv/bin/python bench/economy.py --part score --sets ms,rgb
    .venv/bin/python bench/economy.py --part score --sets ms --archs auto,resnet18,forest,mosaiks
    .venv/bin/python bench/economy.py --part score --sets rgb --archs auto:resnet18_half,forest,mosaiks
    .venv/bin/python bench/economy.py --part districts --world berlin
    .venv/bin/python bench/economy.py --part districts --world synthetic

Results go to ``bench/out/economy_<part>.json`` (updated after each configuration).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestClassifier

from humanscape.data import samples
from humanscape.data.chips import chip_districts
from humanscape.data.chiptable import EUROSAT_MS_ORDER, read_chips
from humanscape.tasks.economy.data import DistrictData, labelled_tiles, load_district_data
from humanscape.tasks.economy.model import EconomyModel
from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS, LEVELS, Thresholds, level_targets
from humanscape.tasks.economy.score import ScoreModel, score_metrics
from humanscape.tasks.economy.workflow import evaluate_districts

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"


def eurosat_table(kind: str) -> pd.DataFrame:
    """Every real EuroSAT chip of ``kind`` (rgb / ms) with class, level and file number."""
    root = SHARED / ("eurosat_rgb" if kind == "rgb" else "eurosat_ms")
    rows = []
    for cls in EUROSAT_LEVELS:
        for path in sorted((root / cls).glob("*.jpg" if kind == "rgb" else "*.tif")):
            number = int(re.search(r"_(\d+)\.", path.name).group(1))
            rows.append({"image": str(path), "class": cls, "number": number})
    table = pd.DataFrame(rows)
    table["level"] = table["class"].map(EUROSAT_LEVELS)
    return table


def colour_statistics(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), images.shape[1], -1)
    return np.concatenate(
        [
            flat.mean(2),
            flat.std(2),
            *(np.percentile(flat, q, axis=2) for q in (10, 50, 90)),
        ],
        axis=1,
    )


def score_part(sets: list[str], configs: list[str], epochs: int) -> dict:
    torch.set_num_threads(2)
    out_path = OUT / "economy_score.json"
    results: dict = json.loads(out_path.read_text()) if out_path.exists() else {}
    th = Thresholds()
    for kind in sets:
        table = eurosat_table(kind)
        bands = ["red", "green", "blue"] if kind == "rgb" else ["B02", "B03", "B04", "B08"]
        units = ("rgb8",) if kind == "rgb" else ("reflectance",)
        images, unit = read_chips(list(table["image"]), bands, units=units, progress=False)
        targets = level_targets(table["level"])
        levels = targets.argmax(1)
        test = (table["number"] % 5 == 0).to_numpy()
        train = ~test
        res: dict = {
            "n_train": int(train.sum()),
            "n_test": int(test.sum()),
            "test_balance": {n: int((levels[test] == k).sum()) for k, n in enumerate(LEVELS)},
        }
        t0 = time.time()
        rf = RandomForestClassifier(500, n_jobs=2, random_state=0).fit(
            colour_statistics(images[train]), levels[train]
        )
        proba = rf.predict_proba(colour_statistics(images[test]))
        pred = proba.argmax(1)
        res["rf_colour"] = {
            "accuracy": float((pred == levels[test]).mean()),
            "spearman": float(spearmanr(proba @ np.arange(3), levels[test]).statistic),
            "seconds": round(time.time() - t0, 1),
        }
        print(kind, "rf_colour", res["rf_colour"], flush=True)
        for config in configs:
            from humanscape.models.registry import list_weights

            # "auto" / "auto:<arch>": the default selection (CNN of that arch against the
            # classifiers); "forest" / "mosaiks": the library's classifier candidates; anything
            # else: the CNN of that arch
            method, _, arch = config.partition(":")
            if method not in ("auto", "forest", "mosaiks"):
                method, arch = "cnn", config
            arch = arch or "resnet18"
            shipped = {e.name: e for e in list_weights()}
            own, x = bands, images
            if arch in shipped:  # fine-tune a shipped SimCLR encoder on its own bands
                if shipped[arch].units != unit:
                    continue
                own = list(shipped[arch].bands)
                x, _ = read_chips(list(table["image"]), own, units=units, progress=False)
            t0 = time.time()
            model = ScoreModel(method=method, arch=arch, bands=own, epochs=epochs).fit(
                x[train],
                targets[train],
                units=unit,
                progress=False,
                classes=table["class"].to_numpy()[train],  # the CLI passes mapped classes too
            )
            metrics = score_metrics(model.predict(x[test]), levels[test], th)
            metrics |= {
                "seconds": round(time.time() - t0, 1),
                "method": model.method_,
                "epochs_run": model.epochs_run_,
                "validation": model.validation_,
            }
            if model.selection_ is not None:
                metrics["selection"] = model.selection_.table.to_dict("records")
            res[config] = metrics
            print(kind, config, metrics, flush=True)
            results[kind] = res
            out_path.write_text(json.dumps(results, indent=2))
        results[kind] = res
        out_path.write_text(json.dumps(results, indent=2))
    return results


def score_model_ms(epochs: int) -> ScoreModel:
    """The default score model fitted on all 469 real EuroSAT MS chips (R, G, B, NIR)."""
    path = OUT / "economy_score_ms_all"
    if (path / "config.json").exists():
        return ScoreModel.load(path)
    table = eurosat_table("ms")
    table.to_csv(OUT / "eurosat_ms_levels.csv", index=False)
    model = ScoreModel(epochs=epochs)
    images, units = read_chips(list(table["image"]), model.bands, progress=False)
    model.fit(images, level_targets(table["level"]), units=units, progress=False)
    model.source_, model.label_column_, model.mapping_ = (
        str(OUT / "eurosat_ms_levels.csv"),
        "level",
        "",
    )
    model.save(path)
    return model


def berlin_data(tile: int, stride: int) -> tuple[DistrictData, str]:
    """Census cells of the real Berlin scene with population > 0 as districts, tiles inside."""
    districts = samples.berlin_census_cells()
    districts = districts[districts["population"] > 0].reset_index(drop=True)
    folder = OUT / f"berlin_tiles_{tile}_{stride}"
    if not (folder / "chips.csv").exists():
        chip_districts(
            samples.berlin_scene(resolution=10),
            districts,
            folder,
            column="district",
            size=tile,
            stride=stride,
            progress=False,
        )
    districts.drop(columns="geometry").to_csv(OUT / "berlin_districts.csv", index=False)
    return _data(folder, OUT / "berlin_districts.csv", "population"), "population"


def synthetic_data(seeds: list[int], size: int, n_districts: int, indicator: str) -> DistrictData:
    """Synthetic worlds (known truth) side by side: districts named ``w<seed>_<id>``."""
    from humanscape.data.synthetic import SyntheticWorld

    tables, frames = [], []
    for seed in seeds:
        world = SyntheticWorld(size, size, seed=seed, n_districts=n_districts)
        folder = OUT / f"synthetic_{seed}_{size}_{n_districts}"
        districts = world.districts().copy()
        districts["district"] = [f"w{seed}_{d}" for d in districts["district"]]
        districts["world"] = f"w{seed}"
        if not (folder / "chips.csv").exists():
            scene_path = OUT / f"synthetic_{seed}_{size}.tif"
            world.write_scene(scene_path)
            from humanscape.geo.raster import open_scene

            chip_districts(
                open_scene(scene_path, sensor="sentinel2_l1c"),
                districts,
                folder,
                column="district",
                size=64,
                stride=64,
                min_overlap=0.5,
                progress=False,
            )
        table = pd.read_csv(folder / "chips.csv")
        table["image"] = [str(folder / p) for p in table["image"]]
        tables.append(table)
        frames.append(districts.drop(columns="geometry"))
    pd.concat(tables).to_csv(OUT / "synthetic_tiles.csv", index=False)
    pd.concat(frames).to_csv(OUT / "synthetic_districts.csv", index=False)
    return _data(OUT / "synthetic_tiles.csv", OUT / "synthetic_districts.csv", indicator)


def _data(tiles: Path, districts: Path, indicator: str) -> DistrictData:
    return load_district_data(
        tiles / "chips.csv" if tiles.is_dir() else tiles,
        "district",
        list(EUROSAT_MS_ORDER),
        "reflectance",
        districts_path=districts,
        indicator=indicator,
        progress=False,
    )


def districts_part(args: argparse.Namespace) -> dict:
    torch.set_num_threads(2)
    out_path = OUT / "economy_districts.json"
    results: dict = json.loads(out_path.read_text()) if out_path.exists() else {}
    t0 = time.time()
    score = score_model_ms(args.epochs)
    print(f"score model ready ({time.time() - t0:.0f} s)", flush=True)
    if args.world == "berlin":
        full, indicator = berlin_data(64, 18)
        regions = None
        key = "berlin_population"
    else:
        full = synthetic_data([1, 2], args.size, args.n_districts, args.indicator)
        indicator = args.indicator
        regions = "world"
        key = f"synthetic_{indicator}"
    rgbn = [list(EUROSAT_MS_ORDER).index(b) for b in score.bands]
    data = DistrictData(
        full.images[:, rgbn],
        full.district,
        full.names,
        full.y,
        full.weights,
        full.table,
        full.districts,
    )
    labelled = labelled_tiles(score, None, None, None, progress=False)
    model = EconomyModel(indicator=indicator, indicator_kind="count", seed=0)
    t0 = time.time()
    lines = evaluate_districts(
        model,
        score,
        data,
        OUT / f"economy_eval_{key}",
        labelled=labelled,
        baseline_images=full.images,
        n_splits=args.splits,
        share_splits=args.share_splits,
        region_column=regions,
        title=f"{key}: {len(data.names)} districts",
        progress=False,
        report=lambda line: print(line, flush=True),
    )
    folder = OUT / f"economy_eval_{key}"
    results[key] = {
        "n_districts": len(data.names),
        "n_tiles": len(data.images),
        "seconds": round(time.time() - t0, 1),
        "table1": pd.read_csv(folder / "table1.csv").to_dict("records"),
        "figure6": pd.read_csv(folder / "figure6.csv").to_dict("records"),
        "inequality": pd.read_csv(folder / "inequality.csv").to_dict("records"),
    }
    if (folder / "transfer.csv").exists():
        results[key]["transfer"] = pd.read_csv(folder / "transfer.csv").to_dict("records")
    # other parts may have finished meanwhile: merge with what the file holds now
    merged = json.loads(out_path.read_text()) if out_path.exists() else {}
    merged[key] = results[key]
    out_path.write_text(json.dumps(merged, indent=2))
    print("\n".join(lines), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["score", "districts"], required=True)
    parser.add_argument("--sets", default="ms,rgb")
    parser.add_argument("--archs", default="resnet18_half,resnet18")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--world", choices=["berlin", "synthetic"], default="berlin")
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--share-splits", type=int, default=20)
    parser.add_argument("--size", type=int, default=1536)
    parser.add_argument("--n-districts", type=int, default=40)
    parser.add_argument("--indicator", default="population")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.part == "score":
        score_part(args.sets.split(","), args.archs.split(","), args.epochs)
    else:
        districts_part(args)


if __name__ == "__main__":
    main()
