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


def _carried_fills_reference(labels, auto, carried, is_new, uncovered, config):
    """The ids the carried partition gives new-looking segments, counted plainly: every (segment, carried id)
    pair of the gaps' pixels with ``np.add.at``."""
    num_segments = int(auto.max())
    carried_ids = np.unique(np.r_[0, carried.ravel()])
    index = np.searchsorted(carried_ids, carried)
    in_segment = np.zeros((num_segments + 1, len(carried_ids)), dtype=np.int64)
    np.add.at(in_segment, (auto, index), 1)
    votes = np.zeros_like(in_segment)
    gaps = labels == 0
    np.add.at(votes, (auto[gaps], index[gaps]), 1)
    best = np.argmax(votes[:, 1:], axis=1) + 1
    rows = np.arange(num_segments + 1)
    share = votes[rows, best] / np.maximum(uncovered, 1)
    extent = in_segment[rows, best] / np.maximum(in_segment[1:].sum(axis=0)[best], 1)
    known = is_new & (share >= config.carried_min_share) & (extent >= config.carried_min_share)
    return {int(s): int(carried_ids[best[s]]) for s in np.flatnonzero(known)}


def test_segments_given_their_carried_id_equal_a_plain_count_of_the_gaps():
    """Uncovered segments that ``split_regions`` gives a carried id (no longer new regions) are those a plain count
    of the gaps' carried ids names, with those ids."""
    rng = np.random.default_rng(7)
    config = NewRegionsConfig()
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(12, 60, 2))
        auto = np.kron(rng.integers(1, 6, (h // 6 + 1, w // 6 + 1)), np.ones((6, 6), dtype=np.int64))[:h, :w]
        # each segment mostly carries one id (some pixels another or none); about half the segments are tracked
        carried = np.where(rng.random((h, w)) < 0.85, (auto % 3) * 2, rng.integers(0, 4, (h, w)) * 2)
        tracked = rng.random(6) < 0.5
        labels = np.where(tracked[auto] & (rng.random((h, w)) < 0.9), rng.integers(1, 4, (h, w)), 0)
        without = split_regions(labels, auto, config, 3)
        with_carried = split_regions(labels, auto, config, 3, carried)
        counts = np.zeros((int(auto.max()) + 1, 2), dtype=np.int64)
        np.add.at(counts, (auto, (labels > 0).astype(np.int64)), 1)
        is_new = np.zeros(len(counts), dtype=bool)
        is_new[without.region_ids] = True
        expected = _carried_fills_reference(labels, auto, carried, is_new, counts[:, 0], config)
        assert sorted(set(without.region_ids) - set(with_carried.region_ids)) == sorted(expected)
        for segment, carried_id in expected.items():
            gaps = (auto == segment) & (labels == 0)
            assert (with_carried.labels[gaps] == carried_id).all()


def test_regions_read_at_pixels_equal_the_drawn_regions():
    """``regions_at`` gives, from a pixel's segment and tracked id alone, what the drawn ``regions`` image holds
    there: the segment where the pixel was a gap of a candidate segment, 0 elsewhere."""
    rng = np.random.default_rng(5)
    for _ in range(10):
        auto = np.kron(rng.integers(0, 6, (4, 5)), np.ones((6, 8), dtype=np.int64))
        tracked = np.where(rng.random(auto.shape) < 0.3, rng.integers(1, 4, auto.shape), 0)
        tracked[auto == 2] = 0  # (one segment left wholly uncovered: a candidate)
        split = split_regions(tracked, auto, NewRegionsConfig(), min_area=5)
        regions = split.regions
        assert set(np.unique(regions[regions > 0]).tolist()) == set(split.region_ids)
        np.testing.assert_array_equal(split.regions_at(auto.ravel(), tracked.ravel()), regions.ravel())
        np.testing.assert_array_equal(regions.reshape(-1)[split.gaps], split.gap_regions)


def test_gap_fills_listed_by_segment_and_by_pixel_are_the_labels_written():
    """Every gap pixel holds its segment's ``segment_fill`` where that is set, the carried id where it is listed in
    ``carried_gaps``, and 0 otherwise: what the tracker's table update reads instead of the pixels."""
    rng = np.random.default_rng(9)
    for _ in range(10):
        auto = np.kron(rng.integers(0, 7, (4, 5)), np.ones((6, 8), dtype=np.int64))
        tracked = np.where(rng.random(auto.shape) < 0.5, rng.integers(1, 4, auto.shape), 0)
        carried = np.kron(rng.integers(0, 5, (8, 8)), np.ones((3, 5), dtype=np.int64))
        split = split_regions(tracked, auto, NewRegionsConfig(fill_min_dominance=0.5), 5, carried)
        expected = np.where(split.segment_fill[auto] > 0, split.segment_fill[auto], 0).ravel()
        expected[split.carried_gaps] = carried.ravel()[split.carried_gaps]
        np.testing.assert_array_equal(split.labels.ravel()[split.gaps], expected[split.gaps])
        assert not (split.segment_fill[auto.ravel()[split.carried_gaps]] > 0).any()
        assert not split.is_new[auto.ravel()[split.carried_gaps]].any()
