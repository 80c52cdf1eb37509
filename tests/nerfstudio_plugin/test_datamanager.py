"""The datamanager: tracker run and cache reuse, label maps in batches, seed points, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("nerfstudio")

from mastsam_splat.errors import InputError  # noqa: E402
from nerfstudio_plugin.datamanager import MastsamDatamanagerConfig, transfer_point_labels  # noqa: E402
from nerfstudio_plugin.dataset import resize_labels  # noqa: E402
from nerfstudio_plugin.tracking import DEFAULT_CACHE_SUBDIR  # noqa: E402


def _setup(data: Path, **overrides):
    config = MastsamDatamanagerConfig(data=data, **overrides)
    return config.setup(device="cpu", test_mode="val")


@pytest.fixture(scope="module")
def scene(tiny_scene: Path, tmp_path_factory) -> Path:
    """A private copy (tests here write the tracker cache into it)."""
    copy = tmp_path_factory.mktemp("dm") / "scene"
    shutil.copytree(tiny_scene, copy)
    return copy


@pytest.fixture(scope="module")
def manager(scene: Path):
    return _setup(scene)


def test_tracker_runs_then_its_cache_is_reused(scene: Path, manager) -> None:
    report = manager.tracker_report
    assert report["status"] == "computed"
    assert report["matcher"] == "geometric"  # the synthetic scene has depth maps
    assert report["seconds_per_frame"] == pytest.approx(report["seconds"] / report["frames"], abs=1e-3)
    cache = scene / DEFAULT_CACHE_SUBDIR
    names = sorted(p.stem for p in (cache / "masks").glob("*.png"))
    assert names == sorted(Path(p).stem for p in manager.train_dataset.image_filenames)
    assert (cache / "points.ply").is_file()
    again = _setup(scene)
    assert again.tracker_report["status"] == "reused"
    changed = MastsamDatamanagerConfig(data=scene)
    changed.tracking.tracker.min_area_fraction = 0.002
    assert changed.setup(device="cpu", test_mode="val").tracker_report["status"] == "computed"
    assert _setup(scene).tracker_report["status"] == "computed"  # back to the defaults: their results were replaced


def test_batches_carry_label_maps_of_the_image_size(manager) -> None:
    camera, batch = manager.next_train(0)
    h, w = batch["image"].shape[:2]
    assert (h, w) == (int(camera.height), int(camera.width))
    assert batch["instance_labels"].shape == (h, w)
    assert batch["instance_labels"].dtype in (torch.int16, torch.int32)
    assert batch["gt_instances"].shape == (h, w)
    assert int(batch["instance_labels"].max()) > 0
    _, eval_batch = manager.next_eval_image(0)
    assert "gt_instances" in eval_batch and "instance_labels" not in eval_batch


def test_labels_follow_a_downscaled_image(scene: Path) -> None:
    manager = _setup(scene, camera_res_scale_factor=0.5)
    camera, batch = manager.next_train(0)
    assert batch["image"].shape[:2] == (24, 32) == batch["instance_labels"].shape
    idx = camera.metadata["cam_idx"]
    stem = Path(manager.train_dataset.image_filenames[idx]).stem
    full = cv2.imread(str(scene / DEFAULT_CACHE_SUBDIR / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(batch["instance_labels"].numpy(), resize_labels(full, 24, 32))


def test_seed_points_merge_dataset_and_tracker_clouds(manager) -> None:
    meta = manager.train_dataparser_outputs.metadata
    xyz, rgb, ids = meta["points3D_xyz"], meta["points3D_rgb"], meta["points3D_instance"]
    assert len(xyz) == len(rgb) == len(ids) > 0
    assert xyz.dtype == torch.float32 and rgb.dtype == torch.uint8
    assert (ids > 0).float().mean() > 0.3
    assert torch.equal(manager.train_dataset.metadata["points3D_instance"], ids)
    assert ids.max() <= manager.train_dataset.metadata["num_instance_ids"]


def test_transfer_point_labels_takes_the_nearest_close_id() -> None:
    ref = np.array([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0], [1.1, 0, 0]])
    ref_ids = np.array([1, 1, 2, 2])
    points = np.array([[0.05, 0.01, 0], [1.05, 0, 0.02], [5.0, 5, 5]])
    assert transfer_point_labels(points, ref, ref_ids).tolist() == [1, 2, 0]


def test_dataset_without_images_is_refused_before_anything_runs(tmp_path: Path, scene: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    meta = json.loads((scene / "transforms.json").read_text())
    (broken / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="images listed in transforms.json are missing"):
        _setup(broken)
    meta["frames"] = []
    (broken / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="no images"):
        _setup(broken)
    with pytest.raises(InputError, match="not a Nerfstudio dataset"):
        _setup(tmp_path)
    assert not (broken / "mastsam").exists()


def test_cached_masks_of_the_wrong_size_are_refused(scene: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scene"
    shutil.copytree(scene, copy)
    cache = copy / DEFAULT_CACHE_SUBDIR
    _setup(copy, tracking=_tracking(cache))
    victim = sorted((cache / "masks").glob("*.png"))[0]
    cv2.imwrite(str(victim), np.zeros((10, 10), np.uint16))
    with pytest.raises(InputError, match="cached label image is 10x10") as info:
        _setup(copy, tracking=_tracking(cache))
    assert victim.name in str(info.value)


def test_missing_checkpoints_are_refused_before_tracking(scene: Path) -> None:
    config = _tracking(None)
    config.segmenter = "sam"
    config.sam_checkpoint = Path("/nonexistent/sam_vit_b.pth")
    with pytest.raises(InputError, match="checkpoint not found"):
        _setup(scene, tracking=config)
    config.sam_checkpoint = None
    with pytest.raises(InputError, match="sam-checkpoint"):
        _setup(scene, tracking=config)


def _tracking(cache_dir):
    from nerfstudio_plugin.tracking import TrackingConfig

    return TrackingConfig(cache_dir=cache_dir)


@pytest.mark.parametrize("camera_type", ["perspective", "fisheye"])
def test_labels_are_undistorted_like_their_images(camera_type: str) -> None:
    from nerfstudio.cameras.cameras import Cameras, CameraType
    from nerfstudio.data.datamanagers.full_images_datamanager import _undistort_image

    from nerfstudio_plugin.datamanager import undistort_labels

    h, w = 60, 80
    if camera_type == "perspective":
        kind, dist = CameraType.PERSPECTIVE, torch.tensor([-0.2, 0.05, 0.0, 0.0, 0.01, -0.005])
    else:
        kind, dist = CameraType.FISHEYE, torch.tensor([0.1, -0.02, 0.01, 0.0, 0.0, 0.0])
    camera = Cameras(
        camera_to_worlds=torch.eye(4)[:3][None], fx=70.0, fy=70.0, cx=41.0, cy=29.0, width=w, height=h,
        distortion_params=dist[None], camera_type=kind,
    )[0]  # fmt: skip
    labels = (np.arange(w)[None, :] // 10 + 8 * (np.arange(h)[:, None] // 15)).astype(np.int16)  # blocks of ids
    image = np.repeat((labels * 7).astype(np.uint8)[:, :, None], 3, axis=2)
    K = camera.get_intrinsics_matrices().numpy()
    _, undistorted, _ = _undistort_image(camera, dist.numpy(), {}, image.copy(), K)
    out = undistort_labels(torch.from_numpy(labels), camera, undistorted.shape[0], undistorted.shape[1])
    assert tuple(out.shape) == undistorted.shape[:2]
    value = undistorted[:, :, 0].astype(np.int64)
    # The image is interpolated bilinearly: compare where it holds an unblended block value.
    interior = np.isin(value, np.unique(labels).astype(np.int64) * 7)
    interior[1:-1, 1:-1] &= (value[1:-1, 1:-1] == value[:-2, 1:-1]) & (value[1:-1, 1:-1] == value[2:, 1:-1])
    assert interior.mean() > 0.5
    assert (out.numpy().astype(np.int64)[interior] * 7 == value[interior]).mean() > 0.98


def test_tracker_working_resolution_gives_labels_of_the_image_size(scene: Path, tmp_path: Path) -> None:
    copy = tmp_path / "scene"
    shutil.copytree(scene, copy, ignore=shutil.ignore_patterns("mastsam"))
    config = MastsamDatamanagerConfig(data=copy)
    config.tracking.max_image_size = 32
    manager = config.setup(device="cpu", test_mode="val")
    cache = copy / DEFAULT_CACHE_SUBDIR
    tracked = sorted((cache / "masks").glob("*.png"))
    assert tracked and cv2.imread(str(tracked[0]), cv2.IMREAD_UNCHANGED).shape == (24, 32)
    enlarged = cv2.imread(str(cache / "masks-64x48" / tracked[0].name), cv2.IMREAD_UNCHANGED)
    assert enlarged.shape == (48, 64)
    small = cv2.imread(str(tracked[0]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(enlarged, resize_labels(small, 48, 64))
    _, batch = manager.next_train(0)
    assert batch["instance_labels"].shape == batch["image"].shape[:2]


def test_a_dataset_with_a_colmap_model_and_no_depth_is_tracked_on_its_sfm_tracks(scene: Path, tmp_path: Path) -> None:
    """``auto`` reads the correspondences from the model's tracks, scaled to the tracker's working resolution."""
    pytest.importorskip("pycolmap")
    from mastsam_splat.synthetic.sfm import write_scene_sfm_model

    copy = tmp_path / "scene"
    shutil.copytree(scene, copy, ignore=shutil.ignore_patterns("mastsam"))
    write_scene_sfm_model(copy)
    transforms = json.loads((copy / "transforms.json").read_text())
    for frame in transforms["frames"]:
        frame.pop("depth_file_path", None)
    (copy / "transforms.json").write_text(json.dumps(transforms))
    config = MastsamDatamanagerConfig(data=copy)
    config.tracking.max_image_size = 32
    manager = config.setup(device="cpu", test_mode="val")
    report = manager.tracker_report
    assert report["matcher"] == "sfm"
    cache = copy / DEFAULT_CACHE_SUBDIR
    assert json.loads((cache / "tracks.json").read_text())["config"]["points"]["source"] == "sfm"
    assert sum(f["num_matches"] for f in json.loads((cache / "report.json").read_text())["frames"]) > 0
    tracked = sorted((cache / "masks").glob("*.png"))
    assert len(tracked) == len(manager.train_dataset.image_filenames)
    assert cv2.imread(str(tracked[0]), cv2.IMREAD_UNCHANGED).shape == (24, 32)
