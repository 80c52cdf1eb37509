"""The automatic segmentation run ahead in a worker thread: same masks, run concurrently, errors and order kept."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene
from mastsam_splat.matchers import make_matcher
from mastsam_splat.segmenters import make_segmenter
from mastsam_splat.synthetic import make_scene
from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
from mastsam_splat.tracker.segment_ahead import SegmentationAhead, runs_concurrently
from mastsam_splat.types import Frame, Mask

from support.planar_scene import sequence

LEAVE_AND_RETURN = [0.0, 0.6, 1.2, 1.8, 2.4, 1.8, 1.2, 0.6, 0.0]


class Recording:
    """A segmenter whose state is the frame's first pixel value; records which thread prepared each frame."""

    concurrent = True

    def __init__(self, fail_on: int = -1, hold: int = -1) -> None:
        self.threads: dict[int, str] = {}
        self.fail_on = fail_on
        self.hold = hold
        self.started = threading.Event()  # set when frame ``hold`` starts being prepared
        self.release = threading.Event()  # frame ``hold`` waits for it

    def prepare(self, image: np.ndarray) -> int:
        value = int(image[0, 0, 0])
        self.threads[value] = threading.current_thread().name
        if value == self.fail_on:
            raise ValueError(f"cannot segment frame {value}")
        if value == self.hold:
            self.started.set()
            assert self.release.wait(timeout=10)
        return value

    def auto(self, state: int) -> list[Mask]:
        mask = np.zeros((4, 4), dtype=bool)
        mask[: state % 4 + 1] = True
        return [Mask(segmentation=mask, score=1.0, area=int(mask.sum()))]


def frames_valued(count: int) -> list[Frame]:
    return [Frame(image=np.full((4, 4, 3), v, dtype=np.uint8), name=f"f{v}", index=v) for v in range(count)]


def track(frames, segment_ahead: int, mode: str = "mastsam"):
    config = TrackerConfig(mode=mode, segment_ahead=segment_ahead)
    return MastSAMTracker(config, make_segmenter("classical"), make_matcher("geometric"), "geometric").run(frames)


@pytest.mark.parametrize("mode", ["mastsam", "independent"])
def test_segmenting_ahead_gives_the_labels_of_segmenting_in_turn(mode):
    frames = sequence(LEAVE_AND_RETURN)
    ahead, in_turn = track(frames, 2, mode), track(frames, 0, mode)
    assert len(ahead.labels) == len(frames)
    for a, b in zip(ahead.labels, in_turn.labels):
        assert np.array_equal(a, b)
    assert ahead.object_of == in_turn.object_of
    assert np.array_equal(ahead.cloud_ids, in_turn.cloud_ids)
    assert ahead.timing()["segmentation_s"] > 0.0


def test_segmenting_ahead_frames_read_from_their_files(tmp_path):
    """Frames decoded on access (a shared cache of decoded files): the worker and the tracker read it together."""
    folder = make_scene(tmp_path / "scene", frames=6, width=64, height=48, seed=2, progress=False)
    ahead, in_turn = track(load_scene(folder).frames, 2), track(load_scene(folder).frames, 0)
    for a, b in zip(ahead.labels, in_turn.labels):
        assert np.array_equal(a, b)


def test_the_worker_segments_the_next_frames_before_they_are_asked_for():
    segmenter = Recording(hold=2)
    frames = frames_valued(5)
    with SegmentationAhead(segmenter, frames, [3, 2, 0, 1, 4], ahead=2) as segmentation:
        assert segmentation.take(3).state == 3
        assert segmenter.started.wait(timeout=10)  # frame 2 is being segmented while nobody asked for it yet
        segmenter.release.set()
        assert [segmentation.take(t).state for t in (2, 0, 1, 4)] == [2, 0, 1, 4]
    assert set(segmenter.threads) == {0, 1, 2, 3, 4}
    assert all(name.startswith("mastsam-segment") for name in segmenter.threads.values())
    assert not any(t.name.startswith("mastsam-segment") for t in threading.enumerate())  # (the worker has stopped)


def test_segmenters_that_do_not_allow_it_segment_in_turn():
    segmenter = Recording()
    segmenter.concurrent = False
    assert not runs_concurrently(segmenter) and runs_concurrently(Recording())
    frames = frames_valued(3)
    with SegmentationAhead(segmenter, frames, [0, 1, 2], ahead=2) as segmentation:
        assert segmentation.take(0).state == 0
        assert segmenter.threads == {0: threading.current_thread().name}  # (nothing ran ahead)
        assert [segmentation.take(t).state for t in (1, 2)] == [1, 2]


def test_an_error_of_the_segmenter_is_raised_at_its_frame():
    segmenter = Recording(fail_on=2)
    frames = frames_valued(5)
    with pytest.raises(ValueError, match="cannot segment frame 2"):
        with SegmentationAhead(segmenter, frames, [0, 1, 2, 3, 4], ahead=2) as segmentation:
            assert [segmentation.take(t).state for t in (0, 1)] == [0, 1]
            segmentation.take(2)
    assert not any(t.name.startswith("mastsam-segment") for t in threading.enumerate())


def test_frames_are_taken_in_the_visiting_order():
    with SegmentationAhead(Recording(), frames_valued(3), [0, 1, 2], ahead=1) as segmentation:
        segmentation.take(0)
        with pytest.raises(ValueError, match="not the next frame"):
            segmentation.take(2)


def test_the_option_is_checked():
    with pytest.raises(InputError, match="segment-ahead"):
        TrackerConfig(segment_ahead=-1)
