"""Ids meeting along a convex edge of one solid (its faces, cut apart by the segmenter) are merged."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.creases import CreaseConfig, CreaseTally, crease_merges, frame_creases, surface_normals
from mastsam_splat.tracker.creases import camera_points
from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
from mastsam_splat.tracker.view_order import ViewOrder
from mastsam_splat.types import Camera, Frame

K = np.array([[50.0, 0.0, 20.0], [0.0, 50.0, 15.0], [0.0, 0.0, 1.0]])
H, W = 30, 40


def _depth_of(surface: str) -> np.ndarray:
    """A z-depth map [H, W] with a vertical boundary at column 20: ``convex`` a box edge pointing at the camera,
    ``concave`` the inside of a corner, ``flat`` a plane, ``step`` a plane in front of a farther one."""
    u = (np.arange(W) + 0.5 - K[0, 2]) / K[0, 0]
    ray = np.broadcast_to(u, (H, W))
    # planes z = z0 + slope * x, intersected with the rays x = u z
    slope = {"convex": np.where(ray < 0, -1.0, 1.0), "concave": np.where(ray < 0, 1.0, -1.0)}.get(surface, np.zeros((H, W)))
    z0 = np.where((ray >= 0) & (surface == "step"), 6.0, 4.0)
    return z0 / (1 - slope * ray)


def _halves() -> np.ndarray:
    labels = np.ones((H, W), dtype=np.int64)
    labels[:, 20:] = 2
    return labels


def test_normals_of_a_plane_face_the_camera() -> None:
    normals = surface_normals(camera_points(_depth_of("flat"), K))
    assert np.allclose(normals[1:-1, 1:-1], [0.0, 0.0, -1.0])
    assert np.isnan(normals[0]).all() and np.isnan(normals[:, -1]).all()


@pytest.mark.parametrize("surface, convex", [("convex", True), ("concave", False), ("flat", False), ("step", False)])
def test_only_a_convex_edge_of_continuous_depth_counts(surface: str, convex: bool) -> None:
    pairs, samples, on_edge = frame_creases(_halves(), _depth_of(surface), K, CreaseConfig(), offset=3)
    assert pairs.tolist() == [[1, 2]] and samples[0] >= H - 2
    assert (on_edge[0] == samples[0]) if convex else (on_edge[0] == 0)


def test_pairs_merge_after_min_frames_of_convex_edges_and_share_of_their_meetings() -> None:
    config = CreaseConfig(min_frames=2, share=0.5)
    labels, convex, flat = _halves(), _depth_of("convex"), _depth_of("flat")
    assert crease_merges([labels], [convex], [K], config) == {}
    assert crease_merges([labels, labels], [convex, convex], [K, K], config) == {2: 1}
    assert crease_merges([labels] * 5, [convex, convex, flat, flat, flat], [K] * 5, config) == {}
    # chains of faces join the oldest id
    three = labels.copy()
    three[:, 20:] = 3
    tally = CreaseTally(config)
    for lab in (labels, labels, three, three):
        tally.observe(lab, convex, K)
    relabelled = labels.copy()
    relabelled[:, :20] = 2
    relabelled[:, 20:] = 3
    for _ in range(2):
        tally.observe(relabelled, convex, K)
    assert tally.merges() == {2: 1, 3: 1}


def _camera() -> Camera:
    return Camera(K=K, world_to_cam=np.eye(4), width=W, height=H)


def test_run_merges_faces_after_the_sequence_unless_turned_off() -> None:
    frames = [
        Frame(image=np.zeros((H, W, 3), dtype=np.uint8), name=f"f{i}", index=i, depth=_depth_of("convex"), camera=_camera())
        for i in range(3)
    ]
    for enabled, expected in ((True, {1}), (False, {1, 2})):
        config = TrackerConfig()
        config.creases.enabled = enabled
        run = _Run(MastSAMTracker(config, None, None), frames, "depth", ViewOrder([0, 1, 2], {0: None, 1: 0, 2: 1}, "cameras"))
        for t in range(3):
            run.labels[t] = _halves().astype(np.uint16)
        run.next_id = 3
        assert run.merge_creases() == (1 if enabled else 0)
        assert set(np.unique(np.concatenate([x.ravel() for x in run.finished_labels()]))) == expected
