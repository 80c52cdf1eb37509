"""Load a scene from a Nerfstudio dataset, a folder of images, or a video file.

Every image (and depth map) of a dataset or image folder is decoded once while the scene is loaded,
so unreadable files and size mismatches stop the load by name; the frames then hold only their
metadata and decode their pixels again when a step uses them (:mod:`mastsam_splat.io.frame_files`),
so a long sequence does not sit in memory. Video frames are decoded in one pass and held.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.frame_files import FileFrame, FrameFile, FrameFiles
from mastsam_splat.io.images import read_image_file
from mastsam_splat.types import Camera, Frame, Scene

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_DEPTH_UNIT_SCALE = 1e-3  # Nerfstudio's default: 16-bit depth PNGs hold millimetres.
NUMBER_FIELDS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "depth_unit_scale_factor")
"""transforms.json keys (global or per frame) that must hold a finite number when present."""
POSITIVE_FIELDS = ("fl_x", "fl_y", "w", "h", "depth_unit_scale_factor")
PATH_FIELDS = ("file_path", "depth_file_path", "mask_path")
"""Per-frame keys that must hold a path string when present (``file_path`` always)."""

PathLike = Union[str, Path]


def load_scene(path: PathLike, stride: int = 1, max_frames: Optional[int] = None) -> Scene:
    """Load the frames at ``path`` in sequence order.

    ``path`` is a Nerfstudio dataset folder (or its ``transforms.json``), a folder of images
    (sorted by name), or a video file. ``stride`` keeps every n-th frame, ``max_frames``
    caps the number of frames kept (after striding).
    """
    path = Path(path)
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}", path)
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be >= 1, got {max_frames}", path)
    if not path.exists():
        raise InputError("no such file or folder", path)
    if path.is_file() and path.suffix.lower() == ".json":
        return _load_nerfstudio(path, stride, max_frames)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError("a single image is not a scene; pass the folder that holds the images", path)
        return _load_video(path, stride, max_frames)
    if (path / "transforms.json").is_file():
        return _load_nerfstudio(path / "transforms.json", stride, max_frames)
    if (path / "images").is_dir() and not _image_files(path):
        return _load_image_folder(path / "images", stride, max_frames, root=path)
    return _load_image_folder(path, stride, max_frames, root=path)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as [H, W, 3] uint8 RGB (alpha dropped, grey expanded)."""
    path = Path(path)
    image = read_image_file(path, cv2.IMREAD_UNCHANGED)
    if image.dtype == np.uint16:
        image = (image / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"unsupported image dtype {image.dtype}", path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1])


def read_depth(path: PathLike, unit_scale: float = DEFAULT_DEPTH_UNIT_SCALE) -> np.ndarray:
    """Read a depth map as [H, W] float32 z-depth in scene units (0 = unknown).

    16-bit PNGs are multiplied by ``unit_scale`` (Nerfstudio's ``depth_unit_scale_factor``);
    ``.npy`` files are taken as they are.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("depth map not found", path)
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path)
        except (ValueError, OSError) as exc:
            raise InputError(f"depth map could not be read ({exc})", path) from None
    else:
        raw = read_image_file(path, cv2.IMREAD_UNCHANGED)
        depth = raw.astype(np.float32) * unit_scale
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise InputError(f"depth map must be single-channel, got shape {depth.shape}", path)
    depth[~np.isfinite(depth)] = 0.0
    return depth


def _select(items: list, stride: int, max_frames: Optional[int]) -> list:
    items = items[::stride]
    return items if max_frames is None else items[:max_frames]


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_same_size(frames: list[Frame]) -> None:
    first = frames[0]
    for frame in frames[1:]:
        if (frame.height, frame.width) != (first.height, first.width):
            raise InputError(
                f"image is {frame.width}x{frame.height} but {first.file.name if first.file else first.name} is "
                f"{first.width}x{first.height}; all frames of a scene must have the same size",
                frame.file,
            )


def _load_image_folder(folder: Path, stride: int, max_frames: Optional[int], root: Path) -> Scene:
    files = _image_files(folder)
    if not files:
        raise InputError(
            f"no images found (looked for {', '.join(IMAGE_SUFFIXES)}) and no transforms.json", folder
        )
    files = _select(files, stride, max_frames)
    reader = FrameFiles([FrameFile(f) for f in files], read_image, read_depth)
    frames: list[Frame] = [
        FileFrame.from_files(reader, i, f.stem, i, reader.image(i).shape[:2]) for i, f in enumerate(files)
    ]
    _check_same_size(frames)
    return Scene(frames=frames, root=root, kind="images")


def _load_video(path: Path, stride: int, max_frames: Optional[int]) -> Scene:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError("could not open as a video (unsupported format or corrupt file)", path)
    frames: list[Frame] = []
    source_index = 0
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                if source_index < reported:
                    raise InputError(
                        f"the video reports {reported} frames but only {source_index} could be decoded "
                        "(truncated or corrupt file); re-encode it, or pass --max-frames to use the frames "
                        "before the break",
                        path,
                    )
                break
            if source_index % stride == 0:
                frames.append(
                    Frame(
                        image=np.ascontiguousarray(bgr[:, :, ::-1]),
                        name=f"frame_{source_index:05d}",
                        index=len(frames),
                        file=path,
                    )
                )
            source_index += 1
    finally:
        capture.release()
    if not frames:
        raise InputError("the video holds no decodable frames", path)
    return Scene(frames=frames, root=path, kind="video")


def _load_nerfstudio(transforms_path: Path, stride: int, max_frames: Optional[int]) -> Scene:
    root = transforms_path.parent
    meta = read_transforms(transforms_path)
    entries = sorted(meta["frames"], key=lambda f: f["file_path"])
    entries = _select(entries, stride, max_frames)
    unit_scale = float(meta.get("depth_unit_scale_factor", DEFAULT_DEPTH_UNIT_SCALE))

    reader = FrameFiles(
        [
            FrameFile(
                root / entry["file_path"],
                root / entry["depth_file_path"] if "depth_file_path" in entry else None,
                unit_scale,
            )
            for entry in entries
        ],
        read_image,
        read_depth,
    )
    frames: list[Frame] = []
    for i, (entry, files) in enumerate(zip(entries, reader.files)):
        image = reader.image(i)
        camera = _camera_from_entry(meta, entry, image, transforms_path)
        depth = reader.depth(i)
        if depth is not None and depth.shape != image.shape[:2]:
            raise InputError(
                f"depth map is {depth.shape[1]}x{depth.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}",
                files.depth,
            )
        frames.append(FileFrame.from_files(reader, i, files.image.stem, i, image.shape[:2], camera))

    names = [f.name for f in frames]
    if len(set(names)) != len(names):
        raise InputError("two frames share an image file name (stems must be unique)", transforms_path)
    _check_same_size(frames)
    ply_file = root / meta["ply_file_path"] if meta.get("ply_file_path") else None
    return Scene(frames=frames, root=root, kind="nerfstudio", ply_file=ply_file)


def read_transforms(path: PathLike) -> dict[str, Any]:
    """Parse a transforms.json and check every field a run reads (see :func:`check_transforms`)."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path) from None
    except OSError as exc:
        raise InputError(f"could not be read ({exc.strerror or exc})", path) from None
    check_transforms(meta, path)
    return meta


def check_transforms(meta: Any, source: PathLike) -> None:
    """Field types of a parsed transforms.json, before any image is read.

    Paths are strings; intrinsics and distortion are finite numbers (sizes and focal lengths
    positive), globally or per frame; every frame has a finite 3x4 or 4x4 ``transform_matrix``.
    Messages give a frame's index in the file.
    """
    source = Path(source)
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise InputError("expected an object with a 'frames' list", source)
    if not meta["frames"]:
        raise InputError("'frames' is empty", source)
    _check_numbers(meta, "", source)
    if "ply_file_path" in meta and meta["ply_file_path"] is not None and not isinstance(meta["ply_file_path"], str):
        raise InputError(f"'ply_file_path' must be a string (a path), got {meta['ply_file_path']!r}", source)
    for i, entry in enumerate(meta["frames"]):
        if not isinstance(entry, dict):
            raise InputError(f"frame {i} must be an object, got {entry!r}", source)
        if "file_path" not in entry:
            raise InputError(f"frame {i} has no 'file_path'", source)
        for key in PATH_FIELDS:
            if key in entry and (not isinstance(entry[key], str) or not entry[key]):
                raise InputError(f"frame {i}: {key!r} must be a string (a path), got {entry[key]!r}", source)
        _check_numbers(entry, f"frame {i}: ", source)
        if "transform_matrix" not in entry:
            raise InputError(f"frame {i} has no 'transform_matrix'", source)
        _check_pose(entry["transform_matrix"], f"frame {i}: ", source)


def _check_numbers(fields: dict[str, Any], where: str, source: Path) -> None:
    for key in NUMBER_FIELDS:
        if key not in fields or fields[key] is None:
            continue
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}{key!r} must be a number, got {value!r}", source)
        if not np.isfinite(value):
            raise InputError(f"{where}{key!r} must be a finite number, got {value!r}", source)
        if key in POSITIVE_FIELDS and value <= 0:
            raise InputError(f"{where}{key!r} must be positive, got {value!r}", source)


def _check_pose(matrix: Any, where: str, source: Path) -> None:
    rows = matrix if isinstance(matrix, list) else None
    ok = rows is not None and all(
        isinstance(row, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
        for row in rows
    )
    shape = np.asarray(rows, dtype=np.float64).shape if ok and len({len(r) for r in rows}) == 1 else None
    if shape not in ((4, 4), (3, 4)):
        raise InputError(f"{where}'transform_matrix' must be a 3x4 or 4x4 list of numbers, got {matrix!r:.80}", source)
    if not np.isfinite(np.asarray(rows, dtype=np.float64)).all():
        raise InputError(f"{where}'transform_matrix' must hold finite numbers (it has NaN or infinity)", source)


def _camera_from_entry(meta: dict[str, Any], entry: dict[str, Any], image: np.ndarray, source: Path) -> Camera:
    """Intrinsics from the frame (or the global keys), extrinsics from ``transform_matrix``."""

    def get(key: str, default: Optional[float] = None) -> Optional[float]:
        value = entry.get(key, meta.get(key, default))
        return None if value is None else float(value)

    height, width = image.shape[:2]
    fl_x, fl_y = get("fl_x"), get("fl_y")
    if fl_x is None and fl_y is None:
        raise InputError(f"frame {entry['file_path']!r} has no focal length (fl_x / fl_y)", source)
    fl_x = fl_y if fl_x is None else fl_x
    fl_y = fl_x if fl_y is None else fl_y
    w = get("w", width)
    h = get("h", height)
    if (int(w), int(h)) != (width, height):
        raise InputError(
            f"transforms.json says {int(w)}x{int(h)} for {entry['file_path']!r} but the image is {width}x{height}",
            source,
        )
    cx = get("cx", width / 2.0)
    cy = get("cy", height / 2.0)
    K = np.array([[fl_x, 0.0, cx], [0.0, fl_y, cy], [0.0, 0.0, 1.0]])
    try:
        c2w = np.asarray(entry["transform_matrix"], dtype=np.float64)
    except KeyError:
        raise InputError(f"frame {entry['file_path']!r} has no 'transform_matrix'", source) from None
    except (TypeError, ValueError):
        raise InputError(f"frame {entry['file_path']!r} has a non-numeric 'transform_matrix'", source) from None
    if c2w.shape not in ((4, 4), (3, 4)) or not np.isfinite(c2w).all():
        raise InputError(f"frame {entry['file_path']!r}: 'transform_matrix' must be a finite 3x4 or 4x4 matrix", source)
    return Camera.from_opengl_c2w(c2w, K, width, height)


MIN_DOWNSCALED_SIDE = 8
"""Fewest pixels a downscaled frame keeps on its shorter side."""


def check_downscale(scene: Scene, factor: int, option: str = "--downscale") -> None:
    """``factor`` is >= 1 and leaves every frame at least :data:`MIN_DOWNSCALED_SIDE` pixels on its shorter side."""
    if factor < 1:
        raise InputError(f"{option} must be >= 1, got {factor}")
    shortest = min(min(f.width, f.height) for f in scene.frames)
    largest = max(1, shortest // MIN_DOWNSCALED_SIDE)
    if factor > largest:
        raise InputError(
            f"{option} {factor} is too large for frames of {shortest} px on their shorter side "
            f"(at most {largest}, which keeps {MIN_DOWNSCALED_SIDE} px)"
        )


def input_image_folders(path: PathLike) -> list[Path]:
    """Folders holding the frame images that :func:`load_scene` would read from ``path`` (none for a
    video), found without decoding anything; a transforms.json is checked on the way."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        transforms = path
    elif path.is_dir() and (path / "transforms.json").is_file():
        transforms = path / "transforms.json"
    elif path.is_dir():
        images = path / "images"
        return [images] if images.is_dir() and not _image_files(path) else [path]
    else:
        return []
    meta = read_transforms(transforms)
    return sorted({(transforms.parent / entry["file_path"]).parent for entry in meta["frames"]})
