"""District indicators from many tiles (Park et al. 2022, eq. 9-14), as one estimator.

:class:`EconomyModel` joins the three steps: a fitted score model ``f`` (step 1,
:mod:`~humanscape.tasks.economy.score`), the ensemble of step-2 encoders trained from it with
their 3-component PCAs (:mod:`~humanscape.tasks.economy.encoders`), and the district regressor
``h`` (:mod:`~humanscape.tasks.economy.district`). For districts given as tiles it returns the
indicator ``sum f * exp(h(r))``, the district factor ``exp(h(r))``, each district's Gini of tile
scores, and the national Gini three ways (:mod:`~humanscape.tasks.economy.inequality`).

The districts are given as :class:`~humanscape.tasks.economy.district.DistrictTiles` (the tiles,
each tile's district, the district names). A fitted model is a folder
(:class:`~humanscape.models.estimator.TaskModel`): ``config.json``, ``score/`` (the score model),
``encoders.safetensors`` (the encoder networks), ``pca.safetensors`` and ``regressor.skops``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

from humanscape.errors import HumanscapeError
from humanscape.models.estimator import TaskModel
from humanscape.models.model_folder import load_net_weights, read_weights
from humanscape.tasks.economy.district import (
    KINDS,
    DistrictRegressor,
    DistrictStats,
    DistrictTiles,
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


class EconomyModel(TaskModel):
    """District indicator from tiles (see the module docstring).

    Parameters
    ----------
    indicator
        Name of the indicator (column of the district table).
    indicator_kind
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

    kind = "humanscape.economy"
    what = WHAT
    refit = REFIT
    fitted_attribute = "regressor_"

    def __init__(
        self,
        *,
        indicator: str = "population",
        indicator_kind: str = "count",
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
        self.indicator, self.indicator_kind = indicator, indicator_kind
        self.n_clusters, self.sources = n_clusters, sources
        self.encoder_epochs, self.encoder_lr, self.lam = encoder_epochs, encoder_lr, lam
        self.components, self.n_estimators, self.augment = components, n_estimators, augment
        self.max_pairs, self.seed = max_pairs, seed

    def _validate_params(self) -> None:
        self._choice("indicator kind", self.indicator_kind, KINDS)
        if any(int(k) < 0 for k in self.n_clusters):
            raise HumanscapeError(f"n_clusters must be >= 0, got {list(self.n_clusters)}")

    @property
    def specs(self) -> list[EncoderSpec]:
        return [EncoderSpec(s, int(k)) for s in self.sources for k in self.n_clusters]

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
        specs = self.specs
        if specs and not score_model.has_net:
            log.warning(
                "the score model is a %s classifier: no step-2 encoders, the district regressor "
                "reads the components of its features",
                score_model.method_,
            )
            specs = []
        for k, spec in enumerate(specs):
            log.info("encoder %s (%d/%d)", spec.name, k + 1, len(specs))
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
        if not self.nets_:  # the score model's own features (no step-2 encoders)
            return [self.score_model_.features(tiles)]
        return [pooled_features(net, self.score_model_.norm_, tiles) for net in self.nets_]

    def tile_values(self, tiles: np.ndarray) -> TileValues:
        """Score, positive score and the PCA components of every encoder for each tile."""
        tiles = np.asarray(tiles, dtype=np.float32)
        raw = self._raw_features(tiles)
        if not self.nets_ and not self.score_model_.has_net:  # the classifier's own features
            scores = self.score_model_.scores_of_features(raw[0])
        else:
            scores = self.score_model_.predict(tiles)
        comps = [p.transform(f) for p, f in zip(self.pcas_, raw, strict=True)]
        return TileValues(
            scores, positive_scores(scores, self.score_model_.thresholds), np.concatenate(comps, 1)
        )

    # -- step 3
    def regressor(self) -> DistrictRegressor:
        return DistrictRegressor(
            n_estimators=self.n_estimators,
            augment=self.augment,
            max_pairs=self.max_pairs,
            kind=self.indicator_kind,
            seed=self.seed,
            n_jobs=-1,
        )

    def fit(
        self,
        X: DistrictTiles,
        y: np.ndarray,
        *,
        score_model: ScoreModel,
        weights: np.ndarray | None = None,
        labelled: tuple[np.ndarray, np.ndarray] | None = None,
        nightlight: np.ndarray | None = None,
        progress: bool = True,
    ) -> EconomyModel:
        """Steps 2 and 3 on the districts of ``X`` with indicator ``y`` (one value per district),
        from a fitted ``score_model`` (step 1)."""
        self._validate_params()
        if len(y) != len(X.names):
            raise HumanscapeError(f"{len(y)} indicator values for {len(X.names)} districts")
        self.fit_encoders(
            score_model, X.images, labelled=labelled, nightlight=nightlight, progress=progress
        )
        self.regressor_ = self.regressor().fit(self.stats(X)[1], np.asarray(y), weights)
        self.n_districts_ = len(X.names)
        return self

    def stats(self, X: DistrictTiles) -> tuple[TileValues, DistrictStats]:
        """Tile values and the district statistics the regressor reads (eq. 9-12)."""
        values = self.tile_values(X.images)
        return values, district_stats(X.district, values.components, values.positive, names=X.names)

    def predict(self, X: DistrictTiles) -> np.ndarray:
        """The indicator of every district of ``X`` (eq. 13-14)."""
        self.check_fitted()
        return self.regressor_.predict(self.stats(X)[1])

    def district_table(self, X: DistrictTiles) -> tuple[pd.DataFrame, dict[str, float]]:
        """Per district: indicator, factor, score sum, tiles, Gini; and the national Gini."""
        self.check_fitted()
        values, stats = self.stats(X)
        factor = self.regressor_.factor(stats)
        table = pd.DataFrame(
            {
                "district": X.names,
                self.indicator: self.regressor_.predict(stats),
                "district_factor": factor,
                "score_sum": stats.score_sum,
                "n_tiles": stats.n.astype(int),
                "gini": within_district_gini(values.positive, X.district, len(X.names)),
            }
        )
        return table, national_gini(values.positive, X.district, factor)

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        import skops.io as sio

        (folder / "score").mkdir()
        self.score_model_.write_into(folder / "score")
        weights = {
            f"{i}.{k}": v.detach().contiguous().cpu()
            for i, net in enumerate(self.nets_)
            for k, v in net.state_dict().items()
        }
        if weights:
            save_file(weights, str(folder / "encoders.safetensors"))
        pcas = {}
        for i, p in enumerate(self.pcas_):
            pcas[f"{i}.mean"] = np.ascontiguousarray(p.mean_)
            pcas[f"{i}.components"] = np.ascontiguousarray(p.components_)
        save_numpy(pcas, str(folder / "pca.safetensors"))
        sio.dump(self.regressor_, folder / "regressor.skops")
        return {
            "encoders": self.encoder_names_,
            "pca_explained": [p.explained_ for p in self.pcas_],
            "n_districts": self.n_districts_,
        }

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        from humanscape.models.sklearn_io import load_skops

        self.encoder_names_ = list(state["encoders"])
        self.n_districts_ = int(state["n_districts"])
        self.score_model_ = ScoreModel.load(folder / "score")
        sm = self.score_model_
        self.nets_ = []
        if self.encoder_names_:
            weights = read_weights(folder / "encoders.safetensors", load_file, REFIT)
            for i in range(len(self.encoder_names_)):
                net, _ = build_score_net(
                    sm.arch, sm.bands, dropout=sm.dropout, input_size=sm.input_size
                )
                part = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(f"{i}.")}
                self.nets_.append(
                    load_net_weights(net, folder / "encoders.safetensors", REFIT, state=part)
                )
        arrays = read_weights(folder / "pca.safetensors", load_numpy, REFIT)
        self.pcas_ = []
        for i in range(max(len(self.nets_), 1)):
            p = PCAProjection(self.components, self.seed)
            p.mean_, p.components_ = arrays[f"{i}.mean"], arrays[f"{i}.components"]
            self.pcas_.append(p)
        self.regressor_ = load_skops(folder / "regressor.skops", trusted=SKOPS_TRUSTED, refit=REFIT)
        if not isinstance(self.regressor_, DistrictRegressor):
            raise HumanscapeError("the regressor file holds no district regressor", path=folder)
