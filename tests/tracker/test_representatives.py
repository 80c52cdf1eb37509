"""Representative points: snapping K-Means centres to the nearest member."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.representatives import _snap_groups, _snap_to_members, kmeans_points, match_labels


def test_each_centre_snaps_to_its_nearest_member_and_empty_clusters_to_the_nearest_point():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0], [12.0, 0.0]])
    assignment = np.array([0, 0, 1, 1, 1])
    centres = np.array([[0.4, 0.0], [11.2, 0.0], [5.8, 0.0]])  # cluster 2 has no member
    np.testing.assert_array_equal(_snap_to_members(xy, assignment, centres), [[0.0, 0.0], [11.0, 0.0], [10.0, 0.0]])


def test_match_labels_equals_flooring_every_position() -> None:
    """Positions outside the image, on its borders, non-finite or negative just below zero read as the reference
    (floor, then bounds) reads them."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 9, (7, 11)).astype(np.uint16)
    xy = rng.uniform(-2.0, 13.0, (500, 2))
    xy[:40] = np.round(xy[:40])  # integer positions, the borders included
    xy[40:45] = [[np.nan, 1.0], [1.0, np.inf], [-np.inf, 2.0], [-1e-9, 3.0], [10.999999, 6.9999]]
    for dtype in (np.float64, np.float32):
        pts = xy.astype(dtype)
        cols, rows = np.floor(pts[:, 0]), np.floor(pts[:, 1])
        with np.errstate(invalid="ignore"):
            inside = np.isfinite(pts).all(axis=1) & (cols >= 0) & (cols < 11) & (rows >= 0) & (rows < 7)
        want = np.zeros(len(pts), dtype=np.int64)
        want[inside] = labels[rows[inside].astype(int), cols[inside].astype(int)]
        np.testing.assert_array_equal(match_labels(labels, pts), want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_match_labels_of_positions_all_inside_equal_flooring_them(dtype) -> None:
    """Positions all inside the image (one flat look-up) read the pixels flooring gives, the borders included; one
    position outside reads 0 there and leaves the others' labels as they were."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 9, (7, 11)).astype(np.uint16)
    xy = rng.uniform(0.0, 1.0, (300, 2)) * [11, 7]
    xy[:4] = [[0.0, 0.0], [10.999, 6.999], [0.0, 6.0], [10.0, 0.0]]
    pts = xy.astype(dtype)
    want = labels[np.floor(pts[:, 1]).astype(int), np.floor(pts[:, 0]).astype(int)].astype(np.int64)
    got = match_labels(labels, pts)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(match_labels(labels > 4, pts), (want > 4).astype(np.int64))
    pts[7] = [11.0, 3.0]
    want[7] = 0
    np.testing.assert_array_equal(match_labels(labels, pts), want)
    assert len(match_labels(labels, pts[:0])) == 0


def test_snap_takes_each_clusters_nearest_member_first_on_ties():
    rng = np.random.default_rng(6)
    xy = rng.integers(0, 6, (200, 2)).astype(np.float64)  # many equal distances
    assignment = rng.integers(0, 7, 200)
    assignment[assignment == 5] = 4  # cluster 5 has no member: the nearest point overall
    centres = rng.uniform(0.0, 6.0, (7, 2))
    d = np.sum((xy - centres[assignment]) ** 2, axis=1)
    expected = []
    for c in range(7):
        members = np.flatnonzero(assignment == c)
        if len(members):
            expected.append(members[np.argmin(d[members])])
        else:
            expected.append(int(np.argmin(np.sum((xy - centres[c]) ** 2, axis=1))))
    np.testing.assert_array_equal(_snap_to_members(xy, assignment, centres), xy[expected])


def test_snapping_several_clusterings_at_once_snaps_each_on_its_own():
    """One batch of clusterings (ties, empty clusters, float32 positions) gives each clustering's own snapped points."""
    rng = np.random.default_rng(8)
    xy, assignment, centres = [], [], []
    for n, k in [(50, 3), (1, 2), (200, 9), (7, 7), (120, 5)]:
        xy.append(rng.integers(0, 8, (n, 2)).astype(np.float32))
        labels = rng.integers(0, k, n).astype(np.int32)
        labels[labels == k - 1] = 0  # the last cluster has no member
        assignment.append(labels)
        centres.append(rng.uniform(0.0, 8.0, (k, 2)))
    got = _snap_groups(xy, assignment, centres)
    assert len(got) == len(xy)
    for points, a, c, g in zip(xy, assignment, centres, got):
        want = _snap_to_members(points.astype(np.float64), a.astype(np.int64), c)
        assert g.dtype == np.float64
        np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("backend", ["opencv", "sklearn"])
@pytest.mark.parametrize("count", [4, 120, 2000])  # fewer than k, below the subsample, above it
def test_float32_positions_give_the_points_of_their_float64_copy(backend, count):
    """Positions as the matches hold them (float32), converted after subsampling: the points of the plain float64
    input."""
    xy = np.random.default_rng(count).uniform(0, 300, (count, 2)).astype(np.float32)
    got = kmeans_points(xy, 6, seed=3, backend=backend)
    want = kmeans_points(xy.astype(np.float64), 6, seed=3, backend=backend)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
