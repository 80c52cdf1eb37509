"""The capture's COLMAP model as 3D points of its frames: carried into the frames' world, refused when its
cameras are another reconstruction's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.sfm_points import attach_sfm_points
from mastsam_splat.io import load_scene
from mastsam_splat.io.colmap import read_sparse_model
from mastsam_splat.synthetic import make_scene
from mastsam_splat.synthetic.sfm import write_scene_sfm_model
from mastsam_splat.tracker.job import with_sfm_points
from mastsam_splat.types import Camera

pytest.importorskip("pycolmap")


@pytest.fixture(scope="module")
def scene_with_model(tmp_path_factory):
    root = make_scene(tmp_path_factory.mktemp("sfm") / "scene", frames=5, width=64, height=48, seed=2, max_points=600,
                      progress=False)
    write_scene_sfm_model(root)
    return root


def moved_world(camera: Camera, scale: float, rotation: np.ndarray, shift: np.ndarray) -> Camera:
    """The same view in a world moved by ``x -> scale * rotation @ x + shift``."""
    w2c = np.eye(4)
    r = camera.world_to_cam[:3, :3] @ rotation.T
    w2c[:3, :3] = r
    w2c[:3, 3] = scale * camera.world_to_cam[:3, 3] - r @ shift
    return replace(camera, world_to_cam=w2c)


def test_points_land_on_their_pixels_in_the_frames_world(scene_with_model):
    """The dataset's cameras live in a world rotated, scaled and shifted from the model's (as Nerfstudio's
    dataparsers leave it): the attached points are in the frames' world and project onto their keypoints."""
    scene = load_scene(scene_with_model)
    model = read_sparse_model(scene_with_model / "sparse" / "0")
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    frames = [replace(f, camera=moved_world(f.camera, 0.25, rotation, np.array([1.0, -2.0, 3.0]))) for f in scene.frames]
    attached = attach_sfm_points(frames, model)
    total = 0
    assert sum(len(f.observed) > 0 for f in attached) >= 3
    for frame in attached:
        xy, z = frame.camera.project(frame.observed.xyz)
        assert (z > 0).all()
        np.testing.assert_allclose(xy, frame.observed.xy, atol=1e-3)
        np.testing.assert_allclose(
            frame.observed.xyz, 0.25 * model.points[frame.observed.point] @ rotation.T + [1.0, -2.0, 3.0], atol=1e-6
        )
        total += len(frame.observed)
    assert total == len(model.track_point)
    assert all(f.observed is None for f in frames)  # the input frames are left as they were


def test_a_model_of_another_reconstruction_is_refused(scene_with_model):
    scene = load_scene(scene_with_model)
    model = read_sparse_model(scene_with_model / "sparse" / "0")
    cameras = [f.camera for f in scene.frames]
    frames = [replace(f, camera=cameras[(i + 2) % len(cameras)]) for i, f in enumerate(scene.frames)]
    with pytest.raises(InputError) as err:
        attach_sfm_points(frames, model)
    assert "do not match the dataset's poses" in str(err.value) and "images" in str(err.value)


def test_frames_without_cameras_are_left_as_they_are(scene_with_model):
    scene = load_scene(scene_with_model)
    frames = [replace(f, camera=None) for f in scene.frames]
    attached = attach_sfm_points(frames, read_sparse_model(scene_with_model / "sparse" / "0"))
    assert all(f.observed is None for f in attached)


def test_the_tracker_job_attaches_the_dataset_model_for_its_point_sources(scene_with_model, tmp_path):
    frames = load_scene(scene_with_model).frames
    assert all(f.observed is not None for f in with_sfm_points(frames, scene_with_model, "auto"))
    assert all(f.observed is None for f in with_sfm_points(frames, scene_with_model, "depth"))
    assert all(f.observed is None for f in with_sfm_points(frames, tmp_path, "auto"))
    with pytest.raises(InputError, match="needs a COLMAP model"):
        with_sfm_points(frames, tmp_path, "sfm")


def test_mastsam_track_refuses_a_model_of_another_reconstruction_before_tracking(
    scene_with_model, tmp_path, capsys, monkeypatch
):
    """A dataset whose ``sparse/0`` was made for other poses: one error naming the model's file, nothing written."""
    import json
    import shutil

    from support.faults import run_mastsam

    data = tmp_path / "scene"
    shutil.copytree(scene_with_model, data)
    transforms = json.loads((data / "transforms.json").read_text())
    poses = [f["transform_matrix"] for f in transforms["frames"]]
    for i, frame in enumerate(transforms["frames"]):
        frame["transform_matrix"] = poses[(i + 2) % len(poses)]
    (data / "transforms.json").write_text(json.dumps(transforms))
    out = tmp_path / "out"
    outcome = run_mastsam(["track", "--data", data, "--output-dir", out, "--matcher", "sift"], capsys, monkeypatch)
    assert outcome.code != 0 and not outcome.crash
    assert any("do not match the dataset's poses" in line and "images." in line for line in outcome.error_lines)
    assert not out.exists() or not any(out.iterdir())
