"""DeepCluster: k-means pseudo-labels recomputed each epoch (Caron et al. 2018; step 2 of Park et al.).

Each epoch: embed every image with the current encoder (no augmentation), L2-normalise, optionally
PCA-whiten, cluster with k-means, and use the cluster ids as pseudo-labels for a freshly initialised
linear cluster head trained with cross-entropy on augmented views (Caron et al. 2018, Eq. 2). To
avoid the trivial solution of one huge cluster, the loss weights each pseudo-class by the inverse of
its size (the paper samples uniformly over pseudo-labels, Sec. 3.3; weighting has the same
expectation).

Park et al. (2022) combine this clustering loss with a supervised loss on proxy labels (urban /
rural / uninhabited)::

    L = L_cluster + lambda * L_supervised

``labels`` of -1 are unlabelled and only contribute to the clustering loss.
"""

from __future__ import annotations

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from torch import nn
from torch.utils.data import Dataset

from humanscape.errors import HumanscapeError
from humanscape.models.augment import SatelliteAugment
from humanscape.models.encoder import Encoder


class IndexDataset(Dataset):
    """Yields sample indices; the module looks images, pseudo-labels and labels up by index."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class DeepCluster(pl.LightningModule):
    """Lightning module for DeepCluster, optionally with a lambda-weighted supervised loss.

    Parameters
    ----------
    encoder
        The encoder to train.
    images
        All training images ``(n, bands, H, W)`` in the encoder's units (kept in memory).
    n_clusters
        k of k-means (Caron et al. use 10 x the number of classes).
    labels
        Optional class per image (-1 = unlabelled) for the supervised loss.
    lam
        Weight of the supervised loss (Park et al. 2022).
    pca_dim
        Whiten features to this many PCA components before k-means (``None``: no PCA).
    """

    def __init__(
        self,
        encoder: Encoder,
        images: np.ndarray | torch.Tensor,
        *,
        n_clusters: int = 100,
        labels: np.ndarray | None = None,
        lam: float = 1.0,
        pca_dim: int | None = 32,
        lr: float = 1e-3,
        augment: SatelliteAugment | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.images = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        if n_clusters < 2 or n_clusters > len(self.images):
            raise HumanscapeError(
                f"n_clusters must be in [2, {len(self.images)}], got {n_clusters}"
            )
        self.encoder = encoder
        self.n_clusters, self.lam, self.pca_dim, self.lr, self.seed = (
            n_clusters,
            lam,
            pca_dim,
            lr,
            seed,
        )
        self.augment = augment or SatelliteAugment()
        self.cluster_head = nn.Linear(encoder.backbone.num_features, n_clusters)
        self.labels = None if labels is None else torch.tensor(np.array(labels), dtype=torch.long)
        if self.labels is not None:
            n_classes = int(self.labels.max()) + 1
            if n_classes < 2:
                raise HumanscapeError("supervised labels need at least 2 classes")
            self.supervised_head = nn.Linear(encoder.backbone.num_features, n_classes)
        self.register_buffer("pseudo", torch.zeros(len(self.images), dtype=torch.long))
        self.register_buffer("class_weight", torch.ones(n_clusters))
        self.assignments: list[np.ndarray] = []

    @torch.no_grad()
    def features(self, batch_size: int = 256) -> np.ndarray:
        """Backbone features of all training images (eval mode, no augmentation): what the heads see."""
        was_training = self.encoder.training
        self.encoder.eval()
        enc = self.encoder
        out = [
            enc.backbone(enc.normalize(self.images[i : i + batch_size].to(self.device)))
            .cpu()
            .numpy()
            for i in range(0, len(self.images), batch_size)
        ]
        self.encoder.train(was_training)
        return np.concatenate(out)

    def recluster(self) -> np.ndarray:
        """k-means on the current features; sets the pseudo-labels, class weights and a new head."""
        feats = self.features()
        feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-8
        if self.pca_dim and feats.shape[1] > self.pca_dim and len(feats) > self.pca_dim:
            feats = PCA(self.pca_dim, whiten=True, random_state=self.seed).fit_transform(feats)
            feats /= np.linalg.norm(feats, axis=1, keepdims=True) + 1e-8
        k = KMeans(self.n_clusters, n_init=3, random_state=self.seed + len(self.assignments))
        assignment = k.fit_predict(feats)
        self.assignments.append(assignment)
        counts = np.bincount(assignment, minlength=self.n_clusters).astype(np.float32)
        weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / self.n_clusters, 0.0)
        self.pseudo.copy_(torch.as_tensor(assignment, dtype=torch.long))
        self.class_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        self.cluster_head.reset_parameters()  # Caron et al.: the head is re-initialised each epoch
        return assignment

    def on_train_epoch_start(self) -> None:
        self.recluster()
        self.train()

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        idx = batch.long()
        x = self.augment(self.encoder.normalize(self.images[idx.cpu()].to(self.device)))
        feats = self.encoder.backbone(x)
        loss = F.cross_entropy(self.cluster_head(feats), self.pseudo[idx], weight=self.class_weight)
        self.log("cluster_loss", loss, prog_bar=True, on_epoch=True, on_step=False)
        if self.labels is not None:
            y = self.labels[idx.cpu()].to(self.device)
            known = y >= 0
            if known.any():
                sup = F.cross_entropy(self.supervised_head(feats[known]), y[known])
                self.log("supervised_loss", sup, prog_bar=True, on_epoch=True, on_step=False)
                loss = loss + self.lam * sup
        return loss

    def configure_optimizers(self):  # type: ignore[override]
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


def nmi_between_epochs(module: DeepCluster) -> list[float]:
    """Normalised mutual information between consecutive epochs' assignments (Caron et al. Fig. 2b)."""
    from sklearn.metrics import normalized_mutual_info_score

    a = module.assignments
    return [float(normalized_mutual_info_score(a[i], a[i + 1])) for i in range(len(a) - 1)]
