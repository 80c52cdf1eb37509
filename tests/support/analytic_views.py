"""Tiny ray-cast scenes with analytic depth for geometry and matcher tests.

A textured wall (plane z = WALL_Z) with a textured box in front of it, seen by pinhole
cameras in the OpenCV convention. ``hit_points`` casts rays through arbitrary continuous
pixel coordinates, so tests can check correspondences against exact geometry.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import map_coordinates

from mastsam_splat.types import Camera, Frame

WALL_Z = 6.0
BOX_MIN = np.array([-0.9, -0.7, 3.6])
BOX_MAX = np.array([0.5, 0.6, 4.4])


def look_at(eye, target, width: int, height: int, focal: float | None = None, roll_deg: float = 0.0) -> Camera:
    """Camera at ``eye`` looking at ``target`` (world y down, OpenCV convention)."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    down = np.array([0.0, 1.0, 0.0])
    right = np.cross(down, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = np.deg2rad(roll_deg)
    right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = np.eye(4)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye
    f = focal if focal is not None else 0.9 * width
    K = np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, world_to_cam=w2c, width=width, height=height)


def _texture(seed: int, size: int = 1024) -> np.ndarray:
    """Grey multi-scale noise with blobs and edges: plenty of SIFT keypoints, uint8 [size, size]."""
    rng = np.random.default_rng(seed)
    tex = np.zeros((size, size), np.float32)
    for cells, weight in ((8, 1.0), (32, 0.7), (128, 0.6), (384, 0.5)):
        noise = rng.random((cells, cells)).astype(np.float32)
        tex += weight * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(4000):
        c = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(tex, c, int(rng.integers(2, 9)), float(rng.uniform(-1.0, 3.0)), -1)
    tex -= tex.min()
    tex /= tex.max()
    return (255 * tex).astype(np.uint8)


WALL_TEXTURE = _texture(1)
BOX_TEXTURE = _texture(2)


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    # Texel (i, j) is centred at (i + 0.5, j + 0.5) texture units; bilinear, wrapping.
    coords = np.stack([v * scale - 0.5, u * scale - 0.5])
    return map_coordinates(tex.astype(np.float64), coords, order=1, mode="grid-wrap")


def _rays(cam: Camera, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin [3] and world directions [N, 3] scaled so that camera z-depth equals the ray parameter."""
    d_cam = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ np.linalg.inv(cam.K).T
    return cam.center, d_cam @ cam.cam_to_world[:3, :3].T


def cast(cam: Camera, xy: np.ndarray, with_box: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-depth [N] (0 = miss), world hit points [N, 3] and surface id [N] (0 miss, 1 wall, 2 box)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    origin, dirs = _rays(cam, xy)
    n = len(xy)
    t = np.full(n, np.inf)
    surface = np.zeros(n, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_wall = (WALL_Z - origin[2]) / dirs[:, 2]
    wall = np.isfinite(t_wall) & (t_wall > 0)
    t[wall] = t_wall[wall]
    surface[wall] = 1
    if with_box:
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (BOX_MIN - origin) / dirs
            t2 = (BOX_MAX - origin) / dirs
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        box = (t_near <= t_far) & (t_near > 0) & (t_near < t)
        t[box] = t_near[box]
        surface[box] = 2
    hit = surface > 0
    points = np.zeros((n, 3))
    points[hit] = origin + dirs[hit] * t[hit, None]
    depth = np.where(hit, t, 0.0)
    return depth, points, surface


def shade(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Grey level [N] of surface points: the wall textured in (x, y), box faces by their axes."""
    out = np.zeros(len(points))
    wall = surface == 1
    out[wall] = _sample(WALL_TEXTURE, points[wall, 0], points[wall, 1], 64.0)
    box = surface == 2
    if box.any():
        p = points[box]
        rel = (p - BOX_MIN) / (BOX_MAX - BOX_MIN)
        face_axis = np.argmin(np.minimum(np.abs(rel), np.abs(1 - rel)), axis=1)
        u = np.where(face_axis == 0, p[:, 2], p[:, 0])
        v = np.where(face_axis == 1, p[:, 2], p[:, 1])
        out[box] = _sample(BOX_TEXTURE, u + 3 * face_axis, v, 100.0)
    return out


def render(cam: Camera, name: str, with_box: bool = True, index: int = 0) -> Frame:
    """A frame with RGB image, exact z-depth (float32) and camera."""
    h, w = cam.height, cam.width
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    xy = np.stack([cols.ravel(), rows.ravel()], axis=1)
    depth, points, surface = cast(cam, xy, with_box)
    grey = shade(points, surface)
    tint = np.where(surface == 2, 0.8, 1.0)
    image = np.stack([grey, grey * tint, grey * tint * tint], axis=1).reshape(h, w, 3)
    return Frame(
        image=np.clip(image, 0, 255).astype(np.uint8),
        name=name,
        index=index,
        camera=cam,
        depth=depth.reshape(h, w).astype(np.float32),
    )


def stereo_pair(width: int = 320, height: int = 240, with_box: bool = True) -> tuple[Frame, Frame]:
    """Two converging views of the wall and box, the second also rolled, so epipolar lines are slanted."""
    target = np.array([0.0, 0.0, WALL_Z])
    cam_a = look_at([-0.45, -0.1, 0.0], target + [0.2, 0.0, 0.0], width, height)
    cam_b = look_at([0.5, 0.15, 0.3], target + [-0.2, 0.1, 0.0], width, height, roll_deg=6.0)
    return render(cam_a, "view_a", with_box, 0), render(cam_b, "view_b", with_box, 1)
