"""Fragment merging: streaks of ids lying inside one segment follow the view graph; the snap of sparse votes."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.consensus import ConsensusConfig, DrawnIds, FragmentMerger, apply_consensus
from mastsam_splat.tracker.segment_table import id_segment_table
from mastsam_splat.types import Matches


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
    assert merger.update(whole, auto, frame=0, parent=None, absent=DrawnIds.of_image(absent)) == {}
    assert merger.update(whole, auto, frame=1, parent=0, absent=DrawnIds.of_image(absent)) == {8: 3}
    # Without its evidence, or with its evidence mostly outside the segment, the absent id does not count.
    merger = _merger(frames=2)
    for t in range(3):
        assert merger.update(whole, auto, frame=t, parent=t - 1 if t else None) == {}
    spread = np.zeros_like(whole)
    spread[2:8, 8:14] = 3
    merger = _merger(frames=2)
    for t in range(3):
        drawn = DrawnIds.of_image(spread)
        assert merger.update(whole, auto, frame=t, parent=t - 1 if t else None, absent=drawn) == {}


def test_evidence_of_a_present_id_is_ignored() -> None:
    auto, together, _ = _frames()
    evidence = np.zeros_like(together)
    evidence[:, 12:15] = 8  # id 8 is present (inside segment 1); its evidence over segment 2 changes nothing
    merger = _merger(frames=2)
    assert merger.update(together, auto, frame=0, parent=None, absent=DrawnIds.of_image(evidence)) == {}
    assert merger.update(together, auto, frame=1, parent=0, absent=DrawnIds.of_image(evidence)) == {8: 3}


def test_sparse_votes_naming_two_ids_keep_the_prompted_split() -> None:
    # One segment over two ids of the previous frame; the prompted masks give id 1 three quarters of it.
    auto = np.ones((40, 40), dtype=np.int64)
    prev = np.ones_like(auto)
    prev[:, 30:] = 2
    tracked = prev.copy()
    # Sparse correspondences (far under dense_min_density): 11 from id 1, 9 from id 2.
    xy = np.array([[5.5 + 2 * (k % 11), 5.5 + k // 11] for k in range(11)] + [[35.5, 5.5 + 3 * k] for k in range(9)])
    matches = Matches(xy_a=xy, xy_b=xy, confidence=np.ones(len(xy)))
    config = ConsensusConfig(min_votes=5, share=0.75, snap_share=0.5, snap_split_votes=0.25)
    result = apply_consensus(tracked, auto, prev, matches, config)
    assert np.array_equal(result.labels, tracked)  # both ids stay where the prompted masks put them
    # Votes too few to agree (4 and 3), the second id's under ``min_votes``: the segment snaps to the plurality id.
    few = (np.arange(len(xy)) < 4) | ((np.arange(len(xy)) >= 11) & (np.arange(len(xy)) < 14))
    result = apply_consensus(tracked, auto, prev, matches.subset(few), config)
    assert np.all(result.labels == 1)
    # Without the guard the segment snaps to id 1 whatever the votes say.
    off = ConsensusConfig(min_votes=5, share=0.75, snap_share=0.5)
    assert np.all(apply_consensus(tracked, auto, prev, matches, off).labels == 1)


def test_fragment_merges_from_a_given_segment_table_equal_those_counted_here():
    """The merger reads the caller's ``id_segment_table`` as it reads its own count of the pixels."""
    rng = np.random.default_rng(3)
    counted, plain = _merger(2), _merger(2)
    merged = 0
    for frame in range(8):
        auto = np.repeat(np.arange(1, 5), 12)[None, :].repeat(10, axis=0)  # four segments of 12 columns
        labels = (np.arange(48)[None, :] // 4 + 1).repeat(10, axis=0)  # twelve ids, three per segment
        labels = np.where(rng.random(labels.shape) < 0.03, rng.integers(1, 15, labels.shape), labels)
        absent = np.where(rng.random(labels.shape) < 0.2, 20 + frame % 3, 0)
        table = id_segment_table(labels, auto, int(auto.max()))
        parent = frame - 1 if frame else None
        drawn = DrawnIds.of_image(absent)
        got = counted.update(labels, auto, frame=frame, parent=parent, absent=drawn, counted=table)
        expected = plain.update(labels, auto, frame=frame, parent=parent, absent=drawn)
        assert got == expected
        merged += len(got)
    assert merged > 0


def test_fragment_merger_with_nothing_absent_drawn_merges_as_without_absent_ids() -> None:
    labels = np.zeros((8, 8), dtype=np.int64)
    labels[:, :3], labels[:, 3:6] = 1, 2
    auto = np.ones((8, 8), dtype=np.int64)
    plain, drawn_none, drawn_present = _merger(2), _merger(2), _merger(2)
    for frame in range(2):
        want = plain.update(labels, auto)
        assert drawn_none.update(labels, auto, absent=DrawnIds.of_image(np.zeros_like(labels))) == want
        # present ids do not count as absent
        assert drawn_present.update(labels, auto, absent=DrawnIds.of_image(labels.copy())) == want
    assert want == {2: 1}
