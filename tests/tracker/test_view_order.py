"""View order without cameras (view_order.py): match counts, with frames adjacent in name order preferred."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.tracker.view_order import ViewOrderConfig, name_neighbours, view_order
from mastsam_splat.types import Frame

# A six-frame video: consecutive frames share 50 matches, except a weaker step 2-3; the last frame comes back to
# the view of frame 1 (45 matches, a little more than the 2-3 step) while matching its own neighbour best.
COUNTS = {(0, 1): 50, (1, 2): 50, (2, 3): 40, (3, 4): 50, (4, 5): 60, (1, 5): 45}


class TableMatcher:
    """Matcher whose match count between two frames comes from a table keyed by their name indices."""

    def __init__(self, counts: dict[tuple[int, int], int] = COUNTS) -> None:
        self.counts = counts

    def match(self, a: Frame, b: Frame) -> list[int]:
        i, j = sorted((int(a.name.split("_")[1]), int(b.name.split("_")[1])))
        return list(range(self.counts.get((i, j), 5)))


def video(order: list[int]) -> list[Frame]:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    return [Frame(image=image, name=f"frame_{t:03d}", index=k) for k, t in enumerate(order)]


def test_name_neighbours_follow_name_order_not_given_order():
    adjacent = name_neighbours(["c", "a", "b"])
    assert adjacent.tolist() == [[False, False, True], [False, False, True], [True, True, False]]


def test_video_tree_follows_the_frames_when_a_distant_frame_matches_only_a_little_more():
    order = view_order(video(list(range(6))), ViewOrderConfig(), TableMatcher())
    assert order.source == "matches"
    assert order.order == list(range(6))
    assert order.parent == {0: None, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4}


def test_a_weak_last_step_keeps_its_neighbour_unless_another_frame_matches_twice_as_much():
    weak_end = {**COUNTS, (2, 3): 50, (4, 5): 30, (1, 5): 46}
    assert view_order(video(list(range(6))), ViewOrderConfig(), TableMatcher(weak_end)).parent[5] == 4
    far = {**weak_end, (1, 5): 70}
    assert view_order(video(list(range(6))), ViewOrderConfig(), TableMatcher(far)).parent[5] == 1


def test_match_counts_alone_hang_the_returning_frame_off_a_distant_parent():
    order = view_order(video(list(range(6))), ViewOrderConfig(neighbour_weight=1.0), TableMatcher())
    assert order.parent[5] == 1 and order.order.index(5) < order.order.index(3)


def test_video_tree_does_not_depend_on_the_given_order():
    given = [3, 5, 0, 2, 4, 1]
    order = view_order(video(given), ViewOrderConfig(), TableMatcher())
    assert [given[k] for k in order.order] == list(range(6))
    assert {given[k]: (None if p is None else given[p]) for k, p in order.parent.items()} == {
        0: None, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4
    }


def test_neighbour_weight_below_one_is_refused():
    with pytest.raises(InputError, match="neighbour-weight"):
        ViewOrderConfig(neighbour_weight=0.5)


def test_shared_sfm_points_choose_the_parent_before_the_cameras():
    """Cameras 0-1-2-3 in a line; the SfM model links frame 3 to frame 0 most: frame 3 hangs off frame 0, with
    the cameras only (or ``shared_points`` off) off its camera neighbour 2."""
    from mastsam_splat.types import Camera, ObservedPoints

    def observing(points: list[int]) -> ObservedPoints:
        p = np.asarray(points, dtype=np.int64)
        return ObservedPoints(np.zeros((len(p), 2)), np.zeros((len(p), 3)), p)

    shared = {0: range(0, 60), 1: range(40, 70), 2: range(60, 80), 3: list(range(0, 30)) + list(range(75, 80))}
    frames = []
    for t in range(4):
        w2c = np.eye(4)
        w2c[0, 3] = -float(t)
        camera = Camera(K=np.eye(3), world_to_cam=w2c, width=8, height=8)
        frames.append(Frame(np.zeros((8, 8, 3), np.uint8), f"frame_{t}", index=t, camera=camera,
                            observed=observing(list(shared[t]))))
    order = view_order(frames, ViewOrderConfig())
    assert order.source == "tracks" and order.parent[3] == 0 and order.parent[1] == 0 and order.parent[2] == 1
    by_cameras = view_order(frames, ViewOrderConfig(shared_points=False))
    assert by_cameras.source == "cameras" and by_cameras.parent[3] == 2
    frames[2].observed = observing([])  # a frame the model did not register: the cameras decide
    assert view_order(frames, ViewOrderConfig()).source == "cameras"
