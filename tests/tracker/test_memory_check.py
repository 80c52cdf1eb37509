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


@pytest.mark.parametrize("seed", range(4))
def test_cells_are_the_nearest_points_cells_up_to_near_ties(seed):
    """Every pixel of a chosen segment follows the vote of its segment's nearest point (measured from the points'
    pixels), except pixels whose nearest voting and non-voting points lie within a few percent of one distance."""
    rng = np.random.default_rng(seed)
    segments = rng.integers(1, 4, (6, 9)).repeat(12, axis=0).repeat(12, axis=1)
    h, w = segments.shape
    xy = rng.uniform([0, 0], [w, h], (60, 2))
    point_segment = segments[xy[:, 1].astype(int), xy[:, 0].astype(int)]
    vote = rng.random(len(xy)) < 0.5
    chosen = np.array([False, True, True, False])
    cells = nearest_point_cells(segments, chosen, xy, point_segment, vote)
    rows, cols = np.mgrid[0:h, 0:w]
    centres = np.floor(xy) + 0.5
    checked = 0
    for seg in (1, 2):
        mine = point_segment == seg
        inside = segments == seg
        if not vote[mine].any():
            assert not cells[inside].any()
            continue
        dist = np.hypot(cols[inside][:, None] + 0.5 - centres[mine, 0], rows[inside][:, None] + 0.5 - centres[mine, 1])
        to_voting = dist[:, vote[mine]].min(axis=1)
        to_other = dist[:, ~vote[mine]].min(axis=1) if (~vote[mine]).any() else np.full(len(dist), np.inf)
        clear = np.abs(to_voting - to_other) > 1.0 + 0.03 * np.minimum(to_voting, to_other)
        np.testing.assert_array_equal(cells[inside][clear], (to_voting < to_other)[clear])
        checked += int(clear.sum())
        assert clear.mean() > 0.5
    assert checked > 0
    assert not cells[~np.isin(segments, [1, 2])].any()


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



def _merged_segment_run(source: str, check_split: str, step: int = 10):
    """A run whose memory holds id 2 on the surface x < 6 (pixel columns 0-59 of 80); the frame's one segment, all
    held by id 1, spans that surface and new surface (x >= 6): the segmenter merged two surfaces. 3D points every
    ``step`` pixels (10: 0.01 per pixel, 2: 0.25)."""
    from mastsam_splat.tracker.config import TrackerConfig
    from mastsam_splat.tracker.memory import MemoryConfig, VoxelMemory
    from mastsam_splat.tracker.points3d import FramePoints
    from mastsam_splat.tracker.results import FrameReport
    from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
    from mastsam_splat.tracker.view_order import ViewOrder
    from mastsam_splat.types import Frame

    h, w = 40, 80
    frames = [Frame(image=np.zeros((h, w, 3), dtype=np.uint8), name=f"f{i}", index=i) for i in range(2)]
    memory = MemoryConfig(check_split=check_split, reid_min_points=4, reid_min_coverage=0.0, split_max_density=0.02)
    run = _Run(MastSAMTracker(TrackerConfig(memory=memory), None, None), frames, source,
               ViewOrder([0, 1], {0: None, 1: 0}, "sequence"))
    run.labels[0] = np.full((h, w), 2, dtype=np.uint16)  # (an earlier frame: the memory has been filled)
    rows, cols = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    xy = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], -1).astype(np.float64)
    xyz = np.stack([xy[:, 0] / 10, xy[:, 1] / 10, np.full(len(xy), 5.0)], -1)
    run.memory = VoxelMemory(voxel_size=0.25, neighborhood=0)
    run.memory.add(2, xyz[xyz[:, 0] < 6])
    labels = np.ones((h, w), dtype=np.int64)
    return run._check_memory(labels, np.ones((h, w), dtype=np.int64), FramePoints(xy, xyz), FrameReport(1, "f1"))


def _split_at_the_points(out: np.ndarray, margin: int = 0) -> bool:
    """Id 2 on the columns of its points, id 1 on the rest (column 60 lies halfway between the two kinds; ``margin``
    columns either side may go either way: the check reads a sample of a dense segment's points)."""
    return bool((out[:, : 60 - margin] == 2).all() and (out[:, 61 + margin :] == 1).all())


@pytest.mark.parametrize("source", ["sfm", "triangulated", "depth"])
def test_sparse_points_split_a_merged_segment_where_they_name_another_id(source):
    """With sparse 3D points the check moves only the part of the segment its points on id 2's voxels stand for:
    the rest, new surface, stays with its holder; with depth maps, with dense points or with ``never`` the whole
    segment moves, with ``always`` only that part."""
    out = _merged_segment_run(source, "sparse")
    assert (out == 2).all() if source == "depth" else _split_at_the_points(out)
    assert (_merged_segment_run(source, "sparse", step=2) == 2).all()
    assert (_merged_segment_run(source, "never") == 2).all()
    assert _split_at_the_points(_merged_segment_run(source, "always"))
    assert _split_at_the_points(_merged_segment_run(source, "always", step=2), margin=10)
