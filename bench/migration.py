"""Benchmark of the migration task (Runfola et al. 2022; issue 11).

Part ``real``: the real Mexican municipal table of ``../shared/data/migration_mx`` (874
municipalities of 15 states, 2010 census aggregates, target ``US_MIG_05_10``; ``-1`` = missing).
It is read in place and never copied (IPUMS terms). Five random 80/20 splits that partition the
rows (seeded), the models of Table 2 that need no imagery (signature, dense) and the tree
baselines (hgb, rf) in one run: r2 (coefficient of determination) mean and std, squared Pearson,
MAE, shares within 500 / 1000 migrants, coverage of the 90 % conformal intervals. Then transfer
between states: the 15 states (municipality code // 1000) dealt into 5 groups, each held out once.

Part ``synthetic``: synthetic worlds (seeds 0 and 1; 640 x 640 px, 100 municipalities, 16 px
tiles) whose census table hides the built-up share that drives the outflow (known function with
interactions) while the imagery shows it: the four models of Table 2, where imagery is real signal,
and the default model. With 20 test municipalities per split and a heavy-tailed target, per-split
r2 swings widely; the r2 of all 100 out-of-sample estimates pooled is reported beside it.

Part ``blueprint``: does the learned layout put interacting variables closer than chance? 36
standard-normal variables, the target a sum of four pairwise products plus main effects; the
signature network trained with the annealed SoftSort blueprint; the permutation test of
:func:`humanscape.models.signature.layout_permutation_test` on the final layout, for several seeds.

    .venv/bin/python bench/migration.py --part real --models ensemble,hgb,rf,dense
    .venv/bin/python bench/migration.py --part real --models auto,ensemble,rf,ridge   # issue 23
    .venv/bin/python bench/migration.py --part real --models signature --epochs 60 --no-transfer
    .venv/bin/python bench/migration.py --part synthetic --epochs 40 --seeds 0
    .venv/bin/python bench/migration.py --part blueprint --epochs 30 --rows 1000 --seeds 0,1,2

Results go to ``bench/out/migration_<part>.json`` (updated after each model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from humanscape.tasks.migration.evaluate import cross_fit, outflow_metrics, summarise, transfer
from humanscape.tasks.migration.model import MigrationModel
from humanscape.tasks.migration.table import read_census

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"


def _save(part: str, key: str, value: object) -> None:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"migration_{part}.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged[key] = value
    path.write_text(json.dumps(merged, indent=2))


def _line(name: str, s: dict) -> str:
    return (
        f"{name:<18} r2 {s['r2']:.3f} +- {s['r2_std']:.3f}  pearson_r2 {s['pearson_r2']:.3f}  "
        f"MAE {s['mae']:.1f}  w500 {s['within_500']:.3f}  w1000 {s['within_1000']:.3f}  "
        f"cov90 {s['coverage']:.3f}"
    )


class AutoSelected(MigrationModel):
    """``migration fit --method auto`` inside a benchmark fold: the candidates are scored on the
    fold's training rows only (folds of whole states, as the table has states), then the chosen
    one is fitted on them; ``chosen`` collects what each fit kept."""

    chosen: list[str] = []

    def fit(self, table, images=None, **kwargs):  # type: ignore[no-untyped-def]
        from humanscape.tasks.migration.workflow import select_method

        probe = MigrationModel(**{**self.get_params(), "method": "auto"})
        selection = select_method(probe, table, progress=False)
        AutoSelected.chosen.append(selection.chosen)
        self.set_params(method=selection.chosen)
        return MigrationModel.fit(self, table, images, **kwargs)


def real(models: list[str], epochs: int, skip_transfer: bool) -> None:
    path = SHARED / "migration_mx" / "mexico_municipal_migration.csv"
    table = read_census(path, id_column="sending", target="US_MIG_05_10", missing=-1)
    table.groups = (table.ids.astype(int) // 1000).astype(str)  # the state of each municipality
    print(f"{len(table)} municipalities, {table.features.shape[1]} census columns; {table.notes}")
    for name in models:
        t0 = time.time()

        def make(s: int, name: str = name) -> MigrationModel:
            if name == "auto":
                return AutoSelected("auto", epochs=epochs, patience=20, seed=s)
            return MigrationModel(name, epochs=epochs, patience=20, seed=s)

        AutoSelected.chosen = []
        fit = cross_fit(make, table, n_splits=5, seed=0, importance=name == "ensemble")
        s = summarise(fit.folds)
        p = fit.predictions
        pooled = outflow_metrics(p["observed"], p["prediction"], p["lower"], p["upper"])
        print(_line(name, s), f"pooled r2 {pooled['r2']:.3f}", f"({time.time() - t0:.0f} s)")
        result = {
            "random": s,
            "pooled": pooled,
            "folds": fit.folds.to_dict("records"),
            "seconds": time.time() - t0,
        }
        if fit.importance is not None:
            result["importance_top10"] = fit.importance.head(10).to_dict("records")
        _save("real", name, result)
        if not skip_transfer:
            tr = transfer(make, table, n_splits=5, seed=0)
            ts = summarise(tr.drop(columns=["held_out"]))
            print(_line(f"  transfer {name}", ts), flush=True)
            result["transfer"] = ts
            result["transfer_tests"] = tr.to_dict("records")
        if name == "auto":
            result["chosen_per_fit"] = list(AutoSelected.chosen)
            print(f"  auto chose: {', '.join(AutoSelected.chosen)}", flush=True)
        _save("real", name, result)


def synthetic(seeds: list[int], models: list[str], epochs: int, size: int, n: int) -> None:
    from humanscape.data.synthetic import SyntheticWorld
    from humanscape.data.synthetic_census import write_census_inputs
    from humanscape.tasks.migration.imagery import read_municipal_images

    for seed in seeds:
        folder = OUT / f"migration_world_{seed}_{size}_{n}"
        if not (folder / "tiles" / "chips.csv").exists():
            world = SyntheticWorld(size, size, seed=seed, n_districts=n)
            write_census_inputs(world, folder, tile=16, stride=16)
        table = read_census(
            folder / "census.csv",
            id_column="municipality",
            target="outflow",
            drop_text=True,
            group_column="region",
        )
        images = read_municipal_images(
            folder / "tiles" / "chips.csv", id_column="municipality", progress=False
        )
        print(f"world {seed}: {len(table)} municipalities, {len(images.tiles)} tiles")
        for name in models:
            t0 = time.time()

            def make(s: int, name: str = name) -> MigrationModel:
                return MigrationModel(name, epochs=epochs, patience=20, max_tiles=8, seed=s)

            fit = cross_fit(make, table, images if "imagery" in name else None, n_splits=5)
            s = summarise(fit.folds)
            p = fit.predictions
            pooled = outflow_metrics(p["observed"], p["prediction"], p["lower"], p["upper"])
            print(
                _line(f"w{seed} {name}", s),
                f"pooled r2 {pooled['r2']:.3f} pearson_r2 {pooled['pearson_r2']:.3f}",
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
            _save(
                "synthetic",
                f"world{seed}_{name}",
                {"random": s, "pooled": pooled, "seconds": time.time() - t0},
            )


def blueprint(seeds: list[int], epochs: int, n: int) -> None:
    import torch

    from humanscape.models.signature import layout_permutation_test, pair_distance
    from humanscape.models.training import fit_module
    from humanscape.tasks.migration.nets import MigrationNet, RowDataset

    a = 36
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, a)).astype(np.float32)
    y = sum(x[:, i] * x[:, j] + 0.5 * x[:, i] for i, j in pairs) + 0.1 * rng.normal(size=n)
    y = y.astype(np.float32)
    rows = np.arange(n)
    for seed in seeds:
        t0 = time.time()
        torch.manual_seed(seed)
        net = MigrationNet("signature", a, seed=seed, anneal_epochs=int(0.8 * epochs))
        start = net.signature.layout()
        fit_module(net, RowDataset(x, y, rows), epochs=epochs, batch_size=64, progress=False)
        test = layout_permutation_test(net.signature.layout(), pairs, n_permutations=9999)
        changed = float(np.mean(np.asarray(net.layouts[-1]) != start))
        result = {
            "start_distance": pair_distance(start, pairs),
            **test,
            "cells_changed": changed,
            "final_mae": float(np.mean(np.abs(net.predict_rows(x) - y))),
            "seconds": time.time() - t0,
        }
        print(f"seed {seed}: {result}", flush=True)
        _save("blueprint", f"seed{seed}", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["real", "synthetic", "blueprint"], default="real")
    parser.add_argument("--models", default=None, help="comma-separated models")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--municipalities", type=int, default=100)
    parser.add_argument("--no-transfer", action="store_true")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the blueprint test")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.part == "real":
        models = (args.models or "ensemble,hgb,rf,dense,signature").split(",")
        real(models, args.epochs, args.no_transfer)
    elif args.part == "synthetic":
        models = (args.models or "ensemble,dense,signature,imagery,signature+imagery").split(",")
        synthetic(seeds, models, args.epochs, args.size, args.municipalities)
    else:
        blueprint(seeds, args.epochs, args.rows)


if __name__ == "__main__":
    main()
