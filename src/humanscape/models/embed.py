"""Embeddings: images -> vectors with a frozen encoder, batched, with progress.

One featurisation, many tasks (MOSAIKS, Rolf et al. 2021): embed chips once, reuse the vectors in
every task model. Entry points: :func:`embed_array` (arrays), :func:`embed_chip_table` (a chip
table of GeoTIFF / JPEG chips), :func:`embed_regions` (mean and std over the tiles of each region).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from humanscape.errors import HumanscapeError
from humanscape.geo.scene import Scene
from humanscape.models.encoder import Encoder


@torch.no_grad()
def embed_array(
    encoder: Encoder,
    images: np.ndarray | torch.Tensor,
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed ``(n, bands, H, W)`` images (in the encoder's units) -> ``(n, num_features)`` float32.

    ``batch_size`` defaults to what fits the memory budget (:func:`batch_for`)."""
    if images.ndim != 4:
        raise HumanscapeError(f"images must be (n, bands, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != len(encoder.bands):
        raise HumanscapeError(
            f"images have {images.shape[1]} bands, encoder takes {len(encoder.bands)} ({', '.join(encoder.bands)})",
            fix="select the encoder's bands in its order, or choose an encoder for these bands",
        )
    encoder.eval()
    device = encoder.mean.device  # a buffer: random-feature encoders have no parameters
    batch_size = batch_size or batch_for(encoder, (int(images.shape[2]), int(images.shape[3])))
    out = np.empty((images.shape[0], encoder.num_features), np.float32)
    for start in tqdm(
        range(0, images.shape[0], batch_size), disable=not progress, desc="embed", unit="batch"
    ):
        batch = torch.as_tensor(
            np.asarray(images[start : start + batch_size]), dtype=torch.float32, device=device
        )
        if not torch.isfinite(batch).all():  # nodata pixels -> band mean (0 after normalisation)
            batch = torch.where(torch.isfinite(batch), batch, encoder.mean.expand_as(batch))
        out[start : start + batch_size] = encoder(batch).cpu().numpy()
    return out


#: Memory a batch of chips may take in the encoder's forward pass, by default (bytes).
BATCH_BUDGET = 1 << 30


def batch_for(encoder: Encoder, chip_shape: tuple[int, int], *, budget: int = BATCH_BUDGET) -> int:
    """Chips per batch so that the forward pass stays within ``budget`` bytes.

    A frozen CNN's peak memory grows with the pixels it processes: ``orientations`` views of the
    chip, upsampled ``input_scale`` times a side. Per processed pixel the peak is about as many
    bytes as the backbone has output features (measured for the shipped ResNet-18-half, 256
    features: 229 bytes a pixel on 300 px chips, ``x2``, 4 orientations: 330 MB a chip; a wider
    backbone keeps wider activations); random features state their own figure (12 K bytes).
    """
    views = max(1, int(encoder.orientations))
    pixels = views * (chip_shape[0] * encoder.input_scale) * (chip_shape[1] * encoder.input_scale)
    per_chip = max(1.0, pixels * encoder.backbone.activation_bytes_per_pixel)
    return int(max(1, min(1024, budget // per_chip)))


# --- chips ------------------------------------------------------------------------------------


def read_chip_for(encoder: Encoder, path: str | Path) -> np.ndarray:
    """Read one chip as ``(len(encoder.bands), H, W)`` float32 in the encoder's units.

    The chip is read by :func:`humanscape.data.chiptable.read_chip` (reflectance for GeoTIFFs,
    8-bit RGB for JPEG / PNG / uint8 GeoTIFF). A chip in other units than the encoder takes is
    refused (an 8-bit RGB encoder given reflectance would embed every chip as nearly black).
    Bands are matched to the encoder's by name or role (``B04`` or ``red``), or taken in order
    when the chip does not name them and the counts match.
    """
    from humanscape.data.chiptable import read_chip

    path = Path(path)
    chip = read_chip(path)
    if chip.units != encoder.units:
        what = {"rgb8": "8-bit RGB display values", "reflectance": "reflectance"}
        raise HumanscapeError(
            f"chip holds {what.get(chip.units, chip.units)}, but the encoder takes "
            f"{len(encoder.bands)} bands of {what.get(encoder.units, encoder.units)} "
            f"({', '.join(encoder.bands)})",
            path=path,
            fix="use an encoder for these chips (humanscape encoders lists each one's units): "
            "simclr_resnet18half_eurosat_rgb for 8-bit RGB, simclr_resnet18half_eurosat_ms for "
            "Sentinel-2 reflectance",
        )
    if chip.bands is not None:
        canonical = [_canonical(n) for n in chip.bands]
        wanted = [_canonical(b) for b in encoder.bands]
        missing = [b for b, w in zip(encoder.bands, wanted, strict=True) if w not in canonical]
        if missing:
            raise HumanscapeError(
                f"chip bands ({', '.join(chip.bands)}) lack the encoder's bands {', '.join(missing)}",
                path=path,
                fix="use chips with the encoder's bands or an encoder for these bands",
            )
        return chip.data[[canonical.index(w) for w in wanted]]
    if chip.data.shape[0] != len(encoder.bands):
        raise HumanscapeError(
            f"chip has {chip.data.shape[0]} unnamed bands, encoder takes {len(encoder.bands)} ({', '.join(encoder.bands)})",
            path=path,
            fix="write band descriptions into the chips or use a matching encoder",
        )
    return chip.data


def best_shipped_encoder(bands: Sequence[str] | None, units: str, n_bands: int = 0) -> str:
    """The name of the shipped encoder with the best held-out linear probe among those that can
    read this input: the same ``units`` and every band of the encoder among ``bands`` (matched by
    name or role), or, for unnamed bands, the same count ``n_bands``. The default featuriser of
    the embedding commands (issue 23: random features beat the SimCLR encoders on the probe, so
    they are chosen where they fit)."""
    from humanscape.models.registry import list_weights

    have = None if bands is None else {_canonical(b) for b in bands}
    fitting = [
        e
        for e in list_weights()
        if e.units == units
        and (
            len(e.bands) == n_bands if have is None else all(_canonical(b) in have for b in e.bands)
        )
    ]
    if not fitting:
        listed = ", ".join(f"{e.name} ({len(e.bands)} bands, {e.units})" for e in list_weights())
        what = f"{n_bands} unnamed bands" if bands is None else ", ".join(bands)
        raise HumanscapeError(
            f"no shipped encoder reads {what} in {units}",
            fix=f"give --encoder (a saved encoder folder, or one of {listed})",
        )
    return max(fitting, key=lambda e: e.linear_probe_accuracy or 0.0).name


def best_encoder_for_chip(path: str | Path) -> str:
    """:func:`best_shipped_encoder` for the bands and units of the chip at ``path``."""
    from humanscape.data.chiptable import read_chip

    chip = read_chip(Path(path))
    return best_shipped_encoder(chip.bands, chip.units, int(chip.data.shape[0]))


def _canonical(name: str) -> str:
    """``B04`` for ``red``, ``b4`` or ``B04`` (Sentinel-2 names); other names lower-cased."""
    from humanscape.geo.sensors import SENTINEL2_L1C

    band = SENTINEL2_L1C.find(name)
    return (band.name if band else name).lower()


def embed_chip_table(
    table: str | Path,
    encoder: Encoder,
    *,
    batch_size: int | None = None,
    id_column: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Embed every chip of a chip table -> DataFrame ``id`` + ``e000 ... e{d-1}``.

    The id is ``id_column`` if given, else ``cell_id`` if present, else the image path. Chips are
    read batch by batch (memory flat in the table length); all chips of a batch must have one size.
    Without ``batch_size`` the batch fits :data:`BATCH_BUDGET` (:func:`batch_for`, from the size of
    the first chip).
    """
    from humanscape.data.chiptable import read_chip_table

    frame = read_chip_table(table)
    if id_column is not None and id_column not in frame.columns:
        raise HumanscapeError(
            f"chip table has no column '{id_column}'",
            path=table,
            fix=f"use one of {', '.join(map(str, frame.columns))}",
        )
    key = id_column or ("cell_id" if "cell_id" in frame.columns else "image")
    out = np.empty((len(frame), encoder.num_features), np.float32)
    images = frame["image"].tolist()
    if batch_size is None:
        first = read_chip_for(encoder, images[0]) if images else np.empty((0, 1, 1))
        batch_size = batch_for(encoder, (first.shape[1], first.shape[2]))
    for start in tqdm(
        range(0, len(images), batch_size), disable=not progress, desc="embed", unit="batch"
    ):
        chips = [read_chip_for(encoder, p) for p in images[start : start + batch_size]]
        shapes = {c.shape for c in chips}
        if len(shapes) > 1:
            first = next(
                p for p, c in zip(images[start:], chips, strict=False) if c.shape != chips[0].shape
            )
            raise HumanscapeError(
                f"chips of different sizes in one batch ({', '.join(str(s[1:]) for s in sorted(shapes))})",
                path=first,
                fix="cut all chips to one size (humanscape chip) or use --batch-size 1",
            )
        out[start : start + len(chips)] = embed_array(
            encoder, np.stack(chips), batch_size=batch_size
        )
    columns = {f"e{i:03d}": out[:, i] for i in range(out.shape[1])}
    return pd.DataFrame({"id": frame[key].to_numpy(), **columns})


# --- regions ----------------------------------------------------------------------------------


def embed_regions(
    encoder: Encoder,
    tiles: Mapping[object, np.ndarray],
    *,
    batch_size: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Mean and std of tile embeddings per region: ``id``, ``n_tiles``, ``mean_e000...``, ``std_e000...``.

    ``tiles`` maps a region id to its ``(n_tiles, bands, H, W)`` array (e.g. from
    :func:`region_tiles`). Regions without tiles are refused.
    """
    rows = []
    for region, arr in tqdm(tiles.items(), disable=not progress, desc="regions", unit="region"):
        if len(arr) == 0:
            raise HumanscapeError(
                f"region {region} has no tile", fix="check that the region overlaps the scene"
            )
        emb = embed_array(encoder, arr, batch_size=batch_size)
        rows.append((region, len(arr), emb.mean(0), emb.std(0)))
    d = encoder.num_features
    frame = pd.DataFrame({"id": [r[0] for r in rows], "n_tiles": [r[1] for r in rows]})
    means = np.stack([r[2] for r in rows])
    stds = np.stack([r[3] for r in rows])
    extra = {f"mean_e{i:03d}": means[:, i] for i in range(d)} | {
        f"std_e{i:03d}": stds[:, i] for i in range(d)
    }
    return pd.concat([frame, pd.DataFrame(extra)], axis=1)


def region_tiles(
    scene: Scene,
    regions: gpd.GeoDataFrame,
    bands: list[str],
    *,
    size: int = 64,
    id_column: str = "id",
    min_valid: float = 0.5,
    min_overlap: float = 0.05,
) -> dict[object, np.ndarray]:
    """Cut ``size`` x ``size`` tiles of ``bands`` covering each region (reprojected to the scene CRS).

    Tiles covering less than ``min_overlap`` of their area with the region, or with less than
    ``min_valid`` valid pixels, are dropped (nodata-only tiles never count).
    """
    from humanscape.geo.grid import tiles_over_polygon
    from humanscape.geo.scene import read_padded

    if id_column not in regions.columns:
        raise HumanscapeError(
            f"regions have no column '{id_column}'",
            fix=f"use one of {', '.join(map(str, regions.columns))}",
        )
    regions = regions.to_crs(scene.crs)
    out: dict[object, np.ndarray] = {}
    for rid, geom in zip(regions[id_column], regions.geometry, strict=True):
        chips = []
        for window in tiles_over_polygon(geom, scene.grid, size=size, min_overlap=min_overlap):
            chip = read_padded(scene, window, bands)
            if np.isfinite(chip).all(axis=0).mean() >= min_valid:
                chips.append(chip)
        out[rid] = np.stack(chips) if chips else np.empty((0, len(bands), size, size), np.float32)
    return out
