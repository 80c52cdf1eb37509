"""COLMAP sparse models: find one in a dataset, read its cameras, poses and point tracks, write one.

A model is a folder holding ``cameras``, ``images`` and ``points3D`` as ``.bin`` or ``.txt``
files (binary preferred when both exist). COLMAP's keypoint coordinates put the centre of the
top-left pixel at ``(0.5, 0.5)``, the convention of ``mastsam_splat.types``, so track positions
are used as they are. pycolmap is imported only when a model is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.types import Camera, Frame, ObservedPoints

PathLike = Union[str, Path]

MODEL_FILES = ("cameras", "images", "points3D")
"""Files of a model folder, each ``.bin`` or ``.txt``."""
MODEL_LOCATIONS = ("sparse/0", "colmap/sparse/0", "sparse", "colmap/sparse")
"""Where a dataset keeps its COLMAP model, looked up in this order."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class SfmModel:
    """A sparse reconstruction: posed images and 3D points with their tracks.

    Tracks are stored flat, one row per observation: point ``track_point[o]`` is seen in image
    ``track_image[o]`` at keypoint ``track_xy[o]`` (pixels of that image's camera).
    """

    path: Path
    """The model folder."""
    image_names: list[str]
    """Image names as the model stores them (relative paths of the image files)."""
    cameras: list[Optional[Camera]]
    """Camera (intrinsics, OpenCV world-to-camera pose, size) of each image; ``None`` when unposed."""
    points: np.ndarray
    """[P, 3] float64 world positions."""
    track_point: np.ndarray
    """[O] int64 index into ``points``."""
    track_image: np.ndarray
    """[O] int64 index into ``image_names``."""
    track_xy: np.ndarray
    """[O, 2] float64 keypoint positions."""

    @property
    def num_points(self) -> int:
        return int(len(self.points))

    def views(self) -> dict[str, Optional[Camera]]:
        """Image name -> camera."""
        return dict(zip(self.image_names, self.cameras))

    def track(self, point: int) -> tuple[np.ndarray, np.ndarray]:
        """Image indices [L] and keypoints [L, 2] observing point ``point``."""
        rows = self.track_point == point
        return self.track_image[rows], self.track_xy[rows]

    def images_file(self) -> Path:
        return model_file(self.path, "images")

    def points_file(self) -> Path:
        return model_file(self.path, "points3D")


@dataclass
class FrameTracks:
    """A model's observations in the frames of a scene: row ``o`` sees point ``point[o]`` in frame
    ``frame[o]`` (frame order of the scene) at ``xy[o]`` (that frame's pixels)."""

    frame: np.ndarray
    """[O] int64 frame index."""
    point: np.ndarray
    """[O] int64 point index of the model."""
    xy: np.ndarray
    """[O, 2] float64 pixel positions."""
    num_frames: int
    """Frames of the scene."""
    frames_in_model: int
    """Frames of the scene the model holds an image for."""


def model_file(folder: Path, name: str) -> Path:
    """``folder/name.bin`` when present, else ``folder/name.txt``."""
    binary = folder / f"{name}.bin"
    return binary if binary.is_file() else folder / f"{name}.txt"


def is_model_folder(folder: PathLike) -> bool:
    """Whether ``folder`` holds the three files of a model (all binary or all text)."""
    folder = Path(folder)
    return any(all((folder / f"{name}{ext}").is_file() for name in MODEL_FILES) for ext in (".bin", ".txt"))


def find_sparse_model(root: PathLike, given: Optional[PathLike] = None) -> Optional[Path]:
    """The model folder: ``given`` (a model folder, or a folder holding one at a usual place) when set,
    else the first of ``MODEL_LOCATIONS`` under ``root`` that holds a model; ``None`` when there is none."""
    if given is not None:
        given = Path(given)
        if not given.exists():
            raise InputError("COLMAP model folder not found", given)
        for folder in (given, *(given / loc for loc in MODEL_LOCATIONS), given / "0"):
            if folder.is_dir() and is_model_folder(folder):
                return folder
        raise InputError(
            "not a COLMAP model folder (expected cameras, images and points3D as .bin or .txt)", given
        )
    root = Path(root)
    if not root.is_dir():
        return None
    for loc in MODEL_LOCATIONS:
        if is_model_folder(root / loc):
            return root / loc
    return None


def image_pose(image: object) -> np.ndarray:
    """[4, 4] world-to-camera of a pycolmap image (``cam_from_world`` is a method in newer pycolmap)."""
    pose = image.cam_from_world  # type: ignore[attr-defined]
    pose = pose() if callable(pose) else pose
    out = np.eye(4)
    out[:3, :] = np.asarray(pose.matrix(), dtype=np.float64)
    return out


def has_pose(image: object) -> bool:
    flag = getattr(image, "has_pose", None)
    if flag is None:
        flag = getattr(image, "registered", True)
    return bool(flag() if callable(flag) else flag)


MIN_RECORD_BYTES = {"cameras": 24, "images": 73, "points3D": 51}
"""Smallest size of one record of each binary file (fixed fields only)."""


def _check_binary_counts(folder: Path) -> None:
    """Refuse binary files whose record count cannot fit in the file (truncated or not a model):
    pycolmap would try to read that many records."""
    for name, size in MIN_RECORD_BYTES.items():
        path = folder / f"{name}.bin"
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            header = handle.read(8)
        length = path.stat().st_size
        if len(header) < 8:
            raise InputError("truncated COLMAP file (no record count)", path)
        count = int(np.frombuffer(header, dtype="<u8")[0])
        if count > (length - 8) // size:
            raise InputError(f"truncated or corrupt COLMAP file ({count} records announced in {length} bytes)", path)


def read_sparse_model(folder: PathLike) -> SfmModel:
    """Read a COLMAP model folder (binary or text) and check it holds images, points and observations."""
    folder = Path(folder)
    if not is_model_folder(folder):
        raise InputError("not a COLMAP model folder (expected cameras, images and points3D as .bin or .txt)", folder)
    _check_binary_counts(folder)
    import pycolmap

    try:
        recon = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # pycolmap raises plain runtime errors for unreadable files
        raise InputError(f"COLMAP model could not be read ({exc})", folder) from None

    images = dict(recon.images.items())
    if not images:
        raise InputError("the COLMAP model holds no images", model_file(folder, "images"))
    points = dict(recon.points3D.items())
    if not points:
        raise InputError("the COLMAP model holds no 3D points", model_file(folder, "points3D"))

    image_ids = sorted(images)
    image_index = {image_id: i for i, image_id in enumerate(image_ids)}
    names = [str(images[i].name) for i in image_ids]
    cameras: list[Optional[Camera]] = []
    for image_id in image_ids:
        image = images[image_id]
        if not has_pose(image):
            cameras.append(None)
            continue
        cam = image.camera if getattr(image, "camera", None) is not None else recon.cameras[image.camera_id]
        cameras.append(
            Camera(
                K=np.asarray(cam.calibration_matrix()),
                world_to_cam=image_pose(image),
                width=cam.width,
                height=cam.height,
            )
        )

    points_path = model_file(folder, "points3D")
    point_ids = sorted(points)
    xyz = np.empty((len(point_ids), 3), dtype=np.float64)
    obs_point: list[int] = []
    obs_image: list[int] = []
    obs_xy: list[np.ndarray] = []
    for p, point_id in enumerate(point_ids):
        point = points[point_id]
        xyz[p] = point.xyz
        elements = point.track.elements
        if len(elements) == 0:
            raise InputError(f"3D point {point_id} has no observations (empty track)", points_path)
        for element in elements:
            image = images.get(element.image_id)
            if image is None:
                raise InputError(
                    f"3D point {point_id} is observed in image {element.image_id}, which the model lacks", points_path
                )
            if not 0 <= element.point2D_idx < image.num_points2D():
                raise InputError(
                    f"3D point {point_id} refers to keypoint {element.point2D_idx} of image {image.name!r}, "
                    f"which has {image.num_points2D()}",
                    points_path,
                )
            obs_point.append(p)
            obs_image.append(image_index[element.image_id])
            obs_xy.append(np.asarray(image.point2D(element.point2D_idx).xy, dtype=np.float64))
    return SfmModel(
        path=folder,
        image_names=names,
        cameras=cameras,
        points=xyz,
        track_point=np.asarray(obs_point, dtype=np.int64),
        track_image=np.asarray(obs_image, dtype=np.int64),
        track_xy=np.stack(obs_xy).reshape(-1, 2),
    )


def _frame_key(frame: Frame) -> str:
    """The file name a model image of this frame carries: the image file's name, else ``<name>``."""
    if frame.file is not None and Path(frame.file).suffix.lower() in IMAGE_SUFFIXES:
        return Path(frame.file).name
    return frame.name


def tracks_in_frames(model: SfmModel, frames: Sequence[Frame], subset: bool = False) -> FrameTracks:
    """The model's observations expressed in ``frames`` (matched by image file name).

    Every model image must be one of the frames, unless ``subset`` (the frames are a selection
    of the dataset, e.g. strided): then observations in images outside the selection are dropped.
    Frames the model lacks (not registered by SfM) get no observations. Keypoints are scaled when
    the model's cameras have another resolution of the same aspect ratio; other sizes are refused.
    """
    frame_of_image, scale = image_frames(model, frames, subset)
    frame_index = frame_of_image[model.track_image]
    keep = frame_index >= 0
    return FrameTracks(
        frame=frame_index[keep],
        point=model.track_point[keep],
        xy=model.track_xy[keep] * scale[model.track_image[keep]],
        num_frames=len(frames),
        frames_in_model=int(np.unique(frame_of_image[frame_of_image >= 0]).size),
    )


def image_frames(model: SfmModel, frames: Sequence[Frame], subset: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The frame of each model image [I] (-1: none) and the scale [I, 2] from its keypoints to that frame's pixels.

    Matching and refusals are those of ``tracks_in_frames``.
    """
    images_file = model.images_file()
    keys = [_frame_key(f) for f in frames]
    if len(set(keys)) != len(keys):
        raise InputError("two frames share an image file name; cannot match them to the COLMAP model", images_file)
    by_name = {key: i for i, key in enumerate(keys)}
    model_keys = [Path(name).name for name in model.image_names]
    # Frames without an image file (video frames) match a model image by stem.
    frame_of_image = np.array([by_name.get(key, by_name.get(Path(key).stem, -1)) for key in model_keys], dtype=np.int64)
    unmatched = [name for name, f in zip(model.image_names, frame_of_image) if f < 0]
    if len(unmatched) == len(model_keys) or (unmatched and not subset):
        examples = ", ".join(repr(n) for n in unmatched[:3])
        more = f" and {len(unmatched) - 3} more" if len(unmatched) > 3 else ""
        raise InputError(
            f"the COLMAP model's images {examples}{more} are not frames of the dataset "
            f"(frames are named like {keys[0]!r}); the model belongs to another capture",
            images_file,
        )
    scale = np.ones((len(model_keys), 2))
    for i, (camera, f) in enumerate(zip(model.cameras, frame_of_image)):
        if camera is None or f < 0:
            continue
        frame = frames[f]
        sx, sy = frame.width / camera.width, frame.height / camera.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise InputError(
                f"image {model.image_names[i]!r} is {camera.width}x{camera.height} in the COLMAP model but the "
                f"frame is {frame.width}x{frame.height}",
                images_file,
            )
        scale[i] = (sx, sy)
    return frame_of_image, scale


def frame_observations(model: SfmModel, frames: Sequence[Frame], subset: bool = False) -> list[ObservedPoints]:
    """The model's points each frame observed, at the frame's pixels and in the model's world (frames the model
    lacks observe none). Matching and refusals are those of ``tracks_in_frames``."""
    tracks = tracks_in_frames(model, frames, subset)
    order = np.argsort(tracks.frame, kind="stable")
    bounds = np.searchsorted(tracks.frame[order], np.arange(len(frames) + 1))
    out = []
    for f in range(len(frames)):
        rows = order[bounds[f] : bounds[f + 1]]
        point = tracks.point[rows]
        out.append(ObservedPoints(xy=tracks.xy[rows].astype(np.float64), xyz=model.points[point], point=point))
    return out


def write_sparse_model(
    folder: PathLike,
    image_names: Sequence[str],
    cameras: Sequence[Camera],
    points: np.ndarray,
    track_point: np.ndarray,
    track_image: np.ndarray,
    track_xy: np.ndarray,
    binary: bool = True,
) -> Path:
    """Write a model (PINHOLE cameras, one per image) with the given flat tracks (see ``SfmModel``)."""
    import pycolmap

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    track_point = np.asarray(track_point, dtype=np.int64)
    track_image = np.asarray(track_image, dtype=np.int64)
    track_xy = np.asarray(track_xy, dtype=np.float64).reshape(-1, 2)
    recon = pycolmap.Reconstruction()
    keypoint_index = np.zeros(len(track_point), dtype=np.int64)
    for i, (name, camera) in enumerate(zip(image_names, cameras)):
        K = camera.K
        recon.add_camera_with_trivial_rig(
            pycolmap.Camera(
                model="PINHOLE",
                width=camera.width,
                height=camera.height,
                params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
                camera_id=i + 1,
            )
        )
        rows = np.flatnonzero(track_image == i)
        keypoint_index[rows] = np.arange(len(rows))
        image = pycolmap.Image(name=str(name), keypoints=track_xy[rows].reshape(-1, 2), camera_id=i + 1, image_id=i + 1)
        recon.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.asarray(camera.world_to_cam[:3, :4])))
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(track_point, kind="stable")
    bounds = np.searchsorted(track_point[order], np.arange(len(points) + 1))
    for p in range(len(points)):
        track = pycolmap.Track()
        for o in order[bounds[p] : bounds[p + 1]]:
            track.add_element(int(track_image[o]) + 1, int(keypoint_index[o]))
        recon.add_point3D(points[p], track)
    (recon.write_binary if binary else recon.write_text)(str(folder))
    return folder
