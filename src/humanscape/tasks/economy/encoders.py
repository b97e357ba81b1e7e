"""District-feature encoders of Park et al. (2022, step 2, eq. 7-8) and their PCA projection.

Each encoder ``e`` starts from the score model's network (all but nothing is dropped: the score
head stays, it carries the ordinal loss) and is trained on two data sets at once:

- the labelled tiles ``X`` with the ordinal loss of step 1 (eq. 6) — or, for the nightlight
  encoders, the unlabelled tiles with ``1 - Pearson(f(d), nightlight(d))`` (the paper's nightlight
  proxy: "maximizing the Pearson correlation between nightlight intensity and hyperlocal scores");
- the unlabelled tiles ``U`` of the districts with the DeepCluster loss (eq. 7): every epoch the
  tiles are embedded, k-means runs separately on the urban tiles (``f >= t2``) and on the rest,
  ``n_c`` clusters each, and a freshly initialised linear cluster head learns those pseudo-labels;
  tiles the score model calls uninhabited (``f < t1``) are dropped from ``U`` first (footnote 3).

``L = L_class + lambda * L_cluster`` (eq. 8, lambda = 1). ``n_c = 0`` trains the first term only.
The paper's ensemble is ``n_c`` in {0, 30, 90} for each of the two sources: up to six encoders.

The pooled features of each encoder are projected to 3 principal components (about 80 % of the
variance in the paper), fitted on the training tiles; :mod:`humanscape.tasks.economy.district`
summarises them per district (eq. 9-12).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from torch import nn

from humanscape.errors import HumanscapeError
from humanscape.models.augment import SatelliteAugment
from humanscape.models.deepcluster import IndexDataset
from humanscape.models.heads import RegressionNet
from humanscape.models.training import LightningModule, fit_module
from humanscape.tasks.economy.ordinal import Thresholds, ordinal_loss

log = logging.getLogger(__name__)

SOURCES = ("labels", "nightlight")


@dataclass(frozen=True)
class EncoderSpec:
    """One member of the ensemble: its proxy ``source`` and ``n_clusters`` (n_c) per level."""

    source: str
    n_clusters: int

    @property
    def name(self) -> str:
        return f"{self.source}_nc{self.n_clusters}"


def pearson_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - r`` with ``r`` the Pearson correlation of the batch (0 at perfect correlation)."""
    p, t = pred - pred.mean(), target - target.mean()
    return 1 - (p * t).sum() / (p.norm() * t.norm() + 1e-8)


class EncoderModule(LightningModule):
    """Lightning module for one step-2 encoder (see the module docstring).

    ``unlabelled`` are the district tiles (uninhabited ones already dropped), ``labelled`` the
    ``(tiles, level probabilities)`` of step 1, ``nightlight`` one value per unlabelled tile.
    """

    def __init__(
        self,
        net: RegressionNet,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        thresholds: Thresholds,
        unlabelled: np.ndarray,
        labelled: tuple[np.ndarray, np.ndarray] | None = None,
        nightlight: np.ndarray | None = None,
        n_clusters: int = 30,
        lam: float = 1.0,
        lr: float = 1e-4,
        labelled_batch: int = 40,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if labelled is None and nightlight is None and n_clusters == 0:
            raise HumanscapeError("an encoder needs labels, a nightlight proxy or clusters")
        self.net, self.thresholds, self.lam, self.lr = net, thresholds, lam, lr
        self.n_clusters, self.labelled_batch, self.seed = n_clusters, labelled_batch, seed
        self.augment = SatelliteAugment(crop_scale=(0.6, 1.0), brightness=0.1, contrast=0.1)
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))
        self.unlabelled = torch.as_tensor(np.asarray(unlabelled, np.float32))
        self.labelled = (
            None
            if labelled is None
            else (
                torch.as_tensor(np.asarray(labelled[0], np.float32)),
                torch.as_tensor(np.asarray(labelled[1], np.float32)),
            )
        )
        self.nightlight = (
            None if nightlight is None else torch.as_tensor(np.asarray(nightlight, np.float32))
        )
        self.n_pseudo = 2 * n_clusters
        self.cluster_head = nn.Linear(net.backbone.num_features, max(self.n_pseudo, 1))
        self.register_buffer("pseudo", torch.zeros(len(self.unlabelled), dtype=torch.long))
        self.register_buffer("class_weight", torch.ones(max(self.n_pseudo, 1)))
        self._generator = torch.Generator().manual_seed(seed)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num((x - self.mean) / self.std, nan=0.0)

    @torch.no_grad()
    def _embed_unlabelled(self, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        was = self.net.training
        self.net.eval()
        feats, scores = [], []
        for i in range(0, len(self.unlabelled), batch_size):
            x = self.normalise(self.unlabelled[i : i + batch_size].to(self.device))
            f = self.net.features(x)
            feats.append(f.cpu().numpy())
            scores.append(self.net.head(f).squeeze(-1).cpu().numpy())
        self.net.train(was)
        return np.concatenate(feats), np.concatenate(scores)

    def recluster(self) -> np.ndarray:
        """k-means on the urban tiles and on the others separately (n_c each): pseudo-labels."""
        feats, scores = self._embed_unlabelled()
        feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-8
        pseudo = np.zeros(len(feats), np.int64)
        urban = scores >= self.thresholds.t2
        for offset, part in ((0, ~urban), (self.n_clusters, urban)):
            idx = np.flatnonzero(part)
            k = min(self.n_clusters, len(idx))
            if k == 0:
                continue
            labels = (
                np.zeros(len(idx), np.int64)
                if k == 1
                else KMeans(k, n_init=3, random_state=self.seed + self.current_epoch).fit_predict(
                    feats[idx]
                )
            )
            pseudo[idx] = offset + labels
        counts = np.bincount(pseudo, minlength=self.n_pseudo).astype(np.float32)
        weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / self.n_pseudo, 0.0)
        self.pseudo.copy_(torch.as_tensor(pseudo))
        self.class_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        self.cluster_head.reset_parameters()  # Caron et al.: a new head for new pseudo-labels
        return pseudo

    def on_train_epoch_start(self) -> None:
        if self.n_clusters > 0:
            self.recluster()
        self.train()

    def training_step(self, batch: torch.Tensor, _: int) -> torch.Tensor:
        idx = batch.long().cpu()
        loss = torch.zeros((), device=self.device)
        if self.labelled is not None:
            pick = torch.randint(
                len(self.labelled[0]),
                (min(self.labelled_batch, len(self.labelled[0])),),
                generator=self._generator,
            )
            x = self.augment(self.normalise(self.labelled[0][pick].to(self.device)))
            cls = ordinal_loss(self.net(x), self.labelled[1][pick].to(self.device), self.thresholds)
            self.log("class_loss", cls, prog_bar=True, on_epoch=True, on_step=False)
            loss = loss + cls
        x = self.augment(self.normalise(self.unlabelled[idx].to(self.device)))
        feats = self.net.features(x)
        if self.nightlight is not None and len(idx) > 2:
            ntl = pearson_loss(
                self.net.head(feats).squeeze(-1), self.nightlight[idx].to(self.device)
            )
            self.log("nightlight_loss", ntl, prog_bar=True, on_epoch=True, on_step=False)
            loss = loss + ntl
        if self.n_clusters > 0:
            clu = F.cross_entropy(
                self.cluster_head(feats), self.pseudo[idx.to(self.device)], weight=self.class_weight
            )
            self.log("cluster_loss", clu, prog_bar=True, on_epoch=True, on_step=False)
            loss = loss + self.lam * clu
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def train_encoder(
    spec: EncoderSpec,
    start: RegressionNet,
    norm: dict[str, list[float]],
    *,
    thresholds: Thresholds,
    unlabelled: np.ndarray,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    nightlight: np.ndarray | None,
    epochs: int = 5,
    batch_size: int = 128,
    lam: float = 1.0,
    lr: float = 1e-4,
    seed: int = 0,
    progress: bool = True,
) -> RegressionNet:
    """Train one encoder from ``start`` (a copy of the score net) and return its network."""
    if spec.source not in SOURCES:
        raise HumanscapeError(f"unknown encoder source '{spec.source}'", fix=f"use {SOURCES}")
    if spec.source == "labels" and labelled is None:
        raise HumanscapeError("a 'labels' encoder needs the labelled tiles of step 1")
    if spec.source == "nightlight" and nightlight is None:
        raise HumanscapeError("a 'nightlight' encoder needs a nightlight value per tile")
    module = EncoderModule(
        start,
        norm["mean"],
        norm["std"],
        thresholds=thresholds,
        unlabelled=unlabelled,
        labelled=labelled if spec.source == "labels" else None,
        nightlight=nightlight if spec.source == "nightlight" else None,
        n_clusters=spec.n_clusters,
        lam=lam,
        lr=lr,
        seed=seed,
    )
    fit_module(
        module,
        IndexDataset(len(unlabelled)),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    return module.net.eval()


class PCAProjection:
    """Per-encoder PCA to ``k`` components, fitted on training tiles (eq. 9: ``e'``).

    Fitted with scikit-learn; kept as its mean and components so that a saved model holds arrays
    only: ``transform(x) = (x - mean) @ components.T``.
    """

    def __init__(self, k: int = 3, seed: int = 0) -> None:
        self.k, self.seed = k, seed

    def fit(self, features: np.ndarray) -> PCAProjection:
        k = min(self.k, features.shape[1], len(features))
        pca = PCA(k, random_state=self.seed).fit(features)
        self.mean_, self.components_ = pca.mean_, pca.components_
        self.explained_ = float(pca.explained_variance_ratio_.sum())
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float64) - self.mean_) @ self.components_.T
