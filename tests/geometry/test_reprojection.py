"""Depth + camera correspondences: exact where visible, occlusions removed, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from support.analytic_views import cast, look_at, render, stereo_pair

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.reprojection import (
    dense_correspondences,
    pixel_grid,
    sample_inverse_depth_bilinear,
    sample_nearest,
    visible_in,
)
from mastsam_splat.types import Frame


@pytest.fixture(scope="module")
def pair():
    return stereo_pair(320, 240)


def depth_edges(depth: np.ndarray, rel: float = 0.05) -> np.ndarray:
    """Pixels [H, W] bool next to a depth discontinuity (or to missing depth)."""
    d = depth.astype(np.float64)
    edge = np.zeros(d.shape, dtype=bool)
    jump_x = np.abs(np.diff(d, axis=1)) > rel * np.minimum(d[:, 1:], d[:, :-1])
    jump_y = np.abs(np.diff(d, axis=0)) > rel * np.minimum(d[1:], d[:-1])
    edge[:, 1:] |= jump_x
    edge[:, :-1] |= jump_x
    edge[1:] |= jump_y
    edge[:-1] |= jump_y
    return edge | ndimage.binary_dilation(d <= 0)


def same_surface(frame_b: Frame, xy_b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether the ray through each ``xy_b`` of b hits ``points`` (exact ray casting)."""
    _, hits, surface = cast(frame_b.camera, xy_b.astype(np.float64))
    dist = np.linalg.norm(hits - points, axis=1)
    scale = np.linalg.norm(points - frame_b.camera.center, axis=1)
    return (surface > 0) & (dist <= 1e-5 * scale)


def test_exact_where_visible(pair):
    a, b = pair
    xy_a, xy_b, points = dense_correspondences(a, b, step=1, return_points=True)
    assert xy_a.dtype == np.float32 and xy_b.dtype == np.float32
    assert xy_a.shape == xy_b.shape and xy_a.shape[1] == 2 and len(xy_a) > 30000
    # Pixel centres of a, and the world point is what a's pixel sees.
    assert np.all(np.mod(xy_a, 1.0) == 0.5)
    _, hits_a, _ = cast(a.camera, xy_a.astype(np.float64))
    np.testing.assert_allclose(points, hits_a, rtol=0, atol=1e-5)
    # b sees that same point at xy_b, except where xy_b lies on a depth edge of b (sub-pixel rounding).
    ok = same_surface(b, xy_b, points)
    cells = np.floor(xy_b).astype(int)
    on_edge = depth_edges(b.depth)[cells[:, 1], cells[:, 0]]
    assert np.all(ok | on_edge)
    assert (~ok).mean() < 2e-3


def test_occluded_points_are_dropped_and_visible_kept(pair):
    a, b = pair
    xy_a, _ = dense_correspondences(a, b, step=1)
    grid = pixel_grid(a.width, a.height, 1)
    _, points, _ = cast(a.camera, grid)
    proj, z = b.camera.project(points)
    inside = (z > 0) & (proj[:, 0] >= 0) & (proj[:, 0] < b.width) & (proj[:, 1] >= 0) & (proj[:, 1] < b.height)
    visible = inside & same_surface(b, proj, points)
    occluded = inside & ~visible
    assert occluded.sum() > 2000, "the scene must hide part of a's view from b"
    returned = np.zeros(len(grid), dtype=bool)
    index = np.floor(xy_a[:, 1]).astype(int) * a.width + np.floor(xy_a[:, 0]).astype(int)
    returned[index] = True
    cells = np.floor(np.clip(proj[inside], 0, [b.width - 1e-3, b.height - 1e-3])).astype(int)
    edge_b = np.zeros(len(grid), dtype=bool)
    edge_b[inside] = depth_edges(b.depth)[cells[:, 1], cells[:, 0]]
    # No occluded point is returned unless it projects onto a depth edge of b.
    assert not np.any(returned & occluded & ~edge_b)
    # Nearly every visible point is returned (misses only on depth edges).
    assert np.all(returned[visible & ~edge_b])
    assert returned[visible].mean() > 0.995


def test_step_subsamples_the_grid(pair):
    a, b = pair
    full_a, full_b = dense_correspondences(a, b, step=1)
    sub_a, sub_b = dense_correspondences(a, b, step=3)
    cols = np.floor(sub_a[:, 0]).astype(int)
    rows = np.floor(sub_a[:, 1]).astype(int)
    assert np.all(cols % 3 == 0) and np.all(rows % 3 == 0)
    lookup = {tuple(p): q for p, q in zip(full_a.tolist(), full_b.tolist(), strict=True)}
    assert all(tuple(p) in lookup for p in sub_a.tolist())
    np.testing.assert_array_equal(np.array([lookup[tuple(p)] for p in sub_a.tolist()], np.float32), sub_b)
    assert abs(len(sub_a) * 9 - len(full_a)) < 0.05 * len(full_a)


def test_identity_pair_maps_pixels_to_themselves(pair):
    a, _ = pair
    xy_a, xy_b = dense_correspondences(a, a, step=2)
    assert len(xy_a) == len(pixel_grid(a.width, a.height, 2))
    np.testing.assert_allclose(xy_b, xy_a, atol=1e-3)


def test_millimetre_depth_stays_subpixel(pair):
    a, b = pair
    quantized = [
        Frame(image=f.image, name=f.name, camera=f.camera, depth=(np.round(f.depth * 1000) / 1000).astype(np.float32))
        for f in (a, b)
    ]
    exact_a, exact_b = dense_correspondences(a, b, step=2)
    q_a, q_b = dense_correspondences(quantized[0], quantized[1], step=2)
    exact = {tuple(p): q for p, q in zip(exact_a.tolist(), exact_b.tolist(), strict=True)}
    common = [i for i, p in enumerate(q_a.tolist()) if tuple(p) in exact]
    assert len(common) > 0.99 * len(q_a)
    ref = np.array([exact[tuple(p)] for p in q_a[common].tolist()])
    assert np.abs(q_b[common] - ref).max() < 0.05


def test_frames_of_different_sizes(pair):
    a, _ = pair
    big = render(look_at([0.5, 0.15, 0.3], [0.0, 0.1, 6.0], 400, 300, focal=420.0), "big")
    xy_a, xy_b, points = dense_correspondences(a, big, step=2, return_points=True)
    assert len(xy_a) > 5000
    assert xy_b[:, 0].max() > 320 and xy_b[:, 1].max() > 240  # coordinates in b's own, larger frame
    ok = same_surface(big, xy_b, points)
    assert ok.mean() > 0.995


def test_missing_geometry_is_reported_with_the_frame(pair, tmp_path):
    a, b = pair
    no_camera = Frame(image=a.image, name="no_cam", file=tmp_path / "no_cam.png", depth=a.depth)
    with pytest.raises(InputError, match="no_cam.png.*no camera"):
        dense_correspondences(no_camera, b)
    no_depth = Frame(image=b.image, name="no_depth", camera=b.camera)
    with pytest.raises(InputError, match="no_depth.*no depth"):
        dense_correspondences(a, no_depth)
    wrong = Frame(image=a.image, name="wrong", camera=a.camera, depth=a.depth[:-1])
    with pytest.raises(InputError, match="does not match"):
        dense_correspondences(wrong, b)
    with pytest.raises(ValueError):
        dense_correspondences(a, b, step=0)


def _visible_in_reference(frame: Frame, xy: np.ndarray, z: np.ndarray, depth_tolerance: float) -> np.ndarray:
    """``visible_in`` written plainly: both depths (the pixel's, the interpolated one) tested at every projection."""
    h, w = frame.depth.shape
    inside = np.isfinite(xy).all(axis=1) & np.isfinite(z) & (z > 0)
    inside &= (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    keep = np.zeros(len(xy), dtype=bool)
    xy_in, z_in = xy[inside], z[inside]
    tol = depth_tolerance * z_in
    d_near = sample_nearest(frame.depth, xy_in).astype(np.float64)
    d_lin = sample_inverse_depth_bilinear(frame.depth.astype(np.float64), xy_in)
    keep[inside] = ((d_near > 0) & (np.abs(d_near - z_in) <= tol)) | ((d_lin > 0) & (np.abs(d_lin - z_in) <= tol))
    return keep


def test_visible_in_equals_testing_both_depths_everywhere(pair):
    """The interpolated depth, computed only where the pixel's own depth disagrees, keeps the same projections."""
    a, b = pair
    rng = np.random.default_rng(3)
    depth = b.depth.copy()
    depth[rng.random(depth.shape) < 0.05] = 0.0  # holes: the interpolation fails next to them
    holed = Frame(image=b.image, name=b.name, camera=b.camera, depth=depth)
    xy_a = pixel_grid(a.width, a.height)
    depth_a = a.depth[(xy_a[:, 1]).astype(int), (xy_a[:, 0]).astype(int)].astype(np.float64)
    known = depth_a > 0
    xy_b, z_b = b.camera.project(a.camera.unproject(xy_a[known], depth_a[known]))
    z_b = z_b * rng.uniform(0.97, 1.03, len(z_b))  # some agree with the pixel's depth only, some with neither
    xy_b[:5] = np.nan
    for tolerance in (0.005, 0.02):
        got = visible_in(holed, xy_b, z_b, tolerance)
        want = _visible_in_reference(holed, xy_b, z_b, tolerance)
        assert 0 < got.sum() < len(got)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("step", [1, 3])
def test_dense_correspondences_equal_sampling_the_grid_pixel_by_pixel(pair, step):
    """The grid's depths read as every ``step``-th row and column: the correspondences of sampling each grid
    position's pixel."""
    a, b = pair
    xy_a = pixel_grid(a.width, a.height, step)
    depth_a = sample_nearest(a.depth, xy_a).astype(np.float64)
    known = np.isfinite(depth_a) & (depth_a > 0)
    points = a.camera.unproject(xy_a[known], depth_a[known])
    xy_b, z_b = b.camera.project(points)
    keep = visible_in(b, xy_b, z_b, 0.02)
    got_a, got_b, got_points = dense_correspondences(a, b, step=step, return_points=True)
    np.testing.assert_array_equal(got_a, xy_a[known][keep].astype(np.float32))
    np.testing.assert_array_equal(got_b, xy_b[keep].astype(np.float32))
    np.testing.assert_array_equal(got_points, points[keep])
    assert len(got_a) > 100
