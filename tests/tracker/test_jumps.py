"""Ids brought back onto 3D points they have barely seen take a new id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mastsam_splat.tracker.evidence import AnchorEvidence
from mastsam_splat.tracker.jumps import (
    JumpConfig,
    _counts_at,
    _own_rows,
    _scales,
    evidence_strength,
    split_jumps,
    split_new_surface,
)
from mastsam_splat.tracker.points3d import FramePoints
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.results import FrameReport
from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
from mastsam_splat.tracker.view_order import ViewOrder
from mastsam_splat.types import Frame


def _evidence() -> AnchorEvidence:
    """Id 1 seen 5 times on the surface x < 1 and once on a strip of x in [1, 2) (a spill onto the neighbour);
    id 2 (the neighbour's) 5 times on x in [1, 2)."""
    evidence = AnchorEvidence(voxel_size=0.25)
    own = np.stack(np.meshgrid(np.arange(0.1, 1, 0.25), np.arange(0.1, 1, 0.25), [0.1]), -1).reshape(-1, 3)
    neighbour = own + [1.0, 0.0, 0.0]
    for _ in range(5):
        evidence.add(np.ones(len(own), dtype=np.int64), own)
        evidence.add(np.full(len(neighbour), 2), neighbour)
    evidence.add(np.ones(4, dtype=np.int64), neighbour[:4])
    return evidence


def _frame_points(x0: float) -> tuple[np.ndarray, FramePoints]:
    """A 4x8 label image all id 1, its pixels on 3D points at x in [x0, x0 + 1)."""
    labels = np.ones((4, 8), dtype=np.int64)
    rows, cols = np.mgrid[0:4, 0:8]
    xy = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
    xyz = np.stack([x0 + 0.1 + cols.ravel() / 8, 0.1 + rows.ravel() / 4, np.full(32, 0.1)], -1)
    return labels, FramePoints(xy, xyz)


def test_strength_is_relative_to_the_ids_own_counts() -> None:
    evidence = _evidence()
    assert evidence_strength(evidence, 1, _frame_points(0.0)[1].xyz) == 1.0
    assert evidence_strength(evidence, 1, _frame_points(1.0)[1].xyz) == pytest.approx(0.05)
    assert evidence_strength(evidence, 3, _frame_points(0.0)[1].xyz) == 0.0


def test_an_id_brought_back_onto_its_spill_takes_a_new_id() -> None:
    evidence = _evidence()
    fresh = iter([7, 8])
    labels, points = _frame_points(1.0)
    out, jumped = split_jumps(labels, [], 5, points, evidence, JumpConfig(), lambda: next(fresh))
    assert jumped == [(1, 7)] and (out == 7).all() and (labels == 1).all()
    # Carried by the chain, new in this frame, or back on its own surface: kept.
    assert split_jumps(labels, [1], 5, points, evidence, JumpConfig(), lambda: 9)[1] == []
    assert split_jumps(labels, [], 1, points, evidence, JumpConfig(), lambda: 9)[1] == []
    labels, points = _frame_points(0.0)
    assert split_jumps(labels, [], 5, points, evidence, JumpConfig(), lambda: 9)[1] == []


def test_run_splits_jumps_only_when_enabled_and_with_a_depth_map() -> None:
    labels, points = _frame_points(1.0)
    frame = Frame(image=np.zeros((4, 8, 3), dtype=np.uint8), name="f0", index=0, depth=np.ones((4, 8)))
    order = ViewOrder([0], {0: None}, "cameras")

    def run_with(config: TrackerConfig, depth: bool) -> np.ndarray:
        run = _Run(MastSAMTracker(config, None, None), [frame], "depth", order)
        run.evidence = _evidence()
        run.next_id = 5
        shown = frame if depth else replace(frame, depth=None)
        return run._split_jumps(shown, labels, np.zeros_like(labels), 5, points, FrameReport(index=0, name="f0"))

    assert (run_with(TrackerConfig(), True) == 5).all()
    off = TrackerConfig(jumps=JumpConfig(enabled=False))
    assert (run_with(off, True) == 1).all()
    assert (run_with(TrackerConfig(), False) == 1).all()



@pytest.mark.parametrize("enabled", [True, False])
def test_every_frame_with_depth_is_checked_in_a_run(monkeypatch: pytest.MonkeyPatch, enabled: bool) -> None:
    """The step runs the check once per frame with a depth map, on the frame's labels and 3D points, unless it is
    turned off."""
    import mastsam_splat.tracker.tracker as tracker_module
    from mastsam_splat.matchers import make_matcher
    from mastsam_splat.segmenters import make_segmenter

    from support.planar_scene import sequence

    calls = []

    def spy(labels, carried, first_new, points, evidence, config, new_id):
        calls.append((labels.shape, len(points)))
        return split_jumps(labels, carried, first_new, points, evidence, config, new_id)

    monkeypatch.setattr(tracker_module, "split_jumps", spy)
    frames = sequence([0.0, 0.15, 0.3, 0.45])
    config = TrackerConfig(jumps=JumpConfig(enabled=enabled))
    MastSAMTracker(config, make_segmenter("classical"), make_matcher("geometric"), "geometric").run(frames)
    if enabled:
        assert len(calls) == len(frames)
        assert all(shape == frames[0].gt.shape and n > 0 for shape, n in calls)
    else:
        assert calls == []


def _two_segments(x_right: float) -> tuple[np.ndarray, np.ndarray, FramePoints]:
    """A 4x8 label image all id 1 over two automatic segments (left and right half); the left half's pixels on
    id 1's own surface (x < 1), the right half's on 3D points at x in [x_right, x_right + 0.5)."""
    labels = np.ones((4, 8), dtype=np.int64)
    auto = np.ones((4, 8), dtype=np.int64)
    auto[:, 4:] = 2
    rows, cols = np.mgrid[0:4, 0:8]
    xy = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
    x = np.where(cols.ravel() < 4, 0.1 + cols.ravel() / 8, x_right + 0.1 + (cols.ravel() - 4) / 8)
    xyz = np.stack([x, 0.1 + rows.ravel() / 4, np.full(32, 0.1)], -1)
    return labels, auto, FramePoints(xy, xyz)


def test_a_carried_id_gives_the_segment_on_new_surface_a_new_id() -> None:
    evidence = _evidence()
    config = JumpConfig(min_points=8)
    labels, auto, points = _two_segments(3.0)  # the right half on voxels id 1 has never seen
    out, split = split_new_surface(labels, auto, [1], points, evidence, config, lambda: 7)
    assert split == [(1, 7)]
    assert (out[:, :4] == 1).all() and (out[:, 4:] == 7).all() and (labels == 1).all()
    # Turned off, not carried, or both segments on its surface: kept.
    off = replace(config, piece_strength=0.0)
    assert split_new_surface(labels, auto, [1], points, evidence, off, lambda: 9)[1] == []
    assert split_new_surface(labels, auto, [2], points, evidence, config, lambda: 9)[1] == []
    labels, auto, points = _two_segments(0.5)
    assert split_new_surface(labels, auto, [1], points, evidence, config, lambda: 9)[1] == []


def test_new_surface_on_an_absent_ids_surface_takes_that_id_back() -> None:
    """The segment id 1 barely knows lies on id 3's surface (seen 5 times, id 3 not in the frame): it goes back to
    id 3, not to a new id; with id 3 in the frame (elsewhere) it takes a new id."""
    evidence = _evidence()
    other = np.stack(np.meshgrid(np.arange(3.1, 3.5, 0.25), np.arange(0.1, 1, 0.25), [0.1]), -1).reshape(-1, 3)
    for _ in range(5):
        evidence.add(np.full(len(other), 3), other)
    config = JumpConfig(min_points=8)
    labels, auto, points = _two_segments(3.0)
    out, split = split_new_surface(labels, auto, [1], points, evidence, config, lambda: 7)
    assert split == [(1, 3)]
    assert (out[:, :4] == 1).all() and (out[:, 4:] == 3).all()
    shown = labels.copy()
    shown[0, 0] = 3
    out, split = split_new_surface(shown, auto, [1], points, evidence, config, lambda: 7)
    assert split == [(1, 7)] and (out[1:, 4:] == 7).all()


def test_new_surface_is_told_only_against_the_ids_own_surface() -> None:
    """An id on no segment of its own surface (both barely seen) is left to ``split_jumps``; one segment alone
    (the id growing onto new surface within its segment) is not split."""
    evidence = _evidence()
    config = JumpConfig(min_points=8)
    labels, auto, points = _two_segments(3.0)
    far = FramePoints(points.xy, points.xyz + [3.0, 0.0, 0.0])
    assert split_new_surface(labels, auto, [1], far, evidence, config, lambda: 9)[1] == []
    one = np.ones_like(auto)
    assert split_new_surface(labels, one, [1], points, evidence, config, lambda: 9)[1] == []



def test_run_gives_new_surface_of_a_carried_id_a_new_id() -> None:
    labels, auto, points = _two_segments(3.0)
    frame = Frame(image=np.zeros((4, 8, 3), dtype=np.uint8), name="f0", index=0, depth=np.ones((4, 8)))
    config = TrackerConfig(jumps=JumpConfig(min_points=8))
    run = _Run(MastSAMTracker(config, None, None), [frame], "depth", ViewOrder([0], {0: None}, "cameras"))
    run.evidence = _evidence()
    run.next_id = 5
    out = run._split_jumps(frame, labels, labels, 5, points, FrameReport(index=0, name="f0"), auto)
    assert (out[:, :4] == 1).all() and (out[:, 4:] == 5).all()


@pytest.mark.parametrize("high", [50, 1 << 23])
def test_pieces_agree_with_unique(high: int) -> None:
    from mastsam_splat.tracker.jumps import _pieces

    codes = np.random.default_rng(3).integers(0, high, 2000)
    for got, want in zip(_pieces(codes), np.unique(codes, return_inverse=True, return_counts=True)):
        np.testing.assert_array_equal(got, want)


def test_own_rows_equal_a_mask_of_the_ids_rows() -> None:
    """``_own_rows`` (row indices, gathered once per array) equals the rows a boolean mask of the id selects."""
    rng = np.random.default_rng(2)
    keys = np.sort(rng.integers(0, 1 << 40, 400))
    ids = rng.integers(1, 6, 400)
    counts = rng.integers(1, 9, 400)
    for obj_id in range(7):
        own_keys, own_counts, scale = _own_rows((keys, ids, counts), obj_id)
        mask = ids == obj_id
        np.testing.assert_array_equal(own_keys, keys[mask])
        np.testing.assert_array_equal(own_counts, counts[mask])
        assert scale == (max(float(np.median(counts[mask])), 1.0) if mask.any() else 1.0)


def test_scales_and_counts_equal_each_ids_own_rows() -> None:
    rng = np.random.default_rng(3)
    pairs_list = []
    for key in np.sort(rng.choice(10_000, 400, replace=False)):
        for obj_id in np.sort(rng.choice(np.arange(1, 9), rng.integers(1, 4), replace=False)):
            pairs_list.append((key, obj_id, rng.integers(1, 30)))
    keys, ids, counts = (np.array(c, dtype=np.int64) for c in zip(*pairs_list))
    pairs = (keys, ids, counts)
    wanted = [1, 2, 5, 8, 11]  # 11: an id without evidence
    scales = _scales(pairs, wanted)
    point_keys = np.r_[rng.choice(keys, 300), rng.integers(0, 10_000, 100)]
    point_ids = rng.choice(np.array(wanted), len(point_keys))
    got = _counts_at(pairs, point_keys, point_ids)
    for obj_id in wanted:
        own_keys, own_counts, scale = _own_rows(pairs, obj_id)
        assert scales[obj_id] == scale
        mine = point_ids == obj_id
        slot = np.minimum(np.searchsorted(own_keys, point_keys[mine]), max(len(own_keys) - 1, 0))
        expected = np.where(own_keys[slot] == point_keys[mine], own_counts[slot], 0) if len(own_keys) else 0
        np.testing.assert_array_equal(got[mine], expected)
