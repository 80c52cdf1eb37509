"""The MastSAM tracker on small posed scenes with the classical segmenter and the geometric matcher."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.matchers import make_matcher
from mastsam_splat.segmenters import make_segmenter
from mastsam_splat.tracker import MastSAMTracker, MemoryConfig, TrackerConfig
from mastsam_splat.tracker.view_order import ViewOrderConfig
from mastsam_splat.types import Matches

from support.altered_segmenters import LeakingSegmenter
from support.planar_scene import id_of, sequence

SLIDE = [0.0, 0.15, 0.3, 0.45, 0.6]
# Object 1 (the red one, world x in [-1.6, -0.8]) leaves the view on the left and comes back.
LEAVE_AND_RETURN = [0.0, 0.6, 1.2, 1.8, 2.4, 1.8, 1.2, 0.6, 0.0]


def track(frames, **options):
    config = TrackerConfig(**options)
    return MastSAMTracker(config, make_segmenter("classical"), make_matcher("geometric"), "geometric").run(frames)


def test_objects_moving_by_a_known_shift_keep_their_ids():
    frames = sequence(SLIDE)
    result = track(frames)
    for obj in (1, 2, 3):
        ids = {id_of(labels, f.gt, obj) for labels, f in zip(result.labels, frames)}
        assert len(ids) == 1 and 0 not in ids, f"object {obj} got ids {ids}"
    # Each object is segmented well in every frame.
    for labels, f in zip(result.labels, frames):
        for obj in (1, 2, 3):
            pred = labels == id_of(labels, f.gt, obj)
            iou = np.count_nonzero(pred & (f.gt == obj)) / np.count_nonzero(pred | (f.gt == obj))
            assert iou > 0.8
    assert all(r.tracked >= 3 for r in result.reports[1:])
    assert result.points_source == "depth" and len(result.cloud_xyz) > 0


def test_independent_mode_gives_fresh_ids_every_frame():
    frames = sequence(SLIDE[:3])
    result = track(frames, mode="independent")
    seen = [set(np.unique(labels)) - {0} for labels in result.labels]
    assert all(seen) and not (seen[0] & seen[1]) and not (seen[1] & seen[2])


def test_independent_mode_keeps_no_memory(monkeypatch):
    """Per-view ids re-identify nothing: the mode builds no 3D memory (it is the cost baseline of the tracker)."""
    import mastsam_splat.tracker.tracker as tracker_module

    def refuse(*args, **kwargs):
        raise AssertionError("the per-view mode built a 3D memory")

    monkeypatch.setattr(tracker_module, "VoxelMemory", refuse)
    monkeypatch.setattr(tracker_module, "WeightedVoxelMemory", refuse)
    result = track(sequence(SLIDE[:2]), mode="independent")
    assert len(result.labels) == 2 and result.points_source == "depth" and len(result.cloud_xyz) > 0


@pytest.mark.parametrize("memory", [True, False])
def test_object_leaving_and_reentering(memory):
    frames = sequence(LEAVE_AND_RETURN)
    # Visited in file order, so the object really leaves the tracked view and has to be recognised again.
    result = track(frames, memory=MemoryConfig(enabled=memory), view_order=ViewOrderConfig(order="sequence"))
    before = id_of(result.labels[0], frames[0].gt, 1)
    gone = [t for t, f in enumerate(frames) if not (f.gt == 1).any()]
    assert gone, "the scene must take the object out of view"
    after = id_of(result.labels[-1], frames[-1].gt, 1)
    assert before > 0 and after > 0
    if memory:
        assert after == before
        assert sum(r.reidentified for r in result.reports) >= 1
    else:
        assert after != before
    # The objects that stay in view keep their ids either way.
    for obj in (2, 3):
        assert id_of(result.labels[0], frames[0].gt, obj) == id_of(result.labels[-1], frames[-1].gt, obj)


def test_view_graph_matches_the_returning_view_with_the_first():
    frames = sequence(LEAVE_AND_RETURN)
    result = track(frames, memory=MemoryConfig(enabled=False))
    assert result.reports[-1].parent == 0  # the last view is the first one seen again
    for obj in (1, 2, 3):
        assert id_of(result.labels[0], frames[0].gt, obj) == id_of(result.labels[-1], frames[-1].gt, obj)


def test_one_frame_gives_its_automatic_masks():
    frames = sequence([0.0])
    result = track(frames)
    assert len(result.labels) == 1
    assert result.labels[0].dtype == np.uint16 and result.labels[0].shape == frames[0].gt.shape
    assert {id_of(result.labels[0], frames[0].gt, k) for k in (1, 2, 3)} == {2, 3, 4}  # 1 is the background


class NoMatches:
    """A matcher that finds nothing (e.g. two unrelated images)."""

    def match(self, frame_a, frame_b):
        return Matches.empty()


def test_pair_without_matches_reinitialises_instead_of_crashing():
    frames = sequence(SLIDE[:3])
    result = MastSAMTracker(TrackerConfig(), make_segmenter("classical"), NoMatches(), "none").run(frames)
    for report in result.reports[1:]:
        assert report.rejected.get("no correspondences", 0) >= 3
        assert report.tracked == 0 and report.new + report.reidentified + report.extended >= 3
    # Without correspondences ids cannot be carried over, but the 3D memory still recognises the objects.
    for obj in (1, 2, 3):
        assert len({id_of(labels, f.gt, obj) for labels, f in zip(result.labels, frames)}) == 1
    no_memory = MastSAMTracker(TrackerConfig(memory=MemoryConfig(enabled=False)), make_segmenter("classical"), NoMatches(), "none").run(frames)
    assert id_of(no_memory.labels[0], frames[0].gt, 2) != id_of(no_memory.labels[1], frames[1].gt, 2)


def test_frame_where_the_segmenter_finds_nothing():
    frames = sequence(SLIDE[:4])
    blank = frames[1]
    blank.image = np.zeros_like(blank.image)  # nothing to segment (one flat region, below no threshold)

    class Nothing:
        """The classical segmenter, except that it finds no mask on the blank frame."""

        def __init__(self):
            self.inner = make_segmenter("classical")

        def prepare(self, image):
            return (image.max() == 0, self.inner.prepare(image))

        def auto(self, state):
            return [] if state[0] else self.inner.auto(state[1])

        def prompt(self, state, positive_xy, negative_xy=None):
            mask = self.inner.prompt(state[1], positive_xy, negative_xy)
            if state[0]:
                mask.segmentation[:] = False
                mask.area = 0
            return mask

    result = MastSAMTracker(TrackerConfig(), Nothing(), make_matcher("geometric"), "geometric").run(frames)
    assert not result.labels[1].any()
    assert result.reports[1].rejected.get("empty mask", 0) + result.reports[1].rejected.get("no correspondences", 0) >= 3
    # After the empty frame the objects come back, recognised by the memory.
    for obj in (1, 2, 3):
        assert id_of(result.labels[2], frames[2].gt, obj) == id_of(result.labels[0], frames[0].gt, obj)


def test_empty_input_is_refused():
    from mastsam_splat.errors import InputError

    with pytest.raises(InputError):
        track([])


@pytest.mark.parametrize("max_growth, apart_share", [(4.0, 0.5), (0.0, 1.5), (0.0, 0.5)])
def test_a_prompt_leaking_into_the_background_does_not_merge_the_id_into_it(max_growth, apart_share):
    """A prompted mask many times the id's area is dropped: kept, it duplicates the background's mask and the id is
    merged into the background's id (whose own mask, object 1 included, then carries it on). Kept but with the
    two ids seen side by side in the earlier frames (``overlap.apart_share``), the duplicate is left out instead
    of merged."""
    from mastsam_splat.tracker import RejectionConfig
    from mastsam_splat.tracker.overlap import OverlapConfig

    frames = sequence(SLIDE)
    config = TrackerConfig(
        rejection=RejectionConfig(max_growth=max_growth),
        overlap=OverlapConfig(apart_share=apart_share),
        view_order=ViewOrderConfig(order="sequence"),
    )
    segmenter = LeakingSegmenter(frames, leak_frame=2)
    result = MastSAMTracker(config, segmenter, make_matcher("geometric"), "geometric").run(frames)
    ids = [id_of(labels, f.gt, 1) for labels, f in zip(result.labels, frames)]
    background = [id_of(labels, f.gt, 0) for labels, f in zip(result.labels, frames)]
    if max_growth:
        assert result.reports[2].rejected.get("mask leaked", 0) == 1
    elif apart_share <= 1.0:
        assert result.reports[2].rejected.get("duplicate of an id seen apart", 0) == 1
    else:
        assert any(i in background for i in ids[2:]) or len(set(ids)) > 1
        return
    assert len(set(ids)) == 1 and ids[0] not in background


def test_memory_caps_are_options(monkeypatch):
    """``anchor.max_rows`` thins the 3D evidence a run keeps (each voxel's owner stays) and ``cloud_max_voxels``
    reaches its point cloud."""
    import mastsam_splat.tracker.tracker as tracker_module
    from mastsam_splat.tracker.anchor import AnchorConfig

    runs = []

    class RecordedRun(tracker_module._Run):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runs.append(self)

    monkeypatch.setattr(tracker_module, "_Run", RecordedRun)
    frames = sequence(SLIDE[:3])
    track(frames)
    plain = len(runs[-1].evidence)
    result = track(frames, anchor=AnchorConfig(max_rows=plain // 4), cloud_max_voxels=1234)
    capped = runs[-1]
    voxels = len(capped.evidence.points()[0])
    assert voxels < len(capped.evidence) < plain  # shared voxels thinned, every voxel's owner kept
    assert capped.cloud.max_voxels == 1234 and len(result.cloud_xyz) > 0
