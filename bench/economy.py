"""Benchmark of the economy task on real data (Park et al. 2022; issue 10).

Part ``score``: the hyperlocal score model on the real EuroSAT chips of ``../shared/data``
(classes mapped to uninhabited / rural / urban as in its README), held out by file number: chips
whose number is a multiple of 5 are the test set (the shipped SimCLR encoders never saw them), the
rest train (their own early-stopping split is carved out of them). At the true class balance of
EuroSAT (3 urban, 4 rural, 3 uninhabited classes). Metrics: 3-class accuracy of eq. 4 and
Spearman between score and level order, against a random forest on colour statistics (per-band
mean, std, 10/50/90th percentiles; expected level of its class probabilities as its score) in the
same run. Sets: ``rgb`` (8,000 RGB JPEGs), ``ms`` (469 13-band L1C chips, bands R, G, B, NIR).

Part ``districts``: district indicators, 100 random 80/20 splits (R2 on the original scale,
mean +- std), the full model, its ablations and the baselines of the paper's Table 1, the training
share 0.2 .. 0.8 with and without district augmentation (Figure 6), national / within-district
Gini, transfer by Spearman. On the real Berlin scene (census 1 km cells as districts, 3 x 3 tiles
of 64 px inside each, the real population as indicator) and on synthetic worlds (Voronoi districts,
population and GDP following a power law: known truth).

    .venv/bin/python bench/economy.py --part score --sets ms,rgb
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

from humanscape.data.chiptable import read_chips
from humanscape.tasks.economy.ordinal import EUROSAT_LEVELS, LEVELS, Thresholds, level_targets
from humanscape.tasks.economy.score import ScoreModel, score_metrics

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
        for arch in configs:
            t0 = time.time()
            model = ScoreModel(arch=arch, bands=bands, epochs=epochs).fit(
                images[train], targets[train], units=unit, progress=False
            )
            metrics = score_metrics(model.predict(images[test]), levels[test], th)
            metrics |= {
                "seconds": round(time.time() - t0, 1),
                "epochs_run": model.epochs_run_ + 1,
                "validation": model.validation_,
            }
            res[arch] = metrics
            print(kind, arch, metrics, flush=True)
            results[kind] = res
            out_path.write_text(json.dumps(results, indent=2))
        results[kind] = res
        out_path.write_text(json.dumps(results, indent=2))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["score", "districts"], required=True)
    parser.add_argument("--sets", default="ms,rgb")
    parser.add_argument("--archs", default="resnet18_half,resnet18")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--world", choices=["berlin", "synthetic"], default="berlin")
    parser.add_argument("--splits", type=int, default=100)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.part == "score":
        score_part(args.sets.split(","), args.archs.split(","), args.epochs)
    else:
        from bench_economy_districts import districts_part  # noqa: F401  (added below)


if __name__ == "__main__":
    main()
