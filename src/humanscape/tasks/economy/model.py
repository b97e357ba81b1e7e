"""District indicators from many tiles (Park et al. 2022, eq. 9-14), as one estimator.

:class:`EconomyModel` joins the three steps: a fitted score model ``f`` (step 1,
:mod:`~humanscape.tasks.economy.score`), the ensemble of step-2 encoders trained from it with
their 3-component PCAs (:mod:`~humanscape.tasks.economy.encoders`), and the district regressor
``h`` (:mod:`~humanscape.tasks.economy.district`). For districts given as tiles it returns the
indicator ``sum f * exp(h(r))``, the district factor ``exp(h(r))``, each district's Gini of tile
scores, and the national Gini three ways (:mod:`~humanscape.tasks.economy.inequality`).

A fitted model is a folder: ``config.json``, ``score/`` (the score model), ``encoders.safetensors``
(the encoder networks), ``pca.safetensors`` and ``regressor.skops``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from humanscape import __version__
from humanscape._atomic import atomic_folder
from humanscape.errors import HumanscapeError
from humanscape.models.model_folder import config_of, parsing, read_weights
from humanscape.tasks.economy.district import (
    KINDS,
    DistrictRegressor,
    DistrictStats,
    district_stats,
)
from humanscape.tasks.economy.encoders import EncoderSpec, PCAProjection, train_encoder
from humanscape.tasks.economy.inequality import national_gini, within_district_gini
from humanscape.tasks.economy.ordinal import classify, positive_scores
from humanscape.tasks.economy.score import ScoreModel, build_score_net, pooled_features

log = logging.getLogger(__name__)

WHAT, REFIT = "economy model", "economy fit"

#: Types a saved regressor may hold besides scikit-learn's own (skops allow-list).
SKOPS_TRUSTED = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "humanscape.tasks.economy.district.DistrictRegressor",
)


@dataclass
class TileValues:
    """What the model sees of each tile: score, positive score, projected encoder features."""

    scores: np.ndarray
    positive: np.ndarray
    components: np.ndarray  # (tiles, 3 * encoders)


class EconomyModel:
    """District indicator from tiles (see the module docstring).

    Parameters
    ----------
    indicator
        Name of the indicator (column of the district table).
    kind
        ``count`` (population, GDP: unions add) or ``rate`` (per-head values: unions average).
    n_clusters
        ``n_c`` of each encoder per source (paper: 0, 30, 90). Empty: no step-2 encoders, the
        score model's own features are used (the "without fine-tuning" ablation).
    sources
        Proxy sources of the encoders: ``labels`` (the step-1 tiles) and / or ``nightlight``.
    encoder_epochs, encoder_lr, lam
        Step-2 training (paper: 5 epochs; lambda = 1).
    components
        Principal components per encoder (paper: 3).
    n_estimators, augment, max_pairs
        District regressor (paper: 200 trees) and district augmentation.
    seed
        Seed of everything random.
    """

    def __init__(
        self,
        *,
        indicator: str = "population",
        kind: str = "count",
        n_clusters: Sequence[int] = (0, 30, 90),
        sources: Sequence[str] = ("labels",),
        encoder_epochs: int = 5,
        encoder_lr: float = 1e-4,
        lam: float = 1.0,
        components: int = 3,
        n_estimators: int = 200,
        augment: bool = True,
        max_pairs: int = 5000,
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise HumanscapeError(f"unknown indicator kind '{kind}'", fix=f"use one of {KINDS}")
        if any(k < 0 for k in n_clusters):
            raise HumanscapeError(f"n_clusters must be >= 0, got {list(n_clusters)}")
        self.indicator, self.kind = indicator, kind
        self.n_clusters, self.sources = [int(k) for k in n_clusters], list(sources)
        self.encoder_epochs, self.encoder_lr, self.lam = encoder_epochs, encoder_lr, lam
        self.components, self.n_estimators, self.augment = components, n_estimators, augment
        self.max_pairs, self.seed = max_pairs, seed

    def get_params(self) -> dict[str, Any]:
        keys = (
            "indicator kind n_clusters sources encoder_epochs encoder_lr lam components "
            "n_estimators augment max_pairs seed"
        )
        return {k: getattr(self, k) for k in keys.split()}

    @property
    def specs(self) -> list[EncoderSpec]:
        return [EncoderSpec(s, k) for s in self.sources for k in self.n_clusters]

    # -- step 2
    def fit_encoders(
        self,
        score_model: ScoreModel,
        tiles: np.ndarray,
        *,
        labelled: tuple[np.ndarray, np.ndarray] | None = None,
        nightlight: np.ndarray | None = None,
        progress: bool = True,
    ) -> EconomyModel:
        """Train the step-2 encoders on the district ``tiles`` and fit their PCAs."""
        self.score_model_ = score_model
        scores = score_model.predict(tiles)
        inhabited = classify(scores, score_model.thresholds) > 0
        if inhabited.sum() < 2:
            inhabited[:] = True  # nothing but water and forest: cluster what there is
        self.nets_ = []
        self.encoder_names_ = []
        for k, spec in enumerate(self.specs):
            log.info("encoder %s (%d/%d)", spec.name, k + 1, len(self.specs))
            net = train_encoder(
                spec,
                score_model.copy_net(),
                score_model.norm_,
                thresholds=score_model.thresholds,
                unlabelled=tiles[inhabited],
                labelled=labelled,
                nightlight=None if nightlight is None else nightlight[inhabited],
                epochs=self.encoder_epochs,
                lam=self.lam,
                lr=self.encoder_lr,
                seed=self.seed + k,
                progress=progress,
            )
            self.nets_.append(net)
            self.encoder_names_.append(spec.name)
        raw = self._raw_features(tiles)
        self.pcas_ = [PCAProjection(self.components, self.seed).fit(f) for f in raw]
        self._fitted_tiles = (tiles, raw)  # the fit's own tiles: not embedded twice
        return self

    def _raw_features(self, tiles: np.ndarray) -> list[np.ndarray]:
        cached = getattr(self, "_fitted_tiles", None)
        if cached is not None and cached[0] is tiles:
            return cached[1]
        nets = self.nets_ or [self.score_model_.net_]
        return [pooled_features(net, self.score_model_.norm_, tiles) for net in nets]

    def tile_values(self, tiles: np.ndarray) -> TileValues:
        """Score, positive score and the PCA components of every encoder for each tile."""
        tiles = np.asarray(tiles, dtype=np.float32)
        scores = self.score_model_.predict(tiles)
        comps = [p.transform(f) for p, f in zip(self.pcas_, self._raw_features(tiles), strict=True)]
        return TileValues(
            scores, positive_scores(scores, self.score_model_.thresholds), np.concatenate(comps, 1)
        )

    # -- step 3
    def regressor(self) -> DistrictRegressor:
        return DistrictRegressor(
            n_estimators=self.n_estimators,
            augment=self.augment,
            max_pairs=self.max_pairs,
            kind=self.kind,
            seed=self.seed,
            n_jobs=-1,
        )

    def fit(
        self,
        score_model: ScoreModel,
        tiles: np.ndarray,
        district: np.ndarray,
        names: list[str],
        y: np.ndarray,
        *,
        weights: np.ndarray | None = None,
        labelled: tuple[np.ndarray, np.ndarray] | None = None,
        nightlight: np.ndarray | None = None,
        progress: bool = True,
    ) -> EconomyModel:
        """All of steps 2 and 3: ``tiles`` with their ``district`` index into ``names`` / ``y``."""
        self.fit_encoders(
            score_model, tiles, labelled=labelled, nightlight=nightlight, progress=progress
        )
        values = self.tile_values(tiles)
        stats = district_stats(district, values.components, values.positive, names=names)
        self.regressor_ = self.regressor().fit(stats, y, weights)
        self.n_districts_ = len(names)
        return self

    def stats(
        self, tiles: np.ndarray, district: np.ndarray, names: list[str]
    ) -> tuple[TileValues, DistrictStats]:
        values = self.tile_values(tiles)
        return values, district_stats(district, values.components, values.positive, names=names)

    def predict(
        self, tiles: np.ndarray, district: np.ndarray, names: list[str]
    ) -> tuple[pd.DataFrame, dict[str, float], TileValues]:
        """Per district: indicator, factor, score sum, tiles, Gini; the national Gini; tile values."""
        if not hasattr(self, "regressor_"):
            raise HumanscapeError("the economy model is not fitted", fix="call fit first")
        values, stats = self.stats(tiles, district, names)
        factor = self.regressor_.factor(stats)
        table = pd.DataFrame(
            {
                "district": names,
                self.indicator: self.regressor_.predict(stats),
                "district_factor": factor,
                "score_sum": stats.score_sum,
                "n_tiles": stats.n.astype(int),
                "gini": within_district_gini(values.positive, district, len(names)),
            }
        )
        return table, national_gini(values.positive, district, factor), values

    # -- persistence
    def save(self, folder: str | Path, *, extra_files: dict[str, str] | None = None) -> Path:
        import skops.io as sio

        if not hasattr(self, "regressor_"):
            raise HumanscapeError("the economy model is not fitted", fix="call fit first")
        config = {
            "kind": "humanscape.economy",
            "params": self.get_params(),
            "encoders": self.encoder_names_,
            "pca_explained": [p.explained_ for p in self.pcas_],
            "n_districts": self.n_districts_,
            "versions": {
                "humanscape": __version__,
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
            },
        }
        with atomic_folder(Path(folder), marker="config.json") as tmp:
            (tmp / "score").mkdir()
            self.score_model_.write_into(tmp / "score")
            state = {
                f"{i}.{k}": v.detach().contiguous().cpu()
                for i, net in enumerate(self.nets_)
                for k, v in net.state_dict().items()
            }
            if state:
                save_file(state, str(tmp / "encoders.safetensors"))
            pcas = {}
            for i, p in enumerate(self.pcas_):
                pcas[f"{i}.mean"] = np.ascontiguousarray(p.mean_)
                pcas[f"{i}.components"] = np.ascontiguousarray(p.components_)
            save_numpy(pcas, str(tmp / "pca.safetensors"))
            sio.dump(self.regressor_, tmp / "regressor.skops")
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> EconomyModel:
        """Load a folder written by :meth:`save`; a foreign or corrupt folder is refused by name."""
        from humanscape.models.sklearn_io import load_skops

        folder = Path(folder)
        config = config_of(folder, kind="humanscape.economy", what=WHAT, command=REFIT)
        with parsing(folder / "config.json", WHAT, REFIT):
            model = cls(**config["params"])
            model.encoder_names_ = list(config["encoders"])
            model.n_districts_ = int(config["n_districts"])
        model.score_model_ = ScoreModel.load(folder / "score")
        sm = model.score_model_
        model.nets_ = []
        if model.encoder_names_:
            state = read_weights(folder / "encoders.safetensors", load_file, REFIT)
            for i in range(len(model.encoder_names_)):
                net, _ = build_score_net(
                    sm.arch, sm.bands, dropout=sm.dropout, input_size=sm.input_size
                )
                part = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{i}.")}
                try:
                    net.load_state_dict(part)
                except RuntimeError as exc:
                    raise HumanscapeError(
                        f"encoder weights do not fit the score network: {str(exc)[:120]}",
                        path=folder / "encoders.safetensors",
                        fix="the folder's files must come from one 'economy fit' run",
                    ) from None
                model.nets_.append(net.eval())
        arrays = read_weights(folder / "pca.safetensors", load_numpy, REFIT)
        model.pcas_ = []
        for i in range(max(len(model.nets_), 1)):
            p = PCAProjection(model.components, model.seed)
            p.mean_, p.components_ = arrays[f"{i}.mean"], arrays[f"{i}.components"]
            model.pcas_.append(p)
        model.regressor_ = load_skops(
            folder / "regressor.skops", trusted=SKOPS_TRUSTED, refit="economy fit"
        )
        if not isinstance(model.regressor_, DistrictRegressor):
            raise HumanscapeError("the regressor file holds no district regressor", path=folder)
        return model
