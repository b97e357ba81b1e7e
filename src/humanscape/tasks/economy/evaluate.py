"""The paper's evaluation of district estimates (Park et al. 2022, Table 1, Figure 6, Figure 7).

- :func:`random_splits`: ``n`` random train / test splits of the districts (paper: 100 x 80/20);
- :func:`split_r2`: R2 on the original scale of the indicator for every split and every
  configuration (the full model, its ablations, the baselines), all on the same splits;
- :func:`share_curve`: R2 against the training share 0.2 .. 0.8, with and without district
  augmentation (Figure 6);
- :func:`transfer_spearman`: fitted on one region, Spearman correlation on another (Figure 7).

A configuration is a pair ``(DistrictStats, regressor factory)``: the district statistics it
reads (which encoders / features) and how its regressor is built (hyperlocal or not, head,
augmentation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from humanscape.evaluate.regression import pearson_r2, r2
from humanscape.tasks.economy.data import DistrictData
from humanscape.tasks.economy.district import DistrictRegressor, DistrictStats, district_stats
from humanscape.tasks.economy.model import EconomyModel

Factory = Callable[[bool, int], DistrictRegressor]  # (augment, seed) -> regressor
Config = tuple[DistrictStats, Factory]


def random_splits(
    n: int, *, n_splits: int = 100, train_share: float = 0.8, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random partitions of ``range(n)``: ``round(train_share * n)`` train, rest test."""
    rng = np.random.default_rng(seed)
    n_train = min(max(2, round(train_share * n)), n - 2)
    out = []
    for _ in range(n_splits):
        order = rng.permutation(n)
        out.append((np.sort(order[:n_train]), np.sort(order[n_train:])))
    return out


def _fit_predict(
    config: Config,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    weights: np.ndarray | None,
    augment: bool,
    seed: int,
) -> np.ndarray:
    stats, factory = config
    w = None if weights is None else weights[train]
    regressor = factory(augment, seed).fit(stats.subset(train), y[train], w)
    return regressor.predict(stats.subset(test))


def split_r2(
    configs: dict[str, Config],
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    weights: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Table 1: R2 (original scale) of each configuration over the same splits.

    Returns one row per configuration: ``r2_mean``, ``r2_std``, ``r2_median`` (coefficient of
    determination, the paper's), ``pearson_r2_mean`` (squared Pearson correlation),
    ``spearman_mean`` (rank agreement, robust to the heavy tail of counts), ``n_splits``.
    """
    y = np.asarray(y, dtype=np.float64)
    rows = []
    for name, config in configs.items():
        scores, ranks, pearson = [], [], []
        for k, (train, test) in enumerate(splits):
            pred = _fit_predict(config, y, train, test, weights, True, k)
            scores.append(r2(y[test], pred))
            pearson.append(pearson_r2(y[test], pred))
            ranks.append(spearmanr(y[test], pred).statistic)
        rows.append(
            {
                "configuration": name,
                "r2_mean": float(np.mean(scores)),
                "r2_std": float(np.std(scores)),
                "r2_median": float(np.median(scores)),
                "pearson_r2_mean": float(np.nanmean(pearson)),
                "spearman_mean": float(np.nanmean(ranks)),
                "n_splits": len(splits),
            }
        )
        if progress:
            progress(f"{name}: R2 {rows[-1]['r2_mean']:.3f} +- {rows[-1]['r2_std']:.3f}")
    return pd.DataFrame(rows)


def share_curve(
    config: Config,
    y: np.ndarray,
    *,
    shares: Sequence[float] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
    n_splits: int = 20,
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Figure 6: R2 against the training share, with and without district augmentation."""
    y = np.asarray(y, dtype=np.float64)
    rows = []
    for share in shares:
        splits = random_splits(len(y), n_splits=n_splits, train_share=share, seed=seed)
        for augment in (True, False):
            scores = [
                r2(y[test], _fit_predict(config, y, train, test, weights, augment, k))
                for k, (train, test) in enumerate(splits)
            ]
            rows.append(
                {
                    "train_share": share,
                    "augmentation": augment,
                    "r2_mean": float(np.mean(scores)),
                    "r2_std": float(np.std(scores)),
                    "n_splits": n_splits,
                }
            )
    return pd.DataFrame(rows)


def transfer_spearman(
    source: Config, y_source: np.ndarray, target: DistrictStats, y_target: np.ndarray
) -> float:
    """Figure 7: fitted on all source districts, Spearman of predictions on the target's."""
    stats, factory = source
    regressor = factory(True, 0).fit(stats, np.asarray(y_source, dtype=np.float64))
    return float(spearmanr(np.asarray(y_target), regressor.predict(target)).statistic)


# --- Table 1 configurations ---------------------------------------------------------------------


def regressor_factory(model: EconomyModel, **overrides: object):  # type: ignore[no-untyped-def]
    def make(augment: bool, seed: int) -> DistrictRegressor:
        kwargs: dict = {
            "n_estimators": model.n_estimators,
            "augment": augment and model.augment,
            "max_pairs": model.max_pairs,
            "kind": model.indicator_kind,
            "seed": seed,
            "n_jobs": -1,
        } | overrides
        return DistrictRegressor(**kwargs)

    return make


def _pca_stats(
    features: np.ndarray, k: int, data: DistrictData, positive: np.ndarray
) -> DistrictStats:
    from sklearn.decomposition import PCA

    comps = PCA(min(k, features.shape[1]), random_state=0).fit_transform(features)
    return district_stats(data.district, comps, positive, names=data.names)


def evaluation_configs(
    model: EconomyModel, data: DistrictData, *, baseline_images: np.ndarray | None = None
) -> dict[str, tuple[DistrictStats, object]]:
    """The full model, its three ablations and three baselines (Table 1), on one fitted model.

    - ``full``: every encoder, eq. 13 with the score sum;
    - ``without_ensemble``: the first encoder with clusters (else the first) alone;
    - ``without_fine_tuning``: the score network's own features, no step-2 encoder;
    - ``without_hyperlocal``: full features, ``y = exp(h([mu, sigma]))`` (no score sum);
    - ``read_like``: score-network features to 10 components, [mu, sigma], forest on ln y
      (READ, Han et al. 2020a: weakly supervised embedding statistics + regression);
    - ``simclr_mean``: the shipped SimCLR encoder of the tiles' kind, mean embedding (10
      components), forest on ln y (needs its bands in ``baseline_images``);
    - ``mosaiks_ridge``: MOSAIKS random features (512 filters), district mean, ridge on ln y.
    """
    values, stats = model.stats(data.tiles)
    per = stats.sums.shape[1] // max(len(model.pcas_), 1)
    nets = model.encoder_names_
    single = next((i for i, n in enumerate(nets) if not n.endswith("_nc0")), 0)
    own = model.score_model_.features(data.images)
    configs: dict[str, tuple[DistrictStats, object]] = {
        "full": (stats, regressor_factory(model)),
        "without_ensemble": (
            stats.select(list(range(single * per, (single + 1) * per))),
            regressor_factory(model),
        ),
        "without_fine_tuning": (
            _pca_stats(own, model.components, data, values.positive),
            regressor_factory(model),
        ),
        "without_hyperlocal": (stats, regressor_factory(model, hyperlocal=False)),
        "read_like": (
            _pca_stats(own, 10, data, values.positive),
            regressor_factory(model, hyperlocal=False),
        ),
    }
    simclr = _simclr_features(model, baseline_images)
    if simclr is not None:
        configs["simclr_mean"] = (
            _pca_stats(simclr, 10, data, values.positive),
            regressor_factory(model, hyperlocal=False, std=False),
        )
    from humanscape.models.random_features import RandomConvFeatures

    mosaiks = RandomConvFeatures(512, seed=model.seed).fit_transform(np.nan_to_num(data.images))
    configs["mosaiks_ridge"] = (
        district_stats(data.district, mosaiks, values.positive, names=data.names),
        regressor_factory(model, hyperlocal=False, std=False, head="ridge"),
    )
    return configs


def _simclr_features(model: EconomyModel, images: np.ndarray | None) -> np.ndarray | None:
    from humanscape.models.embed import embed_array
    from humanscape.models.registry import list_weights, load_encoder

    if images is None:
        return None
    units = model.score_model_.units_
    for entry in list_weights():
        if entry.units == units and len(entry.bands) == images.shape[1]:
            return embed_array(load_encoder(entry.name), images).astype(np.float64)
    return None
