"""A COLMAP model of a synthetic scene, made from its ground truth instead of by SfM.

The scene's surface points (``sparse_pc.ply``) are projected into every view with the known
cameras; a point is observed in a view when it lands inside the image, in front of the camera,
and the ground-truth depth there and at the four neighbouring pixels agrees with its own depth
(visible, and away from depth edges where the pixel holding it may show another surface).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import write_sparse_model
from mastsam_splat.types import Frame

PathLike = Union[str, Path]


def visible_observations(
    frames: list[Frame], points: np.ndarray, depth_tolerance: float = 0.02
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat tracks of ``points`` [P, 3] in ``frames`` (with cameras and depth): point, frame, xy."""
    track_point, track_image, track_xy = [], [], []
    offsets = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
    for f, frame in enumerate(frames):
        if frame.camera is None or frame.depth is None:
            raise InputError(f"frame {frame.name!r} lacks a camera or depth; cannot project the scene's points")
        xy, z = frame.camera.project(points)
        h, w = frame.depth.shape
        cols = np.floor(np.nan_to_num(xy[:, 0], nan=-10.0)).astype(np.int64)
        rows = np.floor(np.nan_to_num(xy[:, 1], nan=-10.0)).astype(np.int64)
        ok = (z > 0) & (cols >= 1) & (cols < w - 1) & (rows >= 1) & (rows < h - 1)
        for dr, dc in offsets:
            d = frame.depth[np.clip(rows + dr, 0, h - 1), np.clip(cols + dc, 0, w - 1)]
            ok &= (d > 0) & (np.abs(d - z) <= depth_tolerance * np.maximum(d, 1e-6))
        index = np.flatnonzero(ok)
        track_point.append(index)
        track_image.append(np.full(len(index), f))
        track_xy.append(xy[index])
    return np.concatenate(track_point), np.concatenate(track_image), np.concatenate(track_xy)


def write_scene_sfm_model(
    root: PathLike,
    output: Optional[PathLike] = None,
    binary: bool = True,
    min_track_length: int = 2,
    depth_tolerance: float = 0.02,
) -> Path:
    """Write ``root/sparse/0`` (or ``output``): the synthetic scene's points with their visible tracks.

    Points seen in fewer than ``min_track_length`` views are left out. Returns the model folder.
    """
    from plyfile import PlyData

    from mastsam_splat.io import load_scene

    root = Path(root)
    scene = load_scene(root)
    ply = scene.ply_file or root / "sparse_pc.ply"
    if not ply.is_file():
        raise InputError("point cloud not found", ply)
    vertex = PlyData.read(str(ply))["vertex"]
    points = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    track_point, track_image, track_xy = visible_observations(scene.frames, points, depth_tolerance)
    lengths = np.bincount(track_point, minlength=len(points))
    kept = np.flatnonzero(lengths >= min_track_length)
    if not len(kept):
        raise InputError("no scene point is visible in enough views for a track", ply)
    new_index = np.full(len(points), -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    rows = new_index[track_point] >= 0
    folder = Path(output) if output is not None else root / "sparse" / "0"
    return write_sparse_model(
        folder,
        [Path(f.file).name if f.file is not None else f"{f.name}.png" for f in scene.frames],
        [f.camera for f in scene.frames],
        points[kept],
        new_index[track_point[rows]],
        track_image[rows],
        track_xy[rows],
        binary=binary,
    )
