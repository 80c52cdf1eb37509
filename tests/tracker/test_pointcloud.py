"""Labelled point cloud: merges composed per batch of points equal relabelling every raw point eagerly."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.pointcloud import LabelledPointCloud
from mastsam_splat.tracker.points3d import FramePoints


@pytest.mark.parametrize("seed", range(4))
def test_merges_between_frames_equal_eager_relabelling(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 8, 10
    cloud = LabelledPointCloud(compact_points=10**9)
    want: list[np.ndarray] = []
    next_id = 1
    for _ in range(25):
        if rng.random() < 0.6 or next_id < 3:
            n = int(rng.integers(1, 30))
            xy = rng.uniform(0, [w, h], (n, 2))
            labels = rng.integers(0, next_id + 3, (h, w))
            next_id += 3
            cloud.add(FramePoints(xy, rng.normal(size=(n, 3))), rng.integers(0, 255, (h, w, 3), dtype=np.uint8), labels)
            want.append(labels[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)].astype(np.int32))
        else:
            lut = np.arange(next_id)
            lut[rng.integers(1, next_id, 2)] = rng.integers(0, next_id, 2)
            cloud.relabel(lut)
            want = [lut[ids].astype(np.int32) for ids in want]
    ids = cloud.arrays()[2]
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, np.concatenate(want))


def test_pair_union_and_summed_codes_equal_a_unique_over_everything() -> None:
    from mastsam_splat.tracker.pointcloud import summed_codes, union_pairs

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 50, 400)
    counts = rng.integers(1, 9, 400)
    got_codes, got_sums = summed_codes(codes, counts)
    want_codes, index = np.unique(codes, return_inverse=True)
    np.testing.assert_array_equal(got_codes, want_codes)
    np.testing.assert_array_equal(got_sums, np.bincount(index, counts))
    held = np.unique(rng.integers(0, 40, 60) * 100 + rng.integers(0, 30, 60))  # sorted unique (voxel, id) pairs
    voxel, ids, held_counts = held // 100, held % 100, rng.integers(1, 5, len(held))
    extra_voxel, extra_ids, extra_counts = rng.integers(0, 45, 80), rng.integers(0, 35, 80), rng.integers(1, 5, 80)
    v, i, c = union_pairs(voxel, ids, held_counts, extra_voxel, extra_ids, extra_counts)
    all_codes = np.r_[voxel * 100 + ids, extra_voxel * 100 + extra_ids]
    want_codes, index = np.unique(all_codes, return_inverse=True)
    np.testing.assert_array_equal(v.astype(np.int64) * 100 + i, want_codes)
    np.testing.assert_array_equal(c, np.bincount(index, np.r_[held_counts, extra_counts]))
    assert v.dtype == i.dtype == c.dtype == np.int32
