"""Epipolar geometry and triangulation from known cameras."""

from __future__ import annotations

import numpy as np
from support.analytic_views import look_at

from mastsam_splat.geometry.triangulation import (
    fundamental_from_cameras,
    is_pure_rotation,
    rotation_homography,
    sampson_distance,
    transfer_distance,
    triangulate,
)


def cameras():
    a = look_at([-0.5, 0.0, 0.0], [0.0, 0.0, 5.0], 320, 240)
    b = look_at([0.6, 0.2, 0.4], [0.1, 0.1, 5.0], 320, 240, roll_deg=8.0)
    return a, b


def points(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform([-1.5, -1.0, 3.0], [1.5, 1.0, 7.0], (n, 3))


def test_fundamental_and_sampson_distance():
    a, b = cameras()
    world = points()
    xy_a, _ = a.project(world)
    xy_b, _ = b.project(world)
    fund = fundamental_from_cameras(a, b)
    assert np.isclose(np.linalg.norm(fund), 1.0) and abs(np.linalg.det(fund)) < 1e-12
    assert sampson_distance(fund, xy_a, xy_b).max() < 1e-6
    # Moving the point in b perpendicular to its epipolar line by d pixels gives a Sampson distance near d
    # (the error is shared between both images, so it lies between d / 2 and d).
    lines = np.concatenate([xy_a, np.ones((len(xy_a), 1))], axis=1) @ fund.T
    normal = lines[:, :2] / np.linalg.norm(lines[:, :2], axis=1, keepdims=True)
    dist = sampson_distance(fund, xy_a, xy_b + 3.0 * normal)
    assert np.all((dist > 1.5) & (dist <= 3.0 + 1e-6))
    # Moving along the line keeps the constraint.
    along = np.stack([-normal[:, 1], normal[:, 0]], axis=1)
    assert sampson_distance(fund, xy_a, xy_b + 5.0 * along).max() < 1e-6


def test_triangulate_recovers_points():
    a, b = cameras()
    world = points()
    xy_a, _ = a.project(world)
    xy_b, _ = b.project(world)
    np.testing.assert_allclose(triangulate(a, b, xy_a, xy_b), world, atol=1e-6)
    assert triangulate(a, b, np.zeros((0, 2)), np.zeros((0, 2))).shape == (0, 3)


def test_pure_rotation():
    a = look_at([0.2, 0.1, 0.0], [0.0, 0.0, 5.0], 320, 240)
    b = look_at([0.2, 0.1, 0.0], [1.0, 0.3, 5.0], 320, 240, roll_deg=-4.0)
    assert is_pure_rotation(a, b) and not is_pure_rotation(*cameras())
    world = points()
    xy_a, _ = a.project(world)
    xy_b, _ = b.project(world)
    transfer = transfer_distance(rotation_homography(a, b), xy_a, xy_b)
    assert transfer.max() < 1e-6
    assert np.all(transfer_distance(rotation_homography(a, b), xy_a, xy_b + [0.0, 2.0]) > 1.99)
