"""Label PNG and tracks.json round trips, validation and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import atomic_path, read_label_image, read_tracks, write_label_image, write_tracks
from mastsam_splat.io.labels import map_ids
from mastsam_splat.io.tracks import object_map, summarize_objects


def test_label_round_trip_keeps_uint16_ids(tmp_path: Path) -> None:
    labels = np.random.default_rng(0).integers(0, 70000 // 2, (17, 23)).astype(np.uint16)
    labels[0, 0] = 65535
    path = write_label_image(tmp_path / "masks" / "frame_0.png", labels)
    back = read_label_image(path, expected_shape=(17, 23))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    assert [p.name for p in (tmp_path / "masks").iterdir()] == ["frame_0.png"]


def test_label_of_wrong_size(tmp_path: Path) -> None:
    path = write_label_image(tmp_path / "a.png", np.zeros((4, 5), np.uint16))
    with pytest.raises(InputError, match=r"a\.png.*5x4 but its frame is 6x4"):
        read_label_image(path, expected_shape=(4, 6))


def test_label_of_wrong_dtype_or_channels(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="single-channel"):
        read_label_image(tmp_path / "rgb.png")
    cv2.imwrite(str(tmp_path / "float.tiff"), np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="unsigned"):
        read_label_image(tmp_path / "float.tiff")


def test_negative_labels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_label_image(tmp_path / "a.png", -np.ones((3, 3), np.int32))
    assert not list(tmp_path.iterdir())


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not list(tmp_path.iterdir())


def test_tracks_round_trip_and_summary(tmp_path: Path) -> None:
    maps = [np.array([[0, 1], [2, 2]], np.uint16), np.array([[1, 1], [0, 3]], np.uint16)]
    objects = summarize_objects(maps)
    assert objects == [
        {"id": 1, "first_frame": 0, "last_frame": 1, "num_frames": 2, "area_px": 3},
        {"id": 2, "first_frame": 0, "last_frame": 0, "num_frames": 1, "area_px": 2},
        {"id": 3, "first_frame": 1, "last_frame": 1, "num_frames": 1, "area_px": 1},
    ]
    frames = [{"name": f"f{i}", "file": f"images/f{i}.png", "width": 2, "height": 2} for i in range(2)]
    path = write_tracks(tmp_path / "tracks.json", frames, objects, {"mode": "mastsam", "k": np.int64(3)}, {"total_s": 1.5})
    data = read_tracks(path)
    assert data["version"] == 1 and data["frames"] == frames and data["objects"] == objects
    assert data["config"] == {"mode": "mastsam", "k": 3} and data["timing"] == {"total_s": 1.5}


def test_tracks_object_level_round_trip(tmp_path: Path) -> None:
    maps = [np.array([[0, 1], [2, 3]], np.uint16)]
    objects = summarize_objects(maps, {3: 1})
    assert [(o["id"], o["object"]) for o in objects] == [(1, 1), (2, 2), (3, 1)]
    frames = [{"name": "f0", "file": None, "width": 2, "height": 2}]
    data = read_tracks(write_tracks(tmp_path / "tracks.json", frames, objects, {}, {}))
    assert object_map(data) == {3: 1}
    assert object_map({"objects": summarize_objects(maps)}) == {}
    assert map_ids(maps, object_map(data))[0].tolist() == [[0, 1], [2, 1]]


def test_tracks_bad_input(tmp_path: Path) -> None:
    (tmp_path / "tracks.json").write_text("[1, 2")
    with pytest.raises(InputError, match="not valid JSON"):
        read_tracks(tmp_path / "tracks.json")
    (tmp_path / "tracks.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(InputError, match="version"):
        read_tracks(tmp_path / "tracks.json")
    with pytest.raises(ValueError, match="height"):
        write_tracks(tmp_path / "t2.json", [{"name": "a", "file": "a", "width": 1}], [], {}, {})
    assert not (tmp_path / "t2.json").exists()


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    path = write_label_image(tmp_path / "a.png", np.zeros((2, 2), np.uint16))
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
