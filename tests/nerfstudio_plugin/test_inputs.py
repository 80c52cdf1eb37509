"""Inputs ``ns-train mastsam-splat --data`` accepts: each kind becomes (or is) a Nerfstudio dataset."""

from __future__ import annotations

import json
import math
import shutil

import cv2
import numpy as np
import pytest
from support.capture_scenes import CAPTURE_FRAMES, CAPTURE_HEIGHT, CAPTURE_WIDTH, photo_folder

from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import find_sparse_model, read_sparse_model, tracks_in_frames
from mastsam_splat.io.scene import load_scene
from mastsam_splat.synthetic import make_scene
from mastsam_splat.synthetic.sfm import write_scene_sfm_model
from nerfstudio_plugin.inputs import CACHE_NAME, input_kind, training_dataset


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    out = tmp_path_factory.mktemp("inputs_walk") / "scene"
    return make_scene(out, CAPTURE_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0, trajectory="forward", progress=False)


def _camera_centres(root):
    return np.stack([f.camera.center for f in load_scene(root).frames])


def _colmap_project(scene, folder):
    shutil.copytree(scene / "images", folder / "images")
    write_scene_sfm_model(scene, folder / "sparse" / "0")
    return folder


def test_a_nerfstudio_dataset_is_used_as_is(tiny_scene):
    assert input_kind(tiny_scene)[0] == "nerfstudio"
    assert training_dataset(tiny_scene, log=lambda m: None) == tiny_scene
    assert not (tiny_scene / CACHE_NAME).exists()


def test_instant_ngp_transforms(tmp_path, tiny_scene):
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    ngp = tmp_path / "ngp"
    shutil.copytree(tiny_scene / "images", ngp / "train")
    (ngp / "train" / "frame_00004.png").unlink()
    frames = [
        {"file_path": f"./train/{f['file_path'].split('/')[-1][:-4]}", "transform_matrix": f["transform_matrix"]}
        for f in meta["frames"]
    ]
    angle = 2 * math.atan(0.5 * meta["w"] / meta["fl_x"])
    (ngp / "transforms.json").write_text(json.dumps({"camera_angle_x": angle, "frames": frames}))
    assert input_kind(ngp)[0] == "instant-ngp"
    messages: list[str] = []
    dataset = training_dataset(ngp, log=messages.append)
    assert dataset == ngp / CACHE_NAME
    warned = [m for m in messages if m.startswith("warning")]
    assert len(warned) == 1 and "frame_00004" in warned[0]
    converted = load_scene(dataset)
    assert len(converted.frames) == len(meta["frames"]) - 1
    assert converted.frames[0].camera.K[0, 0] == pytest.approx(meta["fl_x"])
    original = {f.name: f.camera.center for f in load_scene(tiny_scene).frames}
    for frame in converted.frames:
        assert np.allclose(frame.camera.center, original[frame.name])
    assert (dataset / "images_2" / "frame_00000.png").is_file()
    # A second run reuses the converted dataset.
    messages.clear()
    assert training_dataset(ngp, log=messages.append) == dataset
    assert "reusing" in messages[0]


def test_colmap_project(tmp_path, tiny_scene):
    project = _colmap_project(tiny_scene, tmp_path / "project")
    assert input_kind(project)[0] == "colmap"
    dataset = training_dataset(project, log=lambda m: None)
    assert np.allclose(_camera_centres(dataset), _camera_centres(tiny_scene))
    model = read_sparse_model(find_sparse_model(dataset))
    tracks = tracks_in_frames(model, load_scene(dataset).frames)
    assert tracks.frames_in_model == len(model.image_names)


def test_colmap_project_with_a_wrong_image_size(tmp_path, tiny_scene):
    project = _colmap_project(tiny_scene, tmp_path / "project")
    cv2.imwrite(str(project / "images" / "frame_00002.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="frame_00002.png is 10x10, its camera 64x48"):
        training_dataset(project, log=lambda m: None)
    assert not (project / CACHE_NAME).exists()
    assert not [p for p in project.iterdir() if p.name.startswith(".")]


def test_a_folder_of_photos_is_prepared_once(tmp_path, walk):
    photos = photo_folder(walk, tmp_path / "photos")
    assert input_kind(photos)[0] == "images"
    messages: list[str] = []
    dataset = training_dataset(photos, log=messages.append)
    assert dataset == photos / CACHE_NAME
    assert len(load_scene(dataset).frames) >= 0.95 * CAPTURE_FRAMES
    messages.clear()
    assert training_dataset(photos, log=messages.append) == dataset
    assert "reusing" in messages[0]


@pytest.mark.slow
def test_a_video_is_prepared(tmp_path, walk):
    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (CAPTURE_WIDTH, CAPTURE_HEIGHT))
    for image in sorted((walk / "images").glob("*.png")):
        writer.write(cv2.imread(str(image)))
    writer.release()
    assert input_kind(video)[0] == "video"
    dataset = training_dataset(video, log=lambda m: None)
    assert dataset == tmp_path / f"walk.avi.{CACHE_NAME}"
    assert len(load_scene(dataset).frames) >= 0.95 * CAPTURE_FRAMES


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="not a Nerfstudio dataset .*nor a folder of photos"):
        input_kind(tmp_path)
