"""The networks of Runfola et al. (2022, Table 2) as one Lightning module.

``dense``
    Four dense layers ``A -> 128 -> 64 -> 32 -> 1`` without activations (Sec. 4: "No activation
    functions were integrated"): a linear model of the census variables, the paper's baseline.
``signature``
    :class:`~humanscape.models.signature.SocialSignature` -> ResNet-18 with 3 x 3 filters
    (:func:`~humanscape.models.signature.signature_resnet18`) -> dense head.
``imagery``
    ResNet-18 over every image tile of a municipality; the tile features are averaged with equal
    weight per tile (footnote 2) -> dense head.
``signature+imagery``
    Both branches, features concatenated (Figure 3) -> dense head.

Training (Sec. 3.3, Table 2): MAE loss, Adam with betas (0.5, 0.9), learning rate 0.001, batch 64.
The blueprint gets its own learning rate (0.02 by default): its values start evenly spaced in
[-1, 1], so with 0.001 a variable of a 7 x 7 signature needs ~40 steps to pass one neighbour and
the layout of a small table never changes (measured: docs/migration.md).
The target is divided by a fixed scale (the training MAE around the median) so that one learning
rate fits tables of any magnitude; MAE's minimiser is unchanged by the scale. The blueprint's
temperature is annealed once per epoch (:func:`~humanscape.models.signature.annealed_temperature`)
and the layout of every epoch is kept (:attr:`MigrationNet.layouts`, Figures 7 and 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from humanscape.errors import HumanscapeError
from humanscape.models.backbones import Backbone
from humanscape.models.signature import (
    SocialSignature,
    annealed_temperature,
    signature_resnet18,
)
from humanscape.models.training import LightningModule

#: Network kinds (Table 2 of the paper).
NET_KINDS = ("signature+imagery", "signature", "dense", "imagery")


class RowDataset(Dataset):
    """``(table row, census row, target / scale)`` for some rows of one table.

    The table row indexes the per-row tile lists given to :meth:`MigrationNet.attach_tiles`.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
        self.x = torch.as_tensor(x[rows], dtype=torch.float32)
        self.y = torch.as_tensor(y[rows], dtype=torch.float32)
        self.rows = [int(r) for r in rows]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return self.rows[i], self.x[i], self.y[i]


class MigrationNet(LightningModule):
    """One of the four networks of Table 2 (see the module docstring).

    Parameters
    ----------
    kind
        One of :data:`NET_KINDS`.
    n_variables
        ``A``, the census inputs (0 for ``imagery``).
    in_chans
        Bands of the image tiles (0 without imagery).
    seed
        Seed of the initial blueprint.
    tau, tau_end, anneal_epochs
        Blueprint temperature: from ``tau`` to ``tau_end`` over ``anneal_epochs`` epochs
        (geometric), hard afterwards.
    max_tiles
        Tiles drawn per municipality and training step (all tiles are used for prediction).
    """

    def __init__(
        self,
        kind: str,
        n_variables: int,
        in_chans: int = 0,
        *,
        seed: int = 0,
        tau: float = 3.0,
        tau_end: float = 0.05,
        anneal_epochs: int = 40,
        lr: float = 1e-3,
        blueprint_lr: float = 0.02,
        betas: Sequence[float] = (0.5, 0.9),
        max_tiles: int = 16,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        if kind not in NET_KINDS:
            raise HumanscapeError(f"unknown network '{kind}'", fix=f"use {', '.join(NET_KINDS)}")
        self.kind, self.lr, self.betas = kind, float(lr), tuple(float(b) for b in betas)
        self.blueprint_lr = float(blueprint_lr)
        self.tau0, self.tau_end, self.anneal_epochs = float(tau), float(tau_end), int(anneal_epochs)
        self.max_tiles = int(max_tiles)
        self.layouts: list[list[list[int]]] = []
        self.signature: SocialSignature | None = None
        self.signature_net: nn.Module | None = None
        self.image_net: Backbone | None = None
        self._tiles: torch.Tensor | None = None
        self._owners: list[torch.Tensor] = []
        width = 0
        if kind == "dense":
            self.dense = nn.Sequential(
                nn.Linear(n_variables, 128),
                nn.Linear(128, 64),
                nn.Linear(64, 32),
                nn.Linear(32, 1),
            )
            return
        if "signature" in kind:
            self.signature = SocialSignature(n_variables, seed=seed, tau=tau)
            self.signature_net = signature_resnet18()
            width += 512
        if "imagery" in kind:
            if in_chans < 1:
                raise HumanscapeError(f"the {kind} network needs image tiles", fix="give --images")
            self.image_net = Backbone("resnet18", in_chans)
            width += self.image_net.num_features
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    # -- images -----------------------------------------------------------------------------
    def attach_tiles(self, tiles: np.ndarray | None, owners: Sequence[np.ndarray]) -> None:
        """Tiles (normalised, ``(n, C, H, W)``) and, per table row, the indices of its tiles."""
        if self.image_net is None:
            return
        if tiles is None:
            raise HumanscapeError(f"the {self.kind} network needs image tiles", fix="give --images")
        self._tiles = torch.as_tensor(tiles, dtype=torch.float32)
        self._owners = [torch.as_tensor(o, dtype=torch.long) for o in owners]

    def _image_features(self, rows: torch.Tensor) -> torch.Tensor:
        assert self.image_net is not None and self._tiles is not None
        picks, owner = [], []
        for k, r in enumerate(rows.tolist()):
            tiles = self._owners[r]
            if self.training and len(tiles) > self.max_tiles:
                tiles = tiles[torch.randperm(len(tiles))[: self.max_tiles]]
            picks.append(tiles)
            owner.append(torch.full((len(tiles),), k, dtype=torch.long))
        index = torch.cat(picks)
        who = torch.cat(owner).to(self.device)
        feats = self.image_net(self._tiles[index].to(self.device))
        total = torch.zeros(len(rows), feats.shape[1], device=self.device).index_add(0, who, feats)
        count = torch.bincount(who, minlength=len(rows)).clamp_min(1).unsqueeze(1)
        return total / count  # every tile of a municipality weighs the same (footnote 2)

    # -- forward ----------------------------------------------------------------------------
    def forward(self, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "dense":
            return self.dense(x).squeeze(1)
        parts = []
        if self.signature is not None and self.signature_net is not None:
            parts.append(self.signature_net(self.signature(x)))
        if self.image_net is not None:
            parts.append(self._image_features(rows))
        return self.head(torch.cat(parts, dim=1)).squeeze(1)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        rows, x, y = batch
        loss = (self(rows, x) - y).abs().mean()
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        rows, x, y = batch
        self.log("val_loss", (self(rows, x) - y).abs().mean(), prog_bar=True)

    def on_train_epoch_start(self) -> None:
        if self.signature is not None:
            tau = annealed_temperature(
                self.current_epoch, start=self.tau0, end=self.tau_end, epochs=self.anneal_epochs
            )
            self.signature.tau.fill_(tau)

    def on_train_epoch_end(self) -> None:
        if self.signature is not None:
            self.layouts.append(self.signature.layout().tolist())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["layouts"] = self.layouts

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.layouts = list(checkpoint.get("layouts", []))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam (betas 0.5, 0.9); the blueprint has its own learning rate (see module docstring)."""
        others = [p for n, p in self.named_parameters() if n != "signature.blueprint"]
        groups: list[dict] = [{"params": others}]
        if self.signature is not None:
            groups.append({"params": [self.signature.blueprint], "lr": self.blueprint_lr})
        return torch.optim.Adam(groups, lr=self.lr, betas=self.betas)  # type: ignore[arg-type]

    @torch.no_grad()
    def predict_rows(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Predictions (in target / scale units) for every row of ``x`` (tiles already attached)."""
        self.eval()
        out = []
        for start in range(0, len(x), batch_size):
            rows = torch.arange(start, min(start + batch_size, len(x)))
            out.append(self(rows, torch.as_tensor(x[start : start + batch_size])).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
