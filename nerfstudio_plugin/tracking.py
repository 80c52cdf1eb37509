"""Run the MastSAM tracker on a Nerfstudio training split, or reuse its cached result.

The tracker sees the training images at a working resolution (``max_image_size``, longer side
1024 px by default: larger images are reduced by area averaging, their cameras and depth maps
alike) with the dataparser's cameras (Nerfstudio's normalised world frame) and, when the dataset has them, depth maps scaled into
that frame; so its labelled point cloud lands directly in the frame the Gaussians live in,
whichever dataparser produced the split. Outputs are the ``mastsam track`` files (masks/,
tracks.json, points.ply, overlays/) in a cache folder next to the dataset, reused while the
training images, cameras, depth and tracker settings are unchanged. Labels made at a reduced
working resolution are enlarged (nearest neighbour) to the images' resolution into
``masks-<W>x<H>/`` of the cache, the files training reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import numpy as np
from nerfstudio.utils.rich_utils import CONSOLE
from rich.markup import escape

from mastsam_splat.errors import InputError
from mastsam_splat.io import read_tracks
from mastsam_splat.io.checkpoints import check_checkpoint_file
from mastsam_splat.io.ply import read_point_cloud
from mastsam_splat.io.scene import read_depth, read_image
from mastsam_splat.matchers import MatcherName
from mastsam_splat.segmenters import SegmenterName
from mastsam_splat.tracker.job import (
    BackendOptions,
    TrackingJob,
    backend_options,
    check_matcher_inputs,
    resolve_matcher,
    track_to_folder,
    with_sfm_points,
)
from mastsam_splat.tracker.outputs import MASKS_DIR, POINTS_FILE, TRACKS_FILE
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.types import Camera, Frame
from mastsam_splat.io.labels import read_label_image, write_label_image
from nerfstudio_plugin.dataset import image_file_size, resize_labels

DEFAULT_CACHE_SUBDIR = Path("mastsam") / "training-views"
"""Cache folder, relative to the dataset folder, when ``cache_dir`` is not given."""


@dataclass
class TrackingConfig(BackendOptions):
    """MastSAM tracker settings used before training (the options of ``mastsam track``)."""

    segmenter: SegmenterName = "classical"
    """Segmenter backend: classical (no weights) or sam (segment-anything; needs --...sam-checkpoint)."""
    matcher: Literal["auto", MatcherName] = "auto"
    """Correspondences: geometric (exact, from depth + cameras), sift (OpenCV), mast3r (needs
    --...mast3r-checkpoint), sfm (the tracks of the dataset's COLMAP model, sparse/0); auto = geometric when every
    training image has a depth map, sfm when the dataset has a COLMAP model of its images, else sift."""
    cache_dir: Optional[Path] = None
    """Folder for the tracker's results (default: <dataset>/mastsam/training-views)."""
    recompute: bool = False
    """Run the tracker even when the cached result matches (replaces it)."""
    max_image_size: int = 1024
    """Working resolution: longer image side (pixels) the tracker runs at; larger training images are
    reduced for tracking and their labels enlarged back to the image size. 0: full resolution."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """Tracker parameters, one group per step (mode mastsam|independent, thresholds, 3D memory)."""


@dataclass
class TrackedLabels:
    """Where the tracker's labels are for each training image, and its labelled point cloud."""

    label_files: List[Path]
    """Label image of each training image, in dataset order."""
    num_ids: int
    """Largest id in any label image."""
    points_file: Path
    cache_dir: Path
    status: Literal["reused", "computed"]
    seconds: float
    settings: Dict[str, Any]

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labelled cloud: xyz [P, 3] float32 (training frame), rgb [P, 3] uint8, ids [P] int64."""

        cloud = read_point_cloud(self.points_file, allow_empty=True)
        ids = np.zeros(len(cloud), dtype=np.int64) if cloud.instance_id is None else cloud.instance_id
        return cloud.xyz, cloud.rgb, ids

    def report(self) -> Dict[str, Any]:
        return {
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "seconds_per_frame": round(self.seconds / max(len(self.label_files), 1), 3),
            "cache_dir": str(self.cache_dir),
            "num_ids": self.num_ids,
            "frames": len(self.label_files),
            **self.settings,
        }


def check_checkpoints(config: TrackingConfig) -> None:
    """The selected backends' checkpoints are given and exist (checked before anything runs)."""
    needed = []
    if config.segmenter == "sam":
        needed.append(("sam-checkpoint", config.sam_checkpoint, "the sam segmenter"))
    if config.matcher == "mast3r":
        needed.append(("mast3r-checkpoint", config.mast3r_checkpoint, "the mast3r matcher"))
    for option, path, user in needed:
        flag = f"--pipeline.datamanager.tracking.{option}"
        if path is None:
            raise InputError(f"{user} needs {flag} PATH (a local checkpoint file)")
        check_checkpoint_file(path, "checkpoint", f"{flag}, for {user}")


def training_frames(dataset: Any) -> List[Frame]:
    """The training split as tracker frames: file-resolution images, dataparser cameras, scaled depth."""

    outputs = dataset._dataparser_outputs
    cameras = outputs.cameras
    metadata = outputs.metadata
    depth_files = metadata.get("depth_filenames")
    depth_scale = float(metadata.get("depth_unit_scale_factor", 1e-3))
    frames: List[Frame] = []
    names = set()
    for i, path in enumerate(outputs.image_filenames):
        path = Path(path)
        if path.stem in names:
            raise InputError("two training images share a file name; label images are stored by name", path)
        names.add(path.stem)
        image = read_image(path)
        camera = cameras[i]
        K = camera.get_intrinsics_matrices().numpy().astype(np.float64)
        width, height = int(camera.width.item()), int(camera.height.item())
        if (width, height) != (image.shape[1], image.shape[0]):
            raise InputError(f"image is {image.shape[1]}x{image.shape[0]} but its camera says {width}x{height}", path)
        c2w = camera.camera_to_worlds.numpy().astype(np.float64)
        depth = None
        if depth_files is not None:
            depth = read_depth(depth_files[i], depth_scale) * float(outputs.dataparser_scale)
            if depth.shape != image.shape[:2]:
                raise InputError(
                    f"depth map is {depth.shape[1]}x{depth.shape[0]} but its image is {width}x{height}", depth_files[i]
                )
        frames.append(
            Frame(
                image=image,
                name=path.stem,
                index=i,
                file=path,
                camera=Camera.from_opengl_c2w(c2w, K, width, height),
                depth=depth,
            )
        )
    return frames


def working_frame(frame: Frame, max_size: int) -> Frame:
    """``frame`` reduced so its longer side is at most ``max_size`` (unchanged when it fits or ``max_size`` is 0)."""
    longest = max(frame.width, frame.height)
    if max_size <= 0 or longest <= max_size:
        return frame
    import cv2

    scale = max_size / longest
    width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    sx, sy = width / frame.width, height / frame.height
    image = cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
    depth = None
    if frame.depth is not None:
        depth = cv2.resize(frame.depth, (width, height), interpolation=cv2.INTER_NEAREST)
    camera = frame.camera.scaled(sx, sy) if frame.camera is not None else None
    return Frame(image=image, name=frame.name, index=frame.index, file=frame.file, camera=camera, depth=depth)


def full_size_labels(cache_dir: Path, frames: List[Frame], work: List[Frame], rewrite: bool) -> List[Path]:
    """Label files at the images' resolution: the tracker's own when it ran at full size, else
    enlarged copies (nearest neighbour) in ``masks-<W>x<H>/``, written when missing or ``rewrite``."""
    files = []
    for frame, small in zip(frames, work):
        tracked = cache_dir / MASKS_DIR / f"{frame.name}.png"
        if (small.width, small.height) == (frame.width, frame.height):
            files.append(tracked)
            continue
        path = cache_dir / f"{MASKS_DIR}-{frame.width}x{frame.height}" / f"{frame.name}.png"
        if rewrite or not path.is_file():
            labels = read_label_image(tracked, expected_shape=(small.height, small.width))
            write_label_image(path, resize_labels(labels, frame.height, frame.width))
        files.append(path)
    return files


def tracking_job(config: TrackingConfig, frames: List[Frame], data_root: Path) -> TrackingJob:
    """The tracker run these settings ask for (``auto`` matcher resolved from the frames)."""
    matcher = resolve_matcher(config.matcher, frames)
    check_matcher_inputs(matcher, frames, data_root)
    return TrackingJob.from_options(
        config.segmenter,
        matcher,
        config.tracker,
        data=data_root,
        sam_checkpoint=config.sam_checkpoint,
        sam_model_type=config.sam_model_type,
        mast3r_checkpoint=config.mast3r_checkpoint,
        **backend_options(config),
    )


def check_label_sizes(label_files: List[Path], frames: List[Frame]) -> None:
    """Every label image exists and has exactly its image's size (PNG header reads only)."""
    for path, frame in zip(label_files, frames):
        if not path.is_file():
            raise InputError(f"label image of {frame.name} is missing from the tracker cache", path)
        size = image_file_size(path)
        if size != (frame.height, frame.width):
            raise InputError(
                f"cached label image is {size[1]}x{size[0]} but its image {frame.name} is "
                f"{frame.width}x{frame.height}; delete the cache folder or pass "
                "--pipeline.datamanager.tracking.recompute True",
                path,
            )


def track_training_images(dataset: Any, config: TrackingConfig, data_root: Path) -> TrackedLabels:
    """Label the training images with the tracker, or reuse the cached labels (logged either way)."""
    check_checkpoints(config)
    start = time.perf_counter()
    cache_dir = Path(config.cache_dir) if config.cache_dir is not None else data_root / DEFAULT_CACHE_SUBDIR
    # Inside the dataset the cache moves with it, so it names no absolute path; elsewhere it names the dataset.
    inside = data_root.resolve() in cache_dir.resolve().parents
    source = "training split" if inside else f"training split of {data_root.resolve()}"
    frames = training_frames(dataset)
    work = [working_frame(frame, config.max_image_size) for frame in frames]
    work = with_sfm_points(work, data_root, config.tracker.points, subset=True)
    job = tracking_job(config, work, data_root)
    settings = {"segmenter": job.segmenter, "matcher": job.matcher, "mode": config.tracker.mode}

    def announce(reason: str) -> None:
        size = f"{work[0].width}x{work[0].height}" if work else "-"
        CONSOLE.log(
            f"MastSAM tracker: labelling {len(frames)} training images at {size} "
            f"(segmenter {job.segmenter}, matcher {job.matcher}; {reason})"
        )

    # Results of another source are replaced only in the dataset's own cache folder.
    run = track_to_folder(
        work,
        job,
        cache_dir,
        source=source,
        overwrite=inside,
        recompute=config.recompute,
        on_start=announce,
        on_warning=lambda message: CONSOLE.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False),
    )
    status = run.status
    if status == "reused":
        CONSOLE.log(f"MastSAM tracker: reusing cached labels in {cache_dir} ({run.reason})")
    label_files = full_size_labels(cache_dir, frames, work, rewrite=status == "computed")
    check_label_sizes(label_files, frames)
    num_ids = _largest_id(cache_dir)
    seconds = time.perf_counter() - start
    if status == "computed":
        size = f"{work[0].width}x{work[0].height}" if work else "-"
        CONSOLE.log(
            f"MastSAM tracker: {num_ids} ids over {len(frames)} images in {seconds:.1f} s "
            f"({seconds / max(len(frames), 1):.2f} s per image at {size}) -> {cache_dir}"
        )
    return TrackedLabels(
        label_files=label_files,
        num_ids=num_ids,
        points_file=cache_dir / POINTS_FILE,
        cache_dir=cache_dir,
        status=status,
        seconds=seconds,
        settings=settings,
    )


def _largest_id(cache_dir: Path) -> int:
    """Largest object id, from tracks.json."""

    tracks = read_tracks(cache_dir / TRACKS_FILE)
    return max((int(obj["id"]) for obj in tracks.get("objects", [])), default=0)
