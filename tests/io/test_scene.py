"""Scene loading from Nerfstudio datasets, image folders and videos, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene
from mastsam_splat.types import Camera

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def _write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[:, :, ::-1])


def _image(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _look_at_c2w_opengl(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, -forward, eye
    return c2w


def _make_dataset(root: Path, n: int = 3, per_frame_intrinsics: bool = False) -> dict:
    frames = []
    for i in range(n):
        _write_rgb(root / "images" / f"f{i:02d}.png", _image(i))
        depth = np.full((24, 32), 2000 + i, np.uint16)
        (root / "depth").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "depth" / f"f{i:02d}.png"), depth)
        c2w = _look_at_c2w_opengl(np.array([3.0 * np.cos(i), 3.0 * np.sin(i), 1.0]), np.zeros(3))
        entry = {"file_path": f"images/f{i:02d}.png", "transform_matrix": c2w.tolist(), "depth_file_path": f"depth/f{i:02d}.png"}
        if per_frame_intrinsics:
            entry.update({"fl_x": 30.0 + i, "fl_y": 30.0 + i, "cx": 16.0, "cy": 12.0, "w": 32, "h": 24})
        frames.append(entry)
    meta = {"camera_model": "OPENCV", "frames": frames[::-1]}  # unsorted on purpose
    if not per_frame_intrinsics:
        meta.update({"fl_x": 30.0, "fl_y": 31.0, "cx": 16.0, "cy": 12.0, "w": 32, "h": 24})
    (root / "transforms.json").write_text(json.dumps(meta))
    return meta


def test_nerfstudio_dataset_loads_sorted_with_cameras_and_depth(tmp_path: Path) -> None:
    meta = _make_dataset(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.kind == "nerfstudio" and len(scene) == 3
    assert [f.name for f in scene.frames] == ["f00", "f01", "f02"]
    frame = scene.frames[1]
    assert frame.image.shape == (24, 32, 3) and frame.image.dtype == np.uint8
    np.testing.assert_array_equal(frame.image, _image(1))
    np.testing.assert_allclose(frame.depth, 2.001, atol=1e-6)
    # OpenGL transform_matrix round-trips through the OpenCV camera.
    c2w = np.array(next(f for f in meta["frames"] if f["file_path"].endswith("f01.png"))["transform_matrix"])
    np.testing.assert_allclose(frame.camera.opengl_c2w(), c2w, atol=1e-9)
    np.testing.assert_allclose(frame.camera.K, [[30, 0, 16], [0, 31, 12], [0, 0, 1]])
    # The camera looks at the origin: it projects to the principal point, in front of the camera.
    xy, z = frame.camera.project(np.zeros((1, 3)))
    np.testing.assert_allclose(xy[0], [16.0, 12.0], atol=1e-9)
    assert z[0] > 0


def test_per_frame_intrinsics_and_transforms_file_path(tmp_path: Path) -> None:
    _make_dataset(tmp_path, per_frame_intrinsics=True)
    scene = load_scene(tmp_path / "transforms.json")
    assert [f.camera.K[0, 0] for f in scene.frames] == [30.0, 31.0, 32.0]


def test_stride_and_max_frames(tmp_path: Path) -> None:
    _make_dataset(tmp_path, n=5)
    scene = load_scene(tmp_path, stride=2, max_frames=2)
    assert [f.name for f in scene.frames] == ["f00", "f02"]
    assert [f.index for f in scene.frames] == [0, 1]


def test_unproject_inverts_project() -> None:
    cam = Camera.from_opengl_c2w(_look_at_c2w_opengl(np.array([2.0, -1.0, 1.5]), np.zeros(3)),
                                 np.array([[50.0, 0, 20], [0, 50.0, 15], [0, 0, 1]]), 40, 30)
    pts = np.random.default_rng(0).normal(size=(20, 3)) * 0.3
    xy, z = cam.project(pts)
    np.testing.assert_allclose(cam.unproject(xy, z), pts, atol=1e-9)


def test_image_folder_sorted_and_nested_images_dir(tmp_path: Path) -> None:
    for name, seed in [("b.png", 1), ("a.jpg", 2), ("c.png", 3)]:
        _write_rgb(tmp_path / "images" / name, _image(seed))
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    scene = load_scene(tmp_path)
    assert scene.kind == "images"
    assert [f.name for f in scene.frames] == ["a", "b", "c"]
    assert scene.frames[0].camera is None


def test_video_stride_and_max_frames(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(10):
        writer.write(np.full((24, 32, 3), i * 20, np.uint8))
    writer.release()
    scene = load_scene(video, stride=3, max_frames=3)
    assert scene.kind == "video"
    assert [f.name for f in scene.frames] == ["frame_00000", "frame_00003", "frame_00006"]
    assert abs(int(scene.frames[1].image.mean()) - 60) <= 3


@pytest.mark.skipif(not (OPENCV_DATA / "vtest.avi").exists(), reason="opencv-doc not installed")
def test_real_video_loads() -> None:
    scene = load_scene(OPENCV_DATA / "vtest.avi", stride=10, max_frames=4)
    assert len(scene) == 4 and scene.frames[0].image.shape[2] == 3


# ---- bad input: one clear InputError naming the file ----


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_scene(tmp_path / "nope")


def test_corrupt_transforms(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(InputError, match=r"transforms\.json.*not valid JSON"):
        load_scene(tmp_path)


def test_transforms_without_frames(tmp_path: Path) -> None:
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 1.0}))
    with pytest.raises(InputError, match="frames"):
        load_scene(tmp_path)


def test_transforms_frame_without_matrix(tmp_path: Path) -> None:
    _write_rgb(tmp_path / "a.png", _image(0))
    (tmp_path / "transforms.json").write_text(json.dumps({"fl_x": 10.0, "frames": [{"file_path": "a.png"}]}))
    with pytest.raises(InputError, match="transform_matrix"):
        load_scene(tmp_path)


def test_image_that_does_not_decode(tmp_path: Path) -> None:
    _write_rgb(tmp_path / "a.png", _image(0))
    (tmp_path / "b.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=r"b\.png.*could not be decoded"):
        load_scene(tmp_path)


def test_frames_of_different_sizes(tmp_path: Path) -> None:
    _write_rgb(tmp_path / "a.png", _image(0))
    _write_rgb(tmp_path / "b.png", _image(1, h=20))
    with pytest.raises(InputError, match=r"b\.png.*same size"):
        load_scene(tmp_path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images found"):
        load_scene(tmp_path)


def test_unreadable_video(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(InputError, match=r"broken\.mp4"):
        load_scene(bad)


def test_depth_of_wrong_size(tmp_path: Path) -> None:
    _make_dataset(tmp_path, n=2)
    cv2.imwrite(str(tmp_path / "depth" / "f01.png"), np.zeros((5, 5), np.uint16))
    with pytest.raises(InputError, match=r"f01\.png.*depth map is 5x5"):
        load_scene(tmp_path)
