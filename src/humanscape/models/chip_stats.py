"""Per-band distribution statistics of image chips: the featuriser of the simplest strong baseline.

A reviewer's first try on labelled chips is a random forest on each band's mean, spread and a few
percentiles (issue 23: on 4,961 held-out EuroSAT RGB chips it beat the hyperlocal score CNN,
0.883 against 0.846 3-class accuracy). :func:`chip_statistics` computes them, NaN (nodata) pixels
ignored, so that the same features feed the baseline candidates of every chip task.
"""

from __future__ import annotations

import warnings

import numpy as np

from humanscape.errors import HumanscapeError

#: Percentiles of each band, after its mean and standard deviation.
PERCENTILES = (10, 50, 90)
#: Statistic names in column order (per band: mean, std, p10, p50, p90).
STATISTICS = ("mean", "std", *(f"p{q}" for q in PERCENTILES))


def chip_statistics(images: np.ndarray) -> np.ndarray:
    """``(n, 5 * bands)`` features of ``(n, bands, H, W)`` chips: for every statistic of
    :data:`STATISTICS` the value of each band (columns ``mean_b0 .. mean_bk, std_b0 ...``).

    NaN pixels are ignored; a band that is NaN over a whole chip gives 0 for its statistics.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise HumanscapeError(f"chips must be (n, bands, H, W), got shape {images.shape}")
    flat = images.reshape(images.shape[0], images.shape[1], -1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bands: 0 below
        columns = [
            np.nanmean(flat, axis=2),
            np.nanstd(flat, axis=2),
            *np.nanpercentile(flat, PERCENTILES, axis=2),
        ]
    return np.nan_to_num(np.concatenate(columns, axis=1), nan=0.0).astype(np.float32)
