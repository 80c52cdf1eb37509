"""The previous frame's partition carried into the next one: a segmenter that merges two tracked regions in
some frames (flicker) must not merge their ids."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
from mastsam_splat.tracker.propagation import PropagationConfig, carry_agreement, carry_labels, supported_carry
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




def striped_pair(parallax: float) -> tuple[np.ndarray, Matches]:
    """Vertical stripes (ids 1-6, 10 pixels wide) and a textureless block (id 7, no correspondences of its own).
    The stripes' correspondences move by 0 or ``parallax`` pixels in alternate rows (surfaces at different
    depths), so with parallax neighbouring correspondences disagree on where a pixel came from."""
    prev = np.repeat(np.arange(W) // 10 + 1, H).reshape(W, H).T.copy()
    prev[prev > 6] = 7
    xs, ys = np.meshgrid(np.arange(2.5, 60, 5), np.arange(2.5, H, 5))
    xy_a = np.stack([xs.ravel(), ys.ravel()], axis=1)
    shift = np.where((ys.ravel() // 5) % 2 == 0, 0.0, parallax)
    xy_b = xy_a + np.stack([shift, np.zeros_like(shift)], axis=1)
    return prev, Matches(xy_a=xy_a, xy_b=xy_b, confidence=np.ones(len(xy_a)))


def test_an_id_without_correspondences_is_not_carried_through_disagreeing_motion():
    prev, matches = striped_pair(parallax=12.0)
    config = PropagationConfig(carry_min_matches=1)
    carried = carry_labels(prev, matches, prev.shape, config)
    assert np.any(carried == 7)
    assert carry_agreement(prev, matches, 0.3 * np.hypot(W, H), config.neighbors) < config.carry_min_agreement
    kept, dropped, _ = supported_carry(carried, prev, matches, config)
    assert dropped == 1 and not np.any(kept == 7)
    assert np.array_equal(kept[carried != 7], carried[carried != 7])  # stripes have correspondences of their own
    ungated, none, _ = supported_carry(carried, prev, matches, PropagationConfig(carry_min_matches=0))
    assert none == 0 and np.array_equal(ungated, carried)


def test_an_id_without_correspondences_is_carried_through_coherent_motion():
    prev, matches = striped_pair(parallax=0.0)
    config = PropagationConfig(carry_min_matches=1)
    carried = carry_labels(prev, matches, prev.shape, config)
    kept, dropped, agreement = supported_carry(carried, prev, matches, config)
    assert agreement == 1.0 and dropped == 0 and np.array_equal(kept, carried)
    assert np.any(kept == 7)
