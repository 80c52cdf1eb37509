"""Pose errors after a similarity alignment: zero for cameras that differ by one, also along a line."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from mastsam_splat.geometry.similarity import pose_errors, umeyama
from mastsam_splat.synthetic.trajectory import make_cameras
from mastsam_splat.types import Camera


def _moved(camera: Camera, scale: float, rot: np.ndarray, shift: np.ndarray) -> Camera:
    """The same camera in a world mapped by x' = scale * rot @ x + shift."""
    w2c = camera.world_to_cam.copy()
    new = np.eye(4)
    new[:3, :3] = w2c[:3, :3] @ rot.T
    new[:3, 3] = scale * w2c[:3, 3] - new[:3, :3] @ shift
    return Camera(K=camera.K, world_to_cam=new, width=camera.width, height=camera.height)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    rot = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    dst = 2.5 * src @ rot.T + [1.0, 2.0, 3.0]
    transform = umeyama(src, dst)
    assert np.allclose(src @ transform[:3, :3].T + transform[:3, 3], dst)


def test_pose_errors_vanish_under_a_similarity():
    rot = Rotation.from_rotvec([0.1, 0.7, -0.4]).as_matrix()
    for trajectory in ("orbit", "forward"):
        truth = make_cameras(trajectory, 10, 64, 48, np.random.default_rng(1))
        moved = [_moved(c, 0.3, rot, np.array([4.0, -1.0, 2.0])) for c in truth]
        errors = pose_errors(moved, truth)
        assert errors.rotation_deg.max() < 1e-4
        assert errors.centre.max() < 1e-6 * errors.scene_size


def test_pose_errors_see_a_rotated_camera():
    truth = make_cameras("orbit", 8, 64, 48, np.random.default_rng(1))
    moved = list(truth)
    w2c = truth[3].world_to_cam.copy()
    w2c[:3, :3] = Rotation.from_rotvec([0, 0, np.radians(5)]).as_matrix() @ w2c[:3, :3]
    moved[3] = Camera(K=truth[3].K, world_to_cam=w2c, width=64, height=48)
    errors = pose_errors(moved, truth)
    assert errors.rotation_deg[3] > 3.0
    assert np.median(errors.rotation_deg) < 1.0
