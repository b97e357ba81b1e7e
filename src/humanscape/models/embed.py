"""Embeddings: images -> vectors with a frozen encoder, batched, with progress.

One featurisation, many tasks (MOSAIKS, Rolf et al. 2021): embed chips once, reuse the vectors in
every task model. Entry points: :func:`embed_array` (arrays), :func:`embed_chip_table` (a chip
table of GeoTIFF / JPEG chips), :func:`embed_regions` (mean and std over the tiles of each region).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from humanscape.errors import HumanscapeError
from humanscape.models.encoder import Encoder


@torch.no_grad()
def embed_array(encoder: Encoder, images: np.ndarray | torch.Tensor, *, batch_size: int = 128,
                progress: bool = False) -> np.ndarray:
    """Embed ``(n, bands, H, W)`` images (in the encoder's units) -> ``(n, num_features)`` float32."""
    if images.ndim != 4:
        raise HumanscapeError(f"images must be (n, bands, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != len(encoder.bands):
        raise HumanscapeError(
            f"images have {images.shape[1]} bands, encoder takes {len(encoder.bands)} ({', '.join(encoder.bands)})",
            fix="select the encoder's bands in its order, or choose an encoder for these bands",
        )
    encoder.eval()
    device = next(encoder.parameters()).device
    out = np.empty((images.shape[0], encoder.num_features), np.float32)
    for start in tqdm(range(0, images.shape[0], batch_size), disable=not progress, desc="embed", unit="batch"):
        batch = torch.as_tensor(np.asarray(images[start:start + batch_size]), dtype=torch.float32, device=device)
        if not torch.isfinite(batch).all():  # nodata pixels -> band mean (0 after normalisation)
            batch = torch.where(torch.isfinite(batch), batch, encoder.mean.expand_as(batch))
        out[start:start + batch_size] = encoder(batch).cpu().numpy()
    return out
