"""One estimator for every flow model: fit on cities with observed flows, predict a city's OD matrix.

Methods (``--method``):

- ``gnn``: GMEL-style graph attention model (:class:`~humanscape.models.flow_nets.GATFlowNet`),
  the step 2 of Imagery2Flow (Xu et al. 2025); predicts pair flows and margins itself.
- ``gravity``: gravity law fitted as a Poisson GLM, ``constraint`` none / production / doubly and
  ``deterrence`` power / exponential (:mod:`~humanscape.tasks.flows.gravity`).
- ``radiation``: the parameter-free radiation model.
- ``deepgravity``: Deep Gravity (Simini et al. 2021).
- ``gbrt``: gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``, Poisson loss)
  on pair features, the strongest classical baseline of CommutingODGen (Rong et al. 2023).

Models that need the margins (constrained gravity, radiation, Deep Gravity) take them from a
:class:`~humanscape.tasks.flows.gravity.MarginModel` fitted on the same cities (a city with no
survey), or from the city's own observed flows when ``margins="observed"``.

Within every training city the pairs are split 8:1:1 (train / validation / test, seeded) as in
Imagery2Flow; the validation pairs drive early stopping, the test pairs give the within-city score.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from humanscape.data.standardise import Standardiser
from humanscape.errors import HumanscapeError
from humanscape.models.estimator import TaskModel
from humanscape.models.model_folder import load_net_weights
from humanscape.tasks.flows.cities import City
from humanscape.tasks.flows.features import (
    fit_scaler,
    node_features,
    pair_descriptors,
    pair_features,
)
from humanscape.tasks.flows.gravity import DETERRENCES, Gravity, MarginModel, radiation

KINDS = ("gnn", "gravity", "radiation", "deepgravity", "gbrt")
CONSTRAINTS = ("none", "production", "doubly")
MARGINS = ("estimated", "observed")
#: Early stopping of the networks on held-out pairs of every city (8:1:1, Imagery2Flow) or on
#: whole held-out training cities (a sixth of them, at least one; needs 3 cities or more).
VALIDATIONS = ("pairs", "cities")
WHAT, REFIT = "flow model", "flows fit"
SKOPS_TRUSTED = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


def pair_split(
    n: int, seed: int, shares: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> tuple[np.ndarray, ...]:
    """Random 8:1:1 split of the ``n * n`` pairs of a city -> ``(train, val, test)`` ``(n, n)`` bool masks."""
    order = np.random.default_rng(seed).permutation(n * n)
    cut1 = int(round(shares[0] * n * n))
    cut2 = cut1 + int(round(shares[1] * n * n))
    masks = []
    for part in (order[:cut1], order[cut1:cut2], order[cut2:]):
        m = np.zeros(n * n, bool)
        m[part] = True
        masks.append(m.reshape(n, n))
    return tuple(masks)


class FlowModel(TaskModel):
    """Fit / predict / save / load for every flow method (module docstring).

    Parameters
    ----------
    method
        One of :data:`KINDS`; the default is the best measured on held-out counties
        (docs/benchmarks.md): the doubly constrained gravity model with estimated margins.
    constraint, deterrence
        For ``gravity``: ``none`` / ``production`` / ``doubly`` and ``power`` / ``exponential``.
    epochs, patience
        For the networks: maximum epochs (one epoch = every training city once) and early-stopping
        patience on the validation pairs.
    hidden, knn
        GAT width, and the ``knn`` nearest regions each region is linked to (besides the regions
        it borders).
    validation
        Early stopping of the networks on the validation pairs of every city (``pairs``) or on
        whole training cities held out (``cities``, see :data:`VALIDATIONS`).
    seed
        Pair split, initialisation and tree seeds.
    """

    kind = "humanscape.flows"
    what = WHAT
    refit = REFIT
    fitted_attribute = "scaler_"

    def __init__(
        self,
        method: str = "gravity",
        *,
        constraint: str = "doubly",
        deterrence: str = "power",
        epochs: int = 300,
        patience: int = 40,
        hidden: int = 64,
        knn: int = 8,
        validation: str = "pairs",
        seed: int = 0,
    ) -> None:
        self.method = method
        self.constraint = constraint
        self.deterrence = deterrence
        self.epochs = epochs
        self.patience = patience
        self.hidden = hidden
        self.knn = knn
        self.validation = validation
        self.seed = seed

    def _validate_params(self) -> None:
        self._choice("flow method", self.method, KINDS)
        self._choice("constraint", self.constraint, CONSTRAINTS)
        self._choice("deterrence", self.deterrence, DETERRENCES)
        self._choice("validation", self.validation, VALIDATIONS)

    @property
    def label(self) -> str:
        """``gravity-doubly-power`` for gravity models, the kind otherwise."""
        if self.method == "gravity":
            return f"gravity-{self.constraint}-{self.deterrence}"
        return self.method

    @property
    def needs_margins(self) -> bool:
        return self.method in ("radiation", "deepgravity") or (
            self.method == "gravity" and self.constraint != "none"
        )

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        cities: list[City],
        y: None = None,
        *,
        work_dir: str | Path | None = None,
        progress: bool = True,
    ) -> FlowModel:
        """Fit on ``cities`` (each with its observed flows: there is no separate ``y``); the pairs
        of every city are split 8:1:1 (train / validation / test)."""
        self._validate_params()
        if not cities:
            raise HumanscapeError("no city to fit on", fix="give at least one city with flows")
        for city in cities:
            if city.flows is None:
                raise HumanscapeError("no observed flows to fit on", path=city.source)
        self.masks_ = [pair_split(c.n, self.seed + k) for k, c in enumerate(cities)]
        self.scaler_: Standardiser = fit_scaler(cities)
        nodes = [node_features(c, self.scaler_) for c in cities]
        self.n_cities_ = len(cities)
        self.margins_: MarginModel | None = None
        if self.needs_margins:
            self.margins_ = MarginModel(self.seed).fit(nodes, cities)
        train = [m[0] for m in self.masks_]
        if self.method == "gravity":
            self.gravity_ = Gravity(self.constraint, self.deterrence).fit(cities, train)
        elif self.method == "gbrt":
            self._fit_gbrt(cities, nodes)
        elif self.method in ("gnn", "deepgravity"):
            self._fit_net(cities, nodes, work_dir, progress)
        return self

    def _fit_gbrt(self, cities: list[City], nodes: list[np.ndarray]) -> None:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x, y = [], []
        for city, z, (train, val, _) in zip(cities, nodes, self.masks_, strict=True):
            keep = (train | val).ravel()  # the trees stop early on their own validation split
            x.append(pair_features(city, z)[keep])
            y.append(city.flows.ravel()[keep])  # type: ignore[union-attr]
        self.gbrt_ = HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=500,
            learning_rate=0.05,
            max_leaf_nodes=63,
            min_samples_leaf=40,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=self.seed,
        ).fit(np.concatenate(x), np.concatenate(y))

    def _graph(self, city: City, z: np.ndarray, masks: tuple[np.ndarray, ...] | None = None) -> Any:
        """The city as a graph; the GAT's head reads the pair descriptors, Deep Gravity all pair features."""
        from humanscape.models.flow_nets import make_graph

        return make_graph(
            z,
            pair_descriptors(city) if self.method == "gnn" else pair_features(city, z),
            city.distance_km,
            city.adjacency,
            neighbours=self.knn,
            flows=city.flows,
            train=None if masks is None else masks[0],
            val=None if masks is None else masks[1],
        )

    def _build(self, in_features: int, pair_features_: int) -> Any:
        from humanscape.models.flow_nets import DeepGravityNet, GATFlowNet

        if self.method == "gnn":
            return GATFlowNet(in_features, pair_features_, hidden=self.hidden)
        return DeepGravityNet(pair_features_)

    def _fit_net(
        self,
        cities: list[City],
        nodes: list[np.ndarray],
        work_dir: str | Path | None,
        progress: bool,
    ) -> None:
        import torch

        from humanscape.models.flow_nets import CityIndex
        from humanscape.models.training import fit_module

        torch.manual_seed(self.seed)
        graphs = [self._graph(c, z, m) for c, z, m in zip(cities, nodes, self.masks_, strict=True)]
        train, val = list(range(len(graphs))), list(range(len(graphs)))
        if self.validation == "cities" and len(graphs) >= 3:
            # whole cities held out for early stopping: the score that matters is on unseen cities
            k = max(1, round(len(graphs) / 6))
            val = sorted(np.random.default_rng(self.seed).permutation(len(graphs))[:k].tolist())
            train = [i for i in train if i not in val]
            for i in train:  # training cities fit on their validation pairs too
                graphs[i].train = graphs[i].train | graphs[i].val
            for i in val:
                graphs[i].val = torch.ones_like(graphs[i].val)
        self.in_features_ = nodes[0].shape[1]
        self.pair_features_ = int(graphs[0].pairs.shape[1])
        net = self._build(self.in_features_, self.pair_features_)
        net.attach(graphs)
        fit_module(
            net,
            CityIndex(train),
            val_dataset=CityIndex(val),
            epochs=self.epochs,
            batch_size=1,
            patience=self.patience,
            work_dir=work_dir,
            seed=self.seed,
            progress=progress,
        )
        net.attach([])
        self.net_ = net.eval()

    # -- prediction -------------------------------------------------------------------------
    def margins(self, city: City, *, margins: str = "estimated") -> tuple[np.ndarray, np.ndarray]:
        """Origin and destination totals: estimated from features, or the city's observed ones."""
        if margins not in MARGINS:
            raise HumanscapeError(
                f"unknown margins '{margins}'", fix=f"use one of {', '.join(MARGINS)}"
            )
        if margins == "observed":
            if city.flows is None:
                raise HumanscapeError(
                    "observed margins asked for a city without flows",
                    path=city.source,
                    fix="give the flows, or use estimated margins",
                )
            return city.flows.sum(axis=1), city.flows.sum(axis=0)
        assert self.margins_ is not None
        return self.margins_.predict(node_features(city, self.scaler_))

    def predict(self, city: City, *, margins: str = "estimated") -> np.ndarray:
        """Expected flows ``(N, N)`` (row = origin, column = destination) for ``city``."""
        self.check_fitted()
        z = node_features(city, self.scaler_)
        if self.needs_margins:
            out, into = self.margins(city, margins=margins)
        if self.method == "gravity":
            return (
                self.gravity_.predict(city, out, into)
                if self.needs_margins
                else self.gravity_.predict(city)
            )
        if self.method == "radiation":
            return radiation(city, out)
        if self.method == "gbrt":
            return np.clip(self.gbrt_.predict(pair_features(city, z)), 0, None).reshape(
                city.n, city.n
            )
        graph = self._graph(city, z)
        if self.method == "gnn":
            return self.net_.predict_city(graph)
        return out[:, None] * self.net_.predict_city(graph)

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        state: dict[str, Any] = {"scaler": self.scaler_.to_config(), "n_cities": self.n_cities_}
        if self.margins_ is not None:
            sio.dump(self.margins_.origin_, folder / "margins_origin.skops")
            sio.dump(self.margins_.destination_, folder / "margins_destination.skops")
        if self.method == "gravity":
            state["gravity"] = {
                "params": self.gravity_.params_,
                "intercept": self.gravity_.intercept_,
            }
        elif self.method == "gbrt":
            sio.dump(self.gbrt_, folder / "gbrt.skops")
        elif self.method in ("gnn", "deepgravity"):
            from safetensors.torch import save_file

            state["in_features"] = self.in_features_
            state["pair_features"] = self.pair_features_
            weights = {k: v.contiguous() for k, v in self.net_.state_dict().items()}
            save_file(weights, str(folder / "weights.safetensors"))
        return state

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        from humanscape.models.sklearn_io import load_skops

        self.scaler_ = Standardiser.from_config(state["scaler"])
        self.n_cities_ = int(state["n_cities"])
        if self.method == "gravity":
            self.gravity_ = Gravity(self.constraint, self.deterrence)
            self.gravity_.params_ = {k: float(v) for k, v in state["gravity"]["params"].items()}
            self.gravity_.intercept_ = float(state["gravity"]["intercept"])
        self.margins_ = None
        if self.needs_margins:
            self.margins_ = MarginModel(self.seed)
            self.margins_.origin_ = load_skops(
                folder / "margins_origin.skops", trusted=SKOPS_TRUSTED, refit=REFIT
            )
            self.margins_.destination_ = load_skops(
                folder / "margins_destination.skops", trusted=SKOPS_TRUSTED, refit=REFIT
            )
        if self.method == "gbrt":
            self.gbrt_ = load_skops(folder / "gbrt.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
        if self.method in ("gnn", "deepgravity"):
            self.in_features_ = int(state["in_features"])
            self.pair_features_ = int(state["pair_features"])
            self.net_ = load_net_weights(
                self._build(self.in_features_, self.pair_features_),
                folder / "weights.safetensors",
                REFIT,
            )


def remove_checkpoints(work_dir: Path) -> None:
    """Remove a finished run's checkpoint folder."""
    shutil.rmtree(work_dir, ignore_errors=True)
