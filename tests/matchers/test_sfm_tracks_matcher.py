"""Correspondences from the SfM tracks the frames share: exact pairing by point, geometric agreement on a
synthetic capture, refusal without a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import SfmTrackMatcher, SfmTrackMatcherConfig, make_matcher
from mastsam_splat.tracker.job import check_matcher_inputs
from mastsam_splat.types import Frame, ObservedPoints


def frame_with(points: list[int], name: str) -> Frame:
    """A frame observing the SfM points ``points``: point p at pixel (p, 10 p) of position (p, 2 p, 3 p)."""
    p = np.asarray(points, dtype=np.int64)
    xy = np.stack([p, 10 * p], axis=1).astype(np.float64)
    xyz = np.stack([p, 2 * p, 3 * p], axis=1).astype(np.float64)
    return Frame(np.zeros((8, 8, 3), np.uint8), name, file=Path(f"/data/{name}.png"), observed=ObservedPoints(xy, xyz, p))


def test_pairs_the_pixels_of_each_shared_point():
    a = frame_with([7, 3, 9, 1], "a")
    b = frame_with([2, 9, 7, 5, 3], "b")
    matches = make_matcher("sfm").match(a, b)
    assert isinstance(make_matcher("sfm"), SfmTrackMatcher)
    shared = matches.xy_a[:, 0].astype(int)
    assert sorted(shared.tolist()) == [3, 7, 9]
    np.testing.assert_array_equal(matches.xy_a, matches.xy_b)  # the same point sits at the same pixel in both here
    np.testing.assert_array_equal(matches.xy_a[:, 1], 10 * shared)
    np.testing.assert_array_equal(matches.pts3d_a, np.stack([shared, 2 * shared, 3 * shared], axis=1))
    np.testing.assert_array_equal(matches.confidence, 1.0)


def test_few_shared_points_and_none_give_no_matches():
    a, b = frame_with([1, 2, 3], "a"), frame_with([3, 4], "b")
    assert len(SfmTrackMatcher().match(a, b)) == 1
    assert len(SfmTrackMatcher(SfmTrackMatcherConfig(min_matches=2)).match(a, b)) == 0
    assert len(SfmTrackMatcher().match(a, frame_with([], "c"))) == 0
    with pytest.raises(ValueError, match="min_matches"):
        SfmTrackMatcher(SfmTrackMatcherConfig(min_matches=-1))


def test_a_frame_without_model_points_is_refused_by_name():
    bare = Frame(np.zeros((8, 8, 3), np.uint8), "bare", file=Path("/data/bare.png"))
    with pytest.raises(InputError, match="bare.*COLMAP model") as error:
        SfmTrackMatcher().match(frame_with([1], "a"), bare)
    assert error.value.path == Path("/data/bare.png")
    with pytest.raises(InputError, match="1 of 2 frames have none \\(first: bare\\)"):
        check_matcher_inputs("sfm", [frame_with([1], "a"), bare], Path("/data"))
    check_matcher_inputs("sfm", [frame_with([1], "a")], Path("/data"))
    with pytest.raises(InputError, match="geometric matcher needs depth maps and cameras"):
        check_matcher_inputs("geometric", [bare], Path("/data"))


def test_model_tracks_agree_with_the_cameras_on_a_synthetic_capture(tmp_path):
    """On a capture with a COLMAP model, each pair's matched pixels are the projections of their 3D points."""
    pytest.importorskip("pycolmap")
    from mastsam_splat.io import load_scene
    from mastsam_splat.synthetic import make_scene
    from mastsam_splat.synthetic.sfm import write_scene_sfm_model
    from mastsam_splat.tracker.job import with_sfm_points

    root = make_scene(tmp_path / "scene", frames=5, width=96, height=72, seed=2, max_points=20000, progress=False)
    write_scene_sfm_model(root)
    scene = load_scene(root)
    frames = with_sfm_points(scene.frames, scene.root, "auto")
    matches = SfmTrackMatcher().match(frames[0], frames[1])
    assert len(matches) > 20
    for xy, frame in ((matches.xy_a, frames[0]), (matches.xy_b, frames[1])):
        projected, z = frame.camera.project(matches.pts3d_a.astype(np.float64))
        assert (z > 0).all()
        np.testing.assert_allclose(projected, xy, atol=1e-2)


def test_auto_prefers_depth_then_the_model_tracks_then_sift():
    from mastsam_splat.tracker.job import resolve_matcher
    from mastsam_splat.types import Camera

    camera = Camera(K=np.eye(3), world_to_cam=np.eye(4), width=8, height=8)
    with_model = [frame_with([1, 2], "a"), frame_with([2, 3], "b")]
    with_depth = [Frame(f.image, f.name, camera=camera, depth=np.ones((8, 8), np.float32)) for f in with_model]
    bare = [Frame(np.zeros((8, 8, 3), np.uint8), "c")]
    assert resolve_matcher("auto", with_depth) == "geometric"
    assert resolve_matcher("auto", with_model) == "sfm"
    assert resolve_matcher("auto", with_model + bare) == "sift"
    assert resolve_matcher("auto", bare) == "sift"
    assert resolve_matcher("mast3r", with_depth) == "mast3r"
