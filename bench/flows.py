"""Benchmark of the flows task (Imagery2Flow, Xu et al. 2025; GMEL; Deep Gravity; issue 12).

Part ``transfer``: the 16 real US counties of ``../shared/data/commuting_od`` (CommutingODGen:
LODES 2018 commuting between census tracts, ACS demographics, OpenStreetMap POIs), read in place.
Leave-counties-out: the counties are dealt into 4 folds (seeded); every model is fitted on 12
counties and scored on each of the 4 it never saw (features scaler and margin model fitted inside
the fold). Per county and mean CPC, CPL, RMSE, Pearson r and fit time on this machine, for the
graph model and every baseline in one run. Constrained models are scored with estimated margins
(a city with no survey) and, beside it, with the county's observed margins (a planner who knows
workers by residence and jobs by workplace).

Part ``synthetic``: the image path (step 1 into step 2). No imagery of the US counties exists here,
so two synthetic worlds (seeds 0 and 1) stand in: districts = regions, a Sentinel-2-like scene,
gravity flows ``T ~ P_i P_j / d^2`` from the hidden district population. Region embeddings come
from the shipped multispectral encoder (``flows embed``); models are fitted on one world and
scored on the other, with (a) no region features (geometry only), (b) image embeddings, (c) the
census population (the reference a survey would give).

Part ``berlin``: step 1 alone on the real Berlin scene: 2 km square regions over the scene,
embedded with the shipped encoder; a ridge regression of log population (Eurostat 1 km grid,
summed per region) on the embeddings, spatially cross-validated (5 column blocks), against the
mean reflectance of each band as the baseline features.

    .venv/bin/python bench/flows.py --part transfer
    .venv/bin/python bench/flows.py --part transfer --models auto,gravity-doubly-power,radiation,gbrt
    .venv/bin/python bench/flows.py --part synthetic
    .venv/bin/python bench/flows.py --part berlin

Results go to ``bench/out/flows_<part>.json`` (updated after each model).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from humanscape.evaluate.flows import cpc
from humanscape.tasks.flows.cities import read_commuting_od
from humanscape.tasks.flows.evaluate import transfer
from humanscape.tasks.flows.model import FlowModel

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"
ENCODER = "simclr_resnet18half_eurosat_ms"

#: label -> FlowModel arguments
MODELS = {
    "auto": {"method": "auto"},
    "gnn": {"method": "gnn"},
    "gnn-cityval": {"method": "gnn", "validation": "cities"},
    "gbrt": {"method": "gbrt"},
    "deepgravity": {"method": "deepgravity"},
    "radiation": {"method": "radiation"},
    **{
        f"gravity-{c}-{d}": {"method": "gravity", "constraint": c, "deterrence": d}
        for c in ("none", "production", "doubly")
        for d in ("power", "exponential")
    },
}


class AutoSelected(FlowModel):
    """``flows fit --method auto`` inside a benchmark fold: the method is chosen on the fold's
    training counties only (each held out in turn among them), then fitted on all of them."""

    chosen: list[str] = []

    def fit(self, cities, y=None, **kwargs):  # type: ignore[no-untyped-def]
        from humanscape.tasks.flows.workflow import select_flow_method

        probe = FlowModel(**{**self.get_params(), "method": "gravity"})
        selection = select_flow_method(probe, cities)
        AutoSelected.chosen.append(selection.chosen)
        self.set_params(method=selection.chosen)
        return FlowModel.fit(self, cities, y, **kwargs)


def _save(part: str, key: str, value: object) -> None:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"flows_{part}.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged[key] = value
    path.write_text(json.dumps(merged, indent=2))


def part_transfer(models: list[str], folds: int, epochs: int) -> None:
    root = SHARED / "commuting_od"
    cities = [read_commuting_od(p) for p in sorted(root.iterdir()) if p.is_dir()]
    print(f"{len(cities)} counties, {sum(c.n for c in cities)} tracts, {folds} folds")
    for label in models:
        spec = MODELS[label]

        def make(spec: dict = spec) -> FlowModel:
            if spec["method"] == "auto":
                return AutoSelected(**spec, epochs=epochs)
            return FlowModel(**spec, epochs=epochs)

        AutoSelected.chosen = []

        t0 = time.time()
        predictions: dict[str, np.ndarray] = {}
        table = transfer(
            cities, make, k=folds, seed=0, observed_margins=True, predictions=predictions
        )
        (OUT / "flows_predictions").mkdir(parents=True, exist_ok=True)
        np.savez_compressed(OUT / "flows_predictions" / f"{label}.npz", **predictions)
        result = {
            "mean_cpc": float(table["cpc"].mean()),
            "std_cpc": float(table["cpc"].std(ddof=0)),
            "mean_cpl": float(table["cpl"].mean()),
            "mean_rmse": float(table["rmse"].mean()),
            "mean_pearson_r": float(table["pearson_r"].mean()),
            "fit_s_per_fold": float(table.groupby("fold")["fit_s"].first().mean()),
            "per_county": dict(zip(table["city"], table["cpc"].round(4), strict=True)),
        }
        line = f"{label:<28} CPC {result['mean_cpc']:.3f} +- {result['std_cpc']:.3f}"
        if "cpc_observed_margins" in table:
            result["mean_cpc_observed_margins"] = float(table["cpc_observed_margins"].mean())
            line += f"  (observed margins {result['mean_cpc_observed_margins']:.3f})"
        line += f"  CPL {result['mean_cpl']:.3f}  r {result['mean_pearson_r']:.3f}"
        line += f"  fit {result['fit_s_per_fold']:.0f} s/fold  ({time.time() - t0:.0f} s)"
        if label == "auto":
            result["chosen_per_fold"] = list(AutoSelected.chosen)
            line += f"  chose {', '.join(AutoSelected.chosen)}"
        print(line, flush=True)
        _save("transfer", label, result)


def _synthetic_city(seed: int, folder: Path, encoder: object, setting: str):  # type: ignore[no-untyped-def]
    import geopandas as gpd

    from humanscape.data.synthetic import SyntheticWorld
    from humanscape.geo.inputs import SceneReader
    from humanscape.tasks.flows.cities import read_flow_table, read_regions
    from humanscape.tasks.flows.workflow import embed_flow_regions

    world = SyntheticWorld(768, 768, seed=seed, n_districts=60)
    districts = world.districts()
    regions = gpd.GeoDataFrame(
        {"id": districts["district"].astype(str)}, geometry=districts.geometry, crs=districts.crs
    )
    if setting == "census":
        regions["population"] = districts["population"].to_numpy()
    path = folder / f"world{seed}_{setting}.gpkg"
    regions.to_file(path)
    flows, _ = world.flows(gamma=2.0, sigma=0.3)
    flows[["origin", "destination", "flow"]].to_csv(folder / f"flows{seed}.csv", index=False)
    city = read_flow_table(folder / f"flows{seed}.csv", read_regions(path, name=f"world{seed}"))
    if setting == "images":
        table = folder / f"emb{seed}.parquet"
        if not table.exists():
            scene = world.write_scene(folder / f"scene{seed}.tif")
            embed_flow_regions(
                path,
                scene,
                encoder,
                table,
                SceneReader(sensor=world.sensor),
                size=32,
                progress=False,
            )
        city = city.with_features(pd.read_parquet(table), source=str(table))
    return city


def part_synthetic(models: list[str], epochs: int) -> None:
    from humanscape.models.registry import load_encoder

    encoder = load_encoder(ENCODER)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for setting in ("geometry", "images", "census"):
            worlds = [_synthetic_city(s, folder, encoder, setting) for s in (0, 1)]
            for label in models:
                scores = []
                for train, test in ((0, 1), (1, 0)):
                    model = FlowModel(**MODELS[label], epochs=epochs).fit(
                        [worlds[train]], progress=False
                    )
                    scores.append(cpc(worlds[test].flows, model.predict(worlds[test])))
                print(
                    f"{setting:<9} {label:<28} CPC on the unseen world {np.mean(scores):.3f} {np.round(scores, 3)}",
                    flush=True,
                )
                _save(
                    "synthetic",
                    f"{setting}/{label}",
                    {"cpc": float(np.mean(scores)), "per_world": scores},
                )


def part_berlin() -> None:
    from sklearn.linear_model import RidgeCV

    from humanscape.data import samples
    from humanscape.models.embed import embed_regions, region_tiles
    from humanscape.models.registry import load_encoder

    encoder = load_encoder(ENCODER)
    cells = samples.berlin_census_cells().rename(columns={"district": "id"})
    scene = samples.berlin_scene(bands=list(encoder.bands))
    t0 = time.time()
    tiles = region_tiles(scene, cells, list(encoder.bands), size=32)
    emb = embed_regions(encoder, tiles)
    seconds = time.time() - t0
    x_emb = emb[[c for c in emb.columns if c.startswith(("mean_e", "std_e"))]].to_numpy()
    x_base = np.stack(
        [
            np.concatenate([np.nanmean(a, axis=(0, 2, 3)), np.nanstd(a, axis=(0, 2, 3))])
            for a in tiles.values()
        ]
    )  # band means and stds over the region's tiles
    y = np.log1p(cells["population"].to_numpy())
    xs = cells.geometry.centroid.x.to_numpy()
    blocks = pd.qcut(xs, 5, labels=False, duplicates="drop")

    def cv_r2(x: np.ndarray) -> float:
        pred = np.empty_like(y)
        for b in np.unique(blocks):
            test = blocks == b
            model = RidgeCV(alphas=np.logspace(-2, 5, 15)).fit(x[~test], y[~test])
            pred[test] = model.predict(x[test])
        return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())

    result = {
        "regions": len(cells),
        "tiles": int(sum(len(a) for a in tiles.values())),
        "embed_s": seconds,
        "r2_log_population_embeddings": cv_r2(x_emb),
        "r2_log_population_band_stats": cv_r2(x_base),
    }
    print(result)
    _save("berlin", "step1", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("transfer", "synthetic", "berlin"), default="transfer")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; use {', '.join(MODELS)}")
    if args.part == "transfer":
        part_transfer(models, args.folds, args.epochs)
    elif args.part == "synthetic":
        part_synthetic(models, args.epochs)
    else:
        part_berlin()


if __name__ == "__main__":
    main()
