"""Column-wise projection (projection.py) and the evidence image drawn with it, against plain references."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.anchor import AnchorConfig
from mastsam_splat.tracker.evidence_image import _footprints, project_evidence
from mastsam_splat.tracker.projection import project_points
from mastsam_splat.types import Camera


def _camera(rng: np.random.Generator, width: int = 64, height: int = 48) -> Camera:
    angle = rng.uniform(-0.3, 0.3)
    rotation = np.array([[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0], [-np.sin(angle), 0.0, np.cos(angle)]])
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = rotation
    world_to_cam[:3, 3] = rng.normal(0.0, 0.2, 3) + [0.0, 0.0, 4.0]
    K = np.array([[50.0, 0.0, width / 2], [0.0, 52.0, height / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, world_to_cam=world_to_cam, width=width, height=height)


def _reference_evidence(points, ids, camera, shape, voxel_size, config, depth=None) -> np.ndarray:
    """``project_evidence`` written plainly: ``Camera.project``, floors, and every visible point written far first."""
    h, w = shape
    out = np.zeros((h, w), dtype=np.int64)
    xy, z = camera.project(points)
    with np.errstate(invalid="ignore"):
        cols, rows = np.floor(xy[:, 0]), np.floor(xy[:, 1])
        keep = np.isfinite(z) & (z > 0) & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    cols, rows, z, ids = cols[keep].astype(np.int64), rows[keep].astype(np.int64), z[keep], np.asarray(ids)[keep]
    if len(z) == 0:
        return out
    slack = np.sqrt(3.0) * voxel_size
    if depth is not None:
        surface = np.asarray(depth, dtype=np.float64)[rows, cols]
        visible = np.isfinite(surface) & (surface > 0)
        visible &= np.abs(z - surface) <= np.maximum(config.depth_tolerance * surface, slack)
    else:
        cell = config.zbuffer_cell
        cw = (w + cell - 1) // cell
        flat = (rows // cell) * cw + cols // cell
        nearest = np.full(((h + cell - 1) // cell) * cw, np.inf)
        np.minimum.at(nearest, flat, z)
        front = nearest[flat]
        visible = z <= front + np.maximum(config.depth_tolerance * front, 2 * slack)
    cols, rows, z, ids = cols[visible], rows[visible], z[visible], ids[visible]
    reach = np.zeros((h, w))
    for k in np.argsort(-z, kind="stable"):  # far first: the nearest point of a pixel is written last
        out[rows[k], cols[k]] = ids[k]
        reach[rows[k], cols[k]] = min(0.5 * 0.5 * (camera.K[0, 0] + camera.K[1, 1]) * voxel_size / z[k],
                                      0.5 * config.max_footprint_fraction * np.hypot(h, w))
    if config.footprint and depth is None:
        out = _footprints(out, reach)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_project_points_equals_camera_project_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    camera = _camera(rng)
    camera.world_to_cam[:3, :3] = rng.normal(size=(3, 3))  # any matrix: every rounding of the products shows
    camera.K[0, 1] = rng.normal()
    for n in (0, 1, 2, 5, 1000, 100_000):
        points = rng.normal(0.0, 2.0, (n, 3))
        points[: n // 10, 2] = -4.0  # behind the camera: z of either sign, coordinates of any size
        xy, z = camera.project(points)
        # either layout of the points (the evidence's voxel centres are stored coordinate by coordinate)
        for given in (points, np.asfortranarray(points)):
            x, y, z_fast = project_points(camera, given)
            np.testing.assert_array_equal(x, xy[:, 0])
            np.testing.assert_array_equal(y, xy[:, 1])
            np.testing.assert_array_equal(z_fast, z)


@pytest.mark.parametrize("with_depth", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_project_evidence_equals_the_plain_reference(with_depth, seed):
    rng = np.random.default_rng(seed)
    camera = _camera(rng)
    shape = (48, 64)
    points = rng.uniform(-1.5, 1.5, (3000, 3))
    points[:200] = points[200:400]  # repeated points: ties in depth on one pixel, the later point must win
    ids = rng.integers(1, 9, len(points))
    config = AnchorConfig()
    depth = None
    if with_depth:
        _, z = camera.project(points)
        depth = np.full(shape, 4.0, dtype=np.float32)
        depth[:, : shape[1] // 2] = 3.5
        depth[:5] = 0.0  # unknown depth
        depth[rng.random(shape) < 0.3] = np.median(z)
    got = project_evidence(points, ids, camera, shape, 0.05, config, depth)
    expected = _reference_evidence(points, ids, camera, shape, 0.05, config, depth)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert (got > 0).any()


@pytest.mark.parametrize("seed", range(4))
def test_nearest_per_pixel_equals_the_minimum_of_each_pixel(seed):
    from mastsam_splat.tracker.evidence_image import _nearest_per_pixel

    rng = np.random.default_rng(seed)
    size = 50
    for n in (0, 1, 7, 300, 5000):
        pixel = rng.integers(0, size, n)
        z = rng.choice(rng.uniform(0.5, 9.0, 40), n)  # repeated depths: ties within a pixel
        if seed % 2:
            # one crowded pixel, its points ever farther in the order written: each pass's write (the last point's)
            # leaves all the others nearer, so the passes run out and the minimum finishes it
            pixel[: n // 2] = 3
            z[: n // 2] = np.linspace(0.5, 9.0, n // 2)
        nearest = np.full(size, np.inf)
        np.minimum.at(nearest, pixel, z)
        np.testing.assert_array_equal(_nearest_per_pixel(pixel, z, size), z == nearest[pixel])
