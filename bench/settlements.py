"""Benchmark of settlement mapping on real data: the Berlin scene with OpenStreetMap land use.

Task: residential (OSM ``fclass == residential``) vs everything else, one Sentinel-2 L1C date
(2017-02-16). Every number is a spatial cross-validation (2 km blocks in 4 folds, 250 m buffer
between training and held-out data), scored at the **true class balance** of the held-out blocks.

Part ``polygons`` (the OSM polygons as labels; held out: every pixel of the held-out blocks,
positive inside a residential polygon, about 2.6 % of them):

- *before* (the paper's sampling, the baseline): residential pixels as positives, 30,000 negatives
  from random 500 m blocks without residential land;
- *after*: the same plus the labelled non-residential land use (farm, meadow, forest, ...) as
  negatives, with the random-block complement weighted 1 or 0.25.

Part ``points`` (what a user with a land-cover point sample has: 1,000 random points labelled by
the OSM class under them, 5 draws; held out: the points of the held-out blocks):

- plain random forest on the labelled points (the baseline a user would write);
- the paper's sampling (positive points + random-block negatives);
- humanscape's default (``settlements fit``: random forest, labelled points as negatives, the
  random-block weight chosen by an inner spatial CV);
- ``settlements fit --model auto`` (the model chosen by the inner CV as well).

Part ``models``: the settlement classifiers at equal footing (texture features, labelled land use
as negatives, complement weight 1, the same spatial folds): the paper's 800-tree forest, a 200-tree
forest and histogram gradient boosting from 300 rounds of 31-leaf trees down to 30 rounds of
15-leaf trees (``MODEL_SETUPS``; ``--only NAME...`` runs a subset). Pooled held-out PR-AUC at the true
balance, and the model's prediction speed alone (Mpx/s on one core, 1 Mpx of real feature pixels).

Part ``throughput``: feature extraction and prediction speed in megapixels per second.

    .venv/bin/python bench/settlements.py --part polygons     # about 25 minutes on 2 cores
    .venv/bin/python bench/settlements.py --part points       # about 10 minutes
    .venv/bin/python bench/settlements.py --part setups --trees 200   # about 5 minutes (issue 23)
    .venv/bin/python bench/settlements.py --part models       # about 25 minutes
    .venv/bin/python bench/settlements.py --part throughput   # on an otherwise idle machine
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from humanscape.data import samples
from humanscape.tasks.settlements.evaluate import cross_validate, held_out, make_folds
from humanscape.tasks.settlements.features import settlement_features
from humanscape.tasks.settlements.model import (
    MODELS,
    SettlementClassifier,
    feature_columns,
    select_model,
)
from humanscape.tasks.settlements.predict import predict_probability
from humanscape.tasks.settlements.sampling import LabelSpec, label_rasters, sample_pixels

BLOCK, FOLDS, BUFFER = 2000.0, 4, 250.0


def features(work: Path, texture: bool) -> Path:
    with samples.berlin_scene() as scene:
        name = "features_texture.tif" if texture else "features.tif"
        return settlement_features([scene], work / name, texture=texture, progress=False)


def polygons(work: Path, trees: int, negatives: int) -> list[dict]:
    landuse = samples.berlin_landuse()
    residential = landuse[landuse["fclass"] == "residential"]
    setups = {
        "before: paper's random-block negatives": (LabelSpec(residential, source="osm"), 1.0),
        "after: + labelled land use, complement weight 1": (
            LabelSpec(landuse, "fclass", ["residential"], "osm"),
            1.0,
        ),
        "after: + labelled land use, complement weight 0.25": (
            LabelSpec(landuse, "fclass", ["residential"], "osm"),
            0.25,
        ),
    }
    rows = []
    for texture in (False, True):
        stack = features(work, texture)
        for name, (spec, weight) in setups.items():
            rasters = label_rasters(stack, spec)
            sample = sample_pixels(
                str(stack), spec, negatives_per_group=negatives, rasters=rasters, seed=0
            )
            folds = make_folds(rasters, block_size=BLOCK, n_folds=FOLDS, buffer=BUFFER, seed=0)
            for model in ("rf", "lr"):
                clf = SettlementClassifier(
                    model, n_estimators=trees, complement_weight=weight, n_jobs=-1
                )
                t = time.perf_counter()
                result = cross_validate(stack, sample, clf, rasters, folds, max_test_pixels=200_000)
                table = result.table().set_index("fold")
                pooled = table.loc["pooled"]
                rows.append(
                    {
                        "features": "bands + indices" + (" + texture" if texture else ""),
                        "sampling": name,
                        "model": model,
                        "n_train": len(sample),
                        "prevalence_held_out": round(float(pooled["prevalence"]), 4),
                        "pr_auc_pixel": float(pooled["pr_auc_pixel"]),
                        "pr_auc_settlement": float(pooled["pr_auc_settlement"]),
                        "precision_top10_pixel": float(pooled["precision_top10_pixel"]),
                        "pr_auc_pixel_by_fold": [
                            round(float(v), 3)
                            for k, v in table["pr_auc_pixel"].items()
                            if k != "pooled"
                        ],
                        "seconds": round(time.perf_counter() - t, 1),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def _points(landuse: gpd.GeoDataFrame, grid_bounds, n: int, seed: int) -> gpd.GeoDataFrame:
    """``n`` random points over the scene that fall in a land-use polygon, labelled by it."""
    rng = np.random.default_rng(seed)
    left, bottom, right, top = grid_bounds
    picked = []
    while sum(len(p) for p in picked) < n:
        xy = rng.uniform((left, bottom), (right, top), (4 * n, 2))
        pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=landuse.crs)
        joined = gpd.sjoin(pts, landuse[["fclass", "geometry"]], predicate="within")
        picked.append(joined[~joined.index.duplicated()][["fclass", "geometry"]])
    return gpd.GeoDataFrame(pd.concat(picked).head(n), crs=landuse.crs).reset_index(drop=True)


def _point_draws(work: Path, draws: int, n_points: int) -> Iterator[tuple[int, pd.DataFrame, list]]:
    """Per draw (seed): the sample of ``n_points`` random labelled points plus random-block
    negatives, and its spatial folds as ``(train, test, y, labelled_train, rasters)`` (folds whose
    held-out part is empty or whose training part has one class are left out)."""
    landuse = samples.berlin_landuse()
    stack = features(work, texture=True)
    for seed in range(draws):
        pts = _points(landuse, samples.berlin_scene().grid.bounds, n_points, seed)
        full = LabelSpec(pts, "fclass", ["residential"], "points")
        rasters = label_rasters(stack, full)
        sample = sample_pixels(
            str(stack), full, negatives_per_group=30_000, rasters=rasters, seed=seed
        )
        folds = make_folds(rasters, block_size=BLOCK, n_folds=FOLDS, buffer=BUFFER, seed=seed)
        parts = []
        for k in range(len(folds)):
            split = folds.split(sample["x"].to_numpy(), sample["y"].to_numpy(), k)
            train = sample.iloc[split.train]
            test = held_out(stack, rasters, sample, folds, k, points=True)
            if test.empty or train["label"].nunique() < 2:
                continue
            lab = train[train["kind"].isin(["positive", "labelled"])]
            parts.append((train, test, test["label"].to_numpy(), lab, rasters))
        yield seed, sample, parts


def _plain_forest(lab: pd.DataFrame, test: pd.DataFrame, trees: int) -> np.ndarray:
    """The baseline a user writes: a random forest on the labelled points' feature values."""
    cols = feature_columns(lab)
    plain = RandomForestClassifier(trees, n_jobs=-1, random_state=0)
    plain.fit(lab[cols].fillna(0), lab["label"])
    return plain.predict_proba(test[cols].fillna(0))[:, 1]


def _pooled_ap(pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    """PR-AUC of each method over the held-out points of every fold of a draw, pooled."""
    return {
        name: float(
            average_precision_score(
                np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts])
            )
        )
        for name, parts in pooled.items()
    }


def points(work: Path, trees: int, draws: int, n_points: int) -> list[dict]:
    scores: dict[str, list[float]] = {}
    prevalence = []
    for seed, sample, parts in _point_draws(work, draws, n_points):
        labelled = sample["kind"].isin(["positive", "labelled"])
        paper = sample[sample["kind"] != "labelled"]  # positives + random-block negatives
        pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for train, test, y, lab, rasters in parts:
            pooled.setdefault("plain RF on the labelled points (baseline)", []).append(
                (y, _plain_forest(lab, test, trees))
            )
            old = train[train.index.isin(paper.index)]
            clf = SettlementClassifier("rf", n_estimators=trees, n_jobs=-1).fit(old, old["label"])
            pooled.setdefault("paper sampling (positives + random blocks), RF", []).append(
                (y, clf.predict_proba(test)[:, 1])
            )
            inner = make_folds(rasters, block_size=BLOCK, n_folds=3, buffer=BUFFER, seed=seed + 1)
            inner_splits = inner.splits(train["x"].to_numpy(), train["y"].to_numpy())
            base = SettlementClassifier(n_estimators=trees, n_jobs=-1)
            for name, models in (
                ("settlements fit --method hgb (random-block weight by spatial CV)", ["hgb"]),
                ("settlements fit --method rf (random-block weight by spatial CV)", ["rf"]),
                ("settlements fit --method auto (model and weight by spatial CV)", list(MODELS)),
            ):
                best, _ = select_model(train, inner_splits, base=base, models=models)
                pooled.setdefault(name, []).append((y, best.predict_proba(test)[:, 1]))
        for name, value in _pooled_ap(pooled).items():
            scores.setdefault(name, []).append(value)
        prevalence.append(float(sample.loc[labelled, "label"].mean()))
        print(seed, {k: round(v[-1], 3) for k, v in scores.items()}, flush=True)
    return [
        {
            "method": name,
            "pr_auc_mean": float(np.mean(v)),
            "pr_auc_std": float(np.std(v)),
            "pr_auc_by_draw": [round(x, 3) for x in v],
            "prevalence": float(np.mean(prevalence)),
        }
        for name, v in scores.items()
    ]


POINT_SETUPS: dict[str, dict | None] = {
    "plain RF on the labelled points (baseline)": None,
    "rf, complement weight 0": {"method": "rf", "complement_weight": 0.0},
    "rf, unlimited depth, weight 0": {
        "method": "rf",
        "complement_weight": 0.0,
        "max_depth": None,
        "min_samples_split": 2,
        "min_samples_leaf": 1,
    },
    "rf, complement weight 1": {"method": "rf", "complement_weight": 1.0},
    "hgb, complement weight 0": {"method": "hgb", "complement_weight": 0.0},
    "hgb, complement weight 0.25": {"method": "hgb", "complement_weight": 0.25},
    "hgb, complement weight 1": {"method": "hgb", "complement_weight": 1.0},
}


def setups(work: Path, trees: int, draws: int, n_points: int) -> list[dict]:
    """The point sample of ``points`` with fixed settings, no inner selection (issue 23: why the
    boosting default lost to a plain forest on labelled points): each setup against the plain
    forest, same draws, same folds."""
    scores: dict[str, list[float]] = {name: [] for name in POINT_SETUPS}
    for seed, _, parts in _point_draws(work, draws, n_points):
        pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in POINT_SETUPS}
        for train, test, y, lab, _ in parts:
            for name, params in POINT_SETUPS.items():
                if params is None:
                    p = _plain_forest(lab, test, trees)
                else:
                    clf = SettlementClassifier(n_estimators=trees, n_jobs=-1, **params)
                    p = clf.fit(train, train["label"]).predict_proba(test)[:, 1]
                pooled[name].append((y, p))
        for name, value in _pooled_ap(pooled).items():
            scores[name].append(value)
        print(seed, {k: round(v[-1], 3) for k, v in scores.items()}, flush=True)
    return [
        {
            "method": name,
            "pr_auc_mean": float(np.mean(v)),
            "pr_auc_by_draw": [round(x, 3) for x in v],
        }
        for name, v in scores.items()
    ]


MODEL_SETUPS = {
    "rf 800 trees (paper)": {"model": "rf", "n_estimators": 800},
    "rf 200 trees": {"model": "rf", "n_estimators": 200},
    # every parameter spelled out: the classifier's defaults are the last setup but one
    "hgb 300 rounds": {"model": "hgb", "max_iter": 300, "learning_rate": 0.1, "max_leaf_nodes": 31},
    "hgb 100 rounds": {"model": "hgb", "max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31},
    "hgb 100 rounds, 15 leaves": {
        "model": "hgb",
        "max_iter": 100,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
    },
    "hgb 50 rounds, 15 leaves, rate 0.2": {
        "model": "hgb",
        "max_iter": 50,
        "max_leaf_nodes": 15,
        "learning_rate": 0.2,
    },
    "hgb 30 rounds, 15 leaves, rate 0.3": {
        "model": "hgb",
        "max_iter": 30,
        "max_leaf_nodes": 15,
        "learning_rate": 0.3,
    },
}


def models(work: Path, negatives: int, only: list[str] | None = None) -> list[dict]:
    landuse = samples.berlin_landuse()
    spec = LabelSpec(landuse, "fclass", ["residential"], "osm")
    stack = features(work, texture=True)
    rasters = label_rasters(stack, spec)
    sample = sample_pixels(str(stack), spec, negatives_per_group=negatives, rasters=rasters, seed=0)
    folds = make_folds(rasters, block_size=BLOCK, n_folds=FOLDS, buffer=BUFFER, seed=0)
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(stack) as src:
        block = src.read(window=Window(0, 0, 1000, 1000))
    pixels = block.reshape(block.shape[0], -1).T
    pixels = pixels[np.isfinite(pixels).any(axis=1)]
    rows = []
    for name, params in MODEL_SETUPS.items():
        if only and name not in only:
            continue
        clf = SettlementClassifier(**params, n_jobs=-1)
        t = time.perf_counter()
        result = cross_validate(stack, sample, clf, rasters, folds, max_test_pixels=200_000)
        seconds = time.perf_counter() - t
        pooled = result.table().set_index("fold").loc["pooled"]
        fitted = SettlementClassifier(**params, n_jobs=1).fit(sample, sample["label"])
        t = time.perf_counter()
        with threadpool_limits(1):  # one core: the engine runs one tile per core
            fitted.predict_proba(pixels)
        rows.append(
            {
                "model": name,
                "pr_auc_pixel": float(pooled["pr_auc_pixel"]),
                "pr_auc_settlement": float(pooled["pr_auc_settlement"]),
                "precision_top10_pixel": float(pooled["precision_top10_pixel"]),
                "prevalence_held_out": round(float(pooled["prevalence"]), 4),
                "predict_mpx_per_s_1core": pixels.shape[0] / 1e6 / (time.perf_counter() - t),
                "cv_seconds": round(seconds, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def throughput(work: Path, trees: int) -> dict[str, float]:
    scene = samples.berlin_scene()
    megapixels = scene.width * scene.height / 1e6
    out = {}
    t = time.perf_counter()
    plain = features(work, texture=False)
    out["features_mpx_per_s"] = megapixels / (time.perf_counter() - t)
    t = time.perf_counter()
    features(work, texture=True)
    out["features_with_texture_mpx_per_s"] = megapixels / (time.perf_counter() - t)
    spec = LabelSpec(samples.berlin_landuse(), "fclass", ["residential"])
    sample = sample_pixels(str(plain), spec, negatives_per_group=30_000)
    clf = SettlementClassifier("rf", n_estimators=trees, n_jobs=-1).fit(sample, sample["label"])
    t = time.perf_counter()
    predict_probability(clf, plain, work / "prob.tif", progress=False)
    out[f"predict_rf{trees}_mpx_per_s"] = megapixels / (time.perf_counter() - t)
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("bench/out/settlements"))
    parser.add_argument(
        "--part",
        choices=["polygons", "points", "setups", "models", "throughput"],
        required=True,
    )
    parser.add_argument("--trees", type=int, default=800)
    parser.add_argument("--negatives", type=int, default=30_000)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--only", nargs="*", help="--part models: only these setups (names)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "polygons":
        result = polygons(args.work, args.trees, args.negatives)
        frame = pd.DataFrame(result).drop(columns=["pr_auc_pixel_by_fold"])
    elif args.part == "points":
        result = points(args.work, args.trees, args.draws, args.points)
    elif args.part == "setups":
        result = setups(args.work, args.trees, args.draws, args.points)
        frame = pd.DataFrame(result).drop(columns=["pr_auc_by_draw"])
    elif args.part == "models":
        result = models(args.work, args.negatives, args.only)
        frame = pd.DataFrame(result)
    else:
        result = throughput(args.work, args.trees)
        frame = pd.DataFrame([result])
    (args.work.parent / f"settlements_{args.part}.json").write_text(
        json.dumps(result, indent=2, default=float)
    )
    print("\n" + frame.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
