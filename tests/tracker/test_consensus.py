"""Fragment merging: streaks of ids lying inside one segment follow the view graph."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.consensus import ConsensusConfig, FragmentMerger


def _frames() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An automatic segmentation, labels with ids 3 and 8 inside its first segment, and labels with them apart."""
    auto = np.zeros((10, 20), dtype=np.int64)
    auto[:, :10] = 1
    auto[:, 10:] = 2
    together = np.zeros((10, 20), dtype=np.int64)
    together[:, :5] = 3
    together[:, 5:10] = 8
    together[:, 10:] = 4
    apart = together.copy()
    apart[:, 5:10] = 0
    apart[:, 12:15] = 8
    return auto, together, apart


def _merger(frames: int = 3) -> FragmentMerger:
    return FragmentMerger(ConsensusConfig(fragment_merge_frames=frames, fragment_containment=0.9))


def test_two_branches_visited_in_turn_keep_their_streaks() -> None:
    auto, together, apart = _frames()
    merger = _merger()
    # Branch A (frames 0, 1, 3, 5) shows 3 and 8 inside one segment; branch B (2, 4) shows them apart.
    assert merger.update(together, auto, frame=0, parent=None) == {}
    assert merger.update(together, auto, frame=1, parent=0) == {}
    assert merger.update(apart, auto, frame=2, parent=0) == {}
    assert merger.update(together, auto, frame=3, parent=1) == {8: 3}
    # Without the view graph, the other branch's frames break the streak.
    merger = _merger()
    for labels in (together, together, apart, together):
        due = merger.update(labels, auto)
    assert due == {}


def test_a_branch_starts_from_the_frame_it_was_matched_with() -> None:
    auto, together, apart = _frames()
    merger = _merger(frames=2)
    assert merger.update(apart, auto, frame=0, parent=None) == {}
    assert merger.update(together, auto, frame=1, parent=0) == {}
    # Frame 2 continues frame 0 (apart), not frame 1: one frame in a row.
    assert merger.update(together, auto, frame=2, parent=0) == {}
    assert merger.update(together, auto, frame=3, parent=2) == {8: 3}
    # A first frame (no parent) starts afresh.
    assert merger.update(together, auto, frame=4, parent=None) == {}


def test_a_merge_ends_the_streak_it_came_from() -> None:
    auto, together, _ = _frames()
    merger = _merger(frames=2)
    merger.update(together, auto, frame=0, parent=None)
    assert merger.update(together, auto, frame=1, parent=0) == {8: 3}
    assert merger.update(together, auto, frame=2, parent=1) == {}


def test_an_absent_id_whose_evidence_lies_inside_the_segment_counts() -> None:
    auto, together, _ = _frames()
    whole = together.copy()
    whole[:, :10] = 8  # id 3 lost its pixels to 8: the segment shows both surfaces whole
    absent = np.zeros_like(whole)
    absent[2:8, 1:4] = 3  # where id 3's 3D evidence projects
    merger = _merger(frames=2)
    assert merger.update(whole, auto, frame=0, parent=None, absent=absent) == {}
    assert merger.update(whole, auto, frame=1, parent=0, absent=absent) == {8: 3}
    # Without its evidence, or with its evidence mostly outside the segment, the absent id does not count.
    merger = _merger(frames=2)
    for t in range(3):
        assert merger.update(whole, auto, frame=t, parent=t - 1 if t else None) == {}
    spread = np.zeros_like(whole)
    spread[2:8, 8:14] = 3
    merger = _merger(frames=2)
    for t in range(3):
        assert merger.update(whole, auto, frame=t, parent=t - 1 if t else None, absent=spread) == {}


def test_evidence_of_a_present_id_is_ignored() -> None:
    auto, together, _ = _frames()
    evidence = np.zeros_like(together)
    evidence[:, 12:15] = 8  # id 8 is present (inside segment 1); its evidence over segment 2 changes nothing
    merger = _merger(frames=2)
    assert merger.update(together, auto, frame=0, parent=None, absent=evidence) == {}
    assert merger.update(together, auto, frame=1, parent=0, absent=evidence) == {8: 3}
