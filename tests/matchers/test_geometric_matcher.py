"""Geometric matcher: exact correspondences from depth + cameras, occlusions removed, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from support.analytic_views import cast, look_at, render, stereo_pair

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import make_matcher
from mastsam_splat.types import Frame


@pytest.fixture(scope="module")
def pair():
    return stereo_pair(320, 240)


def test_exact_within_rounding(pair):
    a, b = pair
    matches = make_matcher("geometric", {"step": 2}).match(a, b)
    assert len(matches) > 10000
    assert np.all(matches.confidence == 1.0)
    # xy_a are the grid's pixel centres; pts3d are the world points a sees there.
    assert np.all(np.mod(matches.xy_a - 0.5, 2.0) == 0.0)
    _, seen_a, _ = cast(a.camera, matches.xy_a.astype(np.float64))
    np.testing.assert_allclose(matches.pts3d_a, seen_a, atol=1e-4)
    np.testing.assert_array_equal(matches.pts3d_a, matches.pts3d_b)
    # xy_b is exactly where b sees the same point (ray cast through xy_b), bar sub-pixel rounding on depth edges.
    _, seen_b, _ = cast(b.camera, matches.xy_b.astype(np.float64))
    dist = np.linalg.norm(seen_b - seen_a, axis=1)
    assert np.mean(dist < 1e-4) > 0.998
    proj, _ = b.camera.project(seen_a)
    assert np.abs(proj - matches.xy_b).max() < 1e-3


def test_occluded_points_are_not_matched(pair):
    a, b = pair
    matches = make_matcher("geometric", {"step": 1}).match(a, b)
    # Points of a's wall that the box hides from b: visible to a, projected inside b, but not seen there.
    grid = np.stack(np.meshgrid(np.arange(a.width) + 0.5, np.arange(a.height) + 0.5), axis=-1).reshape(-1, 2)
    _, points, surface = cast(a.camera, grid)
    proj, z = b.camera.project(points)
    inside = (proj[:, 0] > 1) & (proj[:, 0] < b.width - 1) & (proj[:, 1] > 1) & (proj[:, 1] < b.height - 1) & (z > 0)
    _, seen, _ = cast(b.camera, proj)
    hidden = inside & (np.linalg.norm(seen - points, axis=1) > 0.05)
    assert hidden.sum() > 2000
    matched = set(map(tuple, matches.xy_a.tolist()))
    hidden_matched = [tuple(p) in matched for p in grid[hidden].tolist()]
    assert np.mean(hidden_matched) < 0.01  # only sub-pixel boundary cases
    # The same pair without the occluder matches those pixels.
    a_open, b_open = stereo_pair(320, 240, with_box=False)
    open_matched = set(map(tuple, make_matcher("geometric", {"step": 1}).match(a_open, b_open).xy_a.tolist()))
    wall_hidden = hidden & (surface == 1)
    assert np.mean([tuple(p) in open_matched for p in grid[wall_hidden].tolist()]) > 0.99


def test_frames_of_different_sizes(pair):
    a, _ = pair
    big = render(look_at([0.5, 0.15, 0.3], [0.0, 0.1, 6.0], 400, 300, focal=420.0), "big")
    matches = make_matcher("geometric").match(big, a)
    assert matches.xy_a[:, 0].max() > 320 and len(matches) > 5000
    _, seen_b, _ = cast(a.camera, matches.xy_b.astype(np.float64))
    assert np.mean(np.linalg.norm(seen_b - matches.pts3d_a, axis=1) < 1e-4) > 0.995


def test_frames_without_geometry(pair, tmp_path):
    a, b = pair
    no_camera = Frame(image=a.image, name="frame_00003", file=tmp_path / "images" / "frame_00003.png", depth=a.depth)
    with pytest.raises(InputError, match=r"frame_00003\.png.*no camera"):
        make_matcher("geometric").match(no_camera, b)
    no_depth = Frame(image=b.image, name="frame_00004", camera=b.camera)
    with pytest.raises(InputError, match="frame_00004.*no depth"):
        make_matcher("geometric").match(a, no_depth)
    with pytest.raises(ValueError):
        make_matcher("geometric", {"step": 0})
