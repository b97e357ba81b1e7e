"""Census-consistent grids and bias correction, by hand."""

import numpy as np
import pytest

from humanscape.errors import HumanscapeError
from humanscape.evaluate.regression import bias_analysis
from humanscape.tasks.population.census import IsotonicBiasCorrection, dasymetric_rescale


def test_dasymetric_rescale_by_hand():
    estimate = np.array([[10.0, 30.0, 0.0], [5.0, 5.0, 7.0]])
    district = np.array([["a", "a", "b"], ["c", "c", "x"]])
    out = dasymetric_rescale(estimate, district, {"a": 100.0, "b": 6.0, "c": 0.0})
    # a: 10:30 kept, summing to 100; b: all-zero estimate spread evenly; c: total 0; x: untouched
    np.testing.assert_allclose(out, [[25.0, 75.0, 6.0], [0.0, 0.0, 7.0]])
    with pytest.raises(HumanscapeError, match="district z has a total but no cell"):
        dasymetric_rescale(estimate, district, {"z": 1.0})
    with pytest.raises(HumanscapeError, match="not negative"):
        dasymetric_rescale(-estimate, district, {"a": 1.0})


def test_isotonic_correction_removes_the_table_iii_bias():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 10, 2000)
    estimate = 2 + 0.6 * truth + rng.normal(0, 0.3, 2000)  # the paper's pattern: slope < 1
    before = bias_analysis(truth[1000:], estimate[1000:])["bias_beta"]
    corrected = (
        IsotonicBiasCorrection().fit(estimate[:1000], truth[:1000]).transform(estimate[1000:])
    )
    after = bias_analysis(truth[1000:], corrected)["bias_beta"]
    assert before == pytest.approx(-0.4, abs=0.03) and abs(after) < 0.1
    # monotone: the ranking of cells is kept
    order = np.argsort(estimate[1000:])
    assert (np.diff(corrected[order]) >= 0).all()
