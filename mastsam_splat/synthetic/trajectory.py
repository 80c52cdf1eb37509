"""Camera paths through the synthetic scenes (OpenCV-convention cameras, world z up)."""

from __future__ import annotations

import numpy as np

from mastsam_splat.synthetic.layout import Trajectory
from mastsam_splat.types import Camera

HORIZONTAL_FOV_DEG = 60.0


def intrinsics(width: int, height: int) -> np.ndarray:
    """[3, 3] pinhole intrinsics with square pixels, a 60° horizontal field of view and a centred principal point."""
    focal = 0.5 * width / np.tan(np.deg2rad(HORIZONTAL_FOV_DEG) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, K: np.ndarray, width: int, height: int) -> Camera:
    """A camera at ``eye`` looking at ``target`` with world +z up (no roll)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = eye
    return Camera(K=K, world_to_cam=np.linalg.inv(c2w), width=width, height=height)


def make_cameras(
    trajectory: Trajectory, frames: int, width: int, height: int, rng: np.random.Generator
) -> list[Camera]:
    """The cameras of a trajectory.

    ``orbit``: a full 360° circle (radius 5.5 m) around the scene centre at 8–16° elevation,
    always looking at the centre; the last frame stops one step short of the first.
    ``forward``: a walk along +y through the free corridor between the objects at about
    1.2 m height, looking ahead and slightly down, with a gentle sideways sway.
    """
    K = intrinsics(width, height)
    target = np.array([0.0, 0.0, 0.45])
    cameras = []
    if trajectory == "orbit":
        start = float(rng.uniform(0, 2 * np.pi))
        for i in range(frames):
            angle = start + 2 * np.pi * i / frames
            elevation = np.deg2rad(12.0 + 4.0 * np.sin(2 * angle))
            radius = 5.5
            eye = np.array(
                [radius * np.cos(angle) * np.cos(elevation), radius * np.sin(angle) * np.cos(elevation), 0.0]
            )
            eye[2] = target[2] + radius * np.sin(elevation)
            cameras.append(look_at(eye, target, K, width, height))
    elif trajectory == "forward":
        phase = float(rng.uniform(0, 2 * np.pi))
        for i in range(frames):
            s = i / max(frames - 1, 1)
            y = -7.0 + 8.5 * s
            x = 0.25 * np.sin(phase + 2 * np.pi * s)
            eye = np.array([x, y, 1.2])
            look = np.array([0.6 * np.sin(phase + 2 * np.pi * s + 0.8), y + 4.0, 0.45])
            cameras.append(look_at(eye, look, K, width, height))
    else:
        raise ValueError(f"unknown trajectory {trajectory!r}")
    return cameras
