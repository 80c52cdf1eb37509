"""``prepare``: a synthetic orbit's photos in, a Nerfstudio dataset with recovered cameras out."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
from support.capture_scenes import CAPTURE_FRAMES, CAPTURE_HEIGHT, CAPTURE_WIDTH, ORBIT_FRAMES, photo_folder

from mastsam_splat.capture import CaptureWarning, PrepareOptions, SfmOptions, prepare
from mastsam_splat.capture.accuracy import prepared_pose_errors
from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import find_sparse_model, read_sparse_model, tracks_in_frames
from mastsam_splat.io.ply import read_point_cloud
from mastsam_splat.io.scene import load_scene
from mastsam_splat.synthetic import make_scene


def test_recovers_the_known_cameras(prepared, orbit_scene):
    dataset, report, _ = prepared
    assert len(report.registered) >= 0.95 * ORBIT_FRAMES
    assert 1 <= report.mapping_runs <= SfmOptions().mapping_trials
    errors = prepared_pose_errors(dataset, orbit_scene)
    assert errors.median_rotation_deg <= 1.0
    assert errors.median_centre_fraction <= 0.01


def test_unreadable_images_are_named_in_one_warning(prepared):
    _, report, messages = prepared
    unreadable = [m for m in messages if "could not be read" in m]
    assert len(unreadable) == 1
    assert "zz_truncated.png" in unreadable[0] and "zz_not_an_image.jpg" in unreadable[0]
    assert report.frames_in == ORBIT_FRAMES + 2
    assert len(report.skipped) == 2


def test_writes_a_nerfstudio_dataset(prepared):
    dataset, report, _ = prepared
    meta = json.loads((dataset / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV"
    for key in ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2"):
        assert np.isfinite(meta[key])
    assert (meta["w"], meta["h"]) == (CAPTURE_WIDTH, CAPTURE_HEIGHT)
    assert [f["file_path"] for f in meta["frames"]] == [f"images/{n}" for n in report.registered]
    for factor in (2, 4, 8):
        image = cv2.imread(str(dataset / f"images_{factor}" / report.registered[0]))
        assert image.shape[:2] == (CAPTURE_HEIGHT // factor, CAPTURE_WIDTH // factor)
    assert len(read_point_cloud(dataset / "sparse_pc.ply")) == report.num_points > 100
    assert not (dataset / ".sfm").exists()
    assert json.loads((dataset / "capture.json").read_text())["registered"] == report.registered


def test_sparse_model_tracks_match_the_frames(prepared):
    dataset, _, _ = prepared
    scene = load_scene(dataset)
    model = read_sparse_model(find_sparse_model(dataset))
    tracks = tracks_in_frames(model, scene.frames)
    assert tracks.frames_in_model == len(scene.frames)
    # Every observation reprojects onto its keypoint with the dataset's cameras (no distortion here).
    for f, frame in enumerate(scene.frames[:4]):
        rows = tracks.frame == f
        xy, _ = frame.camera.project(model.points[tracks.point[rows]])
        assert np.median(np.linalg.norm(xy - tracks.xy[rows], axis=1)) < 1.5


def test_too_few_registered_frames_is_an_error(tmp_path):
    photos = tmp_path / "noise"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(photos / f"{i}.png"), rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="registered"):
        prepare(tmp_path / "out", PrepareOptions(images=photos), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noise"]


def test_mismatched_sizes_fail_before_sfm(tmp_path, orbit_scene):
    photos = photo_folder(orbit_scene, tmp_path / "photos")
    cv2.imwrite(str(photos / "frame_00003.png"), np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(InputError, match="frame_00003 is 100x100"):
        prepare(tmp_path / "out", PrepareOptions(images=photos), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_fewer_than_three_readable_images_is_an_error(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.zeros((20, 20, 3), np.uint8))
    (photos / "b.jpg").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        with pytest.raises(InputError, match="1 readable frames"):
            prepare(tmp_path / "out", PrepareOptions(images=photos), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (PrepareOptions(), "exactly one of"),
        (PrepareOptions(images="a", video="b.mp4"), "exactly one of"),
        (PrepareOptions(images="x", sfm="mast3r"), "--sfm mast3r needs --mast3r-checkpoint"),
        (PrepareOptions(images="missing"), "image folder not found"),
        (PrepareOptions(video="missing.mp4"), "video not found"),
        (PrepareOptions(images="x", fps=2.0), "apply to --video only"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(InputError, match=message):
        prepare(tmp_path / "out", options, progress=False)


def test_refuses_a_foreign_output_folder(tmp_path, orbit_scene):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not a dataset written by"):
        prepare(out, PrepareOptions(images=orbit_scene / "images"), progress=False)
    assert (out / "mine.txt").read_text() == "keep"


def test_sequential_matching_with_retrieval(tmp_path):
    scene = make_scene(tmp_path / "walk", CAPTURE_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0, trajectory="forward",
                       progress=False)
    options = PrepareOptions(images=scene / "images", colmap=SfmOptions(exhaustive_pairs=0, sequential_overlap=3))
    report = prepare(tmp_path / "out", options, progress=False)
    assert len(report.registered) >= 0.95 * CAPTURE_FRAMES
