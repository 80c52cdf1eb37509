"""The memory check's split of a segment: the pixels its 3D points on another id's voxels stand for."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.memory import nearest_point_cells


def test_only_the_part_of_a_segment_its_voting_points_stand_for_moves():
    # Segment 1 (columns 0-29) merges two surfaces: its points on the left (x < 15) lie on another id's voxels.
    segments = np.ones((20, 40), dtype=np.int64)
    segments[:, 30:] = 2
    ys = np.arange(2.5, 20, 5.0)
    xy = np.array([[x, y] for x in (3.5, 10.5, 19.5, 26.5, 35.5) for y in ys])
    point_segment = np.where(xy[:, 0] < 30, 1, 2)
    vote = xy[:, 0] < 15
    chosen = np.array([False, True, False])
    cells = nearest_point_cells(segments, chosen, xy, point_segment, vote)
    assert np.all(cells[:, :15]) and not cells[:, 15:].any()
    # Every point of the segment voting: the whole segment; none voting (or a segment not chosen): nothing.
    cells = nearest_point_cells(segments, chosen, xy, point_segment, xy[:, 0] < 30)
    assert np.all(cells[:, :30]) and not cells[:, 30:].any()
    assert not nearest_point_cells(segments, chosen, xy, point_segment, np.zeros(len(xy), bool)).any()
    assert not nearest_point_cells(segments, np.array([False, False, True]), xy, point_segment, vote).any()
