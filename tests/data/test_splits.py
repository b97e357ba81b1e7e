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


def test_spatial_folds_of_blocks_are_balanced_by_hand():
    folds = splits.SpatialFolds.blocks((0, 0, 8000, 4000), 2000, n_folds=4, buffer=300, seed=1)
    centres = [(bx * 2000 + 1000, 4000 - by * 2000 - 1000) for by in range(2) for bx in range(4)]
    fold = folds.fold_at(np.array([c[0] for c in centres]), np.array([c[1] for c in centres]))
    assert sorted(np.bincount(fold).tolist()) == [2, 2, 2, 2]  # 8 blocks in 4 folds
    assert folds.fold_at(np.array([-5.0, 9000.0]), np.array([100.0, 100.0])).tolist() == [-1, -1]


def test_spatial_folds_drop_training_points_within_the_buffer_by_hand():
    # checkerboard, 2 folds: block (bx, by) (by counted from the top) is in fold (bx + by) % 2
    folds = splits.SpatialFolds.blocks(
        (0, 0, 8000, 4000), 2000, n_folds=2, buffer=300, scheme="checkerboard"
    )
    x = np.array([1900.0, 1000.0, 1000.0, 3000.0])
    y = np.array([3000.0, 3000.0, 2100.0, 3000.0])
    # points 0-2 lie in block (0, 0), fold 0; point 3 in block (1, 0), fold 1.
    # For fold 1: point 0 is 100 m from block (1, 0), point 2 is 100 m from block (0, 1): dropped;
    # point 1 is 1000 m from both: kept.
    split = folds.split(x, y, 1)
    assert split.train.tolist() == [1] and split.test.tolist() == [3]
    assert folds.split(x, y, 0).test.tolist() == [0, 1, 2]
    no_buffer = splits.SpatialFolds.blocks(
        (0, 0, 8000, 4000), 2000, n_folds=2, buffer=0, scheme="checkerboard"
    )
    assert no_buffer.split(x, y, 1).train.tolist() == [0, 1, 2]


def test_spatial_folds_refuse_blocks_larger_than_the_extent():
    with pytest.raises(HumanscapeError, match="fewer than 4 folds"):
        splits.SpatialFolds.blocks((0, 0, 3000, 2000), 2000, n_folds=4)
    with pytest.raises(HumanscapeError, match="smaller than the block"):
        splits.SpatialFolds.blocks((0, 0, 9000, 9000), 2000, buffer=2500)
