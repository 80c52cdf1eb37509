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
