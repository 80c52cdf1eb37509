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


def _ground_scene() -> Scene:
    """One camera 1.5 m above the ground plane z = 0, looking at it at a grazing angle; beyond 10 m is sky."""
    from mastsam_splat.types import Camera

    K = np.array([[120.0, 0, 64], [0, 120.0, 48], [0, 0, 1]])
    tilt = np.deg2rad(20.0)
    # camera axes in world coordinates: x right, y down (towards -z tilted), z forward (+y tilted down)
    forward = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = [0.0, 0.0, 1.5]
    camera = Camera(K=K, world_to_cam=np.linalg.inv(c2w), width=128, height=96)
    ys, xs = np.mgrid[0:96, 0:128] + 0.5
    rays = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(K).T @ c2w[:3, :3].T
    t = np.where(rays[..., 2] < -1e-9, -1.5 / np.minimum(rays[..., 2], -1e-9), 0.0)
    depth = np.where(t < 10.0, t, 0.0).astype(np.float32)  # ray parameter with unit camera z = z-depth
    frame = Frame(image=np.zeros((96, 128, 3), np.uint8), name="g", camera=camera, depth=depth)
    return Scene(frames=[frame], root=Path("."), kind="nerfstudio")


def test_filled_samples_stay_on_a_grazing_plane_and_close_its_gaps() -> None:
    scene = _ground_scene()
    coarse = depth_surface_points(scene)
    filled = depth_surface_points(scene, spacing=0.05)
    assert len(filled) > 2 * len(coarse)
    np.testing.assert_allclose(filled[:, 2], 0.0, atol=1e-6)  # inverse depth is exact for planes
    from scipy.spatial import cKDTree

    # points on the far ground between pixel centres: off the coarse samples, on the filled ones
    far = coarse[(coarse[:, 1] > 6.0) & (coarse[:, 1] < 8.0) & (np.abs(coarse[:, 0]) < 1.0)]
    probes = far + np.array([0.0, 0.1, 0.0])
    assert len(probes) > 20
    assert near_surface_fraction(probes, coarse, 0.05) < 0.5
    assert near_surface_fraction(probes, filled, 0.05) == 1.0
    # and a point 10 cm above the ground stays off it
    assert near_surface_fraction(probes + np.array([0.0, 0.0, 0.1]), filled, 0.05) == 0.0
    assert cKDTree(filled).query(np.array([[0.0, 3.0, 0.3]]))[0][0] > 0.25


def test_occlusion_edges_are_not_bridged() -> None:
    scene = _wall_scene(2.0)
    scene.frames[0].depth[:, 32:] = 4.0  # a second wall twice as far on the right half
    filled = depth_surface_points(scene, spacing=0.01)
    assert np.all((np.abs(filled[:, 2] - 2.0) < 1e-6) | (np.abs(filled[:, 2] - 4.0) < 1e-6))


def test_sky_gaussians_are_those_seen_against_the_sky() -> None:
    from mastsam_splat.metrics.surface import seen_against_sky

    scene = _wall_scene(2.0)  # rows 0-7 are sky: y < (8 - 24) / 40 * z
    means = np.array([[0.0, -0.8, 1.5], [0.0, 0.2, 1.0], [0.0, 0.2, 3.0], [0.0, 0.0, -1.0], [50.0, 0.0, 1.0]])
    np.testing.assert_array_equal(seen_against_sky(means, scene), [True, False, False, False, False])
