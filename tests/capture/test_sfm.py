"""SfM on a wide-baseline synthetic orbit: registration, accuracy, and the fold check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
import pytest
from support.capture_scenes import CAPTURE_HEIGHT, CAPTURE_WIDTH

from mastsam_splat.capture.consistency import model_support
from mastsam_splat.capture.sfm import run_sfm
from mastsam_splat.geometry.similarity import pose_errors
from mastsam_splat.io.scene import load_scene
from mastsam_splat.synthetic import make_scene
from mastsam_splat.types import Camera

WIDE_ORBIT_FRAMES = 24
"""Views 15 degrees apart: neighbours share a few dozen verified matches."""


@pytest.fixture(scope="module")
def wide_orbit(tmp_path_factory) -> tuple[Path, Path, object]:
    """(scene, SfM work folder, SfM result) of the 24-view orbit."""
    root = tmp_path_factory.mktemp("wide_orbit")
    scene = make_scene(root / "scene", WIDE_ORBIT_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, 0, "orbit", progress=False)
    names = sorted(p.name for p in (scene / "images").iterdir())
    work = root / "sfm"
    work.mkdir()
    result = run_sfm(scene / "images", names, (CAPTURE_WIDTH, CAPTURE_HEIGHT), work, progress=False)
    return scene, work, result


def _cameras(reconstruction) -> dict[str, Camera]:
    out = {}
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.images[image_id]
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        camera = reconstruction.cameras[image.camera_id]
        out[Path(image.name).stem] = Camera(camera.calibration_matrix(), w2c, camera.width, camera.height)
    return out


@pytest.mark.slow
def test_wide_baseline_orbit_registers_with_sub_degree_errors(wide_orbit):
    scene, _, result = wide_orbit
    assert len(result.registered) >= 0.95 * WIDE_ORBIT_FRAMES
    truth = {frame.name: frame.camera for frame in load_scene(scene).frames}
    estimated = _cameras(result.reconstruction)
    errors = pose_errors(list(estimated.values()), [truth[n] for n in estimated])
    assert errors.median_rotation_deg <= 1.0
    assert errors.median_centre_fraction <= 0.01


@pytest.mark.slow
def test_a_misplaced_camera_contradicts_its_verified_pairs(wide_orbit):
    _, work, result = wide_orbit
    model = result.reconstruction
    before = model_support(work / "database.db", model)
    assert before.contradicted_fraction <= 0.01
    image = model.images[model.reg_image_ids()[WIDE_ORBIT_FRAMES // 2]]
    pose = image.cam_from_world()
    turn = pycolmap.Rotation3d(np.array([0.0, 0.0, np.sin(np.radians(15)), np.cos(np.radians(15))]))
    frame = model.frames[image.frame_id]
    frame.rig_from_world = pycolmap.Rigid3d(turn * pose.rotation, pose.translation)
    after = model_support(work / "database.db", model)
    assert after.contradicted > before.contradicted
    assert after.explained < before.explained
