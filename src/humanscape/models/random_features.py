"""Random convolutional features (MOSAIKS; Rolf et al. 2021, Nature Communications).

The fast baseline featuriser every deep encoder must beat. K patches of ``p x p`` pixels are drawn
at random from training images and used, ZCA-whitened, as convolution filters. For an image I and
filter w the two features are the spatial means of the rectified responses (Rolf et al., Methods,
Eq. 1):

    x_k+ = mean( ReLU( I * w_k - b ) ),     x_k- = mean( ReLU( -I * w_k - b ) )

giving 2K features per image. Whitening uses the patch covariance C of the training patches
(M = (C + eps I)^-1/2), applied to both filters and image patches; it folds into the convolution
weights and bias, so a forward pass is one ``conv2d``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from humanscape.errors import HumanscapeError


def rectified_means(
    x: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, bias: float
) -> torch.Tensor:
    """Eq. 1 of Rolf et al.: ``[mean ReLU(I * w - b), mean ReLU(-I * w - b)]`` per filter, the
    whitening folded into ``weight`` and ``offset``: ``(n, 2K)``.

    One response tensor: ``r = I * w - b`` from the convolution's own bias, then the negative
    side ``-I * w - b = -(r + 2b)`` in place (half the time of computing both sides from
    ``I * w``: the element-wise passes, not the convolution, dominated)."""
    r = F.conv2d(x, weight, offset - bias)
    positive = F.relu(r).mean(dim=(2, 3))
    negative = r.add_(2.0 * bias).neg_().relu_().mean(dim=(2, 3))
    return torch.cat([positive, negative], dim=1)


class RandomConvFeatures:
    """scikit-learn-style featuriser: ``fit(images)``, ``transform(images) -> (n, 2 * num_filters)``.

    Parameters
    ----------
    num_filters
        K; the output has 2K features.
    patch_size
        Filter side in pixels (MOSAIKS uses 3).
    bias
        b of the rectification (MOSAIKS uses 1 on whitened responses).
    eps
        Regulariser of the whitening.
    seed
        Seed of the patch draw (recorded; same seed, same features).
    """

    def __init__(
        self,
        num_filters: int = 512,
        patch_size: int = 3,
        bias: float = 1.0,
        eps: float = 1e-2,
        seed: int = 0,
    ) -> None:
        self.num_filters, self.patch_size, self.bias, self.eps, self.seed = (
            num_filters,
            patch_size,
            bias,
            eps,
            seed,
        )

    def fit(self, images: np.ndarray) -> RandomConvFeatures:
        """Draw the filters from ``(n, bands, H, W)`` float images and fit the whitening."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise HumanscapeError(f"images must be (n, bands, H, W), got shape {images.shape}")
        n, c, h, w = images.shape
        p = self.patch_size
        if h < p or w < p:
            raise HumanscapeError(f"images of {h} x {w} px are smaller than the {p} x {p} patches")
        rng = np.random.default_rng(self.seed)

        def draw(count: int) -> np.ndarray:
            i = rng.integers(0, n, count)
            r = rng.integers(0, h - p + 1, count)
            q = rng.integers(0, w - p + 1, count)
            return np.stack(
                [images[a, :, b : b + p, d : d + p] for a, b, d in zip(i, r, q, strict=True)]
            ).reshape(count, -1)

        sample = draw(max(10_000, 4 * self.num_filters))
        self.mean_ = sample.mean(0)
        cov = np.cov(sample - self.mean_, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        self.whitening_ = (vecs / np.sqrt(np.maximum(vals, 0) + self.eps)) @ vecs.T  # ZCA: C^-1/2
        filters = (draw(self.num_filters) - self.mean_) @ self.whitening_
        # response to a raw patch q: (M f) . M (q - mu) = (M^T M f) . q - (M^T M f) . mu
        effective = filters @ self.whitening_
        self.weight_ = effective.reshape(self.num_filters, c, p, p).astype(np.float32)
        self.offset_ = (-(effective @ self.mean_)).astype(np.float32)
        self.n_bands_ = c
        return self

    @torch.no_grad()
    def transform(
        self, images: np.ndarray, batch_size: int | None = None, memory_mb: int = 256
    ) -> np.ndarray:
        """Features ``(n, 2 * num_filters)`` of ``(n, bands, H, W)`` images.

        Images are processed in batches whose convolution responses fit in ``memory_mb``
        (``batch_size`` overrides), so memory does not grow with K or the number of images.
        """
        if not hasattr(self, "weight_"):
            raise HumanscapeError("RandomConvFeatures is not fitted", fix="call fit(images) first")
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != self.n_bands_:
            raise HumanscapeError(
                f"fitted on {self.n_bands_} bands, got images of shape {images.shape}"
            )
        if batch_size is None:
            per_image = (
                self.num_filters
                * (images.shape[2] - self.patch_size + 1)
                * (images.shape[3] - self.patch_size + 1)
                * 4
            )
            batch_size = max(1, int(memory_mb * 2**20 // max(per_image, 1)))
        weight = torch.from_numpy(self.weight_)
        bias = torch.from_numpy(self.offset_)
        out = []
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.nan_to_num(images[start : start + batch_size]))
            out.append(rectified_means(x, weight, bias, self.bias).numpy())
        return np.concatenate(out)

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        return self.fit(images).transform(images)


#: Backbone names of random convolutional features: ``mosaiks_<K>`` (K filters, 2K features).
MOSAIKS_PREFIX = "mosaiks_"


class RandomConvBody(torch.nn.Module):
    """:class:`RandomConvFeatures` as a network body, so that fitted random features travel as an
    :class:`~humanscape.models.encoder.Encoder` (bands, units, normalisation, ``--encoder NAME``).

    The whitened filters and their offsets are buffers (saved in the state dict); a fresh body
    holds zeros until :meth:`fit` draws them from images. ``forward`` is Rolf et al.'s eq. 1.
    """

    def __init__(
        self, num_filters: int, in_chans: int, patch_size: int = 3, bias: float = 1.0
    ) -> None:
        super().__init__()
        if num_filters < 1:
            raise HumanscapeError(f"random features need at least 1 filter, got {num_filters}")
        self.num_filters, self.patch_size, self.bias = num_filters, patch_size, bias
        self.num_features = 2 * num_filters
        self.register_buffer("weight", torch.zeros(num_filters, in_chans, patch_size, patch_size))
        self.register_buffer("offset", torch.zeros(num_filters))

    @property
    def activation_bytes_per_pixel(self) -> int:
        """Peak bytes of the forward pass per input pixel: the K responses and their two
        rectifications, float32 (what batch sizes are planned with)."""
        return 3 * 4 * self.num_filters

    def fit(self, images: np.ndarray, seed: int = 0, eps: float = 1e-2) -> RandomConvBody:
        """Draw and whiten the filters from ``(n, in_chans, H, W)`` images (in the units the body
        is fed, i.e. normalised when it sits in an encoder)."""
        rcf = RandomConvFeatures(
            self.num_filters, self.patch_size, bias=self.bias, eps=eps, seed=seed
        ).fit(images)
        self.weight.copy_(torch.from_numpy(rcf.weight_))
        self.offset.copy_(torch.from_numpy(rcf.offset_))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rectified_means(x, self.weight, self.offset, self.bias)


def mosaiks_filters(name: str) -> int | None:
    """K of a ``mosaiks_<K>`` backbone name; None for any other name."""
    if not name.startswith(MOSAIKS_PREFIX):
        return None
    k = name[len(MOSAIKS_PREFIX) :]
    if not k.isdigit() or int(k) < 1:
        raise HumanscapeError(
            f"unknown backbone '{name}'",
            fix="random features are named mosaiks_<K>, e.g. mosaiks_1024",
        )
    return int(k)
