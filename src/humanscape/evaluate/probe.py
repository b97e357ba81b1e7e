"""Linear probe: how much a frozen embedding knows, measured by a linear classifier.

The standard evaluation of self-supervised encoders (Chen et al. 2020, Sec. 4.2): fit a
multinomial logistic regression on frozen features of labelled training images and report its
accuracy on held-out images.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> float:
    """Accuracy on ``test`` of a standardised L2 logistic regression fit on ``train``."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    model.fit(train_x, train_y)
    return float(accuracy_score(test_y, model.predict(test_x)))
