"""SIFT matcher: accuracy on the aloe stereo pair, known-camera epipolar filtering, conventions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from support.analytic_views import cast, look_at, render, stereo_pair

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import make_matcher
from mastsam_splat.types import Camera, Frame, Matches

ALOE = Path("/usr/share/doc/opencv-doc/examples/data")


def true_correspondence(a: Frame, b: Frame, xy_a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact position in b [N, 2] of a's pixels, whether b sees them [N], and the world points [N, 3]."""
    depth, points, _ = cast(a.camera, xy_a.astype(np.float64))
    xy_b, z = b.camera.project(points)
    _, hits_b, _ = cast(b.camera, xy_b)
    visible = (depth > 0) & (np.linalg.norm(hits_b - points, axis=1) < 1e-4 * np.maximum(z, 1e-9))
    return xy_b, visible, points


@pytest.fixture(scope="module")
def pair():
    return stereo_pair(320, 240)


@pytest.mark.skipif(not (ALOE / "aloeGT.png").exists(), reason="opencv-doc aloe images not installed")
def test_aloe_half_resolution_accuracy():
    def load(name: str) -> np.ndarray:
        bgr = cv2.imread(str(ALOE / name))
        return cv2.resize(bgr, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)[:, :, ::-1]

    disparity = cv2.imread(str(ALOE / "aloeGT.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)  # full-res pixels
    left = Frame(image=np.ascontiguousarray(load("aloeL.jpg")), name="aloeL")
    right = Frame(image=np.ascontiguousarray(load("aloeR.jpg")), name="aloeR")
    matches = make_matcher("sift").match(left, right)
    assert matches.pts3d_a is None  # no cameras: nothing to triangulate
    # Left (x, y) <-> right (x - d, y) in full-resolution pixels; here everything is halved.
    full = matches.xy_a * 2.0
    d = disparity[np.floor(full[:, 1]).astype(int), np.floor(full[:, 0]).astype(int)] / 2.0
    known = d > 0
    err = np.hypot(
        matches.xy_a[known, 0] - d[known] - matches.xy_b[known, 0], matches.xy_a[known, 1] - matches.xy_b[known, 1]
    )
    assert len(matches) >= 2000
    assert known.mean() > 0.9
    assert (err < 2.0).mean() >= 0.99
    assert (err < 1.0).mean() >= 0.97
    assert np.all((matches.confidence >= 0.5) & (matches.confidence <= 1.0))


def test_known_cameras_accurate_matches_and_points(pair):
    a, b = pair
    matches = make_matcher("sift").match(a, b)
    assert len(matches) > 200
    xy_true, visible, points = true_correspondence(a, b, matches.xy_a)
    err = np.linalg.norm(xy_true - matches.xy_b, axis=1)
    assert visible.mean() > 0.99
    assert (err[visible] < 2.0).mean() > 0.99
    # Triangulated world points match the true surface points.
    assert matches.pts3d_a is not None and matches.pts3d_b is not None
    rel = np.linalg.norm(matches.pts3d_a - points, axis=1) / np.linalg.norm(points - a.camera.center, axis=1)
    assert np.median(rel) < 0.01
    assert np.all((matches.confidence > 0) & (matches.confidence <= 1))


def test_known_cameras_are_used_for_filtering(pair):
    """With a wrong pose for b, the epipolar check rejects most correct matches; without cameras it does not."""
    a, b = pair
    good = len(make_matcher("sift").match(a, b))
    w2c = b.camera.world_to_cam.copy()
    angle = np.deg2rad(4.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    w2c[:3, :3] = tilt @ w2c[:3, :3]
    wrong = Frame(image=b.image, name="b_wrong", camera=Camera(b.camera.K, w2c, b.width, b.height))
    assert len(make_matcher("sift").match(a, wrong)) < 0.1 * good
    ignoring = make_matcher("sift", {"use_cameras": False}).match(a, wrong)
    assert len(ignoring) > 0.8 * good and ignoring.pts3d_a is None


def test_epipolar_threshold_rejects_off_line_matches(pair):
    """Matches moved off their epipolar line are removed (outliers injected in b)."""
    a, b = pair
    matcher = make_matcher("sift")
    fa, fb = matcher.features(a), matcher.features(b)
    ia, ib, _ = matcher.putative(fa, fb)
    xy_a, xy_b = fa.xy[ia], fb.xy[ib].copy()
    keep_clean, _ = matcher.verify_with_cameras(a, b, xy_a, xy_b)
    shifted = xy_b + np.array([0.0, 6.0])  # epipolar lines here are far from vertical
    keep_shifted, _ = matcher.verify_with_cameras(a, b, xy_a, shifted)
    assert keep_clean.sum() > 200
    assert keep_shifted.sum() < 0.05 * keep_clean.sum()


def test_pure_rotation_uses_the_rotation_homography():
    eye = [0.0, 0.0, 0.0]
    a = render(look_at(eye, [0.0, 0.0, 6.0], 320, 240), "rot_a")
    b = render(look_at(eye, [0.8, 0.2, 6.0], 320, 240, roll_deg=5.0), "rot_b")
    matches = make_matcher("sift").match(a, b)
    assert len(matches) > 100 and matches.pts3d_a is None
    xy_true, visible, _ = true_correspondence(a, b, matches.xy_a)
    assert (np.linalg.norm(xy_true - matches.xy_b, axis=1)[visible] < 2.0).mean() > 0.99


def test_pixel_centre_convention():
    """Matching an image with its 2x-downscaled copy gives xy_b = xy_a / 2 only with centres at +0.5."""
    a, _ = stereo_pair(640, 480, with_box=False)
    small = cv2.resize(a.image, (320, 240), interpolation=cv2.INTER_AREA)
    matches = make_matcher("sift").match(Frame(image=a.image, name="big"), Frame(image=small, name="small"))
    assert len(matches) > 100
    offset = np.median(matches.xy_b - matches.xy_a / 2.0, axis=0)
    assert np.all(np.abs(offset) < 0.1), offset  # integer-centred keypoints would give -0.25


def test_different_sizes_with_cameras(pair):
    a, _ = pair
    big = render(look_at([0.5, 0.15, 0.3], [0.0, 0.1, 6.0], 480, 360, focal=400.0), "big")
    matches = make_matcher("sift").match(a, big)
    assert len(matches) > 150
    xy_true, visible, _ = true_correspondence(a, big, matches.xy_a)
    assert (np.linalg.norm(xy_true - matches.xy_b, axis=1)[visible] < 2.0).mean() > 0.99
    assert matches.xy_b[:, 0].max() > 320


def test_flann_and_brute_force_agree(pair):
    a, b = pair
    brute = make_matcher("sift", {"nn": "brute", "use_cameras": False}).match(a, b)
    flann = make_matcher("sift", {"nn": "flann", "flann_checks": 256, "use_cameras": False}).match(a, b)
    assert abs(len(brute) - len(flann)) < 0.05 * len(brute)


def test_textureless_images_give_no_matches():
    flat = Frame(image=np.full((120, 160, 3), 128, np.uint8), name="flat")
    matches = make_matcher("sift").match(flat, flat)
    assert isinstance(matches, Matches) and len(matches) == 0


def test_bad_images_and_cameras(pair, tmp_path):
    a, b = pair
    grey = Frame(image=a.image[..., 0], name="grey", file=tmp_path / "grey.png")
    with pytest.raises(InputError, match="grey.png.*RGB uint8"):
        make_matcher("sift").match(grey, b)
    floats = Frame(image=a.image.astype(np.float32), name="floats")
    with pytest.raises(InputError, match="floats"):
        make_matcher("sift").match(a, floats)
    mismatched = Frame(image=b.image[:200], name="cropped", camera=b.camera)
    with pytest.raises(InputError, match="camera is 320x240 but the image is 320x200"):
        make_matcher("sift").match(a, mismatched)


def test_features_of_a_frame_are_computed_once_along_a_sequence(pair):
    a, b = pair
    c = Frame(image=a.image.copy(), name="c", camera=a.camera)
    matcher = make_matcher("sift")
    calls = []
    compute = matcher._compute_features
    matcher._compute_features = lambda frame: calls.append(frame.name) or compute(frame)
    first = matcher.match(a, b)
    second = matcher.match(b, c)
    assert calls == [a.name, b.name, "c"]
    assert len(first) > 0 and len(second) > 0
    # A new image object is never served stale features, even under a reused name.
    b2 = Frame(image=np.ascontiguousarray(b.image[:, ::-1]), name=b.name, camera=b.camera)
    matcher.features(b2)
    assert calls[-1] == b.name and len(calls) == 4
