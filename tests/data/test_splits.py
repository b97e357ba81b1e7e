import numpy as np
import pytest

from humanscape.data import splits
from humanscape.errors import HumanscapeError


def test_random_split_sizes_and_disjoint():
    s = splits.random_split(100, test_size=0.25, seed=1)
    assert s.sizes == {"train": 75, "test": 25}
    assert not set(s.train) & set(s.test)
    assert "test 25" in s.describe()


def test_checkerboard_blocks_never_share_a_block_between_train_and_test():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10_000, (500, 2))
    folds = splits.block_folds(xy, 2000)
    assert len(folds) == 2
    blocks = splits.block_ids(xy, 2000)
    for f in folds:
        train_blocks = {tuple(b) for b in blocks[f.train]}
        test_blocks = {tuple(b) for b in blocks[f.test]}
        assert not train_blocks & test_blocks
        # checkerboard: test blocks of one fold are never edge-adjacent to each other
        assert all(
            ((bx + by) % 2) == ((next(iter(test_blocks))[0] + next(iter(test_blocks))[1]) % 2)
            for bx, by in test_blocks
        )
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(500))


def test_random_block_folds_cover_all_samples_once():
    xy = np.random.default_rng(1).uniform(0, 20_000, (300, 2))
    folds = splits.block_folds(xy, 3000, n_folds=5, scheme="random", seed=3)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(300))


def test_leave_one_group_out_never_mixes_groups():
    groups = np.array(["a", "b", "a", "c", "b", "c", "c"])
    folds = list(splits.leave_one_group_out(groups))
    assert [f.name for f in folds] == ["group=a", "group=b", "group=c"]
    for f in folds:
        assert len(set(groups[f.test])) == 1
        assert set(groups[f.test]).isdisjoint(groups[f.train])
    with pytest.raises(HumanscapeError, match="some samples have no group"):
        list(splits.leave_one_group_out(np.array(["a", None, "b"], dtype=object)))
    with pytest.raises(HumanscapeError, match="2 or more groups"):
        list(splits.leave_one_group_out(["a", "a"]))


def test_region_holdout_and_unknown_region():
    groups = ["x", "y", "z", "x"]
    s = splits.region_holdout(groups, ["x"])
    assert s.test.tolist() == [0, 3] and s.train.tolist() == [1, 2]
    with pytest.raises(HumanscapeError, match="unknown group"):
        splits.region_holdout(groups, ["w"])


def test_too_large_blocks_are_refused():
    with pytest.raises(HumanscapeError, match="too large"):
        splits.block_folds(np.array([[1.0, 1.0], [2.0, 2.0]]), 1e6)
