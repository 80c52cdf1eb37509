"""transforms.json field types, truncated images and short videos are refused before any work, naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene


def _image(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _dataset(root: Path, n: int = 4, suffix: str = ".png") -> dict:
    (root / "images").mkdir(parents=True)
    frames = []
    for i in range(n):
        assert cv2.imwrite(str(root / "images" / f"f{i}{suffix}"), _image(i))
        c2w = np.eye(4)
        c2w[0, 3] = 0.1 * i
        frames.append({"file_path": f"images/f{i}{suffix}", "transform_matrix": c2w.tolist()})
    meta = {"fl_x": 30.0, "fl_y": 30.0, "cx": 16.0, "cy": 12.0, "w": 32, "h": 24, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return meta


def _rewrite(root: Path, meta: dict) -> None:
    (root / "transforms.json").write_text(json.dumps(meta))


def test_valid_dataset_still_loads(tmp_path: Path) -> None:
    _dataset(tmp_path)
    assert len(load_scene(tmp_path)) == 4


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda m: m["frames"][2].update(file_path=7), r"frame 2: 'file_path' must be a string \(a path\), got 7"),
        (lambda m: m["frames"][3].pop("file_path"), r"frame 3 has no 'file_path'"),
        (lambda m: m.update(fl_x="30"), r"'fl_x' must be a number, got '30'"),
        (lambda m: m["frames"][1].update(fl_y="wide"), r"frame 1: 'fl_y' must be a number, got 'wide'"),
        (lambda m: m.update(cx=math.nan), r"'cx' must be a finite number, got nan"),
        (lambda m: m.update(w=True), r"'w' must be a number, got True"),
        (lambda m: m.update(h=-24), r"'h' must be positive, got -24"),
        (
            lambda m: m["frames"][2]["transform_matrix"][1].__setitem__(3, math.nan),
            "frame 2: 'transform_matrix'.*finite",
        ),
        (
            lambda m: m["frames"][0]["transform_matrix"][0].__setitem__(0, math.inf),
            "frame 0: 'transform_matrix'.*finite",
        ),
        (lambda m: m["frames"][1].update(transform_matrix="eye"), r"frame 1: 'transform_matrix' must be"),
        (lambda m: m["frames"][3].pop("transform_matrix"), r"frame 3 has no 'transform_matrix'"),
        (lambda m: m["frames"][1].update(depth_file_path=3), r"frame 1: 'depth_file_path' must be a string"),
        (lambda m: m.update(depth_unit_scale_factor="mm"), r"'depth_unit_scale_factor' must be a number"),
    ],
)
def test_bad_field_types_name_the_frame_of_the_file(tmp_path: Path, edit, expected: str) -> None:
    meta = _dataset(tmp_path)
    edit(meta)
    _rewrite(tmp_path, meta)
    with pytest.raises(InputError, match=expected) as info:
        load_scene(tmp_path)
    assert info.value.path == tmp_path / "transforms.json"
    from mastsam_splat.io.scene import check_transforms

    with pytest.raises(InputError, match=expected):
        check_transforms(json.loads((tmp_path / "transforms.json").read_text()), tmp_path / "transforms.json")


def test_missing_file_path_reports_its_own_index_when_frames_are_unsorted(tmp_path: Path) -> None:
    meta = _dataset(tmp_path)
    meta["frames"] = [meta["frames"][i] for i in (2, 0, 3, 1)]
    meta["frames"][3].pop("file_path")
    _rewrite(tmp_path, meta)
    with pytest.raises(InputError, match=r"frame 3 has no 'file_path'"):
        load_scene(tmp_path)


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_is_refused_naming_the_file(tmp_path: Path, suffix: str) -> None:
    _dataset(tmp_path, suffix=suffix)
    bad = tmp_path / "images" / f"f2{suffix}"
    _truncate(bad)
    with pytest.raises(InputError, match="truncated") as info:
        load_scene(tmp_path)
    assert info.value.path == bad
    from mastsam_splat.io.images import check_image_file

    with pytest.raises(InputError, match="truncated"):
        check_image_file(bad)


def test_truncated_jpeg_in_an_image_folder(tmp_path: Path) -> None:
    for i in range(3):
        assert cv2.imwrite(str(tmp_path / f"{i}.jpg"), _image(i))
    _truncate(tmp_path / "1.jpg", 0.6)
    with pytest.raises(InputError, match="truncated") as info:
        load_scene(tmp_path)
    assert info.value.path == tmp_path / "1.jpg"


def test_complete_jpeg_with_trailing_bytes_and_thumbnail_markers_is_accepted(tmp_path: Path) -> None:
    from mastsam_splat.io.images import check_image_file, read_image_file

    ok, data = cv2.imencode(".jpg", _image(0))
    path = tmp_path / "a.jpg"
    path.write_bytes(data.tobytes() + b"\x00\x00")
    check_image_file(path)
    assert read_image_file(path).shape == (24, 32, 3)


def _video(path: Path, frames: int = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 24))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_image(i))
    writer.release()
    return path


def test_video_that_ends_before_its_frame_count_is_refused(tmp_path: Path) -> None:
    path = _video(tmp_path / "clip.avi")
    assert len(load_scene(path)) == 10
    _truncate(path)
    with pytest.raises(InputError, match=r"reports 10 frames but only \d+ could be decoded") as info:
        load_scene(path)
    assert info.value.path == path
    assert len(load_scene(path, max_frames=2)) == 2  # the frames asked for are all there
