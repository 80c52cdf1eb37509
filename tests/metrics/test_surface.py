"""Near-surface share: depth maps back-projected to surface samples, opacity-weighted distance test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mastsam_splat.metrics.surface import depth_surface_points, near_surface_fraction
from mastsam_splat.types import Camera, Frame, Scene


def _wall_scene(depth: float = 2.0) -> Scene:
    """One camera at the origin looking down +z at a wall z = depth; the top rows are sky (depth 0)."""
    K = np.array([[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]])
    camera = Camera(K=K, world_to_cam=np.eye(4), width=64, height=48)
    z = np.full((48, 64), depth, np.float32)
    z[:8] = 0.0
    frame = Frame(image=np.zeros((48, 64, 3), np.uint8), name="f", camera=camera, depth=z)
    return Scene(frames=[frame], root=Path("."), kind="nerfstudio")


def test_depth_points_lie_on_the_surface() -> None:
    points = depth_surface_points(_wall_scene())
    assert len(points) == 40 * 64
    np.testing.assert_allclose(points[:, 2], 2.0, atol=1e-9)


def test_near_surface_fraction_is_opacity_weighted() -> None:
    surface = depth_surface_points(_wall_scene())
    means = np.array([[0.0, 0.2, 2.0], [0.1, 0.3, 2.03], [0.0, 0.3, 2.2], [0.0, 0.3, 1.5]])
    assert near_surface_fraction(means, surface, radius=0.05) == 0.5
    weights = np.array([0.9, 0.9, 0.1, 0.1])
    assert near_surface_fraction(means, surface, 0.05, weights) == 0.9
    assert np.isnan(near_surface_fraction(means[:0], surface))
