"""The evidence label image (evidence_image.py): visibility and footprints against plain references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from mastsam_splat.tracker import evidence_image as evidence_image_module
from mastsam_splat.tracker.anchor import AnchorConfig
from mastsam_splat.tracker.evidence_image import _footprints, _footprints_of_points, project_evidence

from support.planar_scene import DEPTH, camera_at


def test_footprints_equal_the_distance_transforms_own_distances():
    """The footprints computed from integer offsets equal those from ``distance_transform_edt``'s distances,
    reaches lying exactly on pixel distances included."""
    rng = np.random.default_rng(5)
    for h, w, n in ((9, 13, 6), (60, 80, 40), (120, 90, 400)):
        rows, cols = rng.integers(0, h, n), rng.integers(0, w, n)
        points = np.zeros((h, w), dtype=np.int64)
        points[rows, cols] = rng.integers(0, 6, n)
        reach = np.zeros((h, w))
        reach[rows, cols] = rng.choice([0.5, 1.0, np.sqrt(2.0), 2.0, np.sqrt(5.0), 3.7, 9.0], n)
        distance, (near_rows, near_cols) = distance_transform_edt(points == 0, return_indices=True)
        expected = np.where(distance <= reach[near_rows, near_cols], points[near_rows, near_cols], 0)
        np.testing.assert_array_equal(_footprints(points, reach), expected)


def test_footprints_near_a_few_clusters_of_points_equal_the_whole_images_transform():
    """Points in a few places of a large frame: the transform is computed in a few boxes around them."""
    rng = np.random.default_rng(11)
    h, w = 300, 420
    for _ in range(4):
        points = np.zeros((h, w), dtype=np.int64)
        reach = np.zeros((h, w))
        for _ in range(3):
            r, c = int(rng.integers(0, h)), int(rng.integers(0, w))
            rows = np.clip(r + rng.integers(-25, 25, 60), 0, h - 1)
            cols = np.clip(c + rng.integers(-25, 25, 60), 0, w - 1)
            points[rows, cols] = rng.integers(1, 9, 60)
            reach[rows, cols] = rng.choice([1.0, np.sqrt(2.0), 3.0, 6.5, 12.0], 60)
        distance, (near_rows, near_cols) = distance_transform_edt(points == 0, return_indices=True)
        expected = np.where(distance <= reach[near_rows, near_cols], points[near_rows, near_cols], 0)
        np.testing.assert_array_equal(_footprints(points, reach), expected)
    empty = np.zeros((20, 30), dtype=np.int64)
    np.testing.assert_array_equal(_footprints(empty, np.zeros((20, 30))), empty)


@pytest.mark.parametrize("seed", range(3))
def test_footprints_drawn_as_discs_equal_the_whole_images_transform(seed):
    """Discs written farthest offset first, ties in reverse transform order, give every pixel the exact
    transform's nearest point (ties on an integer grid are common here) and its reach test."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(5, 90, 2))
        n = int(rng.integers(1, min(60, h * w)))
        pixel = rng.choice(h * w, n, replace=False)
        ids = rng.integers(1, 5, n)
        reach = rng.choice([0.5, 1.0, np.sqrt(2.0), 2.0, np.sqrt(5.0), 3.7, 4.0, 9.0], n)
        points = np.zeros(h * w, dtype=np.int64)
        points[pixel] = ids
        reach_image = np.zeros(h * w)
        reach_image[pixel] = reach
        points, reach_image = points.reshape(h, w), reach_image.reshape(h, w)
        distance, (near_rows, near_cols) = distance_transform_edt(points == 0, return_indices=True)
        expected = np.where(distance <= reach_image[near_rows, near_cols], points[near_rows, near_cols], 0)
        np.testing.assert_array_equal(_footprints_of_points(pixel, ids, reach, (h, w), np.int64), expected)


def test_projection_draws_sparse_points_as_discs_like_the_transform(monkeypatch):
    """A few points on a large frame are drawn as discs; the transform near them draws the same image."""
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, [camera.width, camera.height], (25, 2))
    points = camera.unproject(xy, rng.uniform(DEPTH, 1.5 * DEPTH, 25))
    ids = rng.integers(0, 4, 25)
    wide = AnchorConfig(max_footprint_fraction=0.2)
    discs = project_evidence(points, ids, camera, shape, 0.3, wide)
    monkeypatch.setattr(evidence_image_module, "SPARSE_FOOTPRINT_SHARE", 0.0)
    np.testing.assert_array_equal(project_evidence(points, ids, camera, shape, 0.3, wide), discs)
    assert np.count_nonzero(discs) > 25


def test_projection_keeps_visible_points_only():
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    xy = np.array([[40.5, 30.5], [50.5, 30.5]])
    on_plane = camera.unproject(xy, np.full(2, DEPTH))
    behind = camera.unproject(np.array([[60.5, 30.5]]), np.array([DEPTH * 2]))
    points = np.concatenate([on_plane, behind])
    ids = np.array([1, 2, 3])
    depth = np.full(shape, DEPTH, dtype=np.float32)
    config = AnchorConfig()
    image = project_evidence(points, ids, camera, shape, 0.01, config, depth)
    assert image[30, 40] == 1 and image[30, 50] == 2
    assert 3 not in image  # hidden behind the surface the depth map shows
    # Without a depth map the z-buffer of the points decides: a point right behind another is hidden.
    occluded = camera.unproject(np.array([[40.5, 30.5]]), np.array([DEPTH * 2]))
    image = project_evidence(np.concatenate([on_plane, occluded]), np.array([1, 2, 7]), camera, shape, 0.01, config)
    assert image[30, 40] == 1 and 7 not in image


def test_projection_draws_each_voxel_over_its_footprint():
    """A voxel covers a disc about ``focal * size / depth`` pixels across; between two discs a pixel takes the
    voxel whose projection is nearer, and a voxel hidden behind another's pixel is not drawn."""
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    size = 0.6  # FOCAL * size / DEPTH: 9.6 pixels across at DEPTH, 6.4 at 1.5 * DEPTH
    wide = AnchorConfig(max_footprint_fraction=0.2)  # the test image is small
    near = camera.unproject(np.array([[30.5, 30.5]]), np.array([DEPTH]))
    far = camera.unproject(np.array([[37.5, 30.5]]), np.array([DEPTH * 1.5]))
    image = project_evidence(np.concatenate([near, far]), np.array([1, 2]), camera, shape, size, wide)
    rows, cols = np.nonzero(image == 1)
    assert rows.min() == 26 and rows.max() == 34 and cols.min() == 26 and cols.max() == 33
    assert image[30, 33] == 1 and image[30, 34] == 2 and image[30, 40] == 2 and image[30, 41] == 0
    assert image[26, 26] == 0  # a disc, not a square
    single = project_evidence(near, np.array([1]), camera, shape, size, AnchorConfig(footprint=False))
    assert np.count_nonzero(single) == 1
    depth = np.full(shape, DEPTH, dtype=np.float32)  # a depth map's points sample densely: no footprints
    assert np.count_nonzero(project_evidence(near, np.array([1]), camera, shape, size, wide, depth)) == 1
