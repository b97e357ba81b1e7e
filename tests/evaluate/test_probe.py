import numpy as np

from humanscape.evaluate.probe import linear_probe


def _data(n: int, dims: int, seed: int, noise_labels: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, dims))
    x[:, :3] += 1.5 * np.eye(3)[y]  # the class lives in 3 of the dims
    if noise_labels:
        y = rng.permutation(y)
    return x, y


def test_probe_reads_linear_signal_and_not_noise():
    x, y = _data(600, 20, 0)
    tx, ty = _data(600, 20, 1)
    assert linear_probe(x, y, tx, ty) > 0.7
    xn, yn = _data(600, 20, 2, noise_labels=True)
    assert abs(linear_probe(xn, yn, tx, ty) - 1 / 3) < 0.1


def test_regularisation_is_chosen_on_training_folds_from_the_grid():
    x, y = _data(300, 50, 3)
    tx, ty = _data(2000, 50, 4)
    grid = (1e-5, 0.01, 1.0)
    fixed = {c: linear_probe(x, y, tx, ty, C=c) for c in grid}
    assert fixed[1e-5] < 0.4  # over-regularised: near chance
    tuned = linear_probe(x, y, tx, ty, C=grid)
    assert tuned > fixed[1e-5] + 0.2 and tuned >= max(fixed.values()) - 0.03
