"""Benchmark of settlement mapping on real data: the Berlin scene with OSM residential polygons.

Task: residential (OSM ``fclass == residential``) vs everything else, one Sentinel-2 L1C date
(2017-02-16), spatial block CV (2 km checkerboard; polygons and 500 m negative blocks kept whole).
Random forest with the authors' setting (800 trees, max_depth 12, min_samples_split 15,
min_samples_leaf 2) on:

- all features (12 bands + 10 indices) vs raw bands only (the baseline), each
- without and with texture (variance, GLCM contrast/homogeneity of red, nir, swir1; 7 x 7);

plus the L1 logistic regression on all features. Reported: PR-AUC and precision at the top 10 %,
pixel and settlement level, pooled over the folds; and the throughput of feature extraction and of
prediction in megapixels per second.

    .venv/bin/python bench/settlements.py          # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from humanscape.data import samples
from humanscape.tasks.settlements.evaluate import cross_validate, make_splits
from humanscape.tasks.settlements.features import settlement_features
from humanscape.tasks.settlements.model import SettlementClassifier, feature_columns
from humanscape.tasks.settlements.predict import predict_probability
from humanscape.tasks.settlements.sampling import LabelSpec, sample_pixels


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("bench/out/settlements"))
    parser.add_argument("--trees", type=int, default=800)
    parser.add_argument("--negatives", type=int, default=30_000)
    parser.add_argument(
        "--part",
        choices=["all", "accuracy", "throughput"],
        default="all",
        help="throughput numbers need an otherwise idle machine; accuracy does not",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    scene = samples.berlin_scene()
    megapixels = scene.width * scene.height / 1e6
    timings = {}
    t = time.perf_counter()
    plain = settlement_features([scene], args.work / "features.tif", progress=False)
    timings["features_mpx_per_s"] = megapixels / (time.perf_counter() - t)
    t = time.perf_counter()
    textured = settlement_features(
        [scene], args.work / "features_texture.tif", texture=True, progress=False
    )
    timings["features_with_texture_mpx_per_s"] = megapixels / (time.perf_counter() - t)

    if args.part == "throughput":
        sample = sample_pixels(
            str(plain),
            LabelSpec(samples.berlin_landuse(), "fclass", ["residential"]),
            negatives_per_group=args.negatives,
        )
        clf = SettlementClassifier("rf", n_estimators=args.trees, n_jobs=-1).fit(
            sample, sample["label"]
        )
        t = time.perf_counter()
        predict_probability(clf, plain, args.work / "prob.tif", progress=False)
        timings["predict_rf800_mpx_per_s"] = megapixels / (time.perf_counter() - t)
        print(json.dumps({k: round(v, 3) for k, v in timings.items()}, indent=2))
        (args.work.parent / "settlements_throughput.json").write_text(json.dumps(timings, indent=2))
        return

    labels = LabelSpec(samples.berlin_landuse(), "fclass", ["residential"], "osm_landuse.gpkg")
    sample = sample_pixels(str(textured), labels, negatives_per_group=args.negatives)
    balance = sample.attrs["balance"].iloc[0].to_dict()
    splits = make_splits(sample, block_size=2000)
    columns = feature_columns(sample)
    texture_cols = [
        c for c in columns if c.endswith(("_var", "_glcm_contrast", "_glcm_homogeneity"))
    ]
    raw = [c for c in columns if c.split("_", 1)[1] in scene.band_names]
    indices = [c for c in columns if c not in raw and c not in texture_cols]
    configs = {
        "RF raw bands (baseline)": ("rf", raw),
        "RF bands + indices (paper)": ("rf", raw + indices),
        "RF raw bands + texture": ("rf", raw + texture_cols),
        "RF bands + indices + texture": ("rf", raw + indices + texture_cols),
        "LR (L1) bands + indices": ("lr", raw + indices),
    }
    rows = []
    for name, (model, feats) in configs.items():
        t = time.perf_counter()
        clf = SettlementClassifier(model, features=feats, n_estimators=args.trees, n_jobs=-1)
        table = cross_validate(sample, clf, splits=splits).table()
        pooled = table[table["fold"] == "pooled"].iloc[0]
        folds = table[table["fold"] != "pooled"]
        rows.append(
            {
                "config": name,
                "n_features": len(feats),
                "pr_auc_pixel": pooled["pr_auc_pixel"],
                "pr_auc_settlement": pooled["pr_auc_settlement"],
                "precision_top10_pixel": pooled["precision_top10_pixel"],
                "precision_top10_settlement": pooled["precision_top10_settlement"],
                "pr_auc_pixel_by_fold": [round(v, 3) for v in folds["pr_auc_pixel"]],
                "cv_seconds": round(time.perf_counter() - t, 1),
            }
        )
        print(rows[-1], flush=True)

    if args.part == "all":
        clf = SettlementClassifier("rf", features=raw + indices, n_estimators=args.trees, n_jobs=-1)
        clf.fit(sample, sample["label"])
        t = time.perf_counter()
        predict_probability(clf, plain, args.work / "prob.tif", progress=False)
        timings["predict_rf800_mpx_per_s"] = megapixels / (time.perf_counter() - t)
    else:  # measured on an idle machine with --part throughput
        timings = {}
    timings = {k: round(v, 3) for k, v in timings.items()}
    result = {
        "scene_megapixels": megapixels,
        "class_balance": balance,
        "splits": [s.describe() for s in splits],
        "rows": rows,
        "timings": timings,
    }
    (args.work.parent / "settlements.json").write_text(json.dumps(result, indent=2, default=float))
    frame = pd.DataFrame(rows).drop(columns=["pr_auc_pixel_by_fold", "cv_seconds"])
    print("\n" + frame.round(3).to_string(index=False))
    print(
        json.dumps(
            {"splits": result["splits"], "balance": balance, **timings}, indent=2, default=float
        )
    )


if __name__ == "__main__":
    main()
