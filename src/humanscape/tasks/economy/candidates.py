"""The non-network candidates of the score model (issue 23): tile classifiers whose level
probabilities are placed on the score axis of Park et al. (2022, eq. 4).

Two featurisers, one classifier contract:

* ``forest``: a random forest (:data:`FOREST_TREES` trees) on per-band chip statistics
  (:func:`~humanscape.models.chip_stats.chip_statistics`), the simplest strong baseline a reviewer
  would try first;
* ``mosaiks``: random convolutional features (Rolf et al. 2021, Methods eq. 1;
  :class:`~humanscape.models.random_features.RandomConvFeatures`, K = :data:`MOSAIKS_FILTERS`
  filters drawn from the training tiles after per-band standardisation) read by a standardised
  L2 logistic regression at ``C`` = :data:`MOSAIKS_C` (:func:`~humanscape.evaluate.probe.
  probe_classifier`, the linear probe of the encoders). On held-out EuroSAT it reached 0.93 to
  0.95 3-class accuracy where the forest and the CNN stayed at 0.85 to 0.87 (docs/benchmarks.md).
  ``C`` is fixed, scikit-learn's default, rather than cross-validated: a 3 x 3 grid search made the
  fit ten times slower (more than 40 minutes on 6,400 RGB chips on 2 cores) for differences of
  about one point between 1 and 10 (0.1 was two to four points worse).

Both learn the finest labels given: the land-cover classes of the training table where a class ->
level mapping made the levels (10 EuroSAT classes rather than 3 levels), the levels otherwise. A
class's level probabilities are the mean targets of its tiles (one row of the mapping), so
``P(level) = sum_c P(c) M[c, level]`` holds for hard and soft mappings alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from humanscape.evaluate.probe import probe_classifier
from humanscape.models.chip_stats import chip_statistics
from humanscape.models.heads import band_normalisation
from humanscape.models.random_features import RandomConvFeatures
from humanscape.tasks.economy.ordinal import Thresholds

#: Trees of the forest candidate.
FOREST_TREES = 500
#: Random filters K of the ``mosaiks`` candidate (2K features per tile).
MOSAIKS_FILTERS = 1024
#: Inverse L2 strength of the ``mosaiks`` candidate's logistic regression.
MOSAIKS_C = 1.0
#: Kinds of tile classifier.
KINDS = ("forest", "mosaiks")


def class_codes(
    classes: np.ndarray | None, targets: np.ndarray
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Integer code of each tile's class, the class names and the ``(m, 3)`` class -> level
    probabilities (mean target of each class's tiles). Without classes the classes are the argmax
    levels, named ``0, 1, 2``."""
    targets = np.asarray(targets, dtype=np.float64)
    if classes is None:
        labels = targets.argmax(1).astype(str)
    else:
        labels = np.asarray(classes).astype(str)
    names, codes = np.unique(labels, return_inverse=True)
    matrix = np.stack([targets[codes == k].mean(0) for k in range(len(names))])
    return codes.astype(np.int64), [str(n) for n in names], matrix


class LevelClassifier:
    """A fitted tile classifier: featuriser, classifier and class -> level matrix.

    ``kind`` is ``forest`` or ``mosaiks`` (see the module docstring); ``filters`` is K of the
    random features.
    """

    def __init__(self, kind: str, *, seed: int = 0, filters: int = MOSAIKS_FILTERS) -> None:
        self.kind, self.seed, self.filters = kind, seed, filters

    def fit(
        self, images: np.ndarray, targets: np.ndarray, classes: np.ndarray | None = None
    ) -> LevelClassifier:
        """Fit on ``(n, bands, H, W)`` tiles, their ``(n, 3)`` level probabilities and, where the
        levels came from finer classes, each tile's class. The features of these tiles are kept
        in ``train_features_`` (for :meth:`fit_classifier` on more tiles without computing them
        again)."""
        if self.kind == "mosaiks":
            mean, std = band_normalisation(images)
            self.norm_ = {"mean": mean, "std": std}
            self.features_ = RandomConvFeatures(self.filters, seed=self.seed)
            self.features_.fit(self._standardise(images))
        self.train_features_ = self.features(images)
        return self.fit_classifier(self.train_features_, targets, classes)

    def fit_classifier(
        self, features: np.ndarray, targets: np.ndarray, classes: np.ndarray | None = None
    ) -> LevelClassifier:
        """(Re)fit the classifier alone on features of this featuriser (the filters stay)."""
        codes, self.class_names_, self.class_levels_ = class_codes(classes, targets)
        if self.kind == "mosaiks":
            self.classifier_ = probe_classifier(MOSAIKS_C, max_iter=1000, seed=self.seed)
        else:
            from sklearn.ensemble import RandomForestClassifier

            self.classifier_ = RandomForestClassifier(
                FOREST_TREES, n_jobs=-1, random_state=self.seed
            )
        self.classifier_.fit(features, codes)
        return self

    def _standardise(self, images: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.norm_["mean"], np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.norm_["std"], np.float32).reshape(1, -1, 1, 1)
        return np.nan_to_num((np.asarray(images, np.float32) - mean) / std, nan=0.0)

    def features(self, images: np.ndarray) -> np.ndarray:
        """What the classifier reads: chip statistics ``(n, 5 * bands)`` (forest) or random
        features ``(n, 2K)`` (mosaiks)."""
        if self.kind == "mosaiks":
            return self.features_.transform(self._standardise(images)).astype(np.float64)
        return chip_statistics(images).astype(np.float64)

    def level_probabilities(self, images: np.ndarray) -> np.ndarray:
        """``(n, 3)`` probabilities of the levels: the classes' probabilities times the class ->
        level matrix (classes the classifier never saw have probability 0)."""
        if not len(images):
            return np.zeros((0, 3))
        return self.probabilities_of(self.features(images))

    def probabilities_of(self, features: np.ndarray) -> np.ndarray:
        """:meth:`level_probabilities` from features already computed."""
        proba = self.classifier_.predict_proba(features)
        seen = np.asarray(self.classifier_.classes_, dtype=np.int64)
        return proba @ self.class_levels_[seen]

    def score(self, images: np.ndarray, th: Thresholds) -> np.ndarray:
        """The score of each tile (:func:`banded_score` of its level probabilities)."""
        return banded_score(self.level_probabilities(images), th)

    # -- persistence: the classifier as skops, the random filters as safetensors
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the fitted parts into ``folder``; returns what the model's config keeps."""
        import skops.io as sio
        from safetensors.numpy import save_file

        sio.dump(self.classifier_, folder / f"score_{self.kind}.skops")
        state: dict[str, Any] = {
            "kind": self.kind,
            "classes": self.class_names_,
            "class_levels": self.class_levels_.tolist(),
        }
        if self.kind == "mosaiks":
            f = self.features_
            arrays = {"weight": f.weight_, "offset": f.offset_}
            save_file(
                {k: np.ascontiguousarray(v) for k, v in arrays.items()},
                str(folder / "score_mosaiks.safetensors"),
            )
            state |= {"normalisation": self.norm_, "filters": f.num_filters, "bias": f.bias}
        return state

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any], refit: str) -> LevelClassifier:
        """The classifier saved by :meth:`save` (``state`` is what it returned)."""
        from humanscape.models.sklearn_io import load_skops

        self = cls(state.get("kind", "forest"))
        self.class_names_ = [str(c) for c in state.get("classes", ["0", "1", "2"])]
        self.class_levels_ = np.asarray(state.get("class_levels", np.eye(3).tolist()), np.float64)
        self.classifier_ = load_skops(
            folder / f"score_{self.kind}.skops",
            trusted=("numpy.dtype", "sklearn.tree._tree.Tree"),
            refit=refit,
        )
        if self.kind == "mosaiks":
            from safetensors.numpy import load_file

            arrays = load_file(str(folder / "score_mosaiks.safetensors"))
            self.norm_ = state["normalisation"]
            f = RandomConvFeatures(int(state["filters"]), bias=float(state["bias"]))
            f.weight_, f.offset_ = arrays["weight"], arrays["offset"]
            f.n_bands_ = int(f.weight_.shape[1])
            self.features_ = f
        return self


def banded_score(proba: np.ndarray, th: Thresholds) -> np.ndarray:
    """A classifier's score of each tile from its ``(n, 3)`` level probabilities: inside the band
    of eq. 4 of its most probable level k (``[t_min, t1)``, ``[t1, t2)``, ``[t2, t_max]``), at the
    fraction ``g = (e + 0.5) / 3`` of the band, ``e = sum_j j p_j`` the expected level (0 .. 2, so
    g stays within 1/6 .. 5/6): ``f = lo_k + g (hi_k - lo_k)``. Eq. 4 then gives the classifier's
    own class (its accuracy), and within a level tiles are ordered by their expected level.
    (Placing all tiles on one line by ``e`` instead classifies by ``e`` rounded: 0.78 against 0.85
    accuracy on held-out EuroSAT MS for the forest.)"""
    proba = np.asarray(proba, dtype=np.float64).reshape(-1, 3)
    level = proba.argmax(1)
    g = (proba @ np.arange(3.0) + 0.5) / 3.0
    edges = np.array([th.t_min, th.t1, th.t2, th.t_max])
    lo, hi = edges[level], edges[level + 1]
    return lo + g * (hi - lo)
