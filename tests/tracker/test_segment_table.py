"""The (id, segment) pixel table against a plain count over compactly numbered ids."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.hierarchy import contained_pairs
from mastsam_splat.tracker.segment_table import compact_ids
from mastsam_splat.tracker.refine import RefineConfig, pieces
from mastsam_splat.tracker.segment_table import id_segment_table


def _plain_table(labels: np.ndarray, auto: np.ndarray, num_segments: int) -> tuple[np.ndarray, np.ndarray]:
    ids, index = compact_ids(labels)
    table = np.zeros((len(ids), num_segments + 1), dtype=np.int64)
    np.add.at(table, (index.ravel(), auto.ravel()), 1)
    return ids, table


@pytest.mark.parametrize("largest_id", [5, 40, 3000])  # small ids: one pass over raw ids; large: compact numbering
@pytest.mark.parametrize("unlabelled", [True, False])
def test_id_segment_table_equals_a_plain_count(largest_id: int, unlabelled: bool) -> None:
    rng = np.random.default_rng(largest_id)
    h, w = 30, 40
    auto = rng.integers(0, 9, (h, w))
    labels = rng.choice(np.array([0, 2, 3, largest_id]), size=(h, w))
    if not unlabelled:
        labels[labels == 0] = 3
    num_segments = int(auto.max())
    ids, table = id_segment_table(labels, auto, num_segments)
    want_ids, want_table = _plain_table(labels, auto, num_segments)
    np.testing.assert_array_equal(ids, want_ids)
    assert table.dtype == np.int64
    np.testing.assert_array_equal(table, want_table)


def test_steps_given_the_table_decide_as_without_it() -> None:
    """Ids 1 and 2 lie inside segment 1; id 3 is cut by segments 2 and 3: the steps find both with the table given."""
    auto = np.ones((20, 20), dtype=np.int64)
    auto[:10, 10:] = 2
    auto[10:, 10:] = 3
    labels = np.full((20, 20), 3, dtype=np.int64)
    labels[:10, :10] = 1
    labels[10:, :10] = 2
    counted = id_segment_table(labels, auto, int(auto.max()))
    config = RefineConfig()
    assert pieces(labels, auto, config, 4, counted) == pieces(labels, auto, config, 4) == {3: [2, 3]}
    assert contained_pairs(labels, auto, 0.9, 4, counted) == contained_pairs(labels, auto, 0.9, 4) == {(1, 2)}


@pytest.mark.parametrize("low, high", [(0, 50), (0, 70_000), (-5, 50)])
def test_id_lookups_equal_isin(low: int, high: int) -> None:
    from mastsam_splat.tracker.segment_table import id_member, without_ids

    rng = np.random.default_rng(high - low)
    for dtype in (np.int64, np.int32, np.uint16 if low >= 0 and high < 65536 else np.int64):
        values = rng.integers(low, high, (24, 32)).astype(dtype)
        ids = rng.choice(np.arange(max(low, 0), high), 6, replace=False)
        np.testing.assert_array_equal(id_member(values, ids), np.isin(values, ids))
        expected = np.where(np.isin(values, ids), 0, values).astype(np.int64)
        got = without_ids(values, ids)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
    assert id_member(np.zeros(0, dtype=np.int64), ids).shape == (0,)


@pytest.mark.parametrize("seed", range(3))
def test_carried_codes_counted_once_give_the_steps_their_own_results(seed):
    """The carried partition's (segment, id) codes counted once (``segment_codes``) and handed to the carried split
    and the new regions give what each step counts for itself."""
    from mastsam_splat.tracker.new_regions import NewRegionsConfig, split_regions
    from mastsam_splat.tracker.propagation import PropagationConfig, keep_carried
    from mastsam_splat.tracker.segment_table import segment_codes

    rng = np.random.default_rng(seed)
    h, w = 60, 80
    auto = (rng.integers(0, 4, (h // 10, w // 10)).repeat(10, 0).repeat(10, 1) * 3 + rng.integers(0, 3, (h, w)) // 2)
    carried = rng.integers(0, 5, (h // 6, w // 8)).repeat(6, 0).repeat(8, 1)
    labels = np.where(rng.random((h, w)) < 0.7, carried[:, ::-1], 0)
    counted = segment_codes(carried, auto, int(auto.max()))
    np.testing.assert_array_equal(counted.table.sum(axis=1), np.bincount(auto.ravel(), minlength=int(auto.max()) + 1))
    alone, taken = keep_carried(labels, auto, carried, PropagationConfig(), 4)
    shared, shared_taken = keep_carried(labels, auto, carried, PropagationConfig(), 4, counted)
    np.testing.assert_array_equal(shared, alone)
    assert shared_taken.changed == taken.changed
    config = NewRegionsConfig(min_uncovered_fraction=0.2)
    plain = split_regions(labels, auto, config, 4, carried)
    given = split_regions(labels, auto, config, 4, carried, counted)
    np.testing.assert_array_equal(given.labels, plain.labels)
    np.testing.assert_array_equal(given.regions, plain.regions)
    assert given.region_ids == plain.region_ids


def test_segment_codes_number_raw_or_compact_ids_to_the_same_table():
    """``segment_codes`` numbers small ids by themselves (absent ones get empty columns) and large ones compactly:
    either way each pixel's code points at its own (segment, id) cell, and the cells of the ids present hold the
    pixels a plain count gives."""
    from mastsam_splat.tracker.segment_table import segment_codes

    rng = np.random.default_rng(3)
    for largest in (5, 40, 5000):
        auto = rng.integers(0, 6, (30, 40))
        labels = np.where(rng.random((30, 40)) < 0.3, 0, rng.choice([1, 4, largest], (30, 40)))
        ids, code, table = segment_codes(labels, auto, 5)
        assert set(np.unique(labels).tolist()) <= set(ids.tolist()) and ids[0] == 0
        np.testing.assert_array_equal(code // len(ids), auto.ravel())
        np.testing.assert_array_equal(ids[code % len(ids)], labels.ravel())
        for column, obj_id in enumerate(ids):
            expected = np.bincount(auto[labels == obj_id], minlength=6)
            np.testing.assert_array_equal(table[:, column], expected)
        assert (len(ids) == largest + 1) == (largest * 6 <= labels.size)


def test_gaps_given_equals_counting_the_filled_image_again():
    """The table of an image whose unlabelled pixels were given ids, whole segments at a time (old ids, new ones) and
    pixel by pixel elsewhere (or left 0), updated from the segments' columns and those pixels alone, is the table
    counted over the whole image: same ids, same pixels per (id, segment)."""
    from mastsam_splat.tracker.segment_table import gaps_given

    rng = np.random.default_rng(7)
    for trial in range(30):
        shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        num_segments = int(rng.integers(1, 9))
        auto = rng.integers(0, num_segments + 1, shape)
        labels = np.where(rng.random(shape) < 0.4, 0, rng.choice([3, 7, 8, 20], shape))
        if trial % 5 == 0:
            labels[:] = 0  # nothing tracked
        counted = id_segment_table(labels, auto, num_segments)
        target = np.where(rng.random(num_segments + 1) < 0.5, rng.choice([0, 3, 8, 11, 25], num_segments + 1), 0)
        target[0] = 0
        gaps = np.flatnonzero((labels.ravel() == 0) & (target[auto.ravel()] == 0))
        pixels = gaps[rng.random(len(gaps)) < 0.6]
        values = rng.choice([0, 0, 3, 8, 11, 40], len(pixels))
        filled = np.where((labels == 0) & (target[auto] > 0), target[auto], labels)
        filled.reshape(-1)[pixels] = values
        expected = id_segment_table(filled, auto, num_segments)
        got = gaps_given(counted, target, auto, pixels, values)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.table, expected.table)
        assert got.table.dtype == expected.table.dtype and got.ids.dtype == expected.ids.dtype


def test_segments_given_and_pixels_changed_equal_counting_the_image_again():
    """The table of an image whose segments were given ids whole (the consensus), or whose pixels changed ids (the
    carried partition taking pixels back), updated from the table or from the changed pixels alone, is the table
    counted over the whole image: same ids (those left with no pixel gone), same pixels per (id, segment)."""
    from mastsam_splat.tracker.segment_table import pixels_changed, segments_given

    rng = np.random.default_rng(11)
    for trial in range(30):
        shape = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        num_segments = int(rng.integers(1, 9))
        auto = rng.integers(0, num_segments + 1, shape)
        big = 70_000 if trial % 4 == 3 else 0  # (ids beyond 16 bits: counted by sorting instead of a look-up table)
        labels = np.where(rng.random(shape) < 0.3, 0, rng.choice([3, 7, 8, 20], shape) + big)
        counted = id_segment_table(labels, auto, num_segments)

        target = np.where(rng.random(num_segments + 1) < 0.5, rng.choice([0, 3, 8, 30], num_segments + 1), -1)
        target[0] = -1
        if trial % 6 == 0:
            target[:] = -1  # nothing decided
        given = np.where(target[auto] >= 0, target[auto], labels)
        expected = id_segment_table(given, auto, num_segments)
        got = segments_given(counted, target)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.table, expected.table)

        changed_image = labels.copy()
        take = rng.random(shape) < (0.0 if trial % 7 == 0 else 0.3)
        changed_image[take] = rng.choice([0, 7 + big, 9 + big, 20 + big], int(take.sum()))
        changed = np.flatnonzero(changed_image.ravel() != labels.ravel())
        expected = id_segment_table(changed_image, auto, num_segments)
        got = pixels_changed(counted, auto, changed, labels.ravel()[changed], changed_image.ravel()[changed])
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.table, expected.table)
        assert got.table.dtype == expected.table.dtype


@pytest.mark.parametrize("matcher", ["geometric", "sift"])
def test_every_table_the_tracker_reuses_equals_a_fresh_count(monkeypatch, matcher):
    """The frame's (id, segment) table is counted once and then kept while the labels stay the same array, or
    updated from the segments the consensus gave ids or the pixels the new regions filled; with sparse
    correspondences (``sift``) the carried partition runs too and reads that table (the update from the pixels it
    takes back is checked against a fresh count in the test above): whenever a step reads a kept table, it is the
    table of the labels it was given."""
    from mastsam_splat.matchers import make_matcher
    from mastsam_splat.segmenters import make_segmenter
    from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
    from mastsam_splat.tracker.tracker import _Run

    from support.planar_scene import sequence

    original = _Run._segment_table
    checked = []

    def checking(self, labels, auto):
        kept = self._counted is not None and self._counted[0] is labels and self._counted[1] is auto
        got = original(self, labels, auto)
        expected = id_segment_table(labels, auto, int(auto.max()) if auto.size else 0)
        np.testing.assert_array_equal(got.ids, expected.ids)
        np.testing.assert_array_equal(got.table, expected.table)
        checked.append(kept)
        return got

    monkeypatch.setattr(_Run, "_segment_table", checking)
    frames = sequence([0.0, 0.15, 0.3, 0.45])
    MastSAMTracker(TrackerConfig(), make_segmenter("classical"), make_matcher(matcher), matcher).run(frames)
    assert sum(checked) >= 3 and not all(checked)  # tables kept between steps, and counted afresh


def test_segment_count_counts_a_frozen_image_once_and_any_other_every_time():
    from mastsam_splat.tracker import segment_table
    from mastsam_splat.tracker.segment_table import segment_count

    open_image = np.array([[0, 3], [1, 2]])
    assert segment_count(open_image) == 3
    open_image[0, 0] = 9  # a writable image is counted again
    assert segment_count(open_image) == 9
    frozen = open_image.copy()
    frozen.flags.writeable = False
    assert segment_count(frozen) == 9 and segment_table._counted_segments[0]() is frozen
    assert segment_count(frozen[:1]) == 9  # (a view is counted, not kept)
    assert segment_table._counted_segments[0]() is frozen
    assert segment_count(np.zeros((0, 3), dtype=np.int64)) == 0
    other = np.array([[5]])
    other.flags.writeable = False
    assert segment_count(other) == 5 and segment_count(frozen) == 9
