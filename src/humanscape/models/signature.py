"""The social signature: a census vector laid out on a learnable 2-D grid (Runfola et al. 2022).

Runfola et al. (2022, Sec. 3.2, Figure 4) turn the ``A`` census variables of a municipality into a
``ceil(sqrt(A)) x ceil(sqrt(A))`` image ``S`` so that a CNN can convolve across them. A learnable
*blueprint* ``B`` (one value per variable) decides the layout:

1. ``X`` is sorted into ``T`` by the values of ``B`` (the variable with the largest ``B_i`` goes to
   ``T_1``),
2. ``T`` is written into the grid row by row from the upper-left cell,
3. the cells left over when ``A`` is not a square number are zero (the mean of a z-scored input).

A hard ``argsort`` has no gradient with respect to ``B``, so in the paper's formulation the
blueprint cannot learn (the authors' replication code casts it to integers). Here the sort is
relaxed with **SoftSort** (Prillo & Eisenschlos 2020, eq. 1)::

    P_ij = softmax_j( -|sort(B)_i - B_j| / tau )

a row-stochastic ``A x A`` matrix whose row ``i`` says which variables fill slot ``i``; ``T = P X``.
As ``tau -> 0`` ``P`` becomes the permutation matrix of ``argsort(-B)``, so a temperature annealed
towards 0 ends on a hard order. ``tau`` is measured in units of the blueprint's mean spacing
(``(max B - min B) / (A - 1)``), so the same schedule works whatever the scale of ``B``. At
``tau = 0`` and in evaluation mode the layer uses the hard permutation: predictions always come
from one layout, the one :meth:`SocialSignature.layout` shows. SoftSort was chosen over Sinkhorn
(Mena et al. 2018) because it keeps the paper's parametrisation (one number per variable, ``A``
parameters instead of ``A^2``) and its limit is exactly the paper's sort.
"""

from __future__ import annotations

import math

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import numpy as np
import torch
from torch import nn

from humanscape.errors import HumanscapeError


def signature_side(n_variables: int) -> int:
    """``ceil(sqrt(A))``: the side of the smallest square grid holding ``A`` variables."""
    if n_variables < 1:
        raise HumanscapeError(f"a signature needs at least one variable, got {n_variables}")
    return math.isqrt(n_variables - 1) + 1


def soft_sort(blueprint: torch.Tensor, tau: float) -> torch.Tensor:
    """SoftSort matrix ``P`` (``A x A``) of the descending order of ``blueprint`` at temperature ``tau``.

    ``P_ij = softmax_j(-|s_i - B_j| / (tau * gap))`` with ``s = sort(B, descending)`` and ``gap``
    the mean spacing of ``B`` (Prillo & Eisenschlos 2020, eq. 1, with ``|.|`` as the distance).
    ``tau = 0`` gives the hard permutation matrix (no gradient).
    """
    b = blueprint.reshape(-1)
    order = torch.argsort(b, descending=True, stable=True)
    if tau <= 0:
        return nn.functional.one_hot(order, b.numel()).to(b.dtype)
    s = b[order]
    gap = ((b.max() - b.min()) / max(b.numel() - 1, 1)).detach().clamp_min(1e-8)
    return torch.softmax(-(s[:, None] - b[None, :]).abs() / (tau * gap), dim=1)


def annealed_temperature(epoch: int, *, start: float, end: float, epochs: int) -> float:
    """Geometric annealing ``tau_k = start * (end / start)^(k / (epochs - 1))``, then 0 (hard).

    ``epoch`` counts from 0; from ``epoch >= epochs`` on the order is hard (``tau = 0``).
    """
    if epochs <= 0 or epoch >= epochs:
        return 0.0
    if epochs == 1:
        return float(end)
    return float(start * (end / start) ** (epoch / (epochs - 1)))


class SocialSignature(nn.Module):
    """``(batch, A)`` census rows -> ``(batch, 1, side, side)`` signatures (see module docstring).

    Parameters
    ----------
    n_variables
        ``A``, the number of (z-scored) input variables.
    seed
        Seed of the random initial blueprint (a random permutation of evenly spaced values, as the
        paper's random initial mapping).
    tau
        Initial temperature, in blueprint spacings (0: the paper's hard sort, no learning).
    """

    def __init__(self, n_variables: int, *, seed: int = 0, tau: float = 1.0) -> None:
        super().__init__()
        self.n_variables = int(n_variables)
        self.side = signature_side(self.n_variables)
        g = torch.Generator().manual_seed(int(seed))
        init = torch.linspace(1.0, -1.0, self.n_variables)[
            torch.randperm(self.n_variables, generator=g)
        ]
        self.blueprint = nn.Parameter(init)
        self.register_buffer("tau", torch.tensor(float(tau)))

    def permutation(self) -> torch.Tensor:
        """The matrix ``P`` used now: soft while training at ``tau > 0``, hard otherwise."""
        tau = float(self.tau) if self.training else 0.0
        return soft_sort(self.blueprint, tau)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_variables:
            raise HumanscapeError(
                f"signature expects (batch, {self.n_variables}) rows, got {tuple(x.shape)}"
            )
        t = x @ self.permutation().T  # T = P X for every row
        pad = self.side * self.side - self.n_variables
        if pad:
            t = nn.functional.pad(t, (0, pad))
        return t.reshape(x.shape[0], 1, self.side, self.side)

    def order(self) -> np.ndarray:
        """Variable index in each slot (row-major), the hard order ``argsort(-B)``."""
        b = self.blueprint.detach().cpu()
        return torch.argsort(b, descending=True, stable=True).numpy()

    def layout(self) -> np.ndarray:
        """``(side, side)`` grid of variable indices, ``-1`` in the padding cells."""
        cells = np.full(self.side * self.side, -1, dtype=np.int64)
        cells[: self.n_variables] = self.order()
        return cells.reshape(self.side, self.side)


def layout_positions(layout: np.ndarray) -> np.ndarray:
    """``(A, 2)`` row and column of each variable in a layout from :meth:`SocialSignature.layout`."""
    n = int((layout >= 0).sum())
    pos = np.zeros((n, 2), dtype=np.int64)
    rows, cols = np.nonzero(layout >= 0)
    pos[layout[rows, cols]] = np.stack([rows, cols], axis=1)
    return pos


def pair_distance(layout: np.ndarray, pairs: list[tuple[int, int]]) -> float:
    """Mean Chebyshev grid distance of variable pairs (1: inside one 3 x 3 filter window)."""
    pos = layout_positions(layout)
    return float(np.mean([np.abs(pos[a] - pos[b]).max() for a, b in pairs]))


def layout_permutation_test(
    layout: np.ndarray, pairs: list[tuple[int, int]], *, n_permutations: int = 9999, seed: int = 0
) -> dict[str, float]:
    """Are the ``pairs`` (interacting variables) closer on the grid than under a random layout?

    The statistic is :func:`pair_distance`; the null is the same grid with the variables placed
    at random (``n_permutations`` layouts). ``p = (1 + #{null <= observed}) / (1 + n)``
    (one-sided, Phipson & Smyth 2010).
    """
    observed = pair_distance(layout, pairs)
    rng = np.random.default_rng(seed)
    flat = layout.reshape(-1)
    filled = np.flatnonzero(flat >= 0)
    null = np.empty(n_permutations)
    for k in range(n_permutations):
        shuffled = flat.copy()
        shuffled[filled] = rng.permutation(flat[filled])
        null[k] = pair_distance(shuffled.reshape(layout.shape), pairs)
    return {
        "distance": observed,
        "null_mean": float(null.mean()),
        "p_value": float((1 + (null <= observed).sum()) / (1 + n_permutations)),
    }


def signature_resnet18(in_chans: int = 1) -> nn.Module:
    """timm ResNet-18 for signatures: 3 x 3 stride-1 stem and no max-pooling (a 7 x 7 grid stays 7 x 7
    into the first stage; Runfola et al. 2022 convolve 3 x 3 filters across the signature).

    Returns the pooled 512-feature extractor (``num_classes=0``).
    """
    import timm  # the package __init__ installed the torchvision shim

    net = timm.create_model("resnet18", pretrained=False, in_chans=in_chans, num_classes=0)
    net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net
