"""Full-image datamanager that runs (or reuses) the MastSAM tracker and hands label maps to the model.

Before any image is cached: the dataset is checked, the tracker labels the training images
(its result is cached next to the dataset and reused while inputs and settings are unchanged),
every cached label image is checked against its image's size, and the labelled point cloud
is added to the seed points (or becomes them). Each training batch then carries
``instance_labels`` (the tracker's ids) and, when the dataset has ground-truth ``instances/``,
each batch also carries ``gt_instances`` for evaluation.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Type, Union

import numpy as np
import torch

from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager, FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.utils.rich_utils import CONSOLE

from mastsam_splat.errors import InputError
from mastsam_splat.io.scene import input_image_folders
from mastsam_splat.splat.init import budget_subsample
from nerfstudio_plugin.checks import check_nerfstudio_dataset, check_tracking_cache
from nerfstudio_plugin.dataparser import MastsamDataParserConfig
from nerfstudio_plugin.dataset import LABEL_KEYS, InstanceLabelDataset, resize_labels
from nerfstudio_plugin.inputs import use_training_dataset
from nerfstudio_plugin.tracking import DEFAULT_CACHE_SUBDIR, TrackingConfig, TrackedLabels, track_training_images

GT_INSTANCES_DIR = "instances"


@dataclass
class MastsamDatamanagerConfig(FullImageDatamanagerConfig):
    """Full-image datamanager with tracked instance labels (see module docstring)."""

    _target: Type = field(default_factory=lambda: MastsamDatamanager)
    dataparser: AnnotatedDataParserUnion = field(default_factory=MastsamDataParserConfig)
    cache_images_type: Literal["uint8", "float32"] = "uint8"
    """The image type returned from manager, caching images in uint8 saves memory"""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """MastSAM tracker run on the training images: segmenter, matcher, checkpoints, cache."""
    seed_points: Literal["merge", "tracker", "dataset"] = "merge"
    """Gaussian seeds: the dataset's point cloud merged with the tracker's labelled one, or only one of them
    (either falls back to the other when it is empty)."""
    background_points: int = 6000
    """Seed points spread on a sphere around all cameras (no object; coloured by the training image that sees
    each nearest its centre) that can learn the sky and far background, which the dataset's and tracker's point clouds never cover; 0 disables them."""
    cpu_max_seed_points: int = 10000
    """On CPU, at most this many seed points (0: all). The torch rasterizer's cost grows with the number of
    Gaussians. Labelled (object) points are kept first, the rest is thinned evenly in space
    (``mastsam_splat.splat.init.budget_subsample``), so a large ground does not take the budget."""
    cpu_max_image_size: int = 200
    """On CPU, images whose longer side exceeds this are downscaled for training and eval (0: never).
    Applied on top of camera_res_scale_factor; labels follow with nearest-neighbour resizing."""


class MastsamDatamanager(FullImageDatamanager[InstanceLabelDataset]):
    """See module docstring."""

    config: MastsamDatamanagerConfig
    train_dataset: InstanceLabelDataset
    eval_dataset: InstanceLabelDataset

    def __init__(
        self,
        config: MastsamDatamanagerConfig,
        device: Union[torch.device, str] = "cpu",
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs: Any,
    ) -> None:
        data = config.data if config.data is not None else config.dataparser.data
        if isinstance(config.dataparser, NerfstudioDataParserConfig):
            data = use_training_dataset(config, lambda message: CONSOLE.log(message))
        if test_mode != "inference" and isinstance(config.dataparser, NerfstudioDataParserConfig):
            check_nerfstudio_dataset(data)
        if test_mode == "val" and data is not None:
            root = Path(data).parent if Path(data).suffix == ".json" else Path(data)
            given = config.tracking.cache_dir is not None
            cache = Path(config.tracking.cache_dir) if given else root / DEFAULT_CACHE_SUBDIR
            check_tracking_cache(cache, given, input_image_folders(data) if Path(data).exists() else [])
        self._image_scale: Optional[float] = None
        super().__init__(config, device, test_mode, world_size, local_rank, **kwargs)
        if len(self.train_dataset) == 0:
            raise InputError("the dataset has no training images", data)
        check_label_undistortion(self.train_dataset.cameras, data)
        if torch.device(self.device).type == "cpu":
            # Nerfstudio's "cpu" cache pins memory, which needs a CUDA driver; on CPU "gpu" means the same place.
            self.config.cache_images = "gpu"
        self.tracker_report: Dict[str, Any] = {}
        if test_mode == "val":
            labels = track_training_images(self.train_dataset, self.config.tracking, self.data_root)
            self._attach_tracked_labels(labels)
        self._attach_ground_truth()

    # ------------------------------------------------------------------ datasets

    @property
    def data_root(self) -> Path:
        """The dataset folder (the parent of transforms.json when --data names the file)."""
        data = Path(self.config.dataparser.data)
        return data.parent if data.suffix == ".json" else data

    def _dataset_scale(self) -> float:
        """camera_res_scale_factor, times the CPU cap on the longer image side."""
        if self._image_scale is None:
            scale = float(self.config.camera_res_scale_factor)
            cameras = self.train_dataparser_outputs.cameras
            longest = float(max(cameras.width.max().item(), cameras.height.max().item())) * scale
            on_cpu = torch.device(self.device).type == "cpu"
            if on_cpu and self.config.cpu_max_image_size > 0 and longest > self.config.cpu_max_image_size:
                scale *= self.config.cpu_max_image_size / longest
                CONSOLE.log(
                    f"CPU training: images downscaled by {scale:.3f} (longer side <= "
                    f"{self.config.cpu_max_image_size} px; change with --pipeline.datamanager.cpu-max-image-size)"
                )
            self._image_scale = scale
        return self._image_scale

    def create_train_dataset(self) -> InstanceLabelDataset:
        return self.dataset_type(dataparser_outputs=self.train_dataparser_outputs, scale_factor=self._dataset_scale())

    def create_eval_dataset(self) -> InstanceLabelDataset:
        return self.dataset_type(
            dataparser_outputs=self.dataparser.get_dataparser_outputs(split=self.test_split),
            scale_factor=self._dataset_scale(),
        )

    def _load_images(
        self, split: Literal["train", "eval"], cache_images_device: Literal["cpu", "gpu"]
    ) -> List[Dict[str, Any]]:
        """Nerfstudio's image cache, with label maps undistorted and cropped like their images."""
        dataset = self.train_dataset if split == "train" else self.eval_dataset
        original = deepcopy(dataset.cameras)  # the parent undistorts images and rewrites these intrinsics
        cached = super()._load_images(split, cache_images_device)
        for idx, data in enumerate(cached):
            height, width = data["image"].shape[:2]
            for key in LABEL_KEYS:
                if key in data:
                    data[key] = undistort_labels(data[key], original[idx], height, width)
        return cached

    # ------------------------------------------------------------------ labels and seeds

    def _attach_tracked_labels(self, labels: TrackedLabels) -> None:
        self.tracker_report = labels.report()
        self.train_dataset.set_label_files("instance_labels", labels.label_files)
        self.train_dataset.metadata["num_instance_ids"] = labels.num_ids
        self._merge_seed_points(labels)

    def _merge_seed_points(self, labels: TrackedLabels) -> None:
        """Seed points = dataset cloud and/or tracker cloud, per ``seed_points``, with instance ids.

        Dataset points take the id of the nearest tracker point when one is close (within twice
        the tracker cloud's typical spacing), so both clouds seed labelled Gaussians.
        """
        meta = self.train_dataparser_outputs.metadata
        has_dataset = "points3D_xyz" in meta and len(meta["points3D_xyz"]) > 0
        t_xyz, t_rgb, t_ids = labels.points()
        has_tracker = len(t_xyz) > 0
        use_dataset = has_dataset and (self.config.seed_points != "tracker" or not has_tracker)
        use_tracker = has_tracker and (self.config.seed_points != "dataset" or not has_dataset)
        xyz_parts, rgb_parts, id_parts = [], [], []
        if use_dataset:
            d_xyz = meta["points3D_xyz"].float().numpy()
            xyz_parts.append(d_xyz)
            rgb_parts.append(meta["points3D_rgb"].numpy().astype(np.uint8))
            d_ids = transfer_point_labels(d_xyz, t_xyz, t_ids) if has_tracker else np.zeros(len(d_xyz), np.int64)
            id_parts.append(d_ids)
        if use_tracker:
            xyz_parts += [t_xyz]
            rgb_parts += [t_rgb]
            id_parts += [t_ids]
        if not xyz_parts:
            CONSOLE.log("[yellow]No seed points (dataset and tracker clouds are empty): random initialisation")
            return
        xyz, rgb, ids = np.concatenate(xyz_parts), np.concatenate(rgb_parts), np.concatenate(id_parts)
        cap = self.config.cpu_max_seed_points if torch.device(self.device).type == "cpu" else 0
        if 0 < cap < len(xyz):
            keep = budget_subsample(xyz, cap, ids)
            xyz, rgb, ids = xyz[keep], rgb[keep], ids[keep]
        if self.config.background_points > 0:
            far = background_sphere(self.train_dataparser_outputs.cameras.camera_to_worlds[:, :3, 3].numpy(), xyz,
                                    self.config.background_points)
            xyz = np.concatenate([xyz, far])
            rgb = np.concatenate([rgb, self._colours_seen_at(far)])
            ids = np.concatenate([ids, np.zeros(len(far), np.int64)])
        meta["points3D_xyz"] = torch.from_numpy(xyz.astype(np.float32))
        meta["points3D_rgb"] = torch.from_numpy(rgb)
        meta["points3D_instance"] = torch.from_numpy(ids.astype(np.int64))
        self.train_dataset.metadata["points3D_instance"] = meta["points3D_instance"]
        sources = " + ".join(name for name, used in (("dataset", use_dataset), ("tracker", use_tracker)) if used)
        CONSOLE.log(f"Seed points: {len(xyz)} from the {sources} point cloud(s), {int((ids > 0).sum())} labelled")

    def _colours_seen_at(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] uint8 colour of each far point in the training image that sees it nearest its centre (grey
        when none does): the background sphere starts with the sky's colours instead of grey."""
        cameras = self.train_dataset.cameras
        images = [self.train_dataset.get_numpy_image(i) for i in range(len(self.train_dataset))]
        return colours_from_views(points, cameras, images)

    def _attach_ground_truth(self) -> None:
        """Attach ``instances/<stem>.png`` as ``gt_instances`` for the images that have one."""
        folder = self.data_root / GT_INSTANCES_DIR
        if not folder.is_dir():
            return
        for dataset in (self.train_dataset, self.eval_dataset):
            files: List[Optional[Path]] = [
                p if (p := folder / f"{Path(name).stem}.png").is_file() else None for name in dataset.image_filenames
            ]
            if any(f is not None for f in files):
                dataset.set_label_files("gt_instances", files)
        CONSOLE.log(f"Ground-truth instances found in {folder}: eval reports instance mIoU")



def transfer_point_labels(xyz: np.ndarray, ref_xyz: np.ndarray, ref_ids: np.ndarray) -> np.ndarray:
    """Id [P] of each point's nearest labelled reference point, 0 where none is within twice their spacing."""
    from scipy.spatial import cKDTree

    labelled = ref_ids > 0
    if len(xyz) == 0 or labelled.sum() < 2:
        return np.zeros(len(xyz), dtype=np.int64)
    tree = cKDTree(ref_xyz[labelled])
    spacing = float(np.median(tree.query(ref_xyz[labelled], k=2)[0][:, 1]))
    dist, nearest = tree.query(xyz, k=1, distance_upper_bound=max(2.0 * spacing, 1e-12))
    found = np.isfinite(dist)
    out = np.zeros(len(xyz), dtype=np.int64)
    out[found] = ref_ids[labelled][nearest[found]]
    return out


def colours_from_views(points: np.ndarray, cameras: Cameras, images: List[np.ndarray]) -> np.ndarray:
    """[N, 3] uint8 colour of each point in the image (of ``cameras``, pinhole, OpenGL frame) where it projects
    nearest the image centre; grey (128) for points no image sees."""
    colours = np.full((len(points), 3), 128, np.uint8)
    best = np.full(len(points), np.inf)
    c2w = cameras.camera_to_worlds.numpy().astype(np.float64)
    for i, image in enumerate(images):
        rot, centre = c2w[i, :3, :3], c2w[i, :3, 3]
        local = (points - centre) @ rot  # OpenGL camera frame: x right, y up, looking down -z
        depth = -local[:, 2]
        h, w = image.shape[:2]
        sx, sy = w / float(cameras.width[i]), h / float(cameras.height[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (float(cameras.fx[i]) * local[:, 0] / depth + float(cameras.cx[i])) * sx
            v = (-float(cameras.fy[i]) * local[:, 1] / depth + float(cameras.cy[i])) * sy
        inside = (depth > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        off_centre = np.hypot(u / w - 0.5, v / h - 0.5)
        better = inside & (off_centre < best)
        if better.any():
            pixels = image[v[better].astype(int), u[better].astype(int), :3]
            colours[better] = pixels if pixels.dtype == np.uint8 else np.clip(pixels * 255.0, 0, 255).astype(np.uint8)
            best[better] = off_centre[better]
    return colours


def background_sphere(camera_centres: np.ndarray, points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points [count, 3] evenly spread (Fibonacci lattice) on a sphere enclosing cameras and points.

    Centred on the cameras' centroid, with twice the radius that encloses every camera and seed point.
    """
    centre = camera_centres.mean(axis=0)
    extent = np.concatenate([camera_centres, points]) - centre if len(points) else camera_centres - centre
    radius = 2.0 * max(float(np.linalg.norm(extent, axis=1).max()), 1e-3)
    i = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / count)
    azimuth = np.pi * (1.0 + 5**0.5) * i + np.random.default_rng(seed).uniform(0, 2 * np.pi)
    directions = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1)
    return (centre + radius * directions).astype(np.float32)


def _distorted(camera: Cameras) -> bool:
    return camera.distortion_params is not None and bool(torch.any(camera.distortion_params != 0))


def check_label_undistortion(cameras: Cameras, data: Path) -> None:
    """Label maps can follow Nerfstudio's undistortion of perspective and OpenCV-fisheye images only."""
    supported = (CameraType.PERSPECTIVE.value, CameraType.FISHEYE.value)
    for i in range(len(cameras)):
        camera = cameras[i]
        if _distorted(camera) and int(camera.camera_type.item()) not in supported:
            raise InputError(
                f"camera {i} is {CameraType(int(camera.camera_type.item())).name} with distortion; label maps can be "
                "undistorted for PERSPECTIVE and FISHEYE cameras only",
                data,
            )


def undistort_labels(labels: torch.Tensor, camera: Cameras, height: int, width: int) -> torch.Tensor:
    """Apply Nerfstudio's image undistortion (same new intrinsics and crop) to a label map, nearest-neighbour.

    ``camera`` is the camera before undistortion; ``height``/``width`` the undistorted image's size.
    """
    import cv2

    if _distorted(camera):
        K = camera.get_intrinsics_matrices().numpy().astype(np.float64)
        K[0, 2] -= 0.5  # OpenCV's pixel grid starts at the pixel's corner, Nerfstudio's at its centre
        K[1, 2] -= 0.5
        d = camera.distortion_params.numpy().astype(np.float64)
        source = labels.numpy().astype(np.float32)  # exact for ids < 2**24; remap has no int32 path
        size = (source.shape[1], source.shape[0])
        if int(camera.camera_type.item()) == CameraType.FISHEYE.value:
            dist = d[:4]
            new_K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, dist, size, np.eye(3), balance=0)
            map_x, map_y = cv2.fisheye.initUndistortRectifyMap(K, dist, np.eye(3), new_K, size, cv2.CV_32FC1)
            roi = (0, 0, size[0], size[1])
        else:
            dist = np.array([d[0], d[1], d[4], d[5], d[2], d[3], 0.0, 0.0])  # OpenCV order k1 k2 p1 p2 k3
            new_K, roi = cv2.getOptimalNewCameraMatrix(K, dist, size, 0)
            map_x, map_y = cv2.initUndistortRectifyMap(K, dist, None, new_K, size, cv2.CV_32FC1)
        out = cv2.remap(source, map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        x, y, w, h = roi
        labels = torch.from_numpy(out[y : y + h, x : x + w].round().astype(labels.numpy().dtype))
    if tuple(labels.shape) != (height, width):
        labels = torch.from_numpy(resize_labels(labels.numpy(), height, width))
    return labels
