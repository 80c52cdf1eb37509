"""Representative points: snapping K-Means centres to the nearest member."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.representatives import _snap_to_members


def test_each_centre_snaps_to_its_nearest_member_and_empty_clusters_to_the_nearest_point():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0], [12.0, 0.0]])
    assignment = np.array([0, 0, 1, 1, 1])
    centres = np.array([[0.4, 0.0], [11.2, 0.0], [5.8, 0.0]])  # cluster 2 has no member
    np.testing.assert_array_equal(_snap_to_members(xy, assignment, centres), [[0.0, 0.0], [11.0, 0.0], [10.0, 0.0]])
