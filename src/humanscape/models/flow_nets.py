"""Networks for origin-destination flows: GMEL's graph attention model and Deep Gravity.

Both train one city (a graph of regions) per step through Lightning; the cities are attached
with :meth:`attach` as :class:`FlowGraph` tensors, and the dataset is the list of city indices.

- :class:`GATFlowNet` (GMEL, Liu et al. 2020; the step-2 model of Imagery2Flow, Xu et al. 2025):
  two graph attention encoders (GAT, Velickovic et al. 2018, ``torch_geometric.nn.GATConv``) turn
  node features into an origin embedding ``h_o`` and a destination embedding ``h_d``; edges link
  neighbouring regions and each region's nearest regions, with the log distance as edge feature.
  A flow head (MLP) maps ``[h_o_i, h_d_j, pair descriptors]`` to ``log E[T_ij]``. Loss: Poisson
  negative log-likelihood ``exp(eta) - T eta`` over the training pairs (divided by the city's
  mean flow so that large and small cities weigh alike), plus, as GMEL's multitask terms, the
  same loss for the origin totals ``O_i`` (from ``h_o``) and destination totals ``D_j`` (from ``h_d``).
- :class:`DeepGravityNet` (Simini et al. 2021): a deep feed-forward network over
  ``[x_i, x_j, pair descriptors]`` gives a score per pair; ``p_ij = softmax_j(score_ij)`` over each
  origin's destinations; loss the multinomial cross-entropy ``-sum_ij T_ij log p_ij / sum T``;
  flows ``T_ij = O_i p_ij`` (LeakyReLU, dropout 0.35 as in the paper; 3 hidden layers of 128, 128,
  64 units instead of the paper's 15 of up to 256, for CPU budgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class FlowGraph:
    """One city as tensors: ``x`` (N, F), ``pairs`` (N*N, P), edges, flows and pair masks."""

    x: torch.Tensor
    pairs: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    flows: torch.Tensor | None = None
    train: torch.Tensor | None = None
    val: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


def make_graph(
    x: np.ndarray,
    pairs: np.ndarray,
    distance_km: np.ndarray,
    adjacency: np.ndarray,
    *,
    neighbours: int = 8,
    flows: np.ndarray | None = None,
    train: np.ndarray | None = None,
    val: np.ndarray | None = None,
) -> FlowGraph:
    """A :class:`FlowGraph`: edges = shared borders + each region's ``neighbours`` nearest regions.

    Edges are directed both ways; the edge feature is ``log(d_ij)`` (km).
    """
    n = len(x)
    d = np.asarray(distance_km, np.float64).copy()
    np.fill_diagonal(d, np.inf)
    links = np.asarray(adjacency, bool).copy()
    k = min(neighbours, n - 1)
    if k > 0:
        nearest = np.argsort(d, axis=1)[:, :k]
        links[np.repeat(np.arange(n), k), nearest.ravel()] = True
    links |= links.T
    np.fill_diagonal(links, False)
    src, dst = np.nonzero(links)

    def tensor(a: np.ndarray | None, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype)

    return FlowGraph(
        x=torch.as_tensor(x, dtype=torch.float32),
        pairs=torch.as_tensor(pairs, dtype=torch.float32),
        edge_index=torch.as_tensor(np.stack([src, dst]), dtype=torch.long),
        edge_attr=torch.as_tensor(
            np.log(np.maximum(d[src, dst], 1e-3))[:, None], dtype=torch.float32
        ),
        flows=tensor(flows),
        train=tensor(train, torch.bool),
        val=tensor(val, torch.bool),
    )


class CityIndex(Dataset):
    """The dataset of a flow network: indices of attached cities (one city per step)."""

    def __init__(self, indices: Sequence[int]) -> None:
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> int:
        return self.indices[i]


def poisson_nll(log_rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Poisson negative log-likelihood ``exp(eta) - T eta`` over entries, over the mean target."""
    return (torch.exp(log_rate) - target * log_rate).mean() / target.mean().clamp_min(1e-6)


class _CityNet(pl.LightningModule):
    """Shared plumbing: attached cities, one city per step, Adam."""

    def __init__(self) -> None:
        super().__init__()
        self.graphs: list[FlowGraph] = []

    def attach(self, graphs: list[FlowGraph]) -> None:
        self.graphs = graphs

    def city_loss(self, graph: FlowGraph, mask: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = [self.city_loss(self.graphs[int(i)], self.graphs[int(i)].train) for i in batch]
        loss = torch.stack(losses).mean()
        self.log("loss", loss, prog_bar=True, batch_size=len(batch))
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        losses = [self.city_loss(self.graphs[int(i)], self.graphs[int(i)].val) for i in batch]
        self.log("val_loss", torch.stack(losses).mean(), prog_bar=True, batch_size=len(batch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )


def _mlp(sizes: list[int], *, dropout: float = 0.0, leaky: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.LeakyReLU() if leaky else nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class _GATEncoder(nn.Module):
    """Linear projection + ``layers`` residual GATConv blocks with the edge feature."""

    def __init__(
        self, in_features: int, hidden: int, heads: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.project = nn.Linear(in_features, hidden)
        self.convs = nn.ModuleList(
            GATConv(hidden, hidden // heads, heads=heads, edge_dim=1, dropout=dropout)
            for _ in range(layers)
        )
        self.act = nn.ELU()

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        h = self.act(self.project(x))
        for conv in self.convs:
            h = h + self.act(conv(h, edge_index, edge_attr))
        return h


class GATFlowNet(_CityNet):
    """GMEL-style graph attention flow model (module docstring)."""

    def __init__(
        self,
        in_features: int,
        pair_features: int,
        *,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        margin_weight: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.origin = _GATEncoder(in_features, hidden, heads, layers, dropout)
        self.destination = _GATEncoder(in_features, hidden, heads, layers, dropout)
        self.head = _mlp([2 * hidden + pair_features, 128, 64, 1])
        self.out_total = nn.Linear(hidden, 1)
        self.in_total = nn.Linear(hidden, 1)

    def embeddings(self, graph: FlowGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """Origin and destination embeddings ``h_o``, ``h_d`` ``(N, hidden)``."""
        args = (graph.x, graph.edge_index, graph.edge_attr)
        return self.origin(*args), self.destination(*args)

    def forward(self, graph: FlowGraph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``log E[T]`` ``(N, N)``, ``log O`` ``(N,)`` and ``log D`` ``(N,)``."""
        h_o, h_d = self.embeddings(graph)
        n = graph.n
        z = torch.cat([h_o.repeat_interleave(n, 0), h_d.repeat(n, 1), graph.pairs], dim=1)
        log_flow = self.head(z).view(n, n)
        return log_flow, self.out_total(h_o).squeeze(1), self.in_total(h_d).squeeze(1)

    def city_loss(self, graph: FlowGraph, mask: torch.Tensor) -> torch.Tensor:
        assert graph.flows is not None
        log_flow, log_out, log_in = self(graph)
        loss = poisson_nll(log_flow[mask], graph.flows[mask])
        w = self.hparams["margin_weight"]
        if w:
            observed = torch.where(mask, graph.flows, torch.zeros_like(graph.flows))
            share = mask.float().mean().clamp_min(1e-6)  # margins of the masked pairs, rescaled
            loss = loss + w * (
                poisson_nll(log_out, observed.sum(1) / share)
                + poisson_nll(log_in, observed.sum(0) / share)
            )
        return loss

    @torch.no_grad()
    def predict_city(self, graph: FlowGraph) -> np.ndarray:
        """Expected flows ``(N, N)``."""
        self.eval()
        return torch.exp(self(graph)[0]).numpy().astype(np.float64)


class DeepGravityNet(_CityNet):
    """Deep Gravity: per-pair scores, softmax over each origin's destinations (module docstring)."""

    def __init__(
        self,
        pair_features: int,
        *,
        hidden: tuple[int, ...] = (128, 128, 64),
        dropout: float = 0.35,
        lr: float = 5e-4,
        weight_decay: float = 1e-5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.score = _mlp([pair_features, *hidden, 1], dropout=dropout, leaky=True)

    def forward(self, graph: FlowGraph) -> torch.Tensor:
        """Scores ``(N, N)``."""
        return self.score(graph.pairs).view(graph.n, graph.n)

    def city_loss(self, graph: FlowGraph, mask: torch.Tensor) -> torch.Tensor:
        assert graph.flows is not None
        score = self(graph).masked_fill(~mask, float("-inf"))
        log_p = torch.log_softmax(score, dim=1)
        t = torch.where(mask, graph.flows, torch.zeros_like(graph.flows))
        return -(t * torch.where(mask, log_p, torch.zeros_like(log_p))).sum() / t.sum().clamp_min(
            1e-6
        )

    @torch.no_grad()
    def predict_city(self, graph: FlowGraph) -> np.ndarray:
        """Destination probabilities ``p_ij`` ``(N, N)`` (rows sum to 1)."""
        self.eval()
        return torch.softmax(self(graph), dim=1).numpy().astype(np.float64)
