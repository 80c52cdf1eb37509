"""The memory check: the ids its segments go to, and the split of a segment (the pixels its 3D points on another
id's voxels stand for)."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.memory import check_targets, nearest_point_cells


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


def _reference_targets(hit_segments, hit_ids, points_per_segment, holder, candidates, min_fraction, ratio):
    """``check_targets`` written plainly: each candidate segment's shares in a dict, the best other id by ``max``."""
    share = {}
    for seg, obj_id in set(zip(hit_segments.tolist(), hit_ids.tolist())):
        count = int(np.count_nonzero((hit_segments == seg) & (hit_ids == obj_id)))
        share.setdefault(seg, {})[obj_id] = count / points_per_segment[seg]
    lut = np.zeros(len(holder), dtype=np.int64)
    for seg in candidates.tolist():
        fractions = share.get(seg, {})
        own = fractions.get(int(holder[seg]), 0.0)
        others = [(f, i) for i, f in fractions.items() if i != holder[seg] and f >= min_fraction and f >= ratio * own]
        if others:
            lut[seg] = max(others)[1]
    return lut


@pytest.mark.parametrize("seed", range(8))
def test_check_targets_equal_the_plain_reference(seed):
    rng = np.random.default_rng(seed)
    segments = 30
    holder = rng.integers(0, 6, segments + 1)
    points_per_segment = rng.integers(5, 12, segments + 1)
    hit_segments = rng.integers(0, segments + 1, 400)
    hit_ids = rng.integers(1, 7, 400)  # repeated pairs: shares of several points, equal shares (ties) common
    candidates = np.flatnonzero(rng.random(segments + 1) < 0.7)
    for min_fraction, ratio in ((0.1, 2.0), (0.3, 1.0), (0.0, 0.5)):
        got = check_targets(hit_segments, hit_ids, points_per_segment, holder, candidates, min_fraction, ratio)
        expected = _reference_targets(hit_segments, hit_ids, points_per_segment, holder, candidates, min_fraction, ratio)
        np.testing.assert_array_equal(got, expected)
    assert np.any(got > 0)
    empty = np.zeros(0, dtype=np.int64)
    assert not check_targets(empty, empty, points_per_segment, holder, candidates, 0.1, 2.0).any()
