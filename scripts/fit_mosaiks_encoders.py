"""Fit the shipped random-feature encoders (MOSAIKS, Rolf et al. 2021) on real EuroSAT chips.

Random convolutional features are not trained: K = 1024 patches of 3 x 3 pixels are drawn from the
training chips (file number % 5 != 0, the rule of ``scripts/train_encoders.py``), ZCA-whitened and
used as filters. Each encoder normalises its input with the statistics of the shipped SimCLR
encoder of the same data (same bands, same units), so the two are interchangeable behind
``--encoder``. The held-out linear probe (``bench/encoders.py``) is written into the metadata.

    .venv/bin/python scripts/fit_mosaiks_encoders.py --data ../shared/data   # about 15 minutes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_encoders import load_ms, load_rgb

from humanscape.evaluate.probe import linear_probe
from humanscape.models.embed import embed_array
from humanscape.models.encoder import Encoder
from humanscape.models.registry import WEIGHTS_DIR, load_encoder

K = 1024
SOURCES = {
    "rgb": (load_rgb, "simclr_resnet18half_eurosat_rgb", "EuroSAT RGB (Helber et al. 2019)"),
    "ms": (load_ms, "simclr_resnet18half_eurosat_ms", "EuroSAT MS 13 bands (Helber et al. 2019)"),
}


def fit(kind: str, data: Path) -> Path:
    load, simclr, source = SOURCES[kind]
    images, labels, held = load(data)
    images = images.astype(np.float32)
    like = load_encoder(simclr)
    encoder = Encoder(
        f"mosaiks_{K}",
        like.bands,
        like.mean.flatten().tolist(),
        like.std.flatten().tolist(),
        units=like.units,
    )
    scaled = (images - like.mean.numpy()) / like.std.numpy()
    with torch.no_grad():
        encoder.backbone.body.fit(scaled[~held], seed=0)
    feats = embed_array(encoder.eval(), images)  # batches sized to the memory budget
    accuracy = linear_probe(feats[~held], labels[~held], feats[held], labels[held])
    encoder.metadata = {
        "method": f"random convolutional features (MOSAIKS, Rolf et al. 2021): K = {K} ZCA-whitened "
        "3 x 3 patches drawn from the training chips, bias 1, eps 0.01; 2K features",
        "training_data": f"{source}, {int((~held).sum())} chips with file number % 5 != 0",
        "epochs": 0,
        "seed": 0,
        "licence": "MIT (filters); EuroSAT data MIT",
        "linear_probe_accuracy": round(float(accuracy), 4),
        "linear_probe": f"logistic regression on frozen, standardised features; train "
        f"{int((~held).sum())} chips, test {int(held.sum())} held-out chips (file number % 5 == "
        "0), 10 classes (bench/encoders.py)",
    }
    out = WEIGHTS_DIR / f"mosaiks{K}_eurosat_{kind}"
    encoder.save(out)
    print(f"{kind}: linear probe {accuracy:.4f} -> {out}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--only", choices=list(SOURCES), default=None)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for kind in SOURCES if args.only is None else [args.only]:
        fit(kind, args.data)


if __name__ == "__main__":
    main()
