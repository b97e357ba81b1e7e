"""Train the encoders humanscape ships: SimCLR on real EuroSAT RGB, then on EuroSAT MS (13 bands).

Reproduces ``src/humanscape/models/weights/simclr_resnet18half_eurosat_rgb`` and
``.../simclr_resnet18half_eurosat_ms``:

    .venv/bin/python scripts/train_encoders.py --only rgb --rgb-epochs 100 --out /tmp/first
    .venv/bin/python scripts/train_encoders.py --rgb-init /tmp/first/simclr_resnet18half_eurosat_rgb \
        --rgb-epochs 120 --ms-epochs 300

(the shipped RGB encoder is 100 epochs, then 120 more in a second cosine cycle: the runs fitted two
sessions of 2 CPU cores; one 220-epoch cycle should do at least as well).

Split (by file number, so that the benchmark's held-out chips are never seen in pretraining):
chips whose number ``n`` has ``n % 5 == 0`` are held out; the rest are used for pretraining and as
the linear probe's training set. The MS encoder starts from the RGB encoder, widened to 13 bands
with the "samescaled" rule (Yeh et al. 2020). Checkpoints go to ``--work`` every epoch and a run
resumes from the last one. Seed 0. On 2 CPU cores the RGB run takes about 36-45 s per epoch.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from humanscape.models import _torch_shim  # noqa: F401  (before lightning / timm / torchvision)

# isort: split
import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image

from humanscape.data.chiptable import read_chip
from humanscape.data.samples import EUROSAT_CLASSES, EUROSAT_MS_BANDS
from humanscape.evaluate.probe import linear_probe
from humanscape.geo.sensors import SENTINEL2_L1C
from humanscape.models.backbones import widen_backbone
from humanscape.models.embed import embed_array
from humanscape.models.encoder import Encoder
from humanscape.models.simclr import SimCLR
from humanscape.models.training import fit_module

S2_ORDER = SENTINEL2_L1C.reflectance_bands  # canonical order: B01..B08, B8A, B09..B12


def number(path: Path) -> int:
    return int(re.search(r"_(\d+)\.\w+$", path.name).group(1))


def load_rgb(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels, held = [], [], []
    for label, cls in enumerate(EUROSAT_CLASSES):
        for path in sorted((root / "eurosat_rgb" / cls).glob("*.jpg"), key=number):
            images.append(np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1))
            labels.append(label)
            held.append(number(path) % 5 == 0)
    return np.stack(images), np.array(labels), np.array(held)


def load_ms(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels, held = [], [], []
    for label, cls in enumerate(EUROSAT_CLASSES):
        for path in sorted((root / "eurosat_ms" / cls).glob("*.tif"), key=number):
            chip = read_chip(path, sensor="sentinel2_l1c")  # L1C DN -> reflectance, one place
            names = chip.bands or EUROSAT_MS_BANDS
            images.append(chip.data[[names.index(b) for b in S2_ORDER]])
            labels.append(label)
            held.append(number(path) % 5 == 0)
    return np.stack(images), np.array(labels), np.array(held)


def train(module: SimCLR, images: np.ndarray, epochs: int, work: Path, batch_size: int) -> None:
    fit_module(
        module,
        torch.utils.data.TensorDataset(torch.as_tensor(images)),
        epochs=epochs,
        batch_size=batch_size,
        work_dir=work,
        seed=0,
    )


def probe(encoder: Encoder, images: np.ndarray, labels: np.ndarray, held: np.ndarray) -> float:
    feats = embed_array(encoder.eval(), images.astype(np.float32), batch_size=256)
    return linear_probe(feats[~held], labels[~held], feats[held], labels[held])


def probe_both(
    encoder: Encoder, images: np.ndarray, labels: np.ndarray, held: np.ndarray
) -> tuple[float, float]:
    """Linear probe with the encoder's embedding recipe, and with the plain one (1x, last stage)."""
    return probe(encoder, images, labels, held), probe(encoder.plain(), images, labels, held)


RECIPE_NOTE = (
    "embedding = input resampled x{scale:g} (bilinear), {pooling} pooling, mean over "
    "{orientations} orientations; training crops zoom 1-2x (crop area 0.25-1)"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("src/humanscape/models/weights"))
    parser.add_argument("--work", type=Path, default=Path("bench/out/train_encoders"))
    parser.add_argument("--arch", default="resnet18_half")
    parser.add_argument("--rgb-epochs", type=int, default=100)
    parser.add_argument("--ms-epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", choices=["rgb", "ms"], default=None)
    parser.add_argument(
        "--input-scale",
        type=float,
        default=2.0,
        help="embedding recipe: input resampling factor (training crops zoom up to 2x)",
    )
    parser.add_argument("--pooling", choices=["last", "multiscale"], default="multiscale")
    parser.add_argument("--orientations", type=int, choices=[1, 4, 8], default=4)
    parser.add_argument(
        "--rgb-init",
        type=Path,
        default=None,
        help="continue pretraining from this RGB encoder folder (a new cosine cycle of --rgb-epochs)",
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pl.seed_everything(0, workers=True)

    rgb_dir = args.out / f"simclr_{args.arch.replace('_', '')}_eurosat_rgb"
    if args.only in (None, "rgb"):
        images, labels, held = load_rgb(args.data)
        prior_epochs, prior_seconds, schedule = 0, 0, f"{args.rgb_epochs} epochs, one cosine cycle"
        if args.rgb_init is None:
            train_imgs = images[~held].astype(np.float32)
            mean = train_imgs.mean(axis=(0, 2, 3)).tolist()
            std = train_imgs.std(axis=(0, 2, 3)).tolist()
            encoder = Encoder(args.arch, ["red", "green", "blue"], mean, std, units="rgb8")
        else:
            encoder = Encoder.load(args.rgb_init)
            prior_epochs = int(encoder.metadata.get("epochs", 0))
            prior_seconds = int(encoder.metadata.get("train_seconds", 0))
            schedule = encoder.metadata.get("schedule", f"{prior_epochs} epochs")
            if args.rgb_epochs:
                schedule = (
                    f"{prior_epochs} + {args.rgb_epochs} epochs (a second cosine cycle started "
                    "from the first's weights with a fresh optimiser)"
                )
        start = time.time()
        if args.rgb_epochs:  # 0 with --rgb-init: only re-probe and re-save with the recipe
            train(
                SimCLR(encoder, max_epochs=args.rgb_epochs),
                images[~held],
                args.rgb_epochs,
                args.work / "rgb",
                args.batch_size,
            )
        train_seconds = prior_seconds + round(time.time() - start)
        encoder.input_scale, encoder.pooling = args.input_scale, args.pooling
        encoder.orientations = args.orientations
        acc, plain = probe_both(encoder, images, labels, held)
        encoder.metadata = {
            "method": "SimCLR (Chen et al. 2020), NT-Xent tau=0.2, AdamW lr 1e-3 cosine, batch "
            f"{args.batch_size}, SatelliteAugment defaults",
            "training_data": f"EuroSAT RGB (Helber et al. 2019), {int((~held).sum())} chips with file number % 5 != 0",
            "epochs": prior_epochs + args.rgb_epochs,
            "schedule": schedule,
            "seed": 0,
            "licence": "MIT (weights); EuroSAT data MIT",
            "linear_probe_accuracy": round(acc, 4),
            "linear_probe_accuracy_plain": round(plain, 4),
            "embedding": RECIPE_NOTE.format(
                scale=args.input_scale, pooling=args.pooling, orientations=args.orientations
            ),
            "linear_probe": f"logistic regression on frozen features; train {int((~held).sum())} chips, "
            f"test {int(held.sum())} held-out chips (file number % 5 == 0), 10 classes; "
            "'plain' = input x1, last stage only, 1 orientation",
            "train_seconds": train_seconds,
        }
        encoder.save(rgb_dir)
        print(f"RGB encoder: linear probe accuracy {acc:.4f} -> {rgb_dir}", flush=True)

    if args.only in (None, "ms"):
        images, labels, held = load_ms(args.data)
        train_imgs = images[~held]
        mean = train_imgs.mean(axis=(0, 2, 3)).tolist()
        std = train_imgs.std(axis=(0, 2, 3)).tolist()
        rgb = Encoder.load(rgb_dir)
        wide = widen_backbone(rgb.backbone, 13, [S2_ORDER.index(b) for b in ("B04", "B03", "B02")])
        encoder = Encoder(
            args.arch,
            S2_ORDER,
            mean,
            std,
            units="reflectance",
            adapter="samescaled",
            input_scale=args.input_scale,
            pooling=args.pooling,
            orientations=args.orientations,
            backbone=wide,
        )
        before = probe(encoder, images, labels, held)
        start = time.time()
        train(
            SimCLR(encoder, max_epochs=args.ms_epochs),
            images[~held],
            args.ms_epochs,
            args.work / "ms",
            min(args.batch_size, 128),
        )
        acc, plain = probe_both(encoder, images, labels, held)
        encoder.metadata = {
            "method": "SimCLR (Chen et al. 2020) from the RGB encoder widened to 13 bands (samescaled, "
            "Yeh et al. 2020), NT-Xent tau=0.2, AdamW lr 1e-3 cosine, batch 128",
            "training_data": f"EuroSAT MS Sentinel-2 L1C (Helber et al. 2019), {int((~held).sum())} chips with "
            "file number % 5 != 0, reflectance = DN / 10000",
            "epochs": args.ms_epochs,
            "seed": 0,
            "licence": "MIT (weights); EuroSAT data MIT",
            "linear_probe_accuracy": round(acc, 4),
            "linear_probe_accuracy_plain": round(plain, 4),
            "linear_probe_before_ms_training": round(before, 4),
            "embedding": RECIPE_NOTE.format(
                scale=args.input_scale, pooling=args.pooling, orientations=args.orientations
            ),
            "linear_probe": f"logistic regression on frozen features; train {int((~held).sum())} chips, "
            f"test {int(held.sum())} held-out chips (file number % 5 == 0), 10 classes; "
            "'plain' = input x1, last stage only, 1 orientation",
            "train_seconds": round(time.time() - start),
        }
        encoder.save(args.out / f"simclr_{args.arch.replace('_', '')}_eurosat_ms")
        print(
            f"MS encoder: linear probe accuracy {acc:.4f} (samescaled RGB start: {before:.4f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
