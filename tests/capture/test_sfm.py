"""SfM on a wide-baseline synthetic orbit: registration, accuracy, the fold check, and the rule
that repeats mapping until two runs agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
import pytest
from support.capture_scenes import CAPTURE_HEIGHT, CAPTURE_WIDTH

from mastsam_splat.capture import sfm
from mastsam_splat.capture.consistency import Support, model_support
from mastsam_splat.capture.sfm import MappingRun, SfmOptions, run_sfm, runs_agree
from mastsam_splat.geometry.similarity import pose_errors
from mastsam_splat.io.scene import load_scene
from mastsam_splat.synthetic import make_scene
from mastsam_splat.types import Camera

WIDE_ORBIT_FRAMES = 24
"""Views 15 degrees apart: neighbours share a few dozen verified matches."""
FORWARD_FRAMES = 24
ONE_THREAD = SfmOptions(num_threads=1)
"""pycolmap's multi-threaded extraction, matching and mapping give another model from run to run (on a busy
machine now and then a wide-baseline orbit registers half its views); with one thread the model repeats exactly."""


@pytest.fixture(scope="module")
def wide_orbit(tmp_path_factory) -> tuple[Path, Path, object]:
    """(scene, SfM work folder, SfM result) of the 24-view orbit."""
    root = tmp_path_factory.mktemp("wide_orbit")
    scene = make_scene(root / "scene", WIDE_ORBIT_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, 0, "orbit", progress=False)
    names = sorted(p.name for p in (scene / "images").iterdir())
    work = root / "sfm"
    work.mkdir()
    result = run_sfm(scene / "images", names, (CAPTURE_WIDTH, CAPTURE_HEIGHT), work, ONE_THREAD, progress=False)
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
def test_forward_walk_over_a_checkerboard_does_not_fold(tmp_path):
    """24 frames whose later views mostly see the flat, periodic ground: incremental mapping
    folded there in most runs before mapping was repeated until two runs agree."""
    scene = make_scene(tmp_path / "scene", FORWARD_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, 0, "forward", progress=False)
    names = sorted(p.name for p in (scene / "images").iterdir())
    work = tmp_path / "sfm"
    work.mkdir()
    result = run_sfm(scene / "images", names, (CAPTURE_WIDTH, CAPTURE_HEIGHT), work, ONE_THREAD, progress=False)
    assert len(result.registered) >= 0.95 * FORWARD_FRAMES
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
    # a correct model may leave one weak pair (of about 40) below half explained
    assert before.contradicted <= 2
    image = model.images[model.reg_image_ids()[WIDE_ORBIT_FRAMES // 2]]
    pose = image.cam_from_world()
    turn = pycolmap.Rotation3d(np.array([0.0, 0.0, np.sin(np.radians(15)), np.cos(np.radians(15))]))
    frame = model.frames[image.frame_id]
    frame.rig_from_world = pycolmap.Rigid3d(turn * pose.rotation, pose.translation)
    after = model_support(work / "database.db", model)
    # the turned camera contradicts its pairs with the neighbours on either side (4-5 in practice)
    assert after.contradicted >= before.contradicted + 2
    assert after.explained < before.explained


class _FakeModel:
    """A mapping run's model as the rerun rule sees it: registered images, support, error."""

    def __init__(self, registered: int, explained: int, total: int = 10_000, error: float = 0.5):
        self.registered = registered
        self.support = Support(explained, total, pairs=100, contradicted=0)
        self.error = error

    def num_reg_images(self) -> int:
        return self.registered

    def compute_mean_reprojection_error(self) -> float:
        return self.error


def _map_runs(monkeypatch, tmp_path, runs: list[list[_FakeModel]], **options) -> tuple[object, list[int]]:
    """(kept model, trials run) of ``map_images`` when mapping run ``i`` yields the models ``runs[i]``."""
    trials: list[int] = []

    def map_once(database, image_dir, folder, trial, count, sfm_options, progress):
        trials.append(trial)
        return dict(enumerate(runs[trial]))

    monkeypatch.setattr(sfm, "_map_once", map_once)
    monkeypatch.setattr(sfm, "model_support", lambda database, model: model.support)
    kept, made = sfm.map_images(tmp_path / "db", tmp_path, tmp_path / "sparse", 24, SfmOptions(**options), False)
    assert made == len(trials)
    return kept, trials


def test_runs_agree_on_registration_and_support_within_the_tolerance():
    def run(registered: int, explained: int) -> MappingRun:
        return MappingRun(None, registered, Support(explained, 10_000, 100, 0))

    assert runs_agree(run(24, 9_914), run(24, 9_916), 0.0005)
    assert not runs_agree(run(24, 9_736), run(24, 9_914), 0.0005)
    assert not runs_agree(run(23, 9_914), run(24, 9_914), 0.0005)


def test_mapping_stops_when_two_runs_agree(monkeypatch, tmp_path):
    correct, again = _FakeModel(24, 9_546), _FakeModel(24, 9_545)
    kept, trials = _map_runs(monkeypatch, tmp_path, [[correct], [again], [_FakeModel(24, 9_000)]])
    assert kept is correct and trials == [0, 1]


def test_a_fold_is_replaced_by_the_run_that_explains_more(monkeypatch, tmp_path):
    fold, small, correct = _FakeModel(24, 9_736), _FakeModel(5, 2_000, total=2_010), _FakeModel(24, 9_914)
    runs = [[fold], [small, correct], [_FakeModel(24, 9_916)], [_FakeModel(24, 9_700)]]
    kept, trials = _map_runs(monkeypatch, tmp_path, runs)
    assert trials == [0, 1, 2]
    assert kept is runs[2][0]


def test_disagreeing_runs_go_on_to_the_last_trial_and_keep_the_best(monkeypatch, tmp_path):
    correct = _FakeModel(24, 9_918)
    folds = [[_FakeModel(24, 9_587)], [_FakeModel(24, 9_833)], [_FakeModel(18, 8_000, total=8_300)]]
    kept, trials = _map_runs(monkeypatch, tmp_path, [[correct], *folds])
    assert kept is correct and trials == [0, 1, 2, 3]
    kept, trials = _map_runs(monkeypatch, tmp_path, [[correct], *folds], mapping_trials=2)
    assert kept is correct and trials == [0, 1]


def test_no_model_at_all_is_none(monkeypatch, tmp_path):
    kept, trials = _map_runs(monkeypatch, tmp_path, [[], [], [], []])
    assert kept is None and trials == [0, 1, 2, 3]


def test_incremental_mapping_options_follow_the_sfm_options():
    options = SfmOptions(init_min_tri_angle=6.0, init_min_num_inliers=40, seed=3)
    mapping = sfm._incremental_options(options, seed=5)
    assert mapping.mapper.init_min_tri_angle == 6.0
    assert mapping.mapper.init_min_num_inliers == 40
    assert mapping.random_seed == 5
    assert SfmOptions().init_min_tri_angle < 16.0
