"""Linear probe: how much a frozen embedding knows, measured by a linear classifier.

The standard evaluation of self-supervised encoders (Chen et al. 2020, Sec. 4.2 and Appendix B.8):
fit a multinomial logistic regression on frozen features of labelled training images and report its
accuracy on held-out images. As in Chen et al.'s transfer evaluation, the L2 regularisation is
chosen on the training images only (stratified k-fold cross-validation over a grid of ``C``), so
every featuriser compared gets its own best regulariser and the test images stay unseen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

#: Inverse regularisation strengths searched by default (log-spaced).
DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    C: float | Sequence[float] = DEFAULT_CS,
    folds: int = 3,
    max_iter: int = 2000,
    seed: int = 0,
) -> float:
    """Accuracy on ``test`` of a standardised L2 logistic regression fit on ``train``.

    ``C`` is one value, or a grid from which ``folds``-fold cross-validation on ``train`` picks one.
    """
    model = probe_classifier(C, folds=folds, max_iter=max_iter, seed=seed)
    model.fit(train_x, train_y)
    return float(accuracy_score(test_y, model.predict(test_x)))


def probe_classifier(
    C: float | Sequence[float] = DEFAULT_CS,
    *,
    folds: int = 3,
    max_iter: int = 2000,
    seed: int = 0,
) -> Pipeline:
    """The probe's classifier, unfitted: standardisation, then an L2 multinomial logistic
    regression with inverse strength ``C`` (one value), or the ``C`` of a grid that ``folds``-fold
    stratified cross-validation on the training data picks (by accuracy)."""
    if isinstance(C, int | float):
        clf = LogisticRegression(C=float(C), max_iter=max_iter)
    else:
        clf = LogisticRegressionCV(
            Cs=list(C),
            cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
            l1_ratios=(0.0,),  # pure L2
            scoring="accuracy",
            use_legacy_attributes=False,
            max_iter=max_iter,
            n_jobs=1,
        )
    return make_pipeline(StandardScaler(), clf)
