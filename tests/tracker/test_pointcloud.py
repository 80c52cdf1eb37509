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


def test_summary_holds_exact_counts_and_colour_sums() -> None:
    """The summary's integer storage gives every fine voxel's exact point count and mean colour (as float64 sums
    would) and its mean position."""
    from mastsam_splat.tracker.pointcloud import point_keys

    rng = np.random.default_rng(2)
    h, w = 20, 30
    cloud = LabelledPointCloud(compact_points=500, batch_points=300, fine_fraction=0.05)
    xyz_all, rgb_all = [], []
    for _ in range(20):
        n = int(rng.integers(50, 150))
        xy = rng.uniform(0, [w, h], (n, 2))
        xyz = rng.normal(size=(n, 3)).astype(np.float32)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cloud.add(FramePoints(xy, xyz), image, np.ones((h, w), dtype=np.int64))
        xyz_all.append(xyz)
        rgb_all.append(image[np.floor(xy[:, 1]).astype(int), np.floor(xy[:, 0]).astype(int)])
    cloud.downsampled(0.1)  # folds the last raw points in
    summary = cloud._summary
    assert summary is not None and summary.counts.dtype == summary.rgb_sum.dtype == np.uint32
    xyz, rgb = np.concatenate(xyz_all), np.concatenate(rgb_all).astype(np.int64)
    keys, index = np.unique(point_keys(xyz, summary.size), return_inverse=True)
    np.testing.assert_array_equal(summary.keys, keys)
    np.testing.assert_array_equal(summary.counts, np.bincount(index))
    for c in range(3):
        np.testing.assert_array_equal(summary.rgb_sum[:, c], np.bincount(index, rgb[:, c]))
    mean_xyz, mean_rgb, _ = summary.centroids()
    want_rgb = np.stack([np.bincount(index, rgb[:, c]) for c in range(3)], 1) / np.bincount(index)[:, None]
    np.testing.assert_array_equal(mean_rgb, np.clip(np.round(want_rgb), 0, 255).astype(np.uint8))
    want_xyz = np.stack([np.bincount(index, xyz[:, c].astype(np.float64)) for c in range(3)], 1)
    np.testing.assert_allclose(mean_xyz, (want_xyz / np.bincount(index)[:, None]).astype(np.float32), rtol=1e-6)


def test_coarsened_summary_equals_the_points_summarised_at_twice_the_voxel() -> None:
    """Doubling the summary's voxel gives the voxels, counts, colour sums and (voxel, id) pairs of summarising
    the same points at the doubled size (positions up to float rounding), and a cloud past ``max_voxels`` holds
    at most that many."""
    from mastsam_splat.tracker.pointcloud import _Summary

    rng = np.random.default_rng(4)
    xyz = rng.normal(scale=3.0, size=(3000, 3))
    rgb = rng.integers(0, 256, (3000, 3), dtype=np.uint8)
    ids = rng.integers(0, 5, 3000).astype(np.int32)
    fine, coarse = _Summary(0.25), _Summary(0.5)
    for part in np.array_split(np.arange(3000), 4):
        fine.add(xyz[part], rgb[part], ids[part])
    coarse.add(xyz, rgb, ids)
    fine.coarsen()
    assert fine.size == coarse.size
    for name in ("keys", "counts", "rgb_sum", "pair_voxel", "pair_ids", "pair_counts"):
        np.testing.assert_array_equal(getattr(fine, name), getattr(coarse, name), err_msg=name)
    np.testing.assert_allclose(fine.xyz_sum, coarse.xyz_sum, rtol=1e-9, atol=1e-9)

    h, w = 20, 30
    cloud = LabelledPointCloud(compact_points=400, batch_points=300, fine_fraction=0.01, max_voxels=500)
    for _ in range(15):
        xy = rng.uniform(0, [w, h], (200, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cloud.add(FramePoints(xy, rng.normal(size=(200, 3))), image, rng.integers(0, 4, (h, w)))
        assert cloud._summary is None or len(cloud._summary.keys) <= 500
    assert cloud.summarised and len(cloud) == 3000


def test_a_cloud_needs_room_for_one_voxel() -> None:
    with pytest.raises(ValueError, match="max_voxels"):
        LabelledPointCloud(max_voxels=0)


def test_point_labels_agree_with_labels_at() -> None:
    from mastsam_splat.tracker.points3d import FramePoints, labels_at, point_labels

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 9, (24, 32)).astype(np.int32)
    xy = np.concatenate([rng.uniform(-3, 35, (400, 2)), [[np.nan, 1.0], [31.999, 23.999], [0.0, 0.0]]])
    points = FramePoints(xy, np.zeros((len(xy), 3)))
    inside = FramePoints(rng.uniform(0, 24, (50, 2)), np.zeros((50, 3)))
    for image in (labels, labels * 2, labels.T.copy()):
        for p in (points, inside):
            got = point_labels(image, p)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, labels_at(image, p.xy))


def test_frame_points_voxel_keys_are_the_keys_of_their_finite_points() -> None:
    from mastsam_splat.tracker.memory import VoxelMemory, voxel_coords, voxel_keys

    rng = np.random.default_rng(2)
    xyz = rng.normal(0, 1, (300, 3))
    xyz[[3, 50]] = np.nan
    points = FramePoints(rng.uniform(0, 10, (300, 2)), xyz)
    finite = np.isfinite(xyz).all(axis=1)
    np.testing.assert_array_equal(points.finite, finite)
    keys = points.voxel_keys(0.1)
    np.testing.assert_array_equal(keys[finite], voxel_keys(voxel_coords(xyz[finite], 0.1)))
    assert points.voxel_keys(0.1) is keys
    memory = VoxelMemory(0.1)
    memory.add_labelled(rng.integers(0, 4, 300), np.nan_to_num(xyz))
    want = memory.point_hits(xyz)
    index = np.flatnonzero(finite)
    got_index, got_ids = memory.key_hits(keys[index])
    np.testing.assert_array_equal(index[got_index], want[0])
    np.testing.assert_array_equal(got_ids, want[1])
