"""Readers of generated synthetic scenes and exact surface distances to their primitives.

Synthetic tests use tiny scenes (8 frames, 64x48) so each test module runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from mastsam_splat.types import Camera

FRAMES, WIDTH, HEIGHT = 8, 64, 48


def read_png(path: Path) -> np.ndarray:
    """A PNG as stored (8-bit BGR or 16-bit single channel)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def scene_cameras(root: Path) -> list[Camera]:
    """The cameras of ``transforms.json``, read independently of the library's scene loader."""
    meta = json.loads((root / "transforms.json").read_text())
    K = np.array([[meta["fl_x"], 0, meta["cx"]], [0, meta["fl_y"], meta["cy"]], [0, 0, 1]])
    return [Camera.from_opengl_c2w(f["transform_matrix"], K, meta["w"], meta["h"]) for f in meta["frames"]]


def read_stack(root: Path, folder: str) -> np.ndarray:
    """Every frame of one per-frame folder, stacked in name order."""
    return np.stack([read_png(p) for p in sorted((root / folder).glob("*.png"))])  # [T, H, W]


def read_depths(root: Path) -> np.ndarray:
    """Depth maps in metres (stored as millimetres)."""
    return read_stack(root, "depth").astype(np.float64) / 1000.0  # [T, H, W] metres


def unproject_all(camera: Camera, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [M, 3] of the pixels with depth, and those pixels' flat indices [M]."""
    idx = np.flatnonzero(depth > 0)
    rows, cols = np.divmod(idx, depth.shape[1])
    xy = np.stack([cols + 0.5, rows + 0.5], axis=1)
    return camera.unproject(xy, depth.reshape(-1)[idx]), idx


def surface_distance(prim: dict, points: np.ndarray) -> np.ndarray:
    """Unsigned distance [N] of points to the surface of a primitive described in scene.json."""
    centre = np.asarray(prim["center"])
    size = np.asarray(prim["size"])
    rel = points - centre
    if prim["kind"] == "sphere":
        return np.abs(np.linalg.norm(rel, axis=1) - size[0])
    c, s = np.cos(prim["yaw"]), np.sin(prim["yaw"])
    if prim["kind"] == "box":
        local = rel @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        q = np.abs(local) - size
        outside = np.linalg.norm(np.maximum(q, 0), axis=1)
        inside = np.minimum(q.max(axis=1), 0)
        return np.abs(outside + inside)
    radius, height = size
    radial = np.linalg.norm(rel[:, :2], axis=1) - radius
    axial = np.abs(rel[:, 2] - height / 2) - height / 2
    q = np.stack([radial, axial], axis=1)
    return np.abs(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0))
