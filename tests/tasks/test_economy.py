"""Economy task (Park et al. 2022): every formula against values computed by hand here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from humanscape.data import samples
from humanscape.data.chiptable import read_chips
from humanscape.errors import HumanscapeError
from humanscape.tasks.economy.district import (
    DistrictRegressor,
    DistrictTiles,
    augment_districts,
    district_pairs,
    district_stats,
    log_ratio,
)
from humanscape.tasks.economy.encoders import EncoderSpec, pearson_loss
from humanscape.tasks.economy.evaluate import random_splits
from humanscape.tasks.economy.inequality import gini, national_gini, within_district_gini
from humanscape.tasks.economy.model import EconomyModel
from humanscape.tasks.economy.ordinal import (
    EUROSAT_LEVELS,
    Thresholds,
    classify,
    level_targets,
    ordinal_logits,
    ordinal_loss,
    positive_scores,
    read_mapping,
)
from humanscape.tasks.economy.score import ScoreModel, grouped_validation

RGBN = ["B02", "B03", "B04", "B08"]


# --- eq. 4-6 --------------------------------------------------------------------------------------


def test_ordinal_logits_are_eq5_on_clamped_scores():
    f = torch.tensor([5.0, -3.0, 12.0, 25.0, -40.0])
    got = ordinal_logits(f, Thresholds(0, 10, -10, 20))
    expected = torch.tensor(
        [
            [-5.0, 5.0, -5.0],  # rural: middle positive
            [3.0, -3.0, -13.0],  # uninhabited
            [-12.0, -2.0, 2.0],  # urban
            [-20.0, -10.0, 10.0],  # 25 clamped to 20
            [10.0, -10.0, -20.0],  # -40 clamped to -10
        ]
    )
    assert torch.equal(got, expected)
    # argmax of the logits is the level of eq. 4
    assert got.argmax(1).tolist() == [1, 0, 2, 2, 0]


def test_ordinal_loss_hard_and_soft_by_hand():
    f = torch.tensor([5.0])
    # logits [-5, 5, -5]: -log softmax_1 = log(1 + 2 e^-10)
    hard = ordinal_loss(f, torch.tensor([1]))
    assert hard.item() == pytest.approx(math.log(1 + 2 * math.exp(-10)), abs=1e-7)  # float32
    # soft [0.5, 0.5, 0]: 0.5 * (10 + log(1 + 2e^-10)) + 0.5 * log(1 + 2e^-10)
    soft = ordinal_loss(f, torch.tensor([[0.5, 0.5, 0.0]]))
    lse = math.log(1 + 2 * math.exp(-10))
    assert soft.item() == pytest.approx(0.5 * (10 + lse) + 0.5 * lse, rel=1e-5)
    # gradient pushes a rural-labelled urban score down
    g = torch.tensor([15.0], requires_grad=True)
    ordinal_loss(g, torch.tensor([1])).backward()
    assert g.grad.item() > 0


def test_classify_thresholds_and_positive_shift():
    th = Thresholds()
    assert classify(np.array([-0.1, 0.0, 9.99, 10.0, 20.0]), th).tolist() == [0, 1, 1, 2, 2]
    # distance above the clamp floor t_min = -10
    assert positive_scores(np.array([-10.0, -20.0, 0.0, 20.0, 30.0]), th).tolist() == [
        0.0,
        0.0,
        10.0,
        30.0,
        30.0,
    ]
    with pytest.raises(HumanscapeError, match="t_min < t1 < t2 < t_max"):
        Thresholds(0, 10, 5, 20)


def test_level_targets_and_mapping_files(tmp_path):
    got = level_targets(pd.Series(["urban", " Rural", "uninhabited"]))
    assert got.tolist() == [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    with pytest.raises(HumanscapeError, match="not levels: Forest"):
        level_targets(pd.Series(["urban", "Forest"]), column="class")
    (tmp_path / "hard.csv").write_text("class,level\nForest,uninhabited\nResidential,urban\n")
    mapping = read_mapping(tmp_path / "hard.csv")
    assert level_targets(pd.Series(["Residential"]), mapping=mapping).tolist() == [[0, 0, 1]]
    with pytest.raises(HumanscapeError, match="no row for class\\(es\\) Pasture"):
        level_targets(pd.Series(["Forest", "Pasture"]), mapping=mapping)
    (tmp_path / "soft.csv").write_text("class,uninhabited,rural,urban\nA,0.25,0.75,0\n")
    assert read_mapping(tmp_path / "soft.csv")["A"].tolist() == [0.25, 0.75, 0.0]
    (tmp_path / "bad.csv").write_text("class,uninhabited,rural,urban\nA,0.5,0.75,0\n")
    with pytest.raises(HumanscapeError, match="not a distribution"):
        read_mapping(tmp_path / "bad.csv")
    (tmp_path / "badlevel.csv").write_text("class,level\nA,suburban\n")
    with pytest.raises(HumanscapeError, match="not a level"):
        read_mapping(tmp_path / "badlevel.csv")


def test_grouped_validation_holds_whole_groups_out():
    groups = np.repeat(["a", "b", "c", "d", "e"], 3)
    split = grouped_validation(groups, fraction=0.2, seed=1)
    assert len(split.test) == 3 and len(set(groups[split.test])) == 1
    assert not set(groups[split.test]) & set(groups[split.train])


# --- step 1 on real chips -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_chips():
    table = samples.eurosat_ms()
    images, units = read_chips(list(table["image"]), RGBN, progress=False)
    targets = level_targets(table["class"].map(EUROSAT_LEVELS))
    return images, targets, units


@pytest.fixture(scope="module")
def score_model(real_chips):
    images, targets, units = real_chips
    return ScoreModel(method="cnn", arch="resnet18_half", epochs=8, patience=8, seed=0).fit(
        images, targets, units=units, progress=False
    )


def test_scores_keep_the_class_order_on_a_tiny_trained_model(score_model, real_chips):
    images, targets, _ = real_chips
    scores = score_model.predict(images)
    level = targets.argmax(1)
    means = [scores[level == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]
    assert scores.min() >= -10 and scores.max() <= 20
    assert score_model.validation_["spearman"] > 0.5


def test_score_model_save_load_scores_the_same(score_model, real_chips, tmp_path):
    images = real_chips[0][:16]
    score_model.save(tmp_path / "m")
    again = ScoreModel.load(tmp_path / "m")
    assert np.allclose(again.predict(images), score_model.predict(images), atol=1e-5)
    with pytest.raises(HumanscapeError, match="reads 4 bands"):
        again.predict(images[:, :3])


# --- step 3: districts ----------------------------------------------------------------------------


def _toy_stats():
    # 3 districts; tiles: d0 = {1, 3}, d1 = {2}, d2 = {4, 6, 8}; one feature column; scores = 2x
    district = np.array([0, 0, 1, 2, 2, 2])
    comp = np.array([1.0, 3.0, 2.0, 4.0, 6.0, 8.0])
    return district_stats(district, comp[:, None], 2 * comp, names=["a", "b", "c"]), comp, district


def test_district_vectors_are_mean_std_sum():
    stats, _, _ = _toy_stats()
    v = stats.vectors()
    assert v[:, 0].tolist() == [2.0, 2.0, 6.0]  # means
    assert v[:, 1] == pytest.approx([1.0, 0.0, math.sqrt(8 / 3)])  # population std
    assert v[:, 2].tolist() == [8.0, 4.0, 36.0]  # score sums
    assert stats.vectors(score=False).shape == (3, 2)
    assert stats.vectors(std=False, score=False)[:, 0].tolist() == [2.0, 2.0, 6.0]


def test_augmentation_gives_n_plus_n_choose_2_rows_with_exact_unions():
    stats, comp, district = _toy_stats()
    y = np.array([10.0, 20.0, 40.0])
    big, labels = augment_districts(stats, y, kind="count", max_pairs=None)
    assert len(labels) == 3 + 3  # N + C(N, 2)
    assert labels.tolist() == [10, 20, 40, 30, 50, 60]
    # the union d0 + d2 has the vector of its five tiles
    union = big.vectors()[4]
    tiles = comp[np.isin(district, [0, 2])]
    assert union[0] == pytest.approx(tiles.mean())
    assert union[1] == pytest.approx(tiles.std())
    assert union[2] == pytest.approx(2 * tiles.sum())
    # rates: weighted average, default weights = tile counts (2, 1, 3)
    _, rates = augment_districts(stats, y, kind="rate", max_pairs=None)
    assert rates[3:].tolist() == pytest.approx(
        [(2 * 10 + 20) / 3, (2 * 10 + 3 * 40) / 5, (20 + 3 * 40) / 4]
    )
    _, rates = augment_districts(stats, y, kind="rate", weights=np.array([1, 1, 2]), max_pairs=None)
    assert rates[4] == pytest.approx((10 + 2 * 40) / 3)
    assert len(district_pairs(40, None)) == 780
    sub = district_pairs(40, 100, seed=3)
    assert len(sub) == 100 and len({tuple(p) for p in sub}) == 100 and (sub[:, 0] < sub[:, 1]).all()


def test_district_without_tiles_and_nonpositive_indicators_are_refused():
    with pytest.raises(HumanscapeError, match="district 'c' has no tile"):
        district_stats(np.array([0, 1]), np.zeros((2, 1)), np.ones(2), names=["a", "b", "c"])
    with pytest.raises(HumanscapeError, match="zero or negative"):
        log_ratio(np.array([3.0, 0.0]), np.ones(2))


def test_eq13_eq14_round_trip():
    stats, _, _ = _toy_stats()
    y = np.array([10.0, 20.0, 40.0])
    h = log_ratio(y, stats.score_sum)
    assert np.allclose(stats.score_sum * np.exp(h), y)
    # a constant ratio y = 3 * sum f is learnt exactly: factor 3 everywhere, eq. 13 gives y back
    y3 = 3 * stats.score_sum
    reg = DistrictRegressor(n_estimators=5, augment=True, seed=0).fit(stats, y3)
    assert np.allclose(reg.factor(stats), 3.0)
    assert np.allclose(reg.predict(stats), y3)
    # without hyperlocal scoring the forest models ln y itself
    flat = DistrictRegressor(n_estimators=5, hyperlocal=False, augment=False).fit(
        stats, np.full(3, 7.0)
    )
    assert np.allclose(flat.predict(stats), 7.0)


def test_gini_known_values():
    assert gini(np.full(7, 3.0)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 0, 5.0])) == pytest.approx(4 / 5)  # (n - 1) / n
    # [1, 2, 3, 4]: sum |xi - xj| over ordered pairs = 20; / (2 n^2 mean) = 20 / 80
    assert gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25)
    assert math.isnan(gini(np.zeros(3)))
    with pytest.raises(HumanscapeError, match="non-negative"):
        gini(np.array([-1.0, 2.0]))
    within = within_district_gini(
        np.array([1.0, 1, 0, 5, 1, 2, 3, 4]), np.array([0, 0, 1, 1, 2, 2, 2, 2]), 3
    )
    assert within.tolist() == pytest.approx([0.0, 0.5, 0.25])
    nat = national_gini(
        np.array([1.0, 1.0, 2.0, 2.0]), np.array([0, 0, 1, 1]), np.array([1.0, 3.0])
    )
    assert nat["district_factors"] == pytest.approx(gini(np.array([1, 1, 3, 3.0])))
    assert nat["adjusted_scores"] == pytest.approx(gini(np.array([1, 1, 6, 6.0])))
    assert nat["scores"] == pytest.approx(gini(np.array([1, 1, 2, 2.0])))


def test_r2_is_the_coefficient_of_determination():
    from humanscape.evaluate.regression import r2

    y = np.array([1.0, 2.0, 3.0, 4.0])
    # SS_res = 0.25 * 4 = 1, SS_tot = 5 -> 1 - 1/5
    assert r2(y, y + 0.5) == pytest.approx(0.8)
    # perfectly correlated but biased: squared Pearson would say 1, the paper's R2 is negative
    assert r2(y, 2 * y + 3) == pytest.approx(1 - ((y + 3) ** 2).sum() / 5)


def test_pearson_loss_and_splits():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert pearson_loss(x, 2 * x + 1).item() == pytest.approx(0.0, abs=1e-6)
    assert pearson_loss(x, -x).item() == pytest.approx(2.0, abs=1e-6)
    splits = random_splits(10, n_splits=5, train_share=0.8, seed=0)
    assert all(len(tr) == 8 and len(te) == 2 and not set(tr) & set(te) for tr, te in splits)
    assert EncoderSpec("labels", 30).name == "labels_nc30"


# --- steps 2 + 3 on real chips --------------------------------------------------------------------


def test_economy_model_fits_predicts_and_reloads_the_same(score_model, real_chips, tmp_path):
    images, targets, _ = real_chips
    images, targets = images[::3], targets[::3]  # every third chip, all ten classes: 6 per district
    rng = np.random.default_rng(0)
    district = rng.permutation(np.arange(len(images)) % 12)
    names = [f"d{k}" for k in range(12)]
    y = np.bincount(district, samples.eurosat_ms()["pop_1km"].to_numpy()[::3] + 1, 12)
    X = DistrictTiles(images, district, names)
    model = EconomyModel(n_clusters=(0, 3), encoder_epochs=1, n_estimators=20, seed=0)
    fitted = model.fit(X, y, score_model=score_model, labelled=(images, targets), progress=False)
    assert fitted is model and model.encoder_names_ == ["labels_nc0", "labels_nc3"]
    table, national = model.district_table(X)
    assert model.tile_values(images).components.shape == (len(images), 6)  # 3 per encoder
    assert np.allclose(table["population"], table["score_sum"] * table["district_factor"])
    np.testing.assert_allclose(model.predict(X), table["population"])
    assert set(national) == {"scores", "district_factors", "adjusted_scores"}
    model.save(tmp_path / "econ")
    again = EconomyModel.load(tmp_path / "econ")
    table2, national2 = again.district_table(X)
    assert np.allclose(table2["population"], table["population"])
    assert national2 == pytest.approx(national)


def test_ridge_head_extrapolation_is_held_to_the_training_range():
    # ln y = component on 6 districts (y = e^1 .. e^6); a new district with component 80 would
    # be exp(80) ~ 5.5e34 people: the estimate is held to e^6 * 10 (LOG_MARGIN = ln 10)
    comp = np.arange(1.0, 7.0)
    train = district_stats(np.arange(6), comp[:, None], np.ones(6), names=list("abcdef"))
    reg = DistrictRegressor(hyperlocal=False, augment=False, std=False, head="ridge")
    reg.fit(train, np.exp(comp))
    far = district_stats(np.arange(2), np.array([[80.0], [3.0]]), np.ones(2), names=["x", "y"])
    pred = reg.predict(far)
    assert pred[0] == pytest.approx(np.exp(6.0) * 10)
    assert pred[1] == pytest.approx(np.exp(3.0), rel=0.05)


def test_non_finite_metrics_print_as_not_available():
    import pandas as pd

    from humanscape.report.text import number, table_text

    assert number(0.12345) == "0.123" and number(-1.2e38) == "n/a"
    assert number(float("inf")) == "n/a" and number(float("nan")) == "n/a" and number(None) == "n/a"
    text = table_text(pd.DataFrame({"model": ["a", "b"], "r2": [0.5, -1.2e38]}))
    assert "0.500" in text and "n/a" in text and "e+38" not in text


# --- the forest candidate and --method auto (issue 23) --------------------------------------------


class _Votes:
    """A stand-in classifier: fixed class probabilities for the class codes it saw."""

    def __init__(self, classes: list[int], proba: np.ndarray) -> None:
        self.classes_, self.proba = np.array(classes), proba

    def predict_proba(self, _: np.ndarray) -> np.ndarray:
        return self.proba


def test_banded_score_lies_in_the_band_of_the_most_probable_level():
    from humanscape.tasks.economy.candidates import banded_score

    proba = np.array([[1, 0, 0], [0, 1, 0], [0.45, 0.1, 0.45], [0, 0, 1], [0.2, 0.3, 0.5]])
    # e = 0, 1, 1, 2, 1.3 -> g = (e + 0.5) / 3; level = argmax (ties: the lower level);
    # bands [-10, 0), [0, 10), [10, 20]: f = lo + 10 g
    scores = banded_score(proba, Thresholds())
    expected = [
        -10 + 10 * 0.5 / 3,
        10 * 1.5 / 3,
        -10 + 10 * 1.5 / 3,
        10 + 10 * 2.5 / 3,
        10 + 10 * 1.8 / 3,
    ]
    assert scores.tolist() == pytest.approx(expected)
    assert classify(scores, Thresholds()).tolist() == [0, 1, 0, 2, 2]
    # band [-2, 0) for level 0 with t_min = -2: e = 0.3 -> g = 0.8 / 3
    two = banded_score(np.array([[0.7, 0.3, 0.0]]), Thresholds(0, 10, -2, 20))
    assert two.tolist() == pytest.approx([-2 + 2 * 0.8 / 3])


def test_classes_map_to_levels_by_their_mean_target_and_unseen_classes_get_nothing():
    from humanscape.tasks.economy.candidates import LevelClassifier, class_codes

    targets = np.array([[0, 0, 1], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0]], np.float64)
    codes, names, matrix = class_codes(np.array(["res", "crop", "res", "marsh"]), targets)
    assert names == ["crop", "marsh", "res"] and codes.tolist() == [2, 0, 2, 1]
    assert matrix.tolist() == [[0, 1, 0], [0.5, 0.5, 0], [0, 0, 1]]
    codes, names, _ = class_codes(None, targets)  # the argmax levels (ties: the lower)
    assert names == ["0", "1", "2"] and codes.tolist() == [2, 1, 2, 0]
    clf = LevelClassifier("forest")
    clf.class_levels_ = matrix
    # a classifier that saw only codes 0 (crop) and 1 (marsh): P(level) = P(c) M[c]
    clf.classifier_ = _Votes([0, 1], np.array([[0.4, 0.6], [1.0, 0.0]]))
    proba = clf.level_probabilities(np.zeros((2, 1, 2, 2), np.float32))
    assert proba.ravel().tolist() == pytest.approx([0.3, 0.4 + 0.3, 0, 0, 1, 0])


def pattern_chips(n_per_level: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Levels that only texture tells apart: two values mixed at random (0), in stripes of 2 px
    (1) or in 4 px checks (2); each chip's two values drawn at random, so the histogram of a chip
    (what chip statistics see) says nothing of its level."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    patterns = [None, (xx // 2) % 2 == 0, ((xx // 4) + (yy // 4)) % 2 == 0]
    images, levels = [], []
    for level, mask in enumerate(patterns):
        for _ in range(n_per_level):
            a, b = rng.uniform(0.05, 0.3, 2)
            where = rng.random((size, size)) < 0.5 if mask is None else mask
            image = np.where(where, a, b) + rng.normal(0, 0.005, (size, size))
            images.append(np.repeat(image[None], 4, 0))
            levels.append(level)
    return np.asarray(images, np.float32), np.asarray(levels)


def test_auto_leaves_the_forest_where_only_texture_tells_the_levels_apart(tmp_path):
    images, levels = pattern_chips(40)
    model = ScoreModel(arch="resnet18_half", epochs=1, seed=0)
    model.fit(images, levels, progress=False)
    table = model.selection_.table.set_index("candidate")
    assert set(table.index) == {"cnn", "forest", "mosaiks"}
    # histograms carry no level: the forest guesses; the random filters see the texture
    assert table.loc["forest", "mean"] < 0.7 and table.loc["mosaiks", "mean"] >= 0.9
    assert model.method_ == "mosaiks" and model.selection_.chosen == "mosaiks"
    assert model.validation_["accuracy"] == table.loc["mosaiks", "mean"] and not model.has_net
    assert not hasattr(model, "net_")
    test, truth = pattern_chips(10, seed=5)
    assert (model.classify(test) == truth).mean() >= 0.9
    assert model.features(test[:3]).shape == (3, 2 * 1024)
    np.testing.assert_array_equal(
        model.scores_of_features(model.features(test)), model.predict(test)
    )
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "score_mosaiks.safetensors").exists()
    again = ScoreModel.load(tmp_path / "m")
    assert again.method_ == "mosaiks"
    assert np.array_equal(again.predict(test), model.predict(test))


def test_the_cnn_reads_texture_the_forest_cannot():
    images, levels = pattern_chips(60)
    model = ScoreModel(method="cnn", arch="resnet18_half", epochs=30, patience=30, seed=0)
    model.fit(images, levels, progress=False)
    forest = ScoreModel(method="forest", seed=0).fit(images, levels, progress=False)
    test, truth = pattern_chips(20, seed=7)
    assert (model.classify(test) == truth).mean() > (forest.classify(test) == truth).mean() + 0.2


def test_auto_keeps_the_forest_where_brightness_is_the_level_and_it_reloads(tmp_path):
    rng = np.random.default_rng(1)
    levels = np.repeat([0, 1, 2], 30)
    images = 0.05 + 0.1 * levels[:, None, None, None] + rng.normal(0, 0.01, (90, 4, 8, 8))
    model = ScoreModel(arch="resnet18_half", epochs=1, seed=0).fit(
        images.astype(np.float32), levels, progress=False
    )
    table = model.selection_.table.set_index("candidate")
    assert table.loc["forest", "mean"] == 1.0  # the CNN can at best tie: the baseline wins ties
    assert model.method_ == "forest" and not hasattr(model, "net_") and not model.has_net
    assert classify(model.predict(images[::30]), model.thresholds).tolist() == [0, 1, 2]
    with pytest.raises(HumanscapeError, match="is a forest classifier"):
        model.copy_net()
    assert model.features(images[:2]).shape == (2, 20)  # chip statistics: 5 per band
    model.save(tmp_path / "m")
    again = ScoreModel.load(tmp_path / "m")
    assert again.method_ == "forest"
    assert np.array_equal(again.predict(images), model.predict(images))


def test_a_named_method_bypasses_the_selection(real_chips):
    images, targets, units = real_chips
    model = ScoreModel(method="forest", seed=0).fit(images, targets, units=units, progress=False)
    assert model.selection_ is None and model.method_ == "forest"
    with pytest.raises(HumanscapeError, match="unknown method"):
        ScoreModel(method="boost").fit(images, targets, units=units, progress=False)
