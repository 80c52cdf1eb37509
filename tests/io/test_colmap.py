"""COLMAP sparse models: finding, reading (binary and text), validation and matching to frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import (
    find_sparse_model,
    read_sparse_model,
    tracks_in_frames,
    write_sparse_model,
)
from mastsam_splat.types import Camera, Frame

pytest.importorskip("pycolmap")

W, H = 40, 30


def camera(tx: float) -> Camera:
    K = np.array([[50.0, 0.0, 20.0], [0.0, 52.0, 15.0], [0.0, 0.0, 1.0]])
    pose = np.eye(4)
    pose[:3, 3] = (tx, 0.0, 0.0)
    return Camera(K=K, world_to_cam=pose, width=W, height=H)


NAMES = ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
CAMERAS = [camera(0.0), camera(-0.5), camera(-1.0)]
POINTS = np.array([[0.0, 0.0, 2.0], [0.5, 0.1, 3.0], [1.0, -0.2, 2.5]])
# Flat tracks: point, image, keypoint.
TRACK_POINT = np.array([0, 0, 1, 1, 1, 2, 2])
TRACK_IMAGE = np.array([0, 1, 0, 1, 2, 1, 2])
TRACK_XY = np.array([[1.5, 2.5], [3.25, 4.0], [10.0, 11.0], [12.0, 13.0], [14.0, 15.5], [20.0, 21.0], [22.0, 23.0]])


def write_model(folder: Path, binary: bool = True, names: list[str] = NAMES) -> Path:
    return write_sparse_model(folder, names, CAMERAS, POINTS, TRACK_POINT, TRACK_IMAGE, TRACK_XY, binary=binary)


def frames(names: list[str] = NAMES, size: tuple[int, int] = (H, W)) -> list[Frame]:
    image = np.zeros((*size, 3), dtype=np.uint8)
    return [Frame(image=image, name=Path(n).stem, index=i, file=Path("/data/images") / n) for i, n in enumerate(names)]


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip(tmp_path: Path, binary: bool) -> None:
    folder = write_model(tmp_path / "sparse" / "0", binary=binary)
    assert (folder / ("images.bin" if binary else "images.txt")).is_file()
    model = read_sparse_model(folder)
    assert model.image_names == NAMES
    assert model.num_points == 3
    for got, want in zip(model.cameras, CAMERAS):
        np.testing.assert_allclose(got.K, want.K)
        np.testing.assert_allclose(got.world_to_cam, want.world_to_cam, atol=1e-12)
        assert (got.width, got.height) == (W, H)
    np.testing.assert_allclose(model.points, POINTS)
    order = np.lexsort((model.track_image, model.track_point))
    np.testing.assert_array_equal(model.track_point[order], TRACK_POINT)
    np.testing.assert_array_equal(model.track_image[order], TRACK_IMAGE)
    np.testing.assert_allclose(model.track_xy[order], TRACK_XY)
    images, xy = model.track(1)
    np.testing.assert_array_equal(np.sort(images), [0, 1, 2])
    assert model.views()["frame_00001.png"] is model.cameras[1]


def test_find_model(tmp_path: Path) -> None:
    assert find_sparse_model(tmp_path) is None
    colmap = write_model(tmp_path / "colmap" / "sparse" / "0", binary=False)
    assert find_sparse_model(tmp_path) == colmap
    sparse = write_model(tmp_path / "sparse" / "0")
    assert find_sparse_model(tmp_path) == sparse
    assert find_sparse_model(tmp_path, given=colmap) == colmap
    assert find_sparse_model(tmp_path / "elsewhere", given=tmp_path) == sparse
    with pytest.raises(InputError, match="not found"):
        find_sparse_model(tmp_path, given=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a COLMAP model folder") as info:
        find_sparse_model(tmp_path, given=tmp_path / "empty")
    assert info.value.path == tmp_path / "empty"


@pytest.mark.parametrize("binary", [True, False])
def test_empty_model(tmp_path: Path, binary: bool) -> None:
    folder = write_sparse_model(
        tmp_path / "m", NAMES, CAMERAS, np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros((0, 2)), binary=binary
    )
    with pytest.raises(InputError, match="no 3D points") as info:
        read_sparse_model(folder)
    assert info.value.path.name == ("points3D.bin" if binary else "points3D.txt")
    folder = write_sparse_model(tmp_path / "n", [], [], np.zeros((0, 3)), [], [], np.zeros((0, 2)), binary=binary)
    with pytest.raises(InputError, match="no images"):
        read_sparse_model(folder)


@pytest.mark.parametrize("binary", [True, False])
def test_point_without_observations(tmp_path: Path, binary: bool) -> None:
    points = np.concatenate([POINTS, [[0.0, 0.0, 5.0]]])
    folder = write_sparse_model(
        tmp_path / "m", NAMES, CAMERAS, points, TRACK_POINT, TRACK_IMAGE, TRACK_XY, binary=binary
    )
    with pytest.raises(InputError, match="point 4 has no observations") as info:
        read_sparse_model(folder)
    assert info.value.path == folder / ("points3D.bin" if binary else "points3D.txt")


def test_unreadable_model(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m")
    (folder / "points3D.bin").write_bytes(b"\x07garbage")
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        read_sparse_model(folder)
    assert info.value.path == folder / "points3D.bin"
    data = (folder / "images.bin").read_bytes()
    (folder / "images.bin").write_bytes(data[: len(data) // 2])
    (folder / "points3D.bin").write_bytes(b"")
    with pytest.raises(InputError, match="truncated"):
        read_sparse_model(folder)
    text = write_model(tmp_path / "t", binary=False)
    (text / "images.txt").write_text("1 2 3\nnot numbers at all\n")
    with pytest.raises(InputError, match="could not be read"):
        read_sparse_model(text)


def test_tracks_in_frames(tmp_path: Path) -> None:
    model = read_sparse_model(write_model(tmp_path / "m"))
    tracks = tracks_in_frames(model, frames())
    assert tracks.num_frames == 3 and tracks.frames_in_model == 3
    order = np.lexsort((tracks.frame, tracks.point))
    np.testing.assert_array_equal(tracks.frame[order], TRACK_IMAGE)
    np.testing.assert_allclose(tracks.xy[order], TRACK_XY)
    # Frames in another order: observations follow the frames by file name.
    shuffled = tracks_in_frames(model, frames([NAMES[2], NAMES[0], NAMES[1]]))
    order = np.lexsort((shuffled.xy[:, 0], shuffled.point))
    np.testing.assert_array_equal(shuffled.frame[order], np.array([1, 2, 0])[TRACK_IMAGE])
    # A model of full-resolution images scored on half-resolution frames.
    half = tracks_in_frames(model, frames(size=(H // 2, W // 2)))
    np.testing.assert_allclose(np.sort(half.xy[:, 0]), np.sort(TRACK_XY[:, 0]) / 2)


def test_model_images_in_subfolder_match_by_file_name(tmp_path: Path) -> None:
    model = read_sparse_model(write_model(tmp_path / "m", names=[f"images/{n}" for n in NAMES]))
    assert tracks_in_frames(model, frames()).frames_in_model == 3


def test_mismatched_names(tmp_path: Path) -> None:
    model = read_sparse_model(write_model(tmp_path / "m", names=["a.jpg", "b.jpg", "c.jpg"]))
    with pytest.raises(InputError, match="'a.jpg'.*not frames of the dataset") as info:
        tracks_in_frames(model, frames())
    assert info.value.path == tmp_path / "m" / "images.bin"
    with pytest.raises(InputError, match="not frames of the dataset"):
        tracks_in_frames(model, frames(), subset=True)


def test_model_with_more_images_than_frames(tmp_path: Path) -> None:
    model = read_sparse_model(write_model(tmp_path / "m"))
    with pytest.raises(InputError, match="'frame_00002.png' are not frames"):
        tracks_in_frames(model, frames(NAMES[:2]))
    tracks = tracks_in_frames(model, frames(NAMES[:2]), subset=True)
    assert tracks.frames_in_model == 2 and set(tracks.frame.tolist()) == {0, 1}
    assert len(tracks.frame) == int(np.count_nonzero(TRACK_IMAGE < 2))


def test_frame_size_of_another_aspect(tmp_path: Path) -> None:
    model = read_sparse_model(write_model(tmp_path / "m"))
    with pytest.raises(InputError, match="40x30 in the COLMAP model but the frame is 40x40"):
        tracks_in_frames(model, frames(size=(40, 40)))
