"""Benchmark of the encoders: linear-probe accuracy on held-out real EuroSAT chips, and throughput.

Protocol (Chen et al. 2020, Sec. 4.2): freeze the encoder, embed every chip, fit a logistic
regression on the chips used for pretraining, report accuracy on held-out chips. The split is by
file number: chips with ``number % 5 == 0`` are held out and were never seen in pretraining
(``scripts/train_encoders.py`` uses the same rule). Compared in one run:

- the shipped SimCLR encoder (``humanscape.models.registry``) with its embedding recipe (input
  resampled x2, last three stages pooled and concatenated, mean over 90-degree rotations),
- the same weights embedded plainly (input x1, last stage only: the textbook linear probe),
- the same architecture randomly initialised, with the same recipe and normalisation,
- random convolutional features (MOSAIKS, Rolf et al. 2021; K = 1024 filters -> 2048 features).

Run on EuroSAT RGB (8,000 chips, 10 classes) and EuroSAT MS (469 chips, 13 bands). Throughput is
chips per second on the machine's cores (torch threads = cores).

    .venv/bin/python bench/encoders.py --data ../shared/data [--only rgb|ms]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_encoders import load_ms, load_rgb

from humanscape.evaluate.probe import linear_probe
from humanscape.models.embed import embed_array
from humanscape.models.random_features import RandomConvFeatures
from humanscape.models.registry import load_encoder


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def evaluate(
    name: str, images: np.ndarray, labels: np.ndarray, held: np.ndarray, shipped: str
) -> dict:
    images = images.astype(np.float32)
    rows = {}
    enc = load_encoder(shipped)
    recipe = f"x{enc.input_scale:g}, {enc.pooling}, {enc.orientations} orientations"
    plain = enc.plain()
    torch.manual_seed(0)
    rand = enc.untrained()
    for label, model in (
        (f"shipped SimCLR ({recipe})", enc),
        ("shipped SimCLR, plain (x1, last, 1 orientation)", plain),
        (f"same architecture, random init ({recipe})", rand),
    ):
        feats, sec = timed(embed_array, model, images, batch_size=256)
        rows[label] = {
            "accuracy": linear_probe(feats[~held], labels[~held], feats[held], labels[held]),
            "chips_per_s": len(images) / sec,
            "dims": feats.shape[1],
        }
    scaled = (images - enc.mean.numpy()) / enc.std.numpy()
    rcf = RandomConvFeatures(num_filters=1024, seed=0).fit(scaled[~held])
    feats, sec = timed(rcf.transform, scaled)
    rows["random conv features (MOSAIKS)"] = {
        "accuracy": linear_probe(feats[~held], labels[~held], feats[held], labels[held]),
        "chips_per_s": len(images) / sec,
        "dims": feats.shape[1],
    }
    for row in rows.values():
        row["accuracy"] = round(row["accuracy"], 4)
        row["chips_per_s"] = round(row["chips_per_s"], 1)
    print(f"{name}: train {int((~held).sum())}, held-out {int(held.sum())}", flush=True)
    for k, v in rows.items():
        print(f"  {k:<44} {v}", flush=True)
    return {
        "n_train": int((~held).sum()),
        "n_test": int(held.sum()),
        "rows": rows,
        "shipped": shipped,
        "shipped_metadata": enc.metadata,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/encoders.json"))
    parser.add_argument("--only", choices=["rgb", "ms"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict = {"torch_threads": torch.get_num_threads()}
    if args.only in (None, "rgb"):
        results["eurosat_rgb"] = evaluate(
            "EuroSAT RGB", *load_rgb(args.data), shipped="simclr_resnet18half_eurosat_rgb"
        )
    if args.only in (None, "ms"):
        results["eurosat_ms"] = evaluate(
            "EuroSAT MS", *load_ms(args.data), shipped="simclr_resnet18half_eurosat_ms"
        )
    out = args.out if args.only is None else args.out.with_stem(f"{args.out.stem}_{args.only}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("\n| data | featuriser | linear-probe accuracy | dims | chips/s |")
    print("|---|---|---|---|---|")
    for data in ("eurosat_rgb", "eurosat_ms"):
        if data not in results:
            continue
        for name, row in results[data]["rows"].items():
            print(
                f"| {data} | {name} | {row['accuracy']:.3f} | {row['dims']} | {row['chips_per_s']} |"
            )


if __name__ == "__main__":
    main()
