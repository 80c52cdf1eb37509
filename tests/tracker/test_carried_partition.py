"""The previous frame's partition carried into the next one: a segmenter that merges two tracked regions in
some frames (flicker) must not merge their ids."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
from mastsam_splat.tracker.propagation import PropagationConfig, carry_labels, supported_carry
from mastsam_splat.types import Frame, Mask, Matches

H, W = 60, 80
LEFT = np.zeros((H, W), dtype=bool)
LEFT[:, : W // 2] = True


class FlickeringSegmenter:
    """Automatic masks: the left and right halves of the image, or (in ``merged`` frames) one mask over both.
    A prompt gives the union of the automatic masks holding its positives."""

    def __init__(self, merged: set[int]) -> None:
        self.merged = merged

    def prepare(self, image: np.ndarray) -> list[np.ndarray]:
        index = int(image[0, 0, 0])
        if index in self.merged:
            return [np.ones((H, W), dtype=bool)]
        return [LEFT.copy(), ~LEFT]

    def auto(self, state: list[np.ndarray]) -> list[Mask]:
        return [Mask(segmentation=m, score=1.0, area=int(m.sum())) for m in state]

    def prompt(self, state: list[np.ndarray], positive_xy: np.ndarray, negative_xy=None) -> Mask:
        seg = np.zeros((H, W), dtype=bool)
        for mask in state:
            cols = np.clip(np.floor(positive_xy[:, 0]).astype(int), 0, W - 1)
            rows = np.clip(np.floor(positive_xy[:, 1]).astype(int), 0, H - 1)
            if mask[rows, cols].any():
                seg |= mask
        return Mask(segmentation=seg, score=1.0, area=int(seg.sum()))


class StillMatcher:
    """Sparse correspondences of a static scene: a grid of pixels matched with themselves."""

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        xs, ys = np.meshgrid(np.arange(2.5, W, 6), np.arange(2.5, H, 6))
        xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
        return Matches(xy_a=xy, xy_b=xy, confidence=np.ones(len(xy)))


def frames(count: int) -> list[Frame]:
    out = []
    for t in range(count):
        image = np.full((H, W, 3), 100, dtype=np.uint8)
        image[0, 0, 0] = t  # the segmenter reads the frame index here
        out.append(Frame(image=image, name=f"f{t}", index=t))
    return out


def track(merged: set[int], **propagation) -> list[np.ndarray]:
    config = TrackerConfig(propagation=PropagationConfig(**propagation))
    result = MastSAMTracker(config, FlickeringSegmenter(merged), StillMatcher(), "still").run(frames(4))
    return [np.asarray(labels) for labels in result.labels]


def test_halves_keep_their_ids_through_frames_where_the_segmenter_merges_them():
    labels = track(merged={1, 3})
    left, right = int(labels[0][0, 0]), int(labels[0][0, -1])
    assert left != right and left > 0 and right > 0
    for frame in labels:
        assert np.all(frame[LEFT] == left) and np.all(frame[~LEFT] == right)


def test_without_the_carried_partition_the_merged_frame_loses_an_id():
    labels = track(merged={1, 3}, carry_share=2.0)
    assert len(np.unique(labels[1])) == 1


@pytest.mark.parametrize("merged", [set(), {2}])
def test_a_stable_segmentation_keeps_both_ids(merged):
    labels = track(merged=merged)
    assert all(len(np.unique(frame)) == 2 for frame in labels)
    assert all(np.array_equal(frame, labels[0]) for frame in labels)



def parallax_pair(object_matches: int) -> tuple[np.ndarray, Matches]:
    """A small object (id 1) in front of a wall (id 2): the wall stays, the object moves 25 pixels to the right.
    The wall has a grid of correspondences, the object ``object_matches`` of its own (it may have no texture)."""
    prev = np.full((H, W), 2, dtype=np.int64)
    prev[20:40, 20:30] = 1
    xs, ys = np.meshgrid(np.arange(2.5, W, 6), np.arange(2.5, H, 6))
    wall = np.stack([xs.ravel(), ys.ravel()], axis=1)
    wall = wall[prev[wall[:, 1].astype(int), wall[:, 0].astype(int)] == 2]
    thing = np.array([[22.5, 24.5], [27.5, 30.5], [23.5, 36.5]])[:object_matches]
    xy_a = np.concatenate([wall, thing])
    xy_b = np.concatenate([wall, thing + [25.0, 0.0]])
    return prev, Matches(xy_a=xy_a, xy_b=xy_b, confidence=np.ones(len(xy_a)))


def test_an_id_without_correspondences_of_its_own_is_not_carried():
    prev, matches = parallax_pair(object_matches=0)
    carried = carry_labels(prev, matches, prev.shape, PropagationConfig())
    assert np.any(carried == 1)  # the wall's motion leaves the object's id where the object no longer is
    kept, dropped = supported_carry(carried, prev, matches, PropagationConfig())
    assert dropped == 1 and not np.any(kept == 1)
    assert np.array_equal(kept[carried == 2], carried[carried == 2])
    ungated, none = supported_carry(carried, prev, matches, PropagationConfig(carry_min_matches=0))
    assert none == 0 and np.array_equal(ungated, carried)


def test_an_id_with_correspondences_of_its_own_is_carried():
    prev, matches = parallax_pair(object_matches=3)
    carried = carry_labels(prev, matches, prev.shape, PropagationConfig())
    kept, dropped = supported_carry(carried, prev, matches, PropagationConfig())
    assert dropped == 0 and np.array_equal(kept, carried)
    assert np.any(kept == 1) and np.any(kept == 2)
    _, dropped = supported_carry(carried, prev, matches, PropagationConfig(carry_min_matches=4))
    assert dropped == 1
