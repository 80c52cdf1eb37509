"""New regions against the carried partition: content the previous frame already labelled is not new."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.new_regions import NewRegionsConfig, split_regions


def _scene():
    auto = np.zeros((20, 40), dtype=np.int64)
    auto[:, :20] = 1
    auto[:, 20:] = 2
    tracked = np.zeros_like(auto)
    tracked[:, :20] = 5  # segment 1 tracked; segment 2 uncovered
    return auto, tracked


def test_uncovered_segment_carried_from_one_id_joins_it():
    auto, tracked = _scene()
    carried = np.zeros_like(auto)
    carried[:, :20] = 5
    carried[:, 22:] = 9  # id 9 lost its prompt this frame, but the previous frame had it here
    split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5, carried=carried)
    assert split.region_ids == [] and np.all(split.labels[:, 20:] == 9)
    # Without the carried partition the segment is a new region.
    split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5)
    assert split.region_ids == [2] and np.all(split.labels[:, 20:] == 0)
    # Turned off.
    split = split_regions(tracked, auto, NewRegionsConfig(carried_min_share=1.5), min_area=5, carried=carried)
    assert split.region_ids == [2]


def test_segment_cut_out_of_a_larger_carried_id_stays_new():
    auto, tracked = _scene()
    auto[:, 30:] = 3
    tracked[:] = 0
    carried = np.full_like(auto, 5)  # id 5 covered the whole frame; segment 3 is a quarter of it
    tracked[:, :30] = 5
    split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5, carried=carried)
    assert split.region_ids == [3] and np.all(split.regions[:, 30:] == 3)


def test_gaps_of_undecided_segments_take_the_carried_id():
    auto, _ = _scene()
    tracked = np.zeros_like(auto)
    tracked[:, :6] = 5
    tracked[:, 14:20] = 6  # segment 1: 60 % covered, split evenly between ids 5 and 6
    carried = np.zeros_like(auto)
    carried[:, :10] = 5
    carried[:, 10:20] = 6
    carried[:, 20:] = 0
    split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5, carried=carried)
    assert np.all(split.labels[:, :10] == 5) and np.all(split.labels[:, 10:20] == 6)
    split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5)
    assert np.all(split.labels[:, 6:14] == 0)
