"""Chip statistics (the baseline featuriser) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from humanscape.models.chip_stats import STATISTICS, chip_statistics


def test_statistics_by_hand_ignore_nan_and_give_zero_for_an_empty_band():
    chip = np.array([[[1.0, 2.0], [3.0, np.nan]], [[np.nan] * 2] * 2], np.float32)[None]
    features = chip_statistics(chip)
    assert features.shape == (1, 2 * len(STATISTICS))
    # band 0: values 1, 2, 3 -> mean 2, std sqrt(2/3), p10 1.2, p50 2, p90 2.8 (linear)
    assert features[0, ::2].tolist() == pytest.approx([2.0, np.sqrt(2 / 3), 1.2, 2.0, 2.8])
    assert features[0, 1::2].tolist() == [0.0] * 5  # band 1 is all NaN


def test_chip_statistics_refuses_a_flat_array():
    with pytest.raises(Exception, match="bands, H, W"):
        chip_statistics(np.zeros((3, 4)))
