"""One estimator for every flow model: fit on cities with observed flows, predict a city's OD matrix.

Kinds (``--model``):

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

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from humanscape import __version__
from humanscape._atomic import atomic_folder
from humanscape.data.standardise import Standardiser
from humanscape.errors import HumanscapeError
from humanscape.models.model_folder import config_of, load_net_weights, parsing
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


class FlowModel:
    """Fit / predict / save / load for every flow model kind (module docstring).

    Parameters
    ----------
    model
        One of :data:`KINDS`; the default is the best measured on held-out counties
        (docs/benchmarks.md): the doubly constrained gravity model with estimated margins.
    constraint, deterrence
        For ``gravity``: ``none`` / ``production`` / ``doubly`` and ``power`` / ``exponential``.
    epochs, patience
        For the networks: maximum epochs (one epoch = every training city once) and early-stopping
        patience on the validation pairs.
    hidden, neighbours
        GAT width, and the nearest regions each region is linked to (besides its neighbours).
    validation
        Early stopping of the networks on the validation pairs of every city (``pairs``) or on
        whole training cities held out (``cities``, see :data:`VALIDATIONS`).
    seed
        Pair split, initialisation and tree seeds.
    """

    def __init__(
        self,
        model: str = "gravity",
        *,
        constraint: str = "doubly",
        deterrence: str = "power",
        epochs: int = 300,
        patience: int = 40,
        hidden: int = 64,
        neighbours: int = 8,
        validation: str = "pairs",
        seed: int = 0,
    ) -> None:
        if model not in KINDS:
            raise HumanscapeError(
                f"unknown flow model '{model}'", fix=f"use one of {', '.join(KINDS)}"
            )
        if constraint not in CONSTRAINTS:
            raise HumanscapeError(
                f"unknown constraint '{constraint}'", fix=f"use one of {', '.join(CONSTRAINTS)}"
            )
        if deterrence not in DETERRENCES:
            raise HumanscapeError(
                f"unknown deterrence '{deterrence}'", fix=f"use one of {', '.join(DETERRENCES)}"
            )
        self.model = model
        self.constraint = constraint
        self.deterrence = deterrence
        self.epochs = epochs
        self.patience = patience
        self.hidden = hidden
        self.neighbours = neighbours
        if validation not in VALIDATIONS:
            raise HumanscapeError(
                f"unknown validation '{validation}'", fix=f"use one of {', '.join(VALIDATIONS)}"
            )
        self.validation = validation
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "constraint": self.constraint,
            "deterrence": self.deterrence,
            "epochs": self.epochs,
            "patience": self.patience,
            "hidden": self.hidden,
            "neighbours": self.neighbours,
            "validation": self.validation,
            "seed": self.seed,
        }

    @property
    def label(self) -> str:
        """``gravity-doubly-power`` for gravity models, the kind otherwise."""
        if self.model == "gravity":
            return f"gravity-{self.constraint}-{self.deterrence}"
        return self.model

    @property
    def needs_margins(self) -> bool:
        return self.model in ("radiation", "deepgravity") or (
            self.model == "gravity" and self.constraint != "none"
        )

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self, cities: list[City], *, work_dir: str | Path | None = None, progress: bool = True
    ) -> FlowModel:
        """Fit on ``cities`` (each with observed flows); pairs split 8:1:1 within each city."""
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
        if self.model == "gravity":
            self.gravity_ = Gravity(self.constraint, self.deterrence).fit(cities, train)
        elif self.model == "gbrt":
            self._fit_gbrt(cities, nodes)
        elif self.model in ("gnn", "deepgravity"):
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
            pair_descriptors(city) if self.model == "gnn" else pair_features(city, z),
            city.distance_km,
            city.adjacency,
            neighbours=self.neighbours,
            flows=city.flows,
            train=None if masks is None else masks[0],
            val=None if masks is None else masks[1],
        )

    def _build(self, in_features: int, pair_features_: int) -> Any:
        from humanscape.models.flow_nets import DeepGravityNet, GATFlowNet

        if self.model == "gnn":
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
    def _check_fitted(self) -> None:
        if not hasattr(self, "scaler_"):
            raise HumanscapeError(
                "flow model is not fitted", fix="call fit() or load a model folder"
            )

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
        self._check_fitted()
        z = node_features(city, self.scaler_)
        if self.needs_margins:
            out, into = self.margins(city, margins=margins)
        if self.model == "gravity":
            return (
                self.gravity_.predict(city, out, into)
                if self.needs_margins
                else self.gravity_.predict(city)
            )
        if self.model == "radiation":
            return radiation(city, out)
        if self.model == "gbrt":
            return np.clip(self.gbrt_.predict(pair_features(city, z)), 0, None).reshape(
                city.n, city.n
            )
        graph = self._graph(city, z)
        if self.model == "gnn":
            return self.net_.predict_city(graph)
        return out[:, None] * self.net_.predict_city(graph)

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (``config.json`` + safetensors / skops files)."""
        self._check_fitted()
        folder = Path(folder)
        with atomic_folder(folder, marker="config.json") as tmp:
            self.write_into(tmp)
        return folder

    def write_into(self, tmp: Path) -> None:
        import skops.io as sio

        config: dict[str, Any] = {
            "kind": "flows",
            "version": __version__,
            "sklearn_version": sklearn.__version__,
            "params": self.get_params(),
            "scaler": self.scaler_.to_config(),
            "n_cities": self.n_cities_,
        }
        if self.margins_ is not None:
            sio.dump(self.margins_.origin_, tmp / "margins_origin.skops")
            sio.dump(self.margins_.destination_, tmp / "margins_destination.skops")
        if self.model == "gravity":
            config["gravity"] = {
                "params": self.gravity_.params_,
                "intercept": self.gravity_.intercept_,
            }
        elif self.model == "gbrt":
            sio.dump(self.gbrt_, tmp / "gbrt.skops")
        elif self.model in ("gnn", "deepgravity"):
            from safetensors.torch import save_file

            config["in_features"] = self.in_features_
            config["pair_features"] = self.pair_features_
            state = {k: v.contiguous() for k, v in self.net_.state_dict().items()}
            save_file(state, str(tmp / "weights.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> FlowModel:
        """Read a folder written by :meth:`save`."""
        from humanscape.models.sklearn_io import load_skops

        folder = Path(folder)
        config = config_of(folder, kind="flows", what=WHAT, command=REFIT)
        with parsing(folder / "config.json", WHAT, REFIT):
            model = cls(**config["params"])
            model.scaler_ = Standardiser.from_config(config["scaler"])
            model.n_cities_ = int(config["n_cities"])
            if model.model == "gravity":
                model.gravity_ = Gravity(model.constraint, model.deterrence)
                model.gravity_.params_ = {
                    k: float(v) for k, v in config["gravity"]["params"].items()
                }
                model.gravity_.intercept_ = float(config["gravity"]["intercept"])
            if model.model in ("gnn", "deepgravity"):
                model.in_features_ = int(config["in_features"])
                model.pair_features_ = int(config["pair_features"])
        model.margins_ = None
        if model.needs_margins:
            model.margins_ = MarginModel(model.seed)
            model.margins_.origin_ = load_skops(
                folder / "margins_origin.skops", trusted=SKOPS_TRUSTED, refit=REFIT
            )
            model.margins_.destination_ = load_skops(
                folder / "margins_destination.skops", trusted=SKOPS_TRUSTED, refit=REFIT
            )
        if model.model == "gbrt":
            model.gbrt_ = load_skops(folder / "gbrt.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
        if model.model in ("gnn", "deepgravity"):
            model.net_ = load_net_weights(
                model._build(model.in_features_, model.pair_features_),
                folder / "weights.safetensors",
                REFIT,
            )
        return model


def remove_checkpoints(work_dir: Path) -> None:
    """Remove a finished run's checkpoint folder."""
    shutil.rmtree(work_dir, ignore_errors=True)
