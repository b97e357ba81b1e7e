"""SimCLR: contrastive self-supervised pretraining (Chen et al. 2020; step 1 of Imagery2Flow).

Two augmented views of each image are encoded, projected by a small MLP head, and pulled together
while all other images of the batch are pushed apart by the NT-Xent loss (Chen et al. 2020, Eq. 1):

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau) )

averaged over the 2N positive pairs of a batch of N images, ``sim`` the cosine similarity. The
encoder (without the head) is what humanscape ships and embeds with.
"""

from __future__ import annotations

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from humanscape.models.augment import SatelliteAugment
from humanscape.models.encoder import Encoder


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Normalised temperature-scaled cross entropy (Chen et al. 2020, Eq. 1) for paired views."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(
            f"views must be (batch, dim) of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # k != i
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class ProjectionHead(nn.Module):
    """g(h) = W2 ReLU(BN(W1 h)): the MLP projection of SimCLR (Chen et al. 2020, Sec. 2.1)."""

    def __init__(self, in_features: int, hidden: int = 512, out_features: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_features),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLR(pl.LightningModule):
    """Lightning module: encoder + projection head trained with NT-Xent on two augmented views.

    Batches are ``(images,)`` or ``(images, anything)``; ``images`` are raw (un-normalised) tensors,
    normalised by the encoder's statistics before augmentation.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        temperature: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        projection_dim: int = 128,
        augment: SatelliteAugment | None = None,
        max_epochs: int = 100,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(
            encoder.backbone.num_features, max(256, encoder.backbone.num_features), projection_dim
        )
        self.temperature, self.lr, self.weight_decay, self.max_epochs = (
            temperature,
            lr,
            weight_decay,
            max_epochs,
        )
        self.augment = augment or SatelliteAugment()

    def views_loss(self, images: torch.Tensor) -> torch.Tensor:
        x = self.encoder.normalize(images.float())
        z1 = self.head(self.encoder.backbone(self.augment(x)))
        z2 = self.head(self.encoder.backbone(self.augment(x)))
        return nt_xent_loss(z1, z2, self.temperature)

    def on_train_epoch_start(self) -> None:
        self.train()  # an encoder loaded for fine-tuning arrives in eval mode (frozen BatchNorm)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self.views_loss(batch[0])
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):  # type: ignore[override]
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs)
        return {"optimizer": opt, "lr_scheduler": sched}
